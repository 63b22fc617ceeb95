// Package controller reconciles ConversationWebhook objects with Twilio.
package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// MinPollInterval is the floor of the poll-interval annotation.
const MinPollInterval = 30 * time.Second

// TwilioClients hands out a Twilio client for a set of credentials
// (*twilio.Factory in the manager).
type TwilioClients interface {
	For(creds twilio.Credentials) (twilio.WebhookAPI, error)
}

var _ TwilioClients = (*twilio.Factory)(nil)

// ConversationWebhookReconciler makes Twilio match ConversationWebhook objects.
type ConversationWebhookReconciler struct {
	client.Client
	// APIReader reads Secrets straight from the API server: the manager caches
	// no Secret data.
	APIReader client.Reader
	// Recorder emits an event for every change made in Twilio and every failure.
	Recorder events.EventRecorder
	// Twilio builds clients per credentials.
	Twilio TwilioClients
	// DefaultCredentials is --default-credentials-secret; nil when unset.
	DefaultCredentials *types.NamespacedName
	// SyncPeriod is the drift-check period before jitter (--sync-period).
	SyncPeriod time.Duration
	// Clock stamps lastSyncTime and create-pending.
	Clock clock.PassiveClock
	// Metrics counts drift corrections.
	Metrics *Metrics

	credentials credentialCache
}

// +kubebuilder:rbac:groups=conversations.twilio-operator.io,resources=conversationwebhooks,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=conversations.twilio-operator.io,resources=conversationwebhooks/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=conversations.twilio-operator.io,resources=conversationwebhooks/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one ConversationWebhook and its Twilio webhook together.
func (r *ConversationWebhookReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	obj := &v1alpha1.ConversationWebhook{}
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	// Nothing can exist in Twilio before create adds the finalizer (with its
	// create-pending marker); an object that names a webhook gets it here.
	if obj.DeletionTimestamp.IsZero() && managedSid(obj) != "" && !controllerutil.ContainsFinalizer(obj, v1alpha1.Finalizer) {
		if err := r.patchMeta(ctx, obj, false, func(o *v1alpha1.ConversationWebhook) {
			controllerutil.AddFinalizer(o, v1alpha1.Finalizer)
		}); err != nil {
			return ctrl.Result{}, err
		}
	}

	base := obj.DeepCopy()
	defer func() {
		if equality.Semantic.DeepEqual(base.Status, obj.Status) {
			return
		}
		if err := r.Status().Patch(ctx, obj, client.MergeFrom(base)); err != nil && !apierrors.IsNotFound(err) {
			retErr = errors.Join(retErr, fmt.Errorf("patching status: %w", err))
		}
	}()

	if !obj.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, obj)
	}
	return r.reconcileNormal(ctx, obj)
}

// reconcileNormal creates, adopts, corrects or replaces the webhook.
func (r *ConversationWebhookReconciler) reconcileNormal(ctx context.Context, obj *v1alpha1.ConversationWebhook) (ctrl.Result, error) {
	if isPaused(obj) {
		setPaused(&obj.Status, obj.Generation)
		return ctrl.Result{}, nil
	}
	api, err := r.twilioFor(ctx, obj)
	if err == nil {
		err = r.checkOwnership(ctx, obj)
	}
	if err == nil {
		err = r.sync(ctx, obj, api)
	}
	if err != nil {
		return r.failed(ctx, obj, phaseOf(obj, err), err)
	}
	setReady(&obj.Status, obj.Generation, r.now())
	return ctrl.Result{RequeueAfter: r.pollInterval(ctx, obj)}, nil
}

// reconcileDelete removes the webhook (unless the policy is Orphan) and the finalizer.
func (r *ConversationWebhookReconciler) reconcileDelete(ctx context.Context, obj *v1alpha1.ConversationWebhook) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(obj, v1alpha1.Finalizer) {
		return ctrl.Result{}, nil
	}
	if isPaused(obj) {
		setPaused(&obj.Status, obj.Generation)
		return ctrl.Result{}, nil
	}
	if err := r.deleteExternal(ctx, obj); err != nil {
		return r.failed(ctx, obj, v1alpha1.ReasonDeleting, err)
	}
	return ctrl.Result{}, r.patchMeta(ctx, obj, false, func(o *v1alpha1.ConversationWebhook) {
		controllerutil.RemoveFinalizer(o, v1alpha1.Finalizer)
	})
}

