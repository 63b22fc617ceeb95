package controller

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// busyAnswer is a transient failure that asks to be retried after a second.
func busyAnswer() error {
	return &twilio.APIError{Operation: twilio.OpCreate, Status: 503, Code: 20503, Message: "busy", RetryAfter: time.Second}
}

func retryObject(ns string) *v1alpha1.ConversationWebhook {
	o := &v1alpha1.ConversationWebhook{}
	o.Namespace, o.Name = ns, "o"
	return o
}

// TestRetryAfterIsAFloorOnTheBackoff: an object whose every attempt is answered
// "Retry-After: 1" is retried after a second only until the workqueue's backoff
// for that many failures in a row is longer (the ninth: 1.28 s), then after the
// backoff, doubling, as the same failures without the header; another object
// (another tenant's) is retried after the header's second all the while.
func TestRetryAfterIsAFloorOnTheBackoff(t *testing.T) {
	r := &ConversationWebhookReconciler{SyncPeriod: 10 * time.Minute, Recorder: events.NewFakeRecorder(100)}
	a, b := retryObject("tenant-a"), retryObject("tenant-b")
	var waits []time.Duration
	for range 11 {
		res, err := r.failed(t.Context(), a, v1alpha1.ReasonCreating, busyAnswer())
		if err != nil {
			t.Fatalf("failed returned %v; a Retry-After is a requeue", err)
		}
		waits = append(waits, res.RequeueAfter)
	}
	want := []time.Duration{time.Second, time.Second, time.Second, time.Second, time.Second, time.Second,
		time.Second, time.Second, 1280 * time.Millisecond, 2560 * time.Millisecond, 5120 * time.Millisecond}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits after failures in a row %v, want %v", waits, want)
		}
	}
	if res, _ := r.failed(t.Context(), b, v1alpha1.ReasonCreating, busyAnswer()); res.RequeueAfter != time.Second {
		t.Fatalf("another object's first failure waits %v, want the header's 1s", res.RequeueAfter)
	}
	for range 20 {
		_, _ = r.failed(t.Context(), a, v1alpha1.ReasonCreating, busyAnswer())
	}
	// The header never makes the wait longer than the poll, but the backoff
	// is the same as without it: at most retryBackoffMax.
	res, _ := r.failed(t.Context(), a, v1alpha1.ReasonCreating, busyAnswer())
	if res.RequeueAfter != retryBackoffMax {
		t.Fatalf("after 32 failures in a row the wait is %v, want the backoff's most, %v", res.RequeueAfter, retryBackoffMax)
	}
}

// TestTransientRunEndsWhenSettled: the run of failures is kept while the object
// is still converging (a create sent off the worker ends its reconcile without
// a failure) and forgotten once it is Ready, Stalled, paused or gone.
func TestTransientRunEndsWhenSettled(t *testing.T) {
	cases := map[string]struct {
		conditions []metav1.Condition
		gone       bool
		kept       bool
	}{
		"still converging": {conditions: []metav1.Condition{
			{Type: v1alpha1.ConditionReconciling, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonCreating}}, kept: true},
		"Ready": {conditions: []metav1.Condition{
			{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonAvailable}}},
		"Stalled": {conditions: []metav1.Condition{
			{Type: v1alpha1.ConditionReconciling, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonSidConflict},
			{Type: v1alpha1.ConditionStalled, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonSidConflict}}},
		"paused": {conditions: []metav1.Condition{
			{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonPaused}}},
		"gone": {gone: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := &ConversationWebhookReconciler{SyncPeriod: 10 * time.Minute, Recorder: events.NewFakeRecorder(100)}
			o := retryObject("ns")
			key := client.ObjectKeyFromObject(o)
			for range 10 {
				_, _ = r.failed(t.Context(), o, v1alpha1.ReasonCreating, busyAnswer())
			}
			settled := retryObject("ns")
			for _, c := range tc.conditions {
				meta.SetStatusCondition(&settled.Status.Conditions, c)
			}
			if tc.gone {
				r.retries.reconciled(key, nil)
			} else {
				r.retries.reconciled(key, settled)
			}
			res, _ := r.failed(t.Context(), o, v1alpha1.ReasonCreating, busyAnswer())
			if kept := res.RequeueAfter > time.Second; kept != tc.kept {
				t.Fatalf("the eleventh failure waits %v: run kept %v, want %v", res.RequeueAfter, kept, tc.kept)
			}
		})
	}
}

// TestTransientRetriesKeyedByObject: two objects of one name in two
// namespaces are two runs.
func TestTransientRetriesKeyedByObject(t *testing.T) {
	var tr transientRetries
	failed := func(key types.NamespacedName) time.Duration { return tr.When(reconcile.Request{NamespacedName: key}) }
	a := types.NamespacedName{Namespace: "tenant-a", Name: "o"}
	b := types.NamespacedName{Namespace: "tenant-b", Name: "o"}
	for range 5 {
		failed(a)
	}
	if got := failed(b); got != retryBackoffBase {
		t.Fatalf("first failure of another namespace's object: backoff %v, want %v", got, retryBackoffBase)
	}
	if got := failed(a); got != retryBackoffBase<<5 {
		t.Fatalf("sixth failure: backoff %v, want %v", got, retryBackoffBase<<5)
	}
}

// TestWorkqueueForgetKeepsTheRun: the workqueue forgets an object's failures
// after every reconcile without an error (the one that hands a create to the
// sender, say); the run goes on until the object settles.
func TestWorkqueueForgetKeepsTheRun(t *testing.T) {
	r := &ConversationWebhookReconciler{}
	rl := r.rateLimiter()
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "o"}}
	for range 4 {
		rl.When(req)
		rl.Forget(req)
	}
	if got := rl.When(req); got != retryBackoffBase<<4 {
		t.Fatalf("fifth failure, each after a reconcile without an error: backoff %v, want %v", got, retryBackoffBase<<4)
	}
	if n := r.retries.NumRequeues(req); n != 5 {
		t.Fatalf("failures counted %d, want 5", n)
	}
	r.retries.reconciled(req.NamespacedName, retryObject("ns"))
	if got := rl.When(req); got != retryBackoffBase {
		t.Fatalf("first failure after the object settled: backoff %v, want %v", got, retryBackoffBase)
	}
}
