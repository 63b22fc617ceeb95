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
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// MinPollInterval is the floor of the poll-interval annotation.
const MinPollInterval = 30 * time.Second

// DefaultReconcileTimeout bounds one reconcile when ReconcileTimeout is unset.
const DefaultReconcileTimeout = 2 * time.Minute

// statusPatchTimeout bounds the final status write of a reconcile.
const statusPatchTimeout = 10 * time.Second

// TwilioClients hands out a Twilio client for a set of credentials
// (*twilio.Factory in the manager).
type TwilioClients interface {
	// For returns the client for credentials; its requests count against the
	// budget of creds.AccountSid.
	For(creds twilio.Credentials) (twilio.WebhookAPI, error)
	// EnsureLimits records the limits an account object (from, its UID) sets
	// for a Twilio account unless the account reconciler already did, or
	// forgot them (the object is gone); the smallest of them apply.
	EnsureLimits(accountSid, from, uid string, l twilio.Limits)
	// Reserve admits one create to be sent off the worker, without waiting
	// (false: the account's queue is full; come back later). The function
	// ends the reservation.
	Reserve(accountSid string) (func(), bool)
	// Reservable is how many more creates the account's queue admits now.
	Reservable(accountSid string) int
}

var _ TwilioClients = (*twilio.Factory)(nil)

// ConversationWebhookReconciler makes Twilio match ConversationWebhook objects.
type ConversationWebhookReconciler struct {
	client.Client
	// APIReader reads Secrets straight from the API server: the manager caches
	// no Secret data.
	APIReader client.Reader
	// DefaultAccount is --default-account: the ClusterTwilioAccount used by
	// objects without spec.accountRef ("" for none).
	DefaultAccount string
	// Recorder emits an event for every change made in Twilio and every failure.
	Recorder events.EventRecorder
	// Twilio builds clients per credentials.
	Twilio TwilioClients
	// SyncPeriod is the drift-check period before jitter (--sync-period).
	SyncPeriod time.Duration
	// Clock stamps lastSyncTime and create-pending.
	Clock clock.PassiveClock
	// Metrics counts drift corrections.
	Metrics *Metrics
	// ReconcileTimeout bounds one reconcile, Twilio calls included (default
	// DefaultReconcileTimeout).
	ReconcileTimeout time.Duration
	// Fence, with leader election, stops writes to Twilio once the lease may
	// have passed to another manager (nil: no check).
	Fence LeaseFence
	// SendWindow is how long after its pending stamp a create may still be
	// sent: PendingGrace less the Twilio timeout (default PendingGrace/2). A
	// create that waited longer for a slot is not sent, and made again.
	SendWindow time.Duration
	// PendingGrace is how long a create may still be in flight after it was
	// recorded as pending (the Twilio timeout, with room): a younger pending
	// create whose webhook is not listed yet is waited for, never repeated, in
	// case another manager (a leader handover) is still sending it.
	PendingGrace time.Duration
	// LookPatience is how long an object's looks may be turned away by its
	// busy account before one waits ahead of the account's queue (default
	// DefaultLookPatience).
	LookPatience time.Duration

	credentials credentialCache
	live        liveReads
	busy        busyLooks
	retries     transientRetries
	takes       scopeLocks
	waiters     accountWaiters
	// creates sends creates off the workers (nil: inline, as in unit tests of
	// the steps); SetupWithManager starts it.
	creates *createDispatcher
}

