package controller

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
)

// The backoff of an object's transient failures in a row: controller-runtime's
// default per-item backoff (workqueue.DefaultTypedControllerRateLimiter), which
// retries a failure returned as an error.
const (
	retryBackoffBase = 5 * time.Millisecond
	retryBackoffMax  = 1000 * time.Second
)

// transientRetries counts each object's transient failures in a row, so that a
// failure that came with a Retry-After is retried no sooner than the
// workqueue's backoff would retry one without: the header is a floor on the
// wait, never a reason to retry faster. Without it, a server (or a proxy
// answering for Twilio) answering every request with a 503 and
// "Retry-After: 1" was asked again every second, by every object of its
// account, for as long as it answered so: a requeue with RequeueAfter and no
// error makes the workqueue forget the object's failures.
type transientRetries struct {
	once sync.Once
	rl   workqueue.TypedRateLimiter[types.NamespacedName]
}

func (t *transientRetries) limiter() workqueue.TypedRateLimiter[types.NamespacedName] {
	t.once.Do(func() {
		t.rl = workqueue.NewTypedItemExponentialFailureRateLimiter[types.NamespacedName](retryBackoffBase, retryBackoffMax)
	})
	return t.rl
}

// failed counts one more transient failure of key and returns the backoff
// before its retry: 5 ms after the first, doubling with each failure in a row,
// at most retryBackoffMax.
func (t *transientRetries) failed(key types.NamespacedName) time.Duration {
	return t.limiter().When(key)
}

// reconciled ends key's run of transient failures once a reconcile leaves the
// object settled: Reconciling no longer True (converged, stalled, paused) or
// the object gone (nil). A reconcile that is still converging keeps the run:
// a create is sent off the worker, so the reconcile that sends it ends without
// a failure and the one after it reads Twilio's answer.
func (t *transientRetries) reconciled(key types.NamespacedName, obj *v1alpha1.ConversationWebhook) {
	if obj == nil || !meta.IsStatusConditionTrue(obj.Status.Conditions, v1alpha1.ConditionReconciling) {
		t.limiter().Forget(key)
	}
}
