package controller

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// FINDING (S1), left as it was before 4c7380f; pinned: no second create.
// seenHandler's "a view has shown the record" is a fact about the informer
// cache, not about the reconciles that already read an older view from it.
// Reconcile reads its view, then sync takes the conversation's take lock (a
// plain mutex, no deadline) before look/resumeCreate; another object of the
// same conversation holds that lock over its Twilio look (a list with a slow
// or busy account, up to ReconcileTimeout = 2 min). Meanwhile the answer's
// record arrives by watch (seen), staleViewWait passes, and any other object's
// create sweeps the job. The blocked reconcile then resumes on its older view,
// which still shows the pending record, finds no job, and takes it for a lost
// create: one Twilio look. The write that follows conflicts (optimistic lock),
// so no create is made and nothing is recorded from the old view. Before
// 4c7380f an applied answer was swept 10 s after it was applied whatever any
// view showed, so the same happened; keeping every applied answer until a
// reconcile's own view shows it (4c7380f alone) kept them all in memory until
// forgetAfter instead (helper-36's F2).
func TestAttackSeen22SweptWhileReconcileHoldsOlderView(t *testing.T) {
	r, want, uid, withPending, recorded := staleView22Applied(t)
	var looks, creates atomic.Int32
	api := &webhookAPIFns{t: t,
		list: func(twilio.Scope) ([]twilio.Webhook, error) {
			looks.Add(1)
			return []twilio.Webhook{{Sid: planOther, Target: "webhook", ConversationSid: planConv,
				Configuration: twilio.Configuration{URL: "https://e.com/a", Method: "post", Filters: []string{"onMessageAdded"}}}}, nil
		},
		fetch: func(twilio.Scope, string) (*twilio.Webhook, error) {
			looks.Add(1)
			return nil, &twilio.APIError{Operation: "fetch", Status: 404, Code: 20404}
		},
		create: func(twilio.Scope, twilio.CreateWebhookInput) (*twilio.Webhook, error) {
			creates.Add(1)
			return nil, errors.New("no")
		},
		update: func(twilio.Scope, string, twilio.Configuration) (*twilio.Webhook, error) {
			return nil, errors.New("no")
		},
		del: func(twilio.Scope, string) error { looks.Add(1); return nil },
	}
	// Another object of the conversation holds the take lock over its look.
	unlock := r.takes.lock(want.scope)
	// This object's reconcile read the view with the pending record (the
	// cache lagged the answer's write) and waits for the lock.
	done := make(chan error, 1)
	go func() {
		rs := &reconcileState{obj: withPending.DeepCopy(), base: withPending.DeepCopy()}
		_, err := r.sync(context.Background(), rs, api)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	// The watch delivers the answer's record: seen.
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer q.ShutDown()
	r.creates.seenHandler().Update(t.Context(), event.UpdateEvent{ObjectOld: withPending, ObjectNew: recorded}, q)
	// 30 s later (the lock holder's list is slow), another object's create
	// starts and sweeps.
	ageJob(r, uid, 3*staleViewWait)
	r.creates.mu.Lock()
	r.creates.sweepLocked()
	r.creates.mu.Unlock()
	unlock()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("sync did not return")
	}
	t.Logf("reconcile on a view older than the answer's record (rv %s < applied %s), job swept while it "+
		"waited for the take lock: %d Twilio looks (lost-create path), %d creates, err %v",
		withPending.ResourceVersion, recorded.ResourceVersion, looks.Load(), creates.Load(), err)
	if creates.Load() != 0 || !apierrors.IsConflict(err) {
		t.Fatalf("%d creates, err %v; want none, and the stale view's write refused", creates.Load(), err)
	}
	if got := stored(t, r, &reconcileState{obj: recorded}); got.Status.Sid != planOther || got.Status.PendingCreate != nil {
		t.Fatalf("the record was changed from the stale view: %+v", got.Status)
	}
}

