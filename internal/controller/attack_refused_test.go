package controller

import (
	"context"
	"errors"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// attackClients admits every create (no account limits).
type attackClients struct{}

func (attackClients) For(twilio.Credentials) (twilio.WebhookAPI, error) {
	return nil, errors.New("unused")
}
func (attackClients) EnsureLimits(string, string, string, twilio.Limits) {}
func (attackClients) Reserve(string) (func(), bool)                      { return func() {}, true }
func (attackClients) Reservable(string) int                              { return 1 }

// refusedFixture: the object records a pending create (stamped now, second
// precision) whose dispatched answer, a 429, is not applied yet.
func refusedFixture(t *testing.T) (*ConversationWebhookReconciler, *reconcileState, desired, *v1alpha1.ConversationWebhook) {
	t.Helper()
	r, rs, want, led := stepFixture(t)
	r.creates = newCreateDispatcher(t.Context(), time.Second)
	r.Twilio = attackClients{}
	led.pending = &pendingRecord{since: r.Clock.Now().UTC().Truncate(time.Second), scope: want.scope,
		fingerprint: fingerprint(want.target, want.cfg), recorded: true}
	if err := r.commit(t.Context(), rs, &led, true); err != nil {
		t.Fatal(err)
	}
	withPending := stored(t, r, rs)
	r.creates.jobs[withPending.UID] = &dispatchedCreate{pending: *led.pending, st: step{kind: stepCreate, why: whyRecreate},
		generation: withPending.Generation, done: true, doneAt: time.Now(),
		err: &twilio.APIError{Operation: "create", Status: 429, Code: 20429}}
	return r, rs, want, withPending
}

func attackResume(t *testing.T, r *ConversationWebhookReconciler, want desired, view *v1alpha1.ConversationWebhook) (bool, error) {
	t.Helper()
	rs := &reconcileState{obj: view.DeepCopy(), base: view.DeepCopy()}
	led, err := readLedger(rs.obj, want)
	if err != nil {
		t.Fatal(err)
	}
	_, applied, err := r.resumeCreate(t.Context(), rs, &led)
	return applied, err
}

// A dispatched create's refusal, once status records it, is kept until the view
// shows that write: a reconcile on an older view (the workqueue's first retry
// comes after 5 ms, before the watch event) waits for the cache instead of
// taking the pending record it still shows for a lost create and listing.
func TestRefusedCreateKeptUntilTheViewShowsIt(t *testing.T) {
	r, rs, want, withPending := refusedFixture(t)
	if applied, err := attackResume(t, r, want, withPending); !applied || !twilio.IsRateLimited(err) {
		t.Fatalf("applying the answer: applied %v, err %v; want the 429", applied, err)
	}
	if got := stored(t, r, rs); got.Status.PendingCreate != nil || got.Annotations[v1alpha1.AnnotationCreatePending] != "" {
		t.Fatalf("refusal not recorded: %+v %v", got.Status.PendingCreate, got.Annotations)
	}
	// The older view still shows the pending record: wait, do not look.
	if applied, err := attackResume(t, r, want, withPending); applied || !errors.Is(err, errStaleView) {
		t.Fatalf("on a view older than the refusal: applied %v, err %v; want errStaleView", applied, err)
	}
	if r.creates.peek(withPending.UID) == nil {
		t.Fatal("the refusal was forgotten before the view showed it")
	}
	// The view that shows the refusal: nothing left to apply, and the answer goes.
	if applied, err := attackResume(t, r, want, stored(t, r, rs)); applied || err != nil {
		t.Fatalf("on the current view: applied %v, err %v", applied, err)
	}
	if r.creates.peek(withPending.UID) != nil {
		t.Fatal("the refusal is still kept once the view shows it")
	}
}

// The same holds for an answer that made the webhook: once the flush wrote it
// to status, a reconcile on a view older than that write (one woken by the
// webhook-sid annotation's own watch event, say) waits for the cache rather
// than listing the conversation for its own webhook as a lost create's.
func TestAnswerKeptUntilTheViewShowsIt(t *testing.T) {
	r, rs, want, withPending := refusedFixture(t)
	job := r.creates.jobs[withPending.UID]
	job.err, job.st = nil, step{kind: stepCreate}
	job.wh = &twilio.Webhook{Sid: planOther, Target: "webhook", ConversationSid: planConv,
		Configuration: twilio.Configuration{URL: "https://e.com/a", Method: "post", Filters: []string{"onMessageAdded"}}}
	apply := &reconcileState{obj: withPending.DeepCopy(), base: withPending.DeepCopy()}
	led, err := readLedger(apply.obj, want)
	if err != nil {
		t.Fatal(err)
	}
	if _, applied, err := r.resumeCreate(t.Context(), apply, &led); !applied || err != nil {
		t.Fatalf("applying the answer: applied %v, err %v", applied, err)
	}
	if !r.creates.peek(withPending.UID).appliedAt.IsZero() {
		t.Fatal("marked applied before status recorded it")
	}
	if err := r.flushRecord(t.Context(), apply); err != nil {
		t.Fatal(err)
	}
	if got := stored(t, r, rs); got.Status.Sid != planOther || got.Status.PendingCreate != nil {
		t.Fatalf("answer not recorded: %+v", got.Status)
	}
	if applied, err := attackResume(t, r, want, withPending); applied || !errors.Is(err, errStaleView) {
		t.Fatalf("on a view older than the record: applied %v, err %v; want errStaleView", applied, err)
	}
	if applied, err := attackResume(t, r, want, stored(t, r, rs)); applied || err != nil {
		t.Fatalf("on the current view: applied %v, err %v", applied, err)
	}
	if r.creates.peek(withPending.UID) != nil {
		t.Fatal("the answer is still kept once the view shows it")
	}
}

// After the refusal, the current view lets a new create go out in the
// same second (same stamp, scope and fingerprint as the refused one); that new
// create's job is never taken for the kept refusal, and its answer is applied.
func TestAttackRefusedSameSecondNewCreate(t *testing.T) {
	r, rs, want, withPending := refusedFixture(t)
	if applied, err := attackResume(t, r, want, withPending); !applied || !twilio.IsRateLimited(err) {
		t.Fatalf("applying the refusal: %v %v", applied, err)
	}
	created := make(chan struct{})
	api := &webhookAPIFns{t: t,
		fetch: func(twilio.Scope, string) (*twilio.Webhook, error) {
			return nil, &twilio.APIError{Operation: "fetch", Status: 404, Code: 20404}
		},
		create: func(twilio.Scope, twilio.CreateWebhookInput) (*twilio.Webhook, error) {
			defer close(created)
			return &twilio.Webhook{Sid: planOther, Target: "webhook", ConversationSid: planConv,
				Configuration: twilio.Configuration{URL: "https://e.com/a", Method: "post", Filters: []string{"onMessageAdded"}}}, nil
		}}
	fresh := stored(t, r, rs)
	srs := &reconcileState{obj: fresh.DeepCopy(), base: fresh.DeepCopy()}
	if _, err := r.sync(t.Context(), srs, api); !errors.Is(err, errCreateSent) {
		t.Fatalf("on the view that shows the refusal: %v; want a new create", err)
	}
	<-created
	deadline := time.Now().Add(2 * time.Second)
	for r.creates.peek(fresh.UID) == nil || !r.creates.peek(fresh.UID).done {
		if time.Now().After(deadline) {
			t.Fatal("new create not answered")
		}
		time.Sleep(time.Millisecond)
	}
	job := r.creates.peek(fresh.UID)
	if !job.appliedAt.IsZero() || !job.pending.since.Equal(withPending.Status.PendingCreate.Since.Time) {
		t.Fatalf("new job %+v", job)
	}
	newPending := stored(t, r, rs)
	nrs := &reconcileState{obj: newPending.DeepCopy(), base: newPending.DeepCopy()}
	if _, err := r.sync(t.Context(), nrs, api); err != nil {
		t.Fatalf("applying the new create's answer: %v", err)
	}
	if err := r.flushRecord(t.Context(), nrs); err != nil {
		t.Fatal(err)
	}
	if got := stored(t, r, rs); got.Status.Sid != planOther || got.Status.PendingCreate != nil {
		t.Fatalf("new create not recorded: %+v", got.Status)
	}
}

// A deletion reconciled on a view older than the recorded refusal waits
// (settleCreate), then deletes on the current view without listing.
func TestAttackRefusedDeletionOnStaleView(t *testing.T) {
	r, rs, want, withPending := refusedFixture(t)
	if applied, err := attackResume(t, r, want, withPending); !applied || err == nil {
		t.Fatalf("applying the refusal: %v %v", applied, err)
	}
	stale := withPending.DeepCopy()
	now := stale.CreationTimestamp
	stale.DeletionTimestamp = &now
	drs := &reconcileState{obj: stale.DeepCopy(), base: stale.DeepCopy()}
	if after, err := r.settleCreate(t.Context(), drs); after == 0 || err != nil {
		t.Fatalf("stale deletion view: after %v err %v; want a short wait", after, err)
	}
	cur := stored(t, r, rs)
	cur.DeletionTimestamp = &now
	drs = &reconcileState{obj: cur.DeepCopy(), base: cur.DeepCopy()}
	if after, err := r.settleCreate(t.Context(), drs); after != 0 || err != nil {
		t.Fatalf("current deletion view: after %v err %v", after, err)
	}
	if d, err := r.planDeletion(t.Context(), drs.obj); err != nil || d.pending != nil {
		t.Fatalf("deletion would list: %+v %v", d.pending, err)
	}
	if r.creates.peek(cur.UID) != nil {
		t.Fatal("kept after the deletion saw the refusal")
	}
}

// The spec changes while the refusal is kept: the stale view waits, the
// view with the new generation forgets the refusal and creates for it.
func TestAttackRefusedThenSpecChanged(t *testing.T) {
	r, rs, want, withPending := refusedFixture(t)
	if _, err := attackResume(t, r, want, withPending); !twilio.IsRateLimited(err) {
		t.Fatal(err)
	}
	edited := stored(t, r, rs)
	edited.Spec.URL = "https://e.com/b"
	if err := r.Update(t.Context(), edited); err != nil {
		t.Fatal(err)
	}
	if _, err := attackResume(t, r, want, withPending); !errors.Is(err, errStaleView) {
		t.Fatalf("stale view: %v", err)
	}
	fresh := stored(t, r, rs)
	if applied, err := attackResume(t, r, desiredOf(&fresh.Spec), fresh); applied || err != nil ||
		r.creates.peek(fresh.UID) != nil {
		t.Fatalf("fresh view: %v %v", applied, err)
	}
}

// Status records the refusal, the annotation write after it fails. The refusal
// is kept; the stale view waits; the view with the refusal forgets it and
// re-annotates, never lists.
func TestAttackRefusedMetaWriteFails(t *testing.T) {
	r, rs, want, withPending := refusedFixture(t)
	failMeta := true
	r.Client = interceptor.NewClient(r.Client.(client.WithWatch), interceptor.Funcs{
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, p client.Patch, o ...client.PatchOption) error {
			if failMeta {
				return apierrors.NewServiceUnavailable("meta down")
			}
			return c.Patch(ctx, obj, p, o...)
		}})
	applied, err := attackResume(t, r, want, withPending)
	if !applied || !twilio.IsRateLimited(err) {
		t.Fatalf("%v %v", applied, err)
	}
	failMeta = false
	got := stored(t, r, rs)
	if got.Status.PendingCreate != nil || got.Annotations[v1alpha1.AnnotationCreatePending] == "" {
		t.Fatalf("want status written, annotation not: %+v %v", got.Status.PendingCreate, got.Annotations)
	}
	if j := r.creates.peek(got.UID); j == nil || j.appliedAt.IsZero() {
		t.Fatalf("refusal not kept: %+v", j)
	}
	if _, err := attackResume(t, r, want, withPending); !errors.Is(err, errStaleView) {
		t.Fatalf("stale: %v", err)
	}
	api := &webhookAPIFns{t: t, fetch: func(twilio.Scope, string) (*twilio.Webhook, error) {
		return &twilio.Webhook{Sid: planOwned, Target: "webhook", ConversationSid: planConv,
			Configuration: twilio.Configuration{URL: "https://e.com/a", Method: "post", Filters: []string{"onMessageAdded"}}}, nil
	}}
	srs := &reconcileState{obj: got.DeepCopy(), base: got.DeepCopy()}
	if _, err := r.sync(t.Context(), srs, api); err != nil {
		t.Fatal(err)
	}
	if err := r.flushRecord(t.Context(), srs); err != nil {
		t.Fatal(err)
	}
	if got := stored(t, r, rs); got.Annotations[v1alpha1.AnnotationCreatePending] != "" || r.creates.peek(got.UID) != nil {
		t.Fatalf("not re-annotated / kept: %v", got.Annotations)
	}
}