// +kubebuilder:rbac:groups=conversations.twilio-operator.io,resources=conversationwebhooks,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=conversations.twilio-operator.io,resources=conversationwebhooks/status,verbs=get;patch
// +kubebuilder:rbac:groups=conversations.twilio-operator.io,resources=conversationwebhooks/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=conversations.twilio-operator.io,resources=twilioaccounts;clustertwilioaccounts,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one ConversationWebhook and its Twilio webhook together.
func (r *ConversationWebhookReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	// A woken object's requeue goes back at the default priority (a wake's
	// priority is for the wake only); any other keeps the priority it had
	// (objects of the initial list stay behind new ones). Taken before the
	// read, so that an object gone since its wake leaves no mark behind.
	woken := r.creates.takeWoken(req.NamespacedName)
	// Since when the object's looks have been turned away is forgotten
	// unless this reconcile is turned away too (or the object is gone).
	var rs *reconcileState
	defer func() {
		if rs == nil || !rs.turnedAway {
			r.busy.done(req.NamespacedName)
		}
		// The object's run of failures ends once it settles (or is gone);
		// an error returned goes on with it.
		switch {
		case retErr != nil:
		case rs == nil:
			r.retries.reconciled(req.NamespacedName, nil)
		default:
			r.retries.reconciled(req.NamespacedName, rs.obj)
		}
	}()
	obj := &v1alpha1.ConversationWebhook{}
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	r.retries.begin(req.NamespacedName, obj.UID)
	if woken {
		defer func() {
			if res.Priority == nil {
				res.Priority = new(0)
			}
		}()
	}
	// A slow Twilio never holds a worker for longer than this.
	ctx, cancel := context.WithTimeout(ctx, r.reconcileTimeout())
	defer cancel()

	rs = &reconcileState{obj: obj, base: obj.DeepCopy()}
	// After the write below: a take lock held over a record kept in memory.
	defer func() {
		if rs.unlock != nil {
			rs.unlock()
		}
	}()
	defer func() {
		if rs.flush == nil && equality.Semantic.DeepEqual(rs.base.Status, obj.Status) {
			return
		}
		// A failed write returns an error, which requeues the object with its
		// backoff (controller-runtime ignores RequeueAfter beside an error,
		// and logs that it did: noise in every conflict storm).
		defer func() {
			if retErr != nil {
				res.RequeueAfter = 0
			}
		}()
		// The status is written even when the reconcile ran out of time.
		pctx, pcancel := context.WithTimeout(context.WithoutCancel(ctx), statusPatchTimeout)
		defer pcancel()
		if rs.flush != nil {
			// A record kept in memory: the annotations that mirror it, then
			// status with the conditions.
			if err := r.flushRecord(pctx, rs); err != nil && !apierrors.IsNotFound(err) {
				retErr = errors.Join(retErr, err)
			}
			return
		}
		// With a lock: a manager that lost its lease while frozen must not write
		// back a record another manager has moved on from.
		patch := client.MergeFromWithOptions(rs.base, client.MergeFromWithOptimisticLock{})
		if err := r.Status().Patch(pctx, obj, patch); err != nil && !apierrors.IsNotFound(err) {
			retErr = errors.Join(retErr, fmt.Errorf("patching status: %w", err))
		}
	}()

	if !obj.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, rs)
	}
	return r.reconcileNormal(ctx, rs)
}

