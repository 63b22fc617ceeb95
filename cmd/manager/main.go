// Command manager runs the conversation-webhook-operator.
package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	// CA roots compiled in, used when the system has none (the image has no OS).
	_ "golang.org/x/crypto/x509roots/fallback"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/controller"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

func main() {
	var cfg config
	flag.StringVar(&cfg.metricsAddr, "metrics-bind-address", "0", "Address of the metrics endpoint: :8443 for HTTPS, :8080 for HTTP, 0 to disable.")
	flag.StringVar(&cfg.probeAddr, "health-probe-bind-address", ":8081", "Address of the health and readiness probes.")
	flag.StringVar(&cfg.pprofAddr, "pprof-bind-address", "0",
		"Address of Go's profiling endpoints (/debug/pprof/), unauthenticated: a loopback address or 0 to disable.")
	flag.BoolVar(&cfg.leaderElect, "leader-elect", false, "Elect a leader, so that only one manager reconciles at a time.")
	flag.StringVar(&cfg.leaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader-election Lease (default: the manager's own).")
	flag.BoolVar(&cfg.secureMetrics, "metrics-secure", true, "Serve metrics over HTTPS with authentication and authorization.")
	flag.BoolVar(&cfg.enableHTTP2, "enable-http2", false, "Enable HTTP/2 for the metrics server.")
	flag.StringVar(&cfg.twilioURL, "twilio-api-url", twilio.DefaultBaseURL, "Twilio Conversations API base URL (regional hosts, local fakes).")
	flag.DurationVar(&cfg.syncPeriod, "sync-period", 10*time.Minute, "How often each webhook is checked for drift (jittered ±10%).")
	flag.IntVar(&cfg.maxConcurrent, "max-concurrent-reconciles", 10, "Objects reconciled in parallel.")
	flag.Float64Var(&cfg.twilioRPS, "twilio-rps", 25, "Twilio requests per second per account, shared by all workers (an account's spec.limits overrides it).")
	flag.IntVar(&cfg.twilioMaxInFlight, "twilio-max-inflight", 10,
		"Twilio requests in flight per account, the ceiling of its adaptive limit (an account's spec.limits overrides it).")
	flag.DurationVar(&cfg.twilioTimeout, "twilio-timeout", 10*time.Second, "Timeout of one Twilio HTTP request.")
	flag.StringVar(&cfg.defaultAccount, "default-account", "",
		"Name of the ClusterTwilioAccount used by objects without spec.accountRef (subject to its conditions); empty for none.")
	opts := zap.Options{Development: false}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))

	if err := run(cfg); err != nil {
		ctrl.Log.WithName("setup").Error(err, "Manager failed")
		os.Exit(1)
	}
}

// config holds the manager's flags.
type config struct {
	metricsAddr, probeAddr, pprofAddr, twilioURL string
	defaultAccount                               string
	secureMetrics, enableHTTP2, leaderElect      bool
	leaderElectionNamespace                      string
	syncPeriod, twilioTimeout                    time.Duration
	maxConcurrent, twilioMaxInFlight             int
	twilioRPS                                    float64
}

// checkFlags refuses flag values the manager cannot run with.
func checkFlags(cfg config) error {
	if cfg.syncPeriod < controller.MinPollInterval {
		return fmt.Errorf("--sync-period %s is below the %s floor", cfg.syncPeriod, controller.MinPollInterval)
	}
	if cfg.maxConcurrent < 1 || cfg.twilioRPS <= 0 || cfg.twilioMaxInFlight < 1 {
		return errors.New("--max-concurrent-reconciles, --twilio-rps and --twilio-max-inflight must be positive")
	}
	if cfg.twilioTimeout <= 0 {
		// PendingGrace (how long a pending create is waited for) is this
		// timeout plus the send window: without one it would not bound a create.
		return fmt.Errorf("--twilio-timeout %s must be positive", cfg.twilioTimeout)
	}
	return nil
}