// The refusal's status write conflicts (the object changed since the view: a
// label, a spec edit, a deletion). The answer that proves nothing was created
// was forgotten, so the next reconcile, on the current view that still records
// the pending create, listed the conversation and, the stamp being young,
// waited PendingGrace before creating again (a deletion waited too). The
// unapplied refusal is kept: that view applies it.
func TestAttackRefusalWriteConflictForgotten(t *testing.T) {
	r, rs, want, withPending := refusedFixture(t)
	r.PendingGrace = 30 * time.Second
	labelled := stored(t, r, rs)
	labelled.Labels = map[string]string{"team": "a"} // any change: a new resourceVersion
	if err := r.Update(t.Context(), labelled); err != nil {
		t.Fatal(err)
	}
	if applied, err := attackResume(t, r, want, withPending); !applied || !apierrors.IsConflict(err) {
		t.Fatalf("applying on the stale view: %v %v; want a conflict", applied, err)
	}
	cur := stored(t, r, rs)
	if cur.Status.PendingCreate == nil {
		t.Fatal("status changed despite the conflict")
	}
	listed := 0
	api := &webhookAPIFns{t: t, list: func(twilio.Scope) ([]twilio.Webhook, error) { listed++; return nil, nil }}
	srs := &reconcileState{obj: cur.DeepCopy(), base: cur.DeepCopy()}
	_, err := r.sync(t.Context(), srs, api)
	if listed > 0 {
		t.Fatalf("the refusal was forgotten on a conflict: the current view listed the conversation (%d) and got %v", listed, err)
	}
	if !twilio.IsRateLimited(err) {
		t.Fatalf("want the refusal applied on the current view, got %v", err)
	}
}