// reconcileNormal creates, adopts, corrects or replaces the webhook.
func (r *ConversationWebhookReconciler) reconcileNormal(ctx context.Context, rs *reconcileState) (ctrl.Result, error) {
	obj := rs.obj
	pause, err := paused(obj)
	if err == nil {
		_, err = annotatedPollInterval(obj)
	}
	if err != nil {
		return r.failed(ctx, obj, phaseOf(obj, err), err)
	}
	if pause {
		setPaused(&obj.Status, obj.Generation)
		return ctrl.Result{}, nil
	}
	api, account, err := r.twilioFor(ctx, obj)
	var wh *twilio.Webhook
	if err == nil {
		rs.account = account
		wh, err = r.sync(ctx, rs, api)
	}
	if errors.Is(err, errQueueFull) {
		// Woken when a place frees. The requeue is a safety net at the
		// object's sync period: a requeue cannot be withdrawn, and an earlier
		// one would cost a Twilio fetch for an object long since created.
		// Looks turned away before it still count towards its patience.
		rs.turnedAway = true
		if meta.IsStatusConditionTrue(obj.Status.Conditions, v1alpha1.ConditionReady) {
			// A recreate or replacement waiting for a place: not Ready.
			setProgressing(&obj.Status, obj.Generation, v1alpha1.ReasonCreating, "Waiting for a place in the account's queue of creates")
		}
		return ctrl.Result{RequeueAfter: r.pollInterval(ctx, obj)}, nil
	}
	if twilio.IsAccountBusy(err) {
		// Every request slot of the account is taken: come back soon rather
		// than hold a worker that other accounts' objects can use (after
		// LookPatience of this, the look waits ahead of the queue).
		rs.turnedAway = true
		r.busy.turnedAway(client.ObjectKeyFromObject(obj), r.Clock.Now())
		return ctrl.Result{RequeueAfter: busyRequeue()}, nil
	}
	if after, ok := r.later(err); ok {
		if errors.Is(err, errStaleView) {
			// An answer waiting for the cache: still a wake.
			r.creates.markWoken(client.ObjectKeyFromObject(obj))
			return ctrl.Result{RequeueAfter: after, Priority: new(wakePriority)}, nil
		}
		return ctrl.Result{RequeueAfter: after}, nil
	}
	var wait *waitError
	if errors.As(err, &wait) {
		setProgressing(&obj.Status, obj.Generation, v1alpha1.ReasonCreating, "Waiting for a create that may still be in flight")
		return ctrl.Result{RequeueAfter: wait.after}, nil
	}
	if err != nil {
		return r.failed(ctx, obj, phaseOf(obj, err), err)
	}
	if obj.Spec.ManagementPolicy != v1alpha1.ManagementPolicyObserve {
		setReady(&obj.Status, obj.Generation, r.now())
		return ctrl.Result{RequeueAfter: r.pollInterval(ctx, obj)}, nil
	}
	if wh == nil {
		// Nothing to observe, and nothing may be created: look again next period.
		setObservedNotFound(&obj.Status, obj.Generation)
		return ctrl.Result{RequeueAfter: r.pollInterval(ctx, obj)}, nil
	}
	setObserved(&obj.Status, obj.Generation, r.now())
	return ctrl.Result{RequeueAfter: r.pollInterval(ctx, obj)}, nil
}

// reconcileDelete removes the webhook (unless the policy is Orphan) and the finalizer.
func (r *ConversationWebhookReconciler) reconcileDelete(ctx context.Context, rs *reconcileState) (ctrl.Result, error) {
	obj := rs.obj
	if !controllerutil.ContainsFinalizer(obj, v1alpha1.Finalizer) {
		return ctrl.Result{}, nil
	}
	pause, err := paused(obj)
	if err != nil {
		// A paused value that is neither "true" nor "false" may have been
		// meant as a pause: deletion waits for it to be fixed, as for a pause.
		return r.failed(ctx, obj, v1alpha1.ReasonDeleting, err)
	}
	if pause {
		setPaused(&obj.Status, obj.Generation)
		return ctrl.Result{}, nil
	}
	if after, err := r.settleCreate(ctx, rs); after > 0 || err != nil {
		if err != nil {
			return r.failed(ctx, obj, v1alpha1.ReasonDeleting, err)
		}
		return ctrl.Result{RequeueAfter: after}, nil
	}
	if err := r.deleteExternal(ctx, obj); err != nil {
		var wait *waitError
		if errors.As(err, &wait) {
			setProgressing(&obj.Status, obj.Generation, v1alpha1.ReasonDeleting, "Waiting before deleting: "+wait.Error())
			return ctrl.Result{RequeueAfter: wait.after}, nil
		}
		return r.failed(ctx, obj, v1alpha1.ReasonDeleting, err)
	}
	return ctrl.Result{}, r.patchMeta(ctx, obj, func(o *v1alpha1.ConversationWebhook) {
		controllerutil.RemoveFinalizer(o, v1alpha1.Finalizer)
	})
}

