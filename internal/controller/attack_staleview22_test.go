package controller

import (
	"errors"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
)

// staleView22Applied dispatches a create (replacing planOwned), waits for its
// answer, applies it on the view that shows the pending record and writes it
// (flushRecord). It returns the view with the pending record and the stored
// object that records the answer.
func staleView22Applied(t *testing.T) (*ConversationWebhookReconciler, desired, types.UID,
	*v1alpha1.ConversationWebhook, *v1alpha1.ConversationWebhook) {
	t.Helper()
	r, rs, want, _, withPending := answeredCreate(t)
	uid := withPending.UID
	applyAnswer(t, r, want, withPending)
	recorded := stored(t, r, rs)
	if recorded.Status.Sid != planOther || recorded.Status.PendingCreate != nil {
		t.Fatalf("answer not recorded: %+v", recorded.Status)
	}
	return r, want, uid, withPending, recorded
}

// FINDING (F1), fixed (awaitsView bounds the wait by forgetAfter). A view
// whose resourceVersion stays below the answer's write waits for ever: awaitsView has no time bound for comparable versions, and
// forgetAfter (which its comment says bounds the wait) is only applied by
// sweepLocked, which runs only when some object starts a new create.
//
// Scenario: etcd restored from a snapshot taken between the pending write and
// the answer's write (without `etcdutl snapshot restore --bump-revision`): the
// object comes back showing the pending record, at a resourceVersion below the
// in-memory appliedRV; nothing writes the object while it waits (the reconcile
// returns errStaleView before writing), so its version never passes appliedRV.
// In a quiet cluster (no other create starts, so no sweep) the object requeues
// every second at wakePriority for ever and its pending record is never
// resolved. Before the commit the wait was bounded by staleViewWait (10 s),
// after which the record was resolved by listing (which finds and records the
// webhook). The wait should end after forgetAfter in resumeCreate itself.
func TestAttackStaleView22AppliedWaitOutlivesForgetAfter(t *testing.T) {
	r, want, uid, withPending, _ := staleView22Applied(t)
	// 11 minutes later; no create started since, so no sweep ran.
	ageJob(r, uid, forgetAfter+time.Minute)
	if applied, err := attackResume(t, r, want, withPending); errors.Is(err, errStaleView) {
		t.Fatalf("answer applied %v ago, view (rv %s) below its write: still waiting (applied %v, err %v); "+
			"the wait is unbounded although forgetAfter passed", forgetAfter+time.Minute, withPending.ResourceVersion, applied, err)
	}
}

// FINDING (F1, deletion), fixed. Same restored view, the object being deleted: the
// finalizer path (settleCreate) requeues for ever and never deletes the webhook
// nor removes the finalizer (a namespace torn down after a restore stays
// Terminating). Before the commit: at most staleViewWait.
func TestAttackStaleView22DeletionWaitsForever(t *testing.T) {
	r, _, uid, withPending, _ := staleView22Applied(t)
	ageJob(r, uid, forgetAfter+time.Minute)
	view := withPending.DeepCopy()
	now := metav1.Now()
	view.DeletionTimestamp = &now
	drs := &reconcileState{obj: view.DeepCopy(), base: view.DeepCopy()}
	if after, err := r.settleCreate(t.Context(), drs); after != 0 || err != nil {
		t.Fatalf("deletion on a view below the answer's write, %v after the answer: after %v, err %v; "+
			"want the deletion to go on (forgetAfter passed)", forgetAfter+time.Minute, after, err)
	}
}

// FINDING (F2), fixed: the commit kept an applied answer until a view showed
// its write, trusting that "the write's watch event wakes the object anyway".
// It did not: the controller's For() predicate (GenerationChanged,
// userAnnotationsChanged, deletion) drops the answer's write, and the
// reconcile that applied it requeues at the poll interval, so every
// successful create's job (and its webhook in unapplied()) stayed until
// forgetAfter: at 10,000 such jobs ~7.4 MB of heap, sweepLocked ~1.4 ms per
// create and unapplied() ~4.7 ms per lost-create look, under the dispatcher's
// mutex. Now a watch of every update (seenHandler) marks it seen once a view
// shows the write, and the sweep drops it staleViewWait after it was applied.
// Also pins: writtenRV and appliedRV are the stored versions after the writes.
func TestAttackStaleView22AppliedAnswerSweptOnceSeen(t *testing.T) {
	r, _, uid, withPending, recorded := staleView22Applied(t)
	job := r.creates.peek(uid)
	if job == nil || job.writtenRV != withPending.ResourceVersion || job.appliedRV != recorded.ResourceVersion {
		t.Fatalf("job %+v; want writtenRV %s, appliedRV %s", job, withPending.ResourceVersion, recorded.ResourceVersion)
	}
	// The controller's For() predicate, as SetupWithManager builds it, drops
	// the answer's write: only seenHandler hears of it.
	if withPending.Generation != recorded.Generation || userAnnotationsChanged(withPending, recorded) ||
		!recorded.DeletionTimestamp.Equal(withPending.DeletionTimestamp) {
		t.Fatal("the answer's write passes the predicate: this test no longer covers the case")
	}
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer q.ShutDown()
	h := r.creates.seenHandler()
	// A view older than the record: not seen, kept past staleViewWait.
	h.Update(t.Context(), event.UpdateEvent{ObjectOld: withPending, ObjectNew: withPending}, q)
	ageJob(r, uid, 3*staleViewWait)
	r.creates.mu.Lock()
	r.creates.sweepLocked()
	r.creates.mu.Unlock()
	if r.creates.peek(uid) == nil {
		t.Fatal("the applied answer was swept before any view showed its record")
	}
	// The view that shows it: swept staleViewWait after it was applied.
	h.Update(t.Context(), event.UpdateEvent{ObjectOld: withPending, ObjectNew: recorded}, q)
	r.creates.mu.Lock()
	r.creates.sweepLocked()
	r.creates.mu.Unlock()
	if r.creates.peek(uid) != nil {
		t.Fatal("an applied answer the watch showed recorded is kept past staleViewWait")
	}
	if got := r.creates.unapplied("other"); len(got) != 0 {
		t.Fatalf("unapplied %v", got)
	}
	if q.Len() != 0 {
		t.Fatal("an applied answer's view woke the object")
	}
}

