package controller

import (
	"context"
	"fmt"
	"time"

	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// CacheOptions is the manager's cache: no object keeps its managed fields, and
// Secrets are cached as metadata without annotations (StripSecretMetadata).
func CacheOptions() cache.Options {
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject:         map[client.Object]cache.ByObject{SecretMetadata(): {Transform: StripSecretMetadata}},
	}
}

// DefaultSendWindow is how long after its pending stamp a create may still be
// sent when Setup derives the window: it then ends, a Twilio timeout later,
// before PendingGrace (the timeout plus this window).
const DefaultSendWindow = 5 * time.Second

// Setup is every controller a manager of this operator runs, wired one way
// for cmd/manager and for the suites that stand in for it: the
// ConversationWebhook reconciler, the status gauges, and the reconcilers of
// both account kinds.
type Setup struct {
	// Twilio is the client factory; its Timeout bounds one request.
	Twilio *twilio.Factory
	// PendingGrace and SendWindow override the values derived from the
	// factory's Timeout (tests shorten them): SendWindow DefaultSendWindow,
	// PendingGrace the timeout plus the send window.
	PendingGrace, SendWindow time.Duration
	DefaultAccount           string
	SyncPeriod               time.Duration
	MaxConcurrentReconciles  int
	// Fence stops Twilio writes once the lease may be lost (nil: no election).
	Fence LeaseFence
	// Metrics counts drift corrections; StatusMetrics, when set, follows the
	// objects' conditions (served through WithStatusMetrics).
	Metrics       *Metrics
	StatusMetrics *StatusMetrics
}

// Apply adds the controllers to mgr.
func (s Setup) Apply(ctx context.Context, mgr ctrl.Manager) error {
	grace, window := s.PendingGrace, s.SendWindow
	if grace == 0 {
		if window == 0 {
			window = DefaultSendWindow
		}
		grace = s.Twilio.Timeout() + window
	}
	r := &ConversationWebhookReconciler{
		Client:         mgr.GetClient(),
		APIReader:      mgr.GetAPIReader(),
		Recorder:       mgr.GetEventRecorder("conversation-webhook-operator"),
		Twilio:         s.Twilio,
		DefaultAccount: s.DefaultAccount,
		SyncPeriod:     s.SyncPeriod,
		Clock:          clock.RealClock{},
		Metrics:        s.Metrics,
		PendingGrace:   grace,
		SendWindow:     window,
		Fence:          s.Fence,
	}
	if err := r.SetupWithManager(ctx, mgr, s.MaxConcurrentReconciles); err != nil {
		return fmt.Errorf("setting up controller: %w", err)
	}
	if s.StatusMetrics != nil {
		if err := s.StatusMetrics.SetupWithManager(mgr); err != nil {
			return fmt.Errorf("setting up status metrics: %w", err)
		}
	}
	for _, cluster := range []bool{false, true} {
		a := &AccountReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Verifier: s.Twilio,
			Limits: s.Twilio, SyncPeriod: s.SyncPeriod, Cluster: cluster}
		if err := a.SetupWithManager(ctx, mgr); err != nil {
			return fmt.Errorf("setting up account controller: %w", err)
		}
	}
	return nil
}