// settleCreate, before a deletion, applies the answer of a create this manager
// dispatched for the object, so that the deletion finds its webhook in status.
// While the create is not answered, or its answer waits for the cache, it says
// when to look again (Twilio's answer wakes the object: a safety net). Any
// other outcome leaves the deletion to read status: a create still recorded as
// pending is looked for by listing.
func (r *ConversationWebhookReconciler) settleCreate(ctx context.Context, rs *reconcileState) (time.Duration, error) {
	if r.creates == nil {
		return 0, nil
	}
	job := r.creates.peek(rs.obj.UID)
	if job == nil {
		return 0, nil
	}
	if !job.done {
		return max(r.PendingGrace, time.Second), nil
	}
	// Matched against status alone: a malformed annotation must not make the
	// deletion forget a webhook this create made.
	led, err := readRecord(&rs.obj.Status, desiredOf(&rs.obj.Spec).scope)
	if err != nil {
		return 0, nil //nolint:nilerr // the deletion reports a malformed record
	}
	_, _, err = r.resumeCreate(ctx, rs, &led)
	if after, ok := r.later(err); ok {
		return max(after, 100*time.Millisecond), nil
	}
	err = errors.Join(err, r.flushRecord(ctx, rs))
	if apierrors.IsConflict(err) {
		return 0, err
	}
	return 0, nil
}

// later says when to look again at an object whose dispatched create is not
// applied yet: Twilio's answer wakes it (the requeue is a safety net), or the
// cache catches up with its pending record in a moment.
func (r *ConversationWebhookReconciler) later(err error) (time.Duration, bool) {
	switch {
	case errors.Is(err, errCreateSent):
		return r.PendingGrace, true
	case errors.Is(err, errStaleView):
		if sv := (*staleViewError)(nil); errors.As(err, &sv) {
			return sv.after, true
		}
		return 100 * time.Millisecond, true
	}
	return 0, false
}

// failed records a failure: terminal ones stall without a retry (the next change
// of spec, annotations or Secret reconciles again); others are retried with the
// workqueue's backoff, or after Twilio's Retry-After when that is longer.
func (r *ConversationWebhookReconciler) failed(ctx context.Context, obj *v1alpha1.ConversationWebhook, phase string, err error) (ctrl.Result, error) {
	if apierrors.IsConflict(err) {
		// A stale view of the object: retry with the workqueue's backoff, quietly.
		return ctrl.Result{}, err
	}
	var wait *accountWaitError
	if errors.As(err, &wait) {
		// The account's watch reconciles again once it is verified.
		setProgressing(&obj.Status, obj.Generation, v1alpha1.ReasonAccountNotReady, err.Error())
		return ctrl.Result{RequeueAfter: r.pollInterval(ctx, obj)}, nil
	}
	reason, terminal := classify(err)
	if terminal {
		log.FromContext(ctx).Info("Stalled: needs a change of spec, annotations or credentials", "reason", reason, "error", err.Error())
		setStalled(&obj.Status, obj.Generation, reason, err.Error())
		r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, reason, phase, "%s", err.Error())
		if slices.Contains(pollStalled, reason) {
			// A user may fix a bookkeeping annotation, a rotated key work
			// again, or a Secret deleted and re-created come back (its
			// account's status unchanged), without an event that reaches
			// this object. Another object letting go of the webhook
			// wakes it at once (claimantsOfReleased); the poll is a safety net.
			return ctrl.Result{RequeueAfter: r.pollInterval(ctx, obj)}, nil
		}
		return ctrl.Result{}, nil
	}
	setProgressing(&obj.Status, obj.Generation, phase, "Retrying after a transient failure: "+err.Error())
	r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, v1alpha1.ReasonTransientError, phase, "%s", err.Error())
	if header := twilio.RetryAfter(err); header > 0 {
		// The header is a floor on the wait the workqueue would give the
		// failure returned as an error (counted the same way, and taking a
		// token of the bucket all retries share), never a reason to retry
		// sooner; and it never makes the wait longer than the poll period: a
		// Retry-After is the server's word (or a proxy's), and an object
		// requeued for a day would not be checked for drift in that day.
		wait := max(min(header, r.pollInterval(ctx, obj)), r.retries.When(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(obj)}))
		log.FromContext(ctx).Info("Twilio asked to retry later", "after", wait.String(), "error", err.Error())
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	return ctrl.Result{}, err
}

