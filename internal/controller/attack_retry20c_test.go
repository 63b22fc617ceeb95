package controller

import (
	"container/heap"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
)

// attack20cRetry is one object's next retry on the virtual clock.
type attack20cRetry struct {
	at  time.Time
	obj int
}

type attack20cQueue []attack20cRetry

func (q attack20cQueue) Len() int           { return len(q) }
func (q attack20cQueue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q attack20cQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *attack20cQueue) Push(x any)        { *q = append(*q, x.(attack20cRetry)) }
func (q *attack20cQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// attack20cOutage plays n objects (poll-interval 30s, the floor the README
// allows) failing every attempt for d of virtual time, all first failing at
// once; each is retried when the controller would retry it: after failed's
// RequeueAfter with the header, or after the workqueue's When (the limiter
// the controller is given) without it. It returns the number of retries and
// the wait of an unrelated object's first error (another tenant's conflict,
// say) when the outage ends.
func attack20cOutage(t *testing.T, n int, d time.Duration, withHeader bool) (int, time.Duration) {
	t.Helper()
	start := time.Unix(1_700_000_000, 0)
	now := clocktesting.NewFakePassiveClock(start)
	r := &ConversationWebhookReconciler{SyncPeriod: 10 * time.Minute, Recorder: &events.FakeRecorder{}}
	// The shared bucket on the virtual clock.
	r.retries.clock = now
	rl := r.rateLimiter()
	ctx := log.IntoContext(context.Background(), logr.Discard())
	objs := make([]*v1alpha1.ConversationWebhook, n)
	q := &attack20cQueue{}
	for i := range objs {
		o := attack20Object(fmt.Sprintf("uid-%d", i))
		o.Name = fmt.Sprintf("o-%d", i)
		o.Annotations = map[string]string{v1alpha1.AnnotationPollInterval: "30s"}
		objs[i] = o
		heap.Push(q, attack20cRetry{at: start, obj: i})
	}
	retries := 0
	for q.Len() > 0 {
		next := heap.Pop(q).(attack20cRetry)
		if !next.at.Before(start.Add(d)) {
			break
		}
		now.SetTime(next.at)
		retries++
		o := objs[next.obj]
		var wait time.Duration
		if withHeader {
			res, err := r.failed(ctx, o, v1alpha1.ReasonCreating, busyAnswer())
			if err != nil {
				t.Fatal(err)
			}
			wait = res.RequeueAfter
		} else {
			wait = rl.When(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(o)})
		}
		heap.Push(q, attack20cRetry{at: next.at.Add(wait), obj: next.obj})
	}
	now.SetTime(start.Add(d))
	other := rl.When(reconcile.Request{NamespacedName: client.ObjectKey{Namespace: "other-tenant", Name: "w"}})
	return retries, other
}

// TestAttack20cRetryAfterCappedByPollRunsUpTheSharedBucket: a failure with
// a Retry-After takes a token of the 10/s bucket all retries share, and its
// wait is cut to the poll period. As first written (14adaba) the token was
// kept when the wait was cut: the object was retried at the poll, before its
// token, and reserved another, so that while such retries came faster than 10
// a second (1,000 objects polled every 30 s: 33/s) the bucket ran into a debt
// without bound, and every other object's next error (a conflict in another
// tenant's account that Twilio never refused) waited for all of it: 2 h 21 min
// after an hour of outage, against none after the same failures without the
// header (each waits for its one token). A retry cut to the poll gives its
// token back.
func TestAttack20cRetryAfterCappedByPollRunsUpTheSharedBucket(t *testing.T) {
	const n = 1000
	const outage = time.Hour
	hdrRetries, hdrOther := attack20cOutage(t, n, outage, true)
	bareRetries, bareOther := attack20cOutage(t, n, outage, false)
	t.Logf("%d objects failing for %v: with \"Retry-After: 1\" %d retries (%.1f/s), another object's first error then waits %v; "+
		"without the header %d retries (%.1f/s), it waits %v",
		n, outage, hdrRetries, float64(hdrRetries)/outage.Seconds(), hdrOther.Round(time.Second),
		bareRetries, float64(bareRetries)/outage.Seconds(), bareOther.Round(time.Second))
	if hdrOther > max(2*bareOther, 10*time.Minute) {
		t.Errorf("after %v of \"Retry-After: 1\" answers to %d objects, an unrelated object's first error is retried after %v "+
			"(the shared bucket's debt), against %v after the same failures without the header",
			outage, n, hdrOther.Round(time.Second), bareOther.Round(time.Second))
	}
}