// failed records a failure: terminal ones stall without a retry (the next change
// of spec, annotations or Secret reconciles again); others are retried with the
// workqueue's backoff, or after Twilio's Retry-After.
func (r *ConversationWebhookReconciler) failed(ctx context.Context, obj *v1alpha1.ConversationWebhook, phase string, err error) (ctrl.Result, error) {
	if apierrors.IsConflict(err) {
		// A stale view of the object: retry with the workqueue's backoff, quietly.
		return ctrl.Result{}, err
	}
	reason, terminal := classify(err)
	if terminal {
		log.FromContext(ctx).Info("Stalled: needs a change of spec, annotations or credentials", "reason", reason, "error", err.Error())
		setStalled(&obj.Status, obj.Generation, reason, err.Error())
		r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, reason, phase, "%s", err.Error())
		return ctrl.Result{}, nil
	}
	setProgressing(&obj.Status, obj.Generation, phase, "Retrying after a transient failure: "+err.Error())
	r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, v1alpha1.ReasonTransientError, phase, "%s", err.Error())
	if wait := twilio.RetryAfter(err); wait > 0 {
		log.FromContext(ctx).Info("Twilio asked to retry later", "after", wait.String(), "error", err.Error())
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	return ctrl.Result{}, err
}

// patchMeta applies mutate to the object's metadata and patches it, keeping the
// in-memory status (the patch answer carries the stored one). With lock, the
// patch fails on a stale object: a create is never decided on an old view.
func (r *ConversationWebhookReconciler) patchMeta(ctx context.Context, obj *v1alpha1.ConversationWebhook, lock bool,
	mutate func(*v1alpha1.ConversationWebhook)) error {
	status := obj.Status.DeepCopy()
	before := obj.DeepCopy()
	mutate(obj)
	patch := client.MergeFrom(before)
	if lock {
		patch = client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})
	}
	err := r.Patch(ctx, obj, patch)
	obj.Status = *status
	return err
}

func (r *ConversationWebhookReconciler) now() metav1.Time {
	return metav1.NewTime(r.Clock.Now().UTC().Truncate(time.Second))
}

// pollInterval is the jittered (±10%) drift-check period: the poll-interval
// annotation (floor 30s) or --sync-period.
func (r *ConversationWebhookReconciler) pollInterval(ctx context.Context, obj *v1alpha1.ConversationWebhook) time.Duration {
	period := r.SyncPeriod
	if v, ok := obj.Annotations[v1alpha1.AnnotationPollInterval]; ok {
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			log.FromContext(ctx).Info("Ignoring unparsable poll-interval annotation", "value", v)
		default:
			period = max(d, MinPollInterval)
		}
	}
	return jitter(period)
}

func jitter(d time.Duration) time.Duration {
	return d - d/10 + rand.N(d/5+1) //nolint:gosec // jitter, not security
}

// bookkeepingAnnotations are written by the operator during a reconcile; their
// changes must not trigger another one (a terminal create failure would loop).
var bookkeepingAnnotations = []string{
	v1alpha1.AnnotationCreatePending, v1alpha1.AnnotationCreatePendingSpec, v1alpha1.AnnotationReplacedWebhook,
}

// userAnnotationsChanged compares annotations, leaving out the bookkeeping ones,
// and the webhook-sid the operator records when it completes a create (the same
// patch removes create-pending): that reconcile already saw the webhook. A user
// setting webhook-sid to adopt a webhook still counts.
func userAnnotationsChanged(old, updated map[string]string) bool {
	_, wasPending := old[v1alpha1.AnnotationCreatePending]
	_, isPending := updated[v1alpha1.AnnotationCreatePending]
	completed := wasPending && !isPending
	strip := func(m map[string]string) map[string]string {
		out := make(map[string]string, len(m))
		for k, v := range m {
			if !slices.Contains(bookkeepingAnnotations, k) && (k != v1alpha1.AnnotationWebhookSid || !completed) {
				out[k] = v
			}
		}
		return out
	}
	return !maps.Equal(strip(old), strip(updated))
}

func isPaused(obj *v1alpha1.ConversationWebhook) bool {
	return obj.Annotations[v1alpha1.AnnotationPaused] == "true"
}

// SetupWithManager registers the controller, its field indexes and its watches:
// the objects themselves (spec, annotation and deletion changes; not status) and
// Secret metadata, so a changed Secret re-reconciles the objects that use it.
func (r *ConversationWebhookReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, maxConcurrent int) error {
	if err := r.setupIndexes(ctx, mgr); err != nil {
		return err
	}
	changed := predicate.Or(predicate.GenerationChangedPredicate{},
		predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
			return userAnnotationsChanged(e.ObjectOld.GetAnnotations(), e.ObjectNew.GetAnnotations()) ||
				!e.ObjectNew.GetDeletionTimestamp().Equal(e.ObjectOld.GetDeletionTimestamp())
		}})
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.ConversationWebhook{}, builder.WithPredicates(changed)).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.objectsForSecret)).
		WithOptions(controller.Options{MaxConcurrentReconciles: maxConcurrent}).
		Named("conversationwebhook").
		Complete(r)
}