func run(cfg config) error {
	if err := checkFlags(cfg); err != nil {
		return err
	}

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))

	var tlsOpts []func(*tls.Config)
	if !cfg.enableHTTP2 {
		// HTTP/2 Stream Cancellation and Rapid Reset CVEs: serve HTTP/1.1 only.
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metricsOpts := metricsserver.Options{BindAddress: cfg.metricsAddr, SecureServing: cfg.secureMetrics, TLSOpts: tlsOpts}
	if cfg.secureMetrics {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	restCfg := ctrl.GetConfigOrDie()
	const electionID = "conversation-webhook-operator.conversations.twilio-operator.io"
	var lock *fencedLock
	if cfg.leaderElect {
		var err error
		if lock, err = newFencedLock(restCfg, cfg.leaderElectionNamespace, electionID); err != nil {
			return fmt.Errorf("leader election: %w", err)
		}
	}
	factory, err := twilio.NewFactory(twilio.Options{
		BaseURL: cfg.twilioURL, RequestsPerSecond: cfg.twilioRPS, MaxInFlight: cfg.twilioMaxInFlight, Timeout: cfg.twilioTimeout,
		Metrics: twilio.NewMetrics(metrics.Registry), BeforeWrite: beforeWrite(lock),
	})
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsOpts,
		HealthProbeBindAddress:        cfg.probeAddr,
		PprofBindAddress:              cfg.pprofAddr,
		LeaderElection:                cfg.leaderElect,
		LeaderElectionID:              electionID,
		LeaderElectionNamespace:       cfg.leaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		// The lease lock records its renewals: the reconciler's fence.
		LeaderElectionResourceLockInterface: resourceLock(lock),
		Cache:                               controller.CacheOptions(),
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	ctx := ctrl.SetupSignalHandler()
	if lock != nil {
		go lock.watch(ctx)
	}
	// The status gauges are served next to controller-runtime's registry
	// (the metrics server reads metrics.Registry when it starts).
	status := controller.NewStatusMetrics()
	served, err := controller.WithStatusMetrics(metrics.Registry, status)
	if err != nil {
		return err
	}
	metrics.Registry = served
	setup := controller.Setup{
		Twilio: factory, DefaultAccount: cfg.defaultAccount,
		SyncPeriod: cfg.syncPeriod, MaxConcurrentReconciles: cfg.maxConcurrent, Fence: fence(lock),
		Metrics: controller.NewMetrics(metrics.Registry), StatusMetrics: status,
	}
	if err := setup.Apply(ctx, mgr); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	if pprofExposed(cfg.pprofAddr) {
		ctrl.Log.WithName("setup").Info("WARNING: --pprof-bind-address is not a loopback address: the profiling endpoints are unauthenticated",
			"address", cfg.pprofAddr)
	}
	ctrl.Log.WithName("setup").Info("Starting manager", "twilioAPI", cfg.twilioURL, "syncPeriod", cfg.syncPeriod.String(),
		"maxConcurrentReconciles", cfg.maxConcurrent, "twilioRPS", cfg.twilioRPS, "twilioMaxInFlight", cfg.twilioMaxInFlight)
	return mgr.Start(ctx)
}

// pprofExposed says the profiling endpoints listen beyond loopback.
func pprofExposed(addr string) bool {
	if addr == "" || addr == "0" {
		return false
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return true
	}
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

// resourceLock is the lock for the manager's options (nil without election).
func resourceLock(l *fencedLock) resourcelock.Interface {
	if l == nil {
		return nil
	}
	return l
}

// fence is the lock as the reconciler's LeaseFence (nil without election).
func fence(l *fencedLock) controller.LeaseFence {
	if l == nil {
		return nil
	}
	return l
}

// beforeWrite refuses a Twilio write once the lease may be lost (nil without election).
func beforeWrite(l *fencedLock) func() error {
	if l == nil {
		return nil
	}
	return func() error {
		if !l.Held() {
			return errLeaseLost
		}
		return nil
	}
}

// errLeaseLost says a Twilio write was not sent: the lease may have passed to another manager.
var errLeaseLost = errors.New("this manager may no longer hold the leader-election lease")
