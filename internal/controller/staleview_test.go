package controller

import (
	"context"
	"errors"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// ageJob moves a dispatched create's answer (and, once applied, its record)
// back by d, as if the cache had lagged that long since.
func ageJob(r *ConversationWebhookReconciler, uid types.UID, d time.Duration) {
	r.creates.mu.Lock()
	defer r.creates.mu.Unlock()
	job := r.creates.jobs[uid]
	job.doneAt = job.doneAt.Add(-d)
	if !job.appliedAt.IsZero() {
		job.appliedAt = job.appliedAt.Add(-d)
	}
}

func waitAnswered(t *testing.T, r *ConversationWebhookReconciler, uid types.UID) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if job := r.creates.peek(uid); job != nil && job.done {
			return
		}
	}
	t.Fatal("the dispatched create was not answered")
}

// answeredCreate dispatches a create that replaces planOwned and waits for
// Twilio's answer (the webhook planOther), not applied yet. It returns the
// view before the pending record was written and the one that shows it.
func answeredCreate(t *testing.T) (*ConversationWebhookReconciler, *reconcileState, desired,
	*v1alpha1.ConversationWebhook, *v1alpha1.ConversationWebhook) {
	t.Helper()
	r, rs, want, led := stepFixture(t)
	r.creates = newCreateDispatcher(t.Context(), time.Second)
	r.Twilio = attackClients{}
	before := stored(t, r, rs)
	api := &webhookAPIFns{t: t, create: func(twilio.Scope, twilio.CreateWebhookInput) (*twilio.Webhook, error) {
		return &twilio.Webhook{Sid: planOther, Target: "webhook", ConversationSid: planConv,
			Configuration: twilio.Configuration{URL: "https://e.com/a", Method: "post", Filters: []string{"onMessageAdded"}}}, nil
	}}
	if _, err := r.create(t.Context(), rs, api, want, &led, observation{}, step{kind: stepCreate, why: whyReplace, supersede: true}); !errors.Is(err, errCreateSent) {
		t.Fatalf("create: %v, want it dispatched", err)
	}
	withPending := stored(t, r, rs)
	waitAnswered(t, r, withPending.UID)
	return r, rs, want, before, withPending
}

// applyAnswer applies the dispatched answer on view, as the reconcile that
// finds it does, and writes its record (flushRecord).
func applyAnswer(t *testing.T, r *ConversationWebhookReconciler, want desired, view *v1alpha1.ConversationWebhook) {
	t.Helper()
	apply := &reconcileState{obj: view.DeepCopy(), base: view.DeepCopy()}
	led, err := readLedger(apply.obj, want)
	if err != nil {
		t.Fatal(err)
	}
	if _, applied, err := r.resumeCreate(t.Context(), apply, &led); !applied || err != nil {
		t.Fatalf("applying the answer: applied %v, err %v", applied, err)
	}
	if err := r.flushRecord(t.Context(), apply); err != nil {
		t.Fatal(err)
	}
}

// A cache that lags behind the manager's own writes by more than staleViewWait
// (an API server or a manager short of CPU): a dispatched create's answer waits
// for a view that shows its pending record, and once applied for one that
// shows its record, for as long as the view's resourceVersion is older than the
// write. It was dropped after staleViewWait, and the pending record the view
// then showed was taken for a lost create's: the conversation listed and every
// object read from the API server, for each such create at once.
func TestAnswerWaitsForACacheLaggingPastStaleViewWait(t *testing.T) {
	r, rs, want, before, withPending := answeredCreate(t)
	uid := withPending.UID
	ageJob(r, uid, 3*staleViewWait)

	// A view older than the pending record's write, 30 s after the answer.
	if applied, err := attackResume(t, r, want, before); applied || !errors.Is(err, errStaleView) {
		t.Fatalf("on a view older than the pending record: applied %v, err %v; want errStaleView", applied, err)
	}
	if r.creates.peek(uid) == nil {
		t.Fatal("the answer was dropped while the view had not shown its pending record")
	}

	// The view shows the pending record: the answer is applied and recorded.
	applyAnswer(t, r, want, withPending)
	recorded := stored(t, r, rs)
	if recorded.Status.Sid != planOther || recorded.Status.PendingCreate != nil {
		t.Fatalf("answer not recorded: %+v", recorded.Status)
	}

	// 30 s after the record, a view older than it still shows the pending
	// record: wait, and the next create's sweep keeps the answer too.
	ageJob(r, uid, 3*staleViewWait)
	r.creates.mu.Lock()
	r.creates.sweepLocked()
	r.creates.mu.Unlock()
	if applied, err := attackResume(t, r, want, withPending); applied || !errors.Is(err, errStaleView) {
		t.Fatalf("on a view older than the record: applied %v, err %v; want errStaleView", applied, err)
	}
	// The view that shows the record: nothing to apply, and the answer goes.
	if applied, err := attackResume(t, r, want, recorded); applied || err != nil {
		t.Fatalf("on the current view: applied %v, err %v", applied, err)
	}
	if r.creates.peek(uid) != nil {
		t.Fatal("the answer is still kept once the view shows its record")
	}
}

// A view newer than the pending record's write that no longer shows it (status
// rewritten since): the answer is not this record's, and it goes at once,
// leaving whatever the view shows to be resolved as any record is.
func TestAnswerForgottenOnANewerViewWithoutItsRecord(t *testing.T) {
	r, rs, want, withPending := refusedFixture(t)
	r.creates.jobs[withPending.UID].writtenRV = withPending.ResourceVersion
	newer := withPending.DeepCopy()
	newer.Status.PendingCreate = nil
	newer.Annotations[v1alpha1.AnnotationCreatePending] = ""
	if err := r.Status().Update(t.Context(), newer); err != nil {
		t.Fatal(err)
	}
	if applied, err := attackResume(t, r, want, stored(t, r, rs)); applied || err != nil {
		t.Fatalf("on a newer view without the record: applied %v, err %v", applied, err)
	}
	if r.creates.peek(withPending.UID) != nil {
		t.Fatal("an answer whose record a newer view does not show is kept")
	}
}

