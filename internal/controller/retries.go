package controller

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
)

// The backoff of an object's failures: controller-runtime's default
// (workqueue.DefaultTypedControllerRateLimiter): 5 ms after the first failure,
// doubling, at most 1000 s; and at most 10 retries a second (bursts of 100)
// for all objects together.
const (
	retryBackoffBase = 5 * time.Millisecond
	retryBackoffMax  = 1000 * time.Second
	retryRate        = 10
	retryBurst       = 100
)

// transientRetries is the ConversationWebhook workqueue's rate limiter
// (rateLimiter): controller-runtime's default — each object's backoff, and a
// bucket for all objects together — except that an object's failures are
// counted until it settles. The workqueue counts a failure returned as an
// error; the reconciler's failed counts one that came with a Retry-After the
// same way (When), and retries it after the longer of the two waits: the
// header is a floor, never a reason to retry sooner than the same failure
// without it, nor to skip the bucket.
//
// controller-runtime forgets an object's failures after every reconcile that
// returns no error. Here that reset the backoff on every round of a create:
// the reconcile that hands a create to the sender returns without an error,
// and the one after it reads Twilio's refusal, so a create refused for good
// (a 429 or 5xx without Retry-After, or not sent in its window) was retried
// after 5 ms every round; and a requeue after a Retry-After is itself a
// reconcile without an error, so "Retry-After: 1" was obeyed every second for
// as long as a server or proxy answered so. Forget does nothing, therefore;
// the count ends when a reconcile leaves the object settled (reconciled).
type transientRetries struct {
	once      sync.Once
	perObject workqueue.TypedRateLimiter[reconcile.Request]
	// bucket is shared by all objects' retries (workqueue's
	// TypedBucketRateLimiter holds the same).
	bucket *rate.Limiter
	// clock is the bucket's (nil: the real clock).
	clock clock.PassiveClock

	mu sync.Mutex
	// uids are the objects whose runs are counted, by key (begin).
	uids map[types.NamespacedName]types.UID
}

var _ workqueue.TypedRateLimiter[reconcile.Request] = (*transientRetries)(nil)

func (t *transientRetries) limiters() (workqueue.TypedRateLimiter[reconcile.Request], *rate.Limiter) {
	t.once.Do(func() {
		t.perObject = workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](retryBackoffBase, retryBackoffMax)
		t.bucket = rate.NewLimiter(rate.Limit(retryRate), retryBurst)
	})
	return t.perObject, t.bucket
}

func (t *transientRetries) now() time.Time {
	if t.clock != nil {
		return t.clock.Now()
	}
	return time.Now()
}

// When counts one more failure of req and returns the wait before its retry:
// 5 ms after the first failure since the object settled, doubling with each,
// at most retryBackoffMax; and no sooner than the bucket shared by all
// objects allows.
func (t *transientRetries) When(req reconcile.Request) time.Duration {
	perObject, bucket := t.limiters()
	now := t.now()
	return max(perObject.When(req), bucket.ReserveN(now, 1).DelayFrom(now))
}

// Forget does nothing: the workqueue calls it after every reconcile without an
// error, and only a settled object ends its run of failures (reconciled).
func (t *transientRetries) Forget(reconcile.Request) {}

// NumRequeues is the number of req's failures since it last settled.
func (t *transientRetries) NumRequeues(req reconcile.Request) int {
	perObject, _ := t.limiters()
	return perObject.NumRequeues(req)
}

// begin starts a reconcile of the object key names now, uid. A run counted for
// another object of that name ends: one deleted and created again before a
// reconcile found it gone (kubectl replace --force, a GitOps tool's Replace)
// starts afresh. The UID is kept only while the object has a run.
func (t *transientRetries) begin(key types.NamespacedName, uid types.UID) {
	req := reconcile.Request{NamespacedName: key}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.NumRequeues(req) == 0 {
		delete(t.uids, key)
		return
	}
	if counted, ok := t.uids[key]; ok && counted != uid {
		t.forgetLocked(key)
		return
	}
	if t.uids == nil {
		t.uids = map[types.NamespacedName]types.UID{}
	}
	t.uids[key] = uid
}

// reconciled ends key's run of failures once a reconcile that returned no
// error leaves the object settled: Reconciling no longer True (converged,
// stalled, paused) or the object gone (nil). A reconcile that is still
// converging keeps the run: a create is sent off the worker, so the reconcile
// that sends it ends without a failure and the one after it reads Twilio's
// answer. One that returned an error keeps it too, whatever the status says
// (a status write refused, a finalizer not removed): the workqueue counts
// that error after the reconcile returns.
func (t *transientRetries) reconciled(key types.NamespacedName, obj *v1alpha1.ConversationWebhook) {
	if obj != nil && meta.IsStatusConditionTrue(obj.Status.Conditions, v1alpha1.ConditionReconciling) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.forgetLocked(key)
}

func (t *transientRetries) forgetLocked(key types.NamespacedName) {
	perObject, _ := t.limiters()
	perObject.Forget(reconcile.Request{NamespacedName: key})
	delete(t.uids, key)
}

// rateLimiter is the ConversationWebhook workqueue's (transientRetries).
func (r *ConversationWebhookReconciler) rateLimiter() workqueue.TypedRateLimiter[reconcile.Request] {
	return &r.retries
}