// pollStalled are the Stalled reasons checked again every poll period: what
// fixes them may reach the object through no watch.
var pollStalled = []string{v1alpha1.ReasonSidConflict, v1alpha1.ReasonInvalidAnnotation,
	v1alpha1.ReasonCredentialsInvalid, v1alpha1.ReasonCredentialsMissing}

// patchMeta applies mutate to the object's metadata and patches it (with opts,
// e.g. under its resourceVersion), keeping the in-memory status (the patch
// answer carries the stored one).
func (r *ConversationWebhookReconciler) patchMeta(ctx context.Context, obj *v1alpha1.ConversationWebhook,
	mutate func(*v1alpha1.ConversationWebhook), opts ...client.MergeFromOption) error {
	status := obj.Status.DeepCopy()
	before := obj.DeepCopy()
	mutate(obj)
	err := r.Patch(ctx, obj, client.MergeFromWithOptions(before, opts...))
	obj.Status = *status
	return err
}

// reconcileTimeout is the deadline of one reconcile (ReconcileTimeout, default 2m).
func (r *ConversationWebhookReconciler) reconcileTimeout() time.Duration {
	if r.ReconcileTimeout > 0 {
		return r.ReconcileTimeout
	}
	return DefaultReconcileTimeout
}

func (r *ConversationWebhookReconciler) lookPatience() time.Duration {
	if r.LookPatience > 0 {
		return r.LookPatience
	}
	return DefaultLookPatience
}

func (r *ConversationWebhookReconciler) now() metav1.Time {
	return metav1.NewTime(r.Clock.Now().UTC().Truncate(time.Second))
}

// pollInterval is the jittered (±10%) drift-check period: the poll-interval
// annotation (floor 30s) or --sync-period.
func (r *ConversationWebhookReconciler) pollInterval(ctx context.Context, obj *v1alpha1.ConversationWebhook) time.Duration {
	period := r.SyncPeriod
	if d, err := annotatedPollInterval(obj); d > 0 {
		period = max(d, MinPollInterval)
	} else if err != nil {
		// reconcileNormal stalls the object with InvalidAnnotation; its
		// safety-net poll runs at the sync period.
		log.FromContext(ctx).V(1).Info("Malformed poll-interval annotation; polling at the sync period")
	}
	return jitter(period)
}

// annotatedPollInterval is the poll-interval annotation's period, 0 without
// one. A value that is not a positive Go duration is an InvalidAnnotation error.
func annotatedPollInterval(obj *v1alpha1.ConversationWebhook) (time.Duration, error) {
	v, ok := obj.Annotations[v1alpha1.AnnotationPollInterval]
	if !ok {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, invalidError(v1alpha1.ReasonInvalidAnnotation,
			"annotation "+v1alpha1.AnnotationPollInterval+" (a positive Go duration, such as 10m)", v)
	}
	return d, nil
}

// busyRequeue is when an object whose account had no free slot is tried
// again: soon, spread so that waiting objects do not come back at once.
func busyRequeue() time.Duration {
	return 50*time.Millisecond + rand.N(200*time.Millisecond) //nolint:gosec // jitter, not security
}

func jitter(d time.Duration) time.Duration {
	return d - d/10 + rand.N(d/5+1) //nolint:gosec // jitter, not security
}

// bookkeepingAnnotations are written by the operator during a reconcile; their
// changes must not trigger another one (a terminal create failure would loop).
var bookkeepingAnnotations = []string{
	v1alpha1.AnnotationCreatePending, v1alpha1.AnnotationCreatePendingSpec, v1alpha1.AnnotationReplacedWebhook,
}