func TestAwaitsView(t *testing.T) {
	recent, old := time.Now(), time.Now().Add(-staleViewWait-time.Second)
	cases := []struct {
		name, view, write string
		since             time.Time
		want              bool
	}{
		{"older view, long after", "99", "100", old, true},
		{"older view, shorter version", "999", "1000", old, true},
		{"the write itself", "100", "100", recent, false},
		{"newer view", "101", "100", recent, false},
		{"newer view, longer version", "1000", "999", recent, false},
		{"view not an integer: by time, recent", "abc", "100", recent, true},
		{"view not an integer: by time, old", "abc", "100", old, false},
		{"write unknown: by time, recent", "100", "", recent, true},
		{"write unknown: by time, old", "100", "", old, false},
		{"leading zero is not a version", "0100", "99", old, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := awaitsView(tc.view, tc.write, tc.since); got != tc.want {
				t.Fatalf("awaitsView(%q, %q) = %v, want %v", tc.view, tc.write, got, tc.want)
			}
		})
	}
}

// An answer that waits for the cache is looked at again in 100 ms at first,
// then less often the longer it has waited (a tenth of it, up to a second):
// while a lagging cache catches up, thousands of waiting objects must not spin
// the manager every 100 ms (the write's watch event wakes each anyway).
func TestStaleViewLooksAgainLessOftenAsItWaits(t *testing.T) {
	r := &ConversationWebhookReconciler{}
	cases := []struct {
		name     string
		err      error
		min, max time.Duration
	}{
		{"just answered", staleView(time.Now()), 100 * time.Millisecond, 100 * time.Millisecond},
		{"waited 5 s", staleView(time.Now().Add(-5 * time.Second)), 500 * time.Millisecond, 510 * time.Millisecond},
		{"waited a minute", staleView(time.Now().Add(-time.Minute)), time.Second, time.Second},
		{"wrapped", inPhase(v1alpha1.ReasonCreating, staleView(time.Now().Add(-3*time.Second))), 300 * time.Millisecond, 310 * time.Millisecond},
		{"bare", errStaleView, 100 * time.Millisecond, 100 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !errors.Is(tc.err, errStaleView) {
				t.Fatalf("%v is not errStaleView", tc.err)
			}
			after, ok := r.later(tc.err)
			if !ok || after < tc.min || after > tc.max {
				t.Fatalf("later = %v, %v; want %v to %v", after, ok, tc.min, tc.max)
			}
		})
	}
}

// A reconcile that found the view too old, then one that applies the answer
// on a view the watch has not told of yet (the cache is updated before its
// handlers run): the watch's view of the pending record, arriving while the
// answer is written, wakes nothing (an extra reconcile would retry a refusal
// that stalled the object).
func TestAnswerBeingAppliedIsNotWoken(t *testing.T) {
	r, rs, want, before, withPending := answeredCreate(t)
	key := client.ObjectKeyFromObject(rs.obj)
	r.creates.takeWoken(key) // the answer's own wake
	if applied, err := attackResume(t, r, want, before); applied || !errors.Is(err, errStaleView) {
		t.Fatalf("on a view older than the pending record: applied %v, err %v", applied, err)
	}
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer q.ShutDown()
	h := r.creates.seenHandler()
	told := false
	r.Client = interceptor.NewClient(r.Client.(client.WithWatch), interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch,
			opts ...client.SubResourcePatchOption) error {
			if !told {
				told = true
				h.Update(ctx, event.UpdateEvent{ObjectOld: before, ObjectNew: withPending}, q)
			}
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	})
	applyAnswer(t, r, want, withPending)
	if !told {
		t.Fatal("setup: the watch was not told while the answer was written")
	}
	if q.Len() != 0 || r.creates.takeWoken(key) {
		t.Fatal("the watch's view of the pending record woke an answer being applied")
	}
}

// The watch event of the write that records an answer can come before the
// write's own answer, so before the answer is marked applied: that view still
// counts, and the answer is swept staleViewWait after it was applied (without
// it, no later update came and the answer stayed until forgetAfter, walked by
// every create's sweep).
func TestRecordSeenBeforeMarkedApplied(t *testing.T) {
	r, rs, want, _, withPending := answeredCreate(t)
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer q.ShutDown()
	h := r.creates.seenHandler()
	r.Client = interceptor.NewClient(r.Client.(client.WithWatch), interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch,
			opts ...client.SubResourcePatchOption) error {
			if err := c.SubResource(sub).Patch(ctx, obj, patch, opts...); err != nil {
				return err
			}
			// The watch delivers the write before the patch returns.
			cur := &v1alpha1.ConversationWebhook{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(obj), cur); err != nil {
				return err
			}
			h.Update(ctx, event.UpdateEvent{ObjectOld: withPending, ObjectNew: cur}, q)
			return nil
		},
	})
	applyAnswer(t, r, want, withPending)
	if got := stored(t, r, rs); got.Status.Sid != planOther {
		t.Fatalf("answer not recorded: %+v", got.Status)
	}
	ageJob(r, withPending.UID, 3*staleViewWait)
	r.creates.mu.Lock()
	r.creates.sweepLocked()
	r.creates.mu.Unlock()
	if r.creates.peek(withPending.UID) != nil {
		t.Fatal("an answer whose record the watch showed before it was marked applied is kept past staleViewWait")
	}
}
