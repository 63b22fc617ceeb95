package controller

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// attack20Queue stands in for controller-runtime's workqueue as its
// reconcileHandler drives it (pkg/internal/controller, v0.25), with the rate
// limiter SetupWithManager gives it (rateLimiter): an error is requeued after
// the limiter's backoff (AddRateLimited), any other result makes the queue
// call Forget and is requeued after RequeueAfter. It returns when the object
// is reconciled next.
type attack20Queue struct {
	rl workqueue.TypedRateLimiter[reconcile.Request]
}

func newAttack20Queue(r *ConversationWebhookReconciler) *attack20Queue {
	return &attack20Queue{rl: r.rateLimiter()}
}

func (q *attack20Queue) next(key types.NamespacedName, res ctrl.Result, err error) time.Duration {
	req := reconcile.Request{NamespacedName: key}
	if err != nil {
		return q.rl.When(req)
	}
	q.rl.Forget(req)
	return res.RequeueAfter
}

func attack20Object(uid string) *v1alpha1.ConversationWebhook {
	o := retryObject("tenant")
	o.UID = types.UID(uid)
	return o
}

// converging marks o as a reconcile that sent a create leaves it: Reconciling=True/Creating.
func attack20Converging(o *v1alpha1.ConversationWebhook) {
	meta.SetStatusCondition(&o.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionReconciling,
		Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonCreating})
}

// refusedNoHeader is Twilio's 429 to a create, without a Retry-After (Twilio
// does not promise one).
func refusedNoHeader() error {
	return &twilio.APIError{Operation: twilio.OpCreate, Status: 429, Code: 20429, Message: "Too Many Requests"}
}

func unavailableNoHeader() error {
	return &twilio.APIError{Operation: twilio.OpFetch, Status: 503, Code: 20503, Message: "Service Unavailable"}
}

// TestAttack20TransientFailuresWithoutRetryAfterBackOff: README, "Errors": a
// transient failure is retried with a backoff of 5 ms doubling with each
// failure until the object settles (1.28 s after the ninth, 2.56 s after the
// tenth). Between two failures come reconciles that end without an error —
// the one that sends a create off the worker, a look turned away by a busy
// account — after which the workqueue calls Forget; with controller-runtime's
// own limiter each of them reset the backoff, and a Twilio answering every
// create with a bare 429 was asked again 5 ms after each answer, for good.
func TestAttack20TransientFailuresWithoutRetryAfterBackOff(t *testing.T) {
	t.Run("create refused with 429, no Retry-After", func(t *testing.T) {
		r := &ConversationWebhookReconciler{SyncPeriod: 10 * time.Minute, PendingGrace: 15 * time.Second,
			Recorder: events.NewFakeRecorder(1000)}
		q := newAttack20Queue(r)
		o := attack20Object("a")
		key := client.ObjectKeyFromObject(o)
		var waits []time.Duration
		for range 11 {
			// The reconcile that sends the create: errCreateSent → RequeueAfter PendingGrace.
			attack20Converging(o)
			q.next(key, ctrl.Result{RequeueAfter: r.PendingGrace}, nil)
			r.retries.reconciled(key, o)
			// The reconcile the answer wakes: the refusal.
			res, err := r.failed(t.Context(), o, v1alpha1.ReasonCreating, inPhase(v1alpha1.ReasonCreating, refusedNoHeader()))
			waits = append(waits, q.next(key, res, err))
			r.retries.reconciled(key, o)
		}
		if waits[8] < 1280*time.Millisecond || waits[10] < 2560*time.Millisecond {
			t.Fatalf("waits after each create refused in a row: %v; README: 1.28 s after the ninth, 2.56 s after the tenth ...", waits)
		}
	})
	t.Run("fetch 503 between looks turned away by a busy account", func(t *testing.T) {
		r := &ConversationWebhookReconciler{SyncPeriod: 10 * time.Minute, Recorder: events.NewFakeRecorder(1000)}
		q := newAttack20Queue(r)
		o := attack20Object("a")
		o.Status.Sid = "WH00000000000000000000000000000001"
		key := client.ObjectKeyFromObject(o)
		var waits []time.Duration
		for range 11 {
			res, err := r.failed(t.Context(), o, v1alpha1.ReasonUpdating, inPhase(v1alpha1.ReasonUpdating, unavailableNoHeader()))
			waits = append(waits, q.next(key, res, err))
			r.retries.reconciled(key, o)
			// The next look finds every slot of the account taken: busyRequeue.
			q.next(key, ctrl.Result{RequeueAfter: busyRequeue()}, nil)
			r.retries.reconciled(key, o)
		}
		if waits[10] < 2560*time.Millisecond {
			t.Fatalf("waits after each failed fetch in a row: %v; README: doubling, 2.56 s after the tenth", waits)
		}
	})
}

// TestAttack20RecreatedObjectStartsAFreshRun: README: the failures in a row
// count "until the object settles (Ready, Stalled, paused or deleted)". The
// run is keyed by namespace/name and ended only by a reconcile that finds
// the object gone; a deletion and a re-creation under the same name that
// reach the workqueue together (kubectl replace --force, a GitOps tool's
// Replace) are one reconcile, which finds the new object: its first
// "Retry-After: 1" waits the old object's backoff (here 20 s, up to the poll
// period), not the header's second.
func TestAttack20RecreatedObjectStartsAFreshRun(t *testing.T) {
	r := &ConversationWebhookReconciler{SyncPeriod: 10 * time.Minute, Recorder: events.NewFakeRecorder(1000)}
	old := attack20Object("old-uid")
	key := client.ObjectKeyFromObject(old)
	attack20Converging(old)
	for range 12 {
		r.retries.begin(key, old.UID)
		_, _ = r.failed(t.Context(), old, v1alpha1.ReasonCreating, busyAnswer())
		r.retries.reconciled(key, old)
	}
	// Deleted (Orphan: the finalizer goes at once) and created again before
	// the delete event's reconcile ran: the next reconcile reads the new
	// object and fails.
	renewed := attack20Object("new-uid")
	attack20Converging(renewed)
	r.retries.begin(key, renewed.UID)
	res, err := r.failed(t.Context(), renewed, v1alpha1.ReasonCreating, busyAnswer())
	if err != nil {
		t.Fatal(err)
	}
	if res.RequeueAfter != time.Second {
		t.Fatalf("a new object's first failure (Retry-After: 1) waits %v: it inherited the deleted object's run", res.RequeueAfter)
	}
}
