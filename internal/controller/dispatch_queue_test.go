package controller

import (
	"fmt"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
)

// The parked queue keeps order, ignores a second park, skips objects taken off
// (unpark) and hands out no more than asked.
func TestParkedQueue(t *testing.T) {
	key := func(n string) types.NamespacedName { return types.NamespacedName{Namespace: "ns", Name: n} }
	d := newCreateDispatcher(t.Context(), 0)
	for _, n := range []string{"a", "b", "c", "a", "d"} {
		d.park("AC1", key(n))
	}
	d.park("AC2", key("other-account"))
	d.unpark("AC1", key("b"))
	pop := func(n int) []string {
		var out []string
		for _, k := range d.parked["AC1"].pop(n) {
			out = append(out, k.Name)
		}
		return out
	}
	if got := pop(2); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("first two: %v, want [a c] (b was taken off)", got)
	}
	d.park("AC1", key("a")) // parked again after its wake: at the end
	if got := pop(5); !slices.Equal(got, []string{"d", "a"}) {
		t.Fatalf("the rest: %v, want [d a]", got)
	}
	if got := pop(1); got != nil {
		t.Fatalf("an empty queue gave %v", got)
	}
	if got := d.parked["AC2"].pop(1); len(got) != 1 || got[0].Name != "other-account" {
		t.Fatalf("the other account's queue: %v", got)
	}
}

// A wake goes ahead of objects already waiting in the controller's priority
// queue (new objects, periodic checks), and raises the priority of an object
// already queued; without a priority queue it is a plain add.
func TestWakeHandlerPriority(t *testing.T) {
	req := func(n string) reconcile.Request {
		return reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: n}}
	}
	obj := func(n string) *v1alpha1.ConversationWebhook {
		return &v1alpha1.ConversationWebhook{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: n}}
	}
	q := priorityqueue.New[reconcile.Request]("wake-test")
	defer q.ShutDown()
	for _, n := range []string{"new-1", "new-2", "queued-then-woken", "new-3"} {
		q.Add(req(n))
	}
	h := wakeHandler()
	for _, n := range []string{"woken", "queued-then-woken"} {
		h.Generic(t.Context(), event.GenericEvent{Object: obj(n)}, q)
	}
	var got []string
	for range 5 {
		item, priority, _ := q.GetWithPriority()
		got = append(got, fmt.Sprintf("%s@%d", item.Name, priority))
		q.Done(item)
	}
	want := []string{"woken@10", "queued-then-woken@10", "new-1@0", "new-2@0", "new-3@0"}
	if !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}

	plain := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer plain.ShutDown()
	h.Generic(t.Context(), event.GenericEvent{Object: obj("woken")}, plain)
	if item, _ := plain.Get(); item != req("woken") {
		t.Fatalf("plain queue: got %v", item)
	}
}

// A wake marks the object as woken until its next reconcile takes the mark:
// only that reconcile's requeue is put back at the default priority.
func TestWokenMark(t *testing.T) {
	d := newCreateDispatcher(t.Context(), 0)
	a, b := types.NamespacedName{Namespace: "ns", Name: "a"}, types.NamespacedName{Namespace: "ns", Name: "b"}
	d.wake(a)
	<-d.events
	if !d.takeWoken(a) {
		t.Fatal("a woken object is not marked")
	}
	if d.takeWoken(a) || d.takeWoken(b) {
		t.Fatal("the mark outlived its reconcile, or an object never woken is marked")
	}
	var none *createDispatcher
	none.markWoken(a)
	if none.takeWoken(a) {
		t.Fatal("no dispatcher: nothing is woken")
	}
}

// A new create sweeps answers nobody applied for forgetAfter, and answers status
// recorded more than staleViewWait ago in a write whose resourceVersion does not
// compare (an answer whose write's does is kept until a view shows it, within
// forgetAfter); it keeps the rest.
func TestDispatcherSweep(t *testing.T) {
	d := newCreateDispatcher(t.Context(), 0)
	now := time.Now()
	d.jobs = map[types.UID]*dispatchedCreate{
		"in-flight":        {},
		"answered":         {done: true, doneAt: now.Add(-time.Minute)},
		"unapplied":        {done: true, doneAt: now.Add(-forgetAfter - time.Second)},
		"applied-recently": {done: true, doneAt: now.Add(-time.Second), appliedAt: now.Add(-time.Second)},
		"applied-long-ago": {done: true, doneAt: now.Add(-staleViewWait - 2*time.Second), appliedAt: now.Add(-staleViewWait - time.Second)},
		"applied-long-ago-versioned": {done: true, doneAt: now.Add(-staleViewWait - 2*time.Second),
			appliedAt: now.Add(-staleViewWait - time.Second), appliedRV: "1234"},
		"applied-versioned-forgotten": {done: true, doneAt: now.Add(-forgetAfter - time.Second),
			appliedAt: now.Add(-forgetAfter), appliedRV: "1234"},
	}
	d.mu.Lock()
	d.sweepLocked()
	d.mu.Unlock()
	var kept []string
	for uid := range d.jobs {
		kept = append(kept, string(uid))
	}
	slices.Sort(kept)
	if want := []string{"answered", "applied-long-ago-versioned", "applied-recently", "in-flight"}; !slices.Equal(kept, want) {
		t.Fatalf("kept %v, want %v", kept, want)
	}
}