// The watch's view of the pending record wakes an answer a reconcile found
// the view too old for, at once (that reconcile requeued itself for up to a
// second later), and only once; a view older than it does not, nor does any
// view before a reconcile found one too old (the answer's own wake is there).
func TestAttackStaleView22PendingRecordSeenWakes(t *testing.T) {
	r, rs, withPending := staleView22Answered(t)
	key := client.ObjectKeyFromObject(rs.obj)
	r.creates.takeWoken(key) // the answer's own wake
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer q.ShutDown()
	h := r.creates.seenHandler()
	older := withPending.DeepCopy()
	older.ResourceVersion = "1"
	older.Status.PendingCreate = nil
	h.Update(t.Context(), event.UpdateEvent{ObjectOld: older, ObjectNew: withPending}, q)
	if q.Len() != 0 {
		t.Fatal("a view woke an answer no reconcile was waiting for")
	}
	want := desiredOf(&withPending.Spec)
	if applied, err := attackResume(t, r, want, older); applied || !errors.Is(err, errStaleView) {
		t.Fatalf("on a view older than the pending record: applied %v, err %v", applied, err)
	}
	h.Update(t.Context(), event.UpdateEvent{ObjectOld: older, ObjectNew: older}, q)
	if q.Len() != 0 {
		t.Fatal("a view older than the pending record woke the object")
	}
	h.Update(t.Context(), event.UpdateEvent{ObjectOld: older, ObjectNew: withPending}, q)
	if q.Len() != 1 || !r.creates.takeWoken(key) {
		t.Fatalf("the view of the pending record did not wake the object (queue %d)", q.Len())
	}
	item, _ := q.Get()
	q.Done(item)
	h.Update(t.Context(), event.UpdateEvent{ObjectOld: withPending, ObjectNew: withPending}, q)
	if q.Len() != 0 || r.creates.takeWoken(key) {
		t.Fatal("a second view woke the object again")
	}
}

// PIN (passes). A view at or above the answer's write forgets at once, whatever
// the view shows; one above the pending write that shows the record with its
// meta applies the answer at once (a spec change while in flight included).
func TestAttackStaleView22NewerViewsDoNotWait(t *testing.T) {
	r, want, uid, _, recorded := staleView22Applied(t)
	if applied, err := attackResume(t, r, want, recorded); applied || err != nil || r.creates.peek(uid) != nil {
		t.Fatalf("current view: applied %v err %v kept %v", applied, err, r.creates.peek(uid) != nil)
	}
}

// staleView22Answered dispatches a create and waits for its answer, not applied.
func staleView22Answered(t *testing.T) (*ConversationWebhookReconciler, *reconcileState, *v1alpha1.ConversationWebhook) {
	t.Helper()
	r, rs, _, _, withPending := answeredCreate(t)
	return r, rs, withPending
}

// PIN (passes). A user's status edit (kubectl edit --subresource=status: a
// condition) or a spec change lands after the pending write and before the
// answer is applied: the newer view still shows the pending record, and the
// answer is applied at once (no wait, no listing, no second create).
func TestAttackStaleView22NewerWriteBeforeApply(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*ConversationWebhookReconciler, *v1alpha1.ConversationWebhook) error
	}{
		{"status edited by a user", func(r *ConversationWebhookReconciler, o *v1alpha1.ConversationWebhook) error {
			o.Status.Conditions = append(o.Status.Conditions, metav1.Condition{Type: "Edited", Status: metav1.ConditionTrue,
				Reason: "ByHand", LastTransitionTime: metav1.Now()})
			return r.Status().Update(t.Context(), o)
		}},
		{"spec changed in flight", func(r *ConversationWebhookReconciler, o *v1alpha1.ConversationWebhook) error {
			o.Spec.URL = "https://e.com/b"
			o.Generation++
			return r.Update(t.Context(), o)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, rs, withPending := staleView22Answered(t)
			if err := tc.edit(r, withPending.DeepCopy()); err != nil {
				t.Fatal(err)
			}
			newer := stored(t, r, rs)
			if applied, err := attackResume(t, r, desiredOf(&newer.Spec), newer); !applied || err != nil {
				t.Fatalf("newer view with the pending record: applied %v, err %v", applied, err)
			}
			// Kept (among unapplied answers) until status records it.
			if job := r.creates.peek(newer.UID); job == nil {
				t.Fatal("answer dropped before status recorded it")
			}
		})
	}
}
