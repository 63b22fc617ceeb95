package controller

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// attack20bClients hands out one fake Twilio client for every credential.
type attack20bClients struct{ api twilio.WebhookAPI }

func (c attack20bClients) For(twilio.Credentials) (twilio.WebhookAPI, error) { return c.api, nil }
func (attack20bClients) EnsureLimits(string, string, string, twilio.Limits)  {}
func (attack20bClients) Reserve(string) (func(), bool)                       { return func() {}, true }
func (attack20bClients) Reservable(string) int                               { return 1 }

// attack20bWebhook is what Twilio holds for the fixture's object: it matches the spec.
func attack20bWebhook() *twilio.Webhook {
	return &twilio.Webhook{Sid: planOwned, AccountSid: attackSidA, ConversationSid: planConv, Target: "webhook",
		Configuration: twilio.Configuration{URL: "https://e.com/a", Method: "post", Filters: []string{"onMessageAdded"}}}
}

// attack20bReadyObject is a converged object (Ready=True/Available, no
// Reconciling condition) that manages planOwned in account attackSidA.
func attack20bReadyObject() *v1alpha1.ConversationWebhook {
	o := attackWebhook("w", "acc")
	o.UID = "uid-w"
	o.Spec.ConversationSid = planConv
	o.Spec.Target = v1alpha1.TargetWebhook
	o.Spec.URL = "https://e.com/a"
	o.Spec.Method = "POST"
	o.Spec.Filters = []v1alpha1.Filter{"onMessageAdded"}
	o.Annotations = map[string]string{v1alpha1.AnnotationWebhookSid: planOwned}
	o.Finalizers = []string{v1alpha1.Finalizer}
	recordWebhook(&o.Status, attack20bWebhook(), nil)
	setReady(&o.Status, 1, metav1.NewTime(time.Now().Add(-time.Hour)))
	return o
}

// attack20bDrive reconciles key n times, each time handing the result to the
// limiter the controller is given (rateLimiter) as controller-runtime's
// reconcileHandler does: an error is requeued after When (AddRateLimited),
// any other result makes the queue call Forget. It returns the wait before
// each next reconcile.
func attack20bDrive(t *testing.T, r *ConversationWebhookReconciler, rl workqueue.TypedRateLimiter[reconcile.Request],
	key client.ObjectKey, n int) ([]time.Duration, []error) {
	t.Helper()
	req := reconcile.Request{NamespacedName: key}
	var waits []time.Duration
	var errs []error
	for range n {
		res, err := r.Reconcile(t.Context(), ctrl.Request{NamespacedName: key})
		errs = append(errs, err)
		if err != nil {
			waits = append(waits, rl.When(req))
			continue
		}
		rl.Forget(req)
		waits = append(waits, res.RequeueAfter)
	}
	return waits, errs
}

// admissionDown is what the API server answers while a validating admission
// webhook with failurePolicy Fail (Kyverno, Gatekeeper) cannot be reached: an
// error that lasts as long as the outage.
func admissionDown() error {
	return apierrors.NewInternalError(errors.New(`failed calling webhook "validate.kyverno.svc-fail": ` +
		`Post "https://kyverno-svc.kyverno.svc:443/validate/fail": dial tcp 10.96.0.12:443: connect: connection refused`))
}

// TestAttack20bSettledObjectsPersistentErrorBacksOff: README, "Errors": the
// workqueue's backoff is "5 ms after an object's first failure, doubling with
// each ... it counts an object's failures until the object settles";
// DESIGN: no hot retry loop. A reconcile whose in-memory status is settled
// (Ready: the Twilio look matched) but whose status write fails ends its run
// in reconciled (the first defer) before controller-runtime counts the error
// (AddRateLimited runs after Reconcile returns): every retry is the first
// failure of a fresh run, 5 ms, for as long as the write fails, and each one
// fetches the webhook from Twilio again. controller-runtime's own limiter
// doubled these (consecutive errors, no success between them).
func TestAttack20bSettledObjectsPersistentErrorBacksOff(t *testing.T) {
	wh := attack20bReadyObject()
	c := attackClient(t, attackAccount("acc", 0), wh)
	var statusWrites atomic.Int32
	hooked := interceptor.NewClient(c, interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, cl client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			statusWrites.Add(1)
			return admissionDown()
		},
	})
	var fetches atomic.Int32
	api := &webhookAPIFns{t: t, fetch: func(twilio.Scope, string) (*twilio.Webhook, error) {
		fetches.Add(1)
		return attack20bWebhook(), nil
	}}
	r := &ConversationWebhookReconciler{Client: hooked, APIReader: c, Twilio: attack20bClients{api: api},
		Recorder: events.NewFakeRecorder(1000), SyncPeriod: 10 * time.Minute,
		Clock: clocktesting.NewFakePassiveClock(time.Now())}
	rl := r.rateLimiter()
	waits, errs := attack20bDrive(t, r, rl, client.ObjectKeyFromObject(wh), 12)
	for i, err := range errs {
		if err == nil {
			t.Fatalf("setup: reconcile %d did not fail (waits %v)", i+1, waits)
		}
	}
	t.Logf("waits %v; %d Twilio fetches, %d status writes", waits, fetches.Load(), statusWrites.Load())
	// controller-runtime's default: 5 ms, 10 ms, ..., 10.24 s after the twelfth.
	if waits[11] < 5*time.Millisecond<<11 {
		t.Errorf("12 failures in a row (status write refused), each after a fetch from Twilio: waits %v; "+
			"README: 5 ms doubling with each failure (10.24 s after the twelfth), as controller-runtime's default did", waits)
	}
}