// FINDING (S2), fixed (a view wakes only an answer a reconcile found the view
// too old for, once). seenHandler woke the object on the operator's OWN
// intermediate writes of the answer. flushRecord writes the annotations
// first (RV m ≥ writtenRV), then status, and only then calls applied(). The
// watch event of the annotations' write, arriving while the status patch is
// in flight (or the status write's own event before applied() is reached),
// finds the job done and not applied, and wakes it at wakePriority (ahead of
// every new and initial-list object). The same happens on the refusal path
// (commit writes status, then meta, then applied()). The extra reconcile, once
// the cache shows the record, forgets the job and goes on to observe(): one
// Twilio fetch per create (competing with creates for the account's slots),
// or, on a view of m, a staleView requeue (100 ms, again at wakePriority).
// Before 39e1cf7 none of these writes reached the reconciler (the For()
// predicate drops operator annotations and status).
func TestAttackSeen22OwnApplyWriteWakes(t *testing.T) {
	r, rs, want, _, withPending := answeredCreate(t)
	// The answer's own wake marked the key; its reconcile is this apply.
	r.creates.takeWoken(client.ObjectKeyFromObject(rs.obj))
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer q.ShutDown()
	h := r.creates.seenHandler()
	var metaView *v1alpha1.ConversationWebhook
	base := r.Client.(client.WithWatch)
	r.Client = interceptor.NewClient(base, interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch,
			opts ...client.SubResourcePatchOption) error {
			// The watch delivers the annotations' write while status is written.
			cur := &v1alpha1.ConversationWebhook{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(obj), cur); err != nil {
				return err
			}
			if metaView == nil {
				metaView = cur.DeepCopy()
				h.Update(ctx, event.UpdateEvent{ObjectOld: withPending, ObjectNew: cur}, q)
			}
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	})
	applyAnswer(t, r, want, withPending)
	recorded := stored(t, r, rs)
	if recorded.Status.Sid != planOther || metaView == nil {
		t.Fatalf("answer not recorded (%+v) or no meta view", recorded.Status)
	}
	if q.Len() != 0 || r.creates.takeWoken(client.ObjectKeyFromObject(rs.obj)) {
		_, staleErr := attackResume(t, r, want, metaView)
		t.Fatalf("the operator's own annotations write (rv %s, between writtenRV and the answer's status write) "+
			"woke the object at wakePriority (queue %d); the woken reconcile on that view gets %v "+
			"(and on the current view, forgets the job and fetches from Twilio)", metaView.ResourceVersion, q.Len(), staleErr)
	}
}

// PIN. A recreated object (same name, new UID) is not woken by its
// predecessor's answer, and an event of the old UID never marks the new one.
func TestAttackSeen22RecreatedSameNameNotWoken(t *testing.T) {
	r, rs, withPending := staleView22Answered(t)
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer q.ShutDown()
	// The answer's own wake (start's goroutine) marked the key: taken, as the
	// reconcile it caused would have.
	r.creates.takeWoken(client.ObjectKeyFromObject(rs.obj))
	// A reconcile found the view too old for the answer: a view of this
	// object that shows its pending record would wake it (the control below).
	older := withPending.DeepCopy()
	older.ResourceVersion = "1"
	older.Status.PendingCreate = nil
	if _, err := attackResume(t, r, desiredOf(&withPending.Spec), older); !errors.Is(err, errStaleView) {
		t.Fatalf("setup: %v, want errStaleView", err)
	}
	again := withPending.DeepCopy()
	again.UID = "recreated"
	again.ResourceVersion = "999999"
	r.creates.seenHandler().Update(t.Context(), event.UpdateEvent{ObjectOld: again, ObjectNew: again}, q)
	if q.Len() != 0 || r.creates.takeWoken(client.ObjectKeyFromObject(rs.obj)) {
		t.Fatal("a recreated object was woken by its predecessor's answer")
	}
	// Control: the same view under the object's own UID wakes it.
	r.creates.seenHandler().Update(t.Context(), event.UpdateEvent{ObjectOld: withPending, ObjectNew: withPending}, q)
	if q.Len() != 1 {
		t.Fatal("control: the object's own view of its pending record did not wake it")
	}
}
