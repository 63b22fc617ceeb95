// Package localenv runs the operator fully locally: envtest's control plane
// (kube-apiserver and etcd) with the CRD installed, the Twilio fake on loopback,
// and the real manager binary pointed at both. make demo stands on it, and so
// do the benchmark and chaos runs.
package localenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

// Options configure a local environment.
type Options struct {
	// RepoRoot is the repository's top directory (CRDs are read from config/crd/bases).
	RepoRoot string
	// ManagerBinary is the manager to run; default RepoRoot/bin/manager.
	ManagerBinary string
	// ManagerArgs are added to the manager's command line.
	ManagerArgs []string
	// ManagerOutput receives the manager's logs; default discarded.
	ManagerOutput io.Writer
	// Fake is the Twilio fake to serve; default a new one.
	Fake *twiliofake.Server
	// Handler, when set, is served in place of Fake (a wrapper around it that
	// adds latency or watches requests, for example).
	Handler http.Handler
}

// Env is a running local environment.
type Env struct {
	// Kubeconfig is the path of a kubeconfig file for the control plane.
	Kubeconfig string
	// Client talks to the control plane.
	Client client.WithWatch
	// Config is the control plane's REST config.
	Config *rest.Config
	// Fake is the Twilio fake the manager talks to.
	Fake *twiliofake.Server
	// FakeURL is the fake's address.
	FakeURL string

	opts     Options
	testEnv  *envtest.Environment
	server   *http.Server
	dir      string
	managers []*Manager
}

// Start starts the control plane and the fake; StartManager starts the manager.
func Start(opts Options) (*Env, error) {
	if opts.ManagerBinary == "" {
		opts.ManagerBinary = filepath.Join(opts.RepoRoot, "bin", "manager")
	}
	if opts.ManagerOutput == nil {
		opts.ManagerOutput = io.Discard
	}
	if opts.Fake == nil {
		opts.Fake = twiliofake.New()
	}
	e := &Env{opts: opts, Fake: opts.Fake}
	e.testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(opts.RepoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := e.testEnv.Start()
	if err != nil {
		return nil, fmt.Errorf("starting the control plane (is KUBEBUILDER_ASSETS set?): %w", err)
	}
	scheme := runtime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(scheme), v1alpha1.AddToScheme(scheme)); err != nil {
		return nil, errors.Join(err, e.Stop())
	}
	e.Config = cfg
	if e.Client, err = client.NewWithWatch(cfg, client.Options{Scheme: scheme}); err != nil {
		return nil, errors.Join(err, e.Stop())
	}
	if e.dir, err = os.MkdirTemp("", "cwh-localenv-"); err != nil {
		return nil, errors.Join(err, e.Stop())
	}
	e.Kubeconfig = filepath.Join(e.dir, "kubeconfig")
	if err := os.WriteFile(e.Kubeconfig, e.testEnv.KubeConfig, 0o600); err != nil {
		return nil, errors.Join(err, e.Stop())
	}
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, errors.Join(err, e.Stop())
	}
	e.FakeURL = "http://" + ln.Addr().String()
	var h http.Handler = e.Fake
	if opts.Handler != nil {
		h = opts.Handler
	}
	e.server = &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = e.server.Serve(ln) }()
	return e, nil
}

// Manager is a running manager process.
type Manager struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartManager runs the manager binary against the control plane and the fake.
// out receives its logs (nil: the environment's ManagerOutput).
func (e *Env) StartManager(out io.Writer, extraArgs ...string) (*Manager, error) {
	args := []string{
		"--kubeconfig", e.Kubeconfig,
		"--twilio-api-url", e.FakeURL,
		"--metrics-bind-address", "0",
		"--health-probe-bind-address", "0",
	}
	args = append(append(args, e.opts.ManagerArgs...), extraArgs...)
	if out == nil {
		out = e.opts.ManagerOutput
	}
	cmd := exec.Command(e.opts.ManagerBinary, args...) //nolint:gosec,noctx // our own binary; stopped by Stop or Kill
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s (run make build first): %w", e.opts.ManagerBinary, err)
	}
	m := &Manager{cmd: cmd, done: make(chan struct{})}
	go func() {
		m.err = cmd.Wait()
		close(m.done)
	}()
	e.managers = append(e.managers, m)
	return m, nil
}

// PID is the manager's process ID.
func (m *Manager) PID() int { return m.cmd.Process.Pid }

// Exited is closed when the manager's process ends; Err then says how.
func (m *Manager) Exited() <-chan struct{} { return m.done }

// Err is the process's exit error once Exited is closed.
func (m *Manager) Err() error { return m.err }

// Signal sends sig to the manager's process (SIGSTOP and SIGCONT freeze and
// thaw it, as a long GC pause or a stalled node would).
func (m *Manager) Signal(sig os.Signal) error {
	select {
	case <-m.done:
		return errors.New("manager already exited")
	default:
	}
	return m.cmd.Process.Signal(sig)
}

// Kill ends the manager at once (SIGKILL), as a node failure would, and waits.
func (m *Manager) Kill() {
	_ = m.cmd.Process.Kill()
	<-m.done
}

// Stop asks the manager to stop (SIGTERM) and waits, killing it after 10s.
func (m *Manager) Stop() error {
	select {
	case <-m.done:
		return nil
	default:
	}
	_ = m.cmd.Process.Signal(os.Interrupt)
	_ = m.cmd.Process.Signal(syscall.SIGCONT) // a frozen manager must wake to stop
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		m.Kill()
	}
	return ignoreSignal(m.err)
}

func ignoreSignal(err error) error {
	var exit *exec.ExitError
	if errors.As(err, &exit) && !exit.Exited() {
		return nil
	}
	return err
}

// Stop stops the manager, the fake and the control plane, and removes the kubeconfig.
func (e *Env) Stop() error {
	var errs []error
	for _, m := range e.managers {
		errs = append(errs, m.Stop())
	}
	if e.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, e.server.Shutdown(ctx))
		cancel()
	}
	if e.testEnv != nil {
		errs = append(errs, e.testEnv.Stop())
	}
	if e.dir != "" {
		errs = append(errs, os.RemoveAll(e.dir))
	}
	return errors.Join(errs...)
}