// TestAttack20bDefaultLimiterDoublesTheSame is the control for the test
// above: the same reconciles, driven through controller-runtime's default
// limiter (what the controller had before 5adf746), back off 5 ms, 10 ms, ...
func TestAttack20bDefaultLimiterDoublesTheSame(t *testing.T) {
	wh := attack20bReadyObject()
	c := attackClient(t, attackAccount("acc", 0), wh)
	hooked := interceptor.NewClient(c, interceptor.Funcs{
		SubResourcePatch: func(context.Context, client.Client, string, client.Object, client.Patch, ...client.SubResourcePatchOption) error {
			return admissionDown()
		},
	})
	api := &webhookAPIFns{t: t, fetch: func(twilio.Scope, string) (*twilio.Webhook, error) { return attack20bWebhook(), nil }}
	r := &ConversationWebhookReconciler{Client: hooked, APIReader: c, Twilio: attack20bClients{api: api},
		Recorder: events.NewFakeRecorder(1000), SyncPeriod: 10 * time.Minute,
		Clock: clocktesting.NewFakePassiveClock(time.Now())}
	waits, _ := attack20bDrive(t, r, workqueue.DefaultTypedControllerRateLimiter[reconcile.Request](), client.ObjectKeyFromObject(wh), 12)
	if waits[11] != 5*time.Millisecond<<11 {
		t.Fatalf("controller-runtime's default limiter: waits %v", waits)
	}
}

// TestAttack20bDeletionWhoseFinalizerRemovalFailsBacksOff: the deletion of a
// Ready object deletes its webhook in Twilio, then removes the finalizer. While
// that metadata write fails (an admission webhook that cannot be reached, with
// failurePolicy Fail), the object is settled in memory (the deletion sets no
// condition when it succeeds in Twilio), so each failure starts a fresh run:
// a Twilio DELETE every 5 ms for as long as the API server refuses the write
// (only the 10/s bucket, shared with every other object, slows it).
// controller-runtime's default doubled it.
func TestAttack20bDeletionWhoseFinalizerRemovalFailsBacksOff(t *testing.T) {
	wh := attack20bReadyObject()
	c := attackClient(t, attackAccount("acc", 0), wh)
	if err := c.Delete(t.Context(), wh.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	hooked := interceptor.NewClient(c, interceptor.Funcs{
		Patch: func(ctx context.Context, cl client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			if _, ok := obj.(*v1alpha1.ConversationWebhook); ok {
				return admissionDown()
			}
			return cl.Patch(ctx, obj, patch, opts...)
		},
	})
	var deletes atomic.Int32
	api := &webhookAPIFns{t: t, del: func(twilio.Scope, string) error {
		if deletes.Add(1) == 1 {
			return nil
		}
		return &twilio.APIError{Operation: twilio.OpDelete, Status: 404, Code: 20404, Message: "not found"}
	}}
	r := &ConversationWebhookReconciler{Client: hooked, APIReader: c, Twilio: attack20bClients{api: api},
		Recorder: events.NewFakeRecorder(1000), SyncPeriod: 10 * time.Minute,
		Clock: clocktesting.NewFakePassiveClock(time.Now())}
	waits, errs := attack20bDrive(t, r, r.rateLimiter(), client.ObjectKeyFromObject(wh), 12)
	for i, err := range errs {
		if err == nil {
			t.Fatalf("setup: reconcile %d did not fail (waits %v)", i+1, waits)
		}
	}
	t.Logf("waits %v; %d Twilio deletes", waits, deletes.Load())
	if waits[11] < 5*time.Millisecond<<11 {
		t.Errorf("12 failed finalizer removals in a row, each after a Twilio DELETE (%d sent): waits %v; "+
			"README: 5 ms doubling with each failure until the object is deleted", deletes.Load(), waits)
	}
}

// TestAttack20bRetryAfterSkipsTheSharedBucket: README, "Errors": the backoff
// is controller-runtime's default, "at most 10 retries a second for all
// objects", and a Retry-After is "a floor, never a reason to retry sooner than
// the backoff". failed counts a failure with Retry-After on the per-object
// part only (transientRetries.failed), never on the 10/s bucket the queue's
// limiter puts over it: 200 objects answered "Retry-After: 1" at once are
// all retried one second later, 200 in that second, where the same failures
// without the header are spread by the bucket over ten seconds. The header
// makes the operator retry sooner than without it.
func TestAttack20bRetryAfterSkipsTheSharedBucket(t *testing.T) {
	const n = 200
	withHeader := &ConversationWebhookReconciler{SyncPeriod: 10 * time.Minute, Recorder: events.NewFakeRecorder(10 * n)}
	bare := &ConversationWebhookReconciler{SyncPeriod: 10 * time.Minute}
	rl := bare.rateLimiter()
	var lastWithHeader, lastBare time.Duration
	for i := range n {
		o := attack20Object("uid")
		o.Name = "o" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		res, err := withHeader.failed(t.Context(), o, v1alpha1.ReasonCreating, busyAnswer())
		if err != nil {
			t.Fatal(err)
		}
		lastWithHeader = max(lastWithHeader, res.RequeueAfter)
		lastBare = max(lastBare, rl.When(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(o)}))
	}
	t.Logf("%d objects' first failure: last retry after %v with Retry-After: 1, after %v without it", n, lastWithHeader, lastBare)
	if lastWithHeader < lastBare-time.Second {
		t.Errorf("%d objects failing at once: with \"Retry-After: 1\" all are retried within %v; without the header the "+
			"workqueue's 10/s spreads them over %v. README: the header is a floor, never a reason to retry sooner than the backoff",
			n, lastWithHeader, lastBare)
	}
}
