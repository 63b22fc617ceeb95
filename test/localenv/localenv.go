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
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
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
}

// Env is a running local environment.
type Env struct {
	// Kubeconfig is the path of a kubeconfig file for the control plane.
	Kubeconfig string
	// Client talks to the control plane.
	Client client.Client
	// Fake is the Twilio fake the manager talks to.
	Fake *twiliofake.Server
	// FakeURL is the fake's address.
	FakeURL string

	opts    Options
	testEnv *envtest.Environment
	server  *http.Server
	dir     string
	manager *exec.Cmd
	exited  chan error
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
	if e.Client, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
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
	e.server = &http.Server{Handler: e.Fake, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = e.server.Serve(ln) }()
	return e, nil
}

// StartManager runs the manager binary against the control plane and the fake.
func (e *Env) StartManager(extraArgs ...string) error {
	args := []string{
		"--kubeconfig", e.Kubeconfig,
		"--twilio-api-url", e.FakeURL,
		"--metrics-bind-address", "0",
		"--health-probe-bind-address", "0",
	}
	args = append(append(args, e.opts.ManagerArgs...), extraArgs...)
	cmd := exec.Command(e.opts.ManagerBinary, args...) //nolint:gosec,noctx // our own binary; stopped by StopManager
	cmd.Stdout, cmd.Stderr = e.opts.ManagerOutput, e.opts.ManagerOutput
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s (run make build first): %w", e.opts.ManagerBinary, err)
	}
	e.manager = cmd
	e.exited = make(chan error, 1)
	go func() { e.exited <- cmd.Wait() }()
	return nil
}

// ManagerPID is the running manager's process ID, or 0.
func (e *Env) ManagerPID() int {
	if e.manager == nil || e.manager.Process == nil {
		return 0
	}
	return e.manager.Process.Pid
}

// ManagerExited is closed with the manager's exit error when it stops.
func (e *Env) ManagerExited() <-chan error { return e.exited }

// StopManager asks the manager to stop (SIGTERM) and waits, killing it after 10s.
func (e *Env) StopManager() error {
	if e.manager == nil {
		return nil
	}
	defer func() { e.manager = nil }()
	_ = e.manager.Process.Signal(os.Interrupt)
	select {
	case err := <-e.exited:
		return ignoreSignal(err)
	case <-time.After(10 * time.Second):
		_ = e.manager.Process.Kill()
		return ignoreSignal(<-e.exited)
	}
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
	errs = append(errs, e.StopManager())
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