// userAnnotationsChanged compares annotations, leaving out the bookkeeping ones
// and a webhook-sid the operator wrote: one that mirrors status.sid, or one
// written with the removal of create-pending while status still holds the
// pending record (a create's answer is recorded in the annotations first, then
// in status). A user setting webhook-sid to adopt another webhook, or removing
// it, still counts.
func userAnnotationsChanged(old, updated *v1alpha1.ConversationWebhook) bool {
	if malformedPending(old) || malformedPending(updated) {
		// The operator never writes a malformed create-pending: a user wrote
		// or fixed it (a fix must un-stall the object at once).
		return old.Annotations[v1alpha1.AnnotationCreatePending] != updated.Annotations[v1alpha1.AnnotationCreatePending]
	}
	_, wasPending := old.Annotations[v1alpha1.AnnotationCreatePending]
	_, isPending := updated.Annotations[v1alpha1.AnnotationCreatePending]
	recorded := updated.Status.PendingCreate != nil && wasPending && !isPending
	mirror := recorded || updated.Status.Sid != "" &&
		twilio.CanonicalSid(updated.Annotations[v1alpha1.AnnotationWebhookSid]) == twilio.CanonicalSid(updated.Status.Sid)
	strip := func(m map[string]string) map[string]string {
		out := make(map[string]string, len(m))
		for k, v := range m {
			if !slices.Contains(bookkeepingAnnotations, k) && (k != v1alpha1.AnnotationWebhookSid || !mirror) {
				out[k] = v
			}
		}
		return out
	}
	return !maps.Equal(strip(old.Annotations), strip(updated.Annotations))
}

// malformedPending says the create-pending annotation is present and not an RFC 3339 time.
func malformedPending(o *v1alpha1.ConversationWebhook) bool {
	v, ok := o.Annotations[v1alpha1.AnnotationCreatePending]
	if !ok {
		return false
	}
	_, err := time.Parse(time.RFC3339, v)
	return err != nil
}

// paused reads the paused annotation: "true" pauses, "false" or no annotation
// does not. Any other value ("yes", "True") is an InvalidAnnotation error: it
// may have been meant as a pause, so nothing is sent to Twilio on a guess.
func paused(obj *v1alpha1.ConversationWebhook) (bool, error) {
	switch v, ok := obj.Annotations[v1alpha1.AnnotationPaused]; {
	case !ok || v == "false":
		return false, nil
	case v == "true":
		return true, nil
	default:
		return false, invalidError(v1alpha1.ReasonInvalidAnnotation,
			"annotation "+v1alpha1.AnnotationPaused+` ("true" or "false")`, v)
	}
}

// SetupWithManager registers the controller, its field indexes and its watches:
// the objects themselves (spec, annotation and deletion changes; not status),
// the objects that name a webhook SID another object let go of, every update
// of the objects for the answers of creates that wait for the cache,
// the accounts they use (verified, changed, gone) and the labels of namespaces
// (a ClusterTwilioAccount's conditions select namespaces by label).
func (r *ConversationWebhookReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, maxConcurrent int) error {
	if err := r.setupAccountIndex(ctx, mgr); err != nil {
		return err
	}
	if err := r.setupSidIndex(ctx, mgr); err != nil {
		return err
	}
	r.creates = newCreateDispatcher(ctx, r.reconcileTimeout())
	changed := predicate.Or(predicate.GenerationChangedPredicate{},
		predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
			oldObj, ok1 := e.ObjectOld.(*v1alpha1.ConversationWebhook)
			newObj, ok2 := e.ObjectNew.(*v1alpha1.ConversationWebhook)
			return !ok1 || !ok2 || userAnnotationsChanged(oldObj, newObj) ||
				!e.ObjectNew.GetDeletionTimestamp().Equal(e.ObjectOld.GetDeletionTimestamp())
		}})
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.ConversationWebhook{}, builder.WithPredicates(changed)).
		Watches(&v1alpha1.ConversationWebhook{}, r.claimantsOfReleased()).
		Watches(&v1alpha1.ConversationWebhook{}, r.creates.seenHandler()).
		Watches(&v1alpha1.TwilioAccount{}, r.accountHandler()).
		Watches(&v1alpha1.ClusterTwilioAccount{}, r.accountHandler()).
		WatchesMetadata(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.objectsForNamespace),
			builder.WithPredicates(predicate.LabelChangedPredicate{})).
		WatchesRawSource(source.Channel(r.creates.events, wakeHandler())).
		WithOptions(controller.Options{MaxConcurrentReconciles: maxConcurrent, RateLimiter: r.rateLimiter()}).
		Named("conversationwebhook").
		Complete(r)
}
