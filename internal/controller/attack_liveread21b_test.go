package controller

import (
	"context"
	"os"
	"os/exec"
	"reflect"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
)

// FINDING A. takeLocked takes the callers whose reader is sameReader as the
// first queued caller's, but sameReader(x, x) is false for a reader that
// cannot be compared (TestSameReader asserts it: "not comparable, one value").
// So the first caller itself is not taken: takeLocked returns nothing, run
// exits with the caller still queued, and it waits until its context ends. An
// uncomparable reader is never served, not merely never shared.
func TestAttack21bUncomparableReaderNeverServed(t *testing.T) {
	r := newPagedReader(3)
	reader := mapReader{Reader: r, m: map[string]int{}}
	var l liveReads
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	items, err := l.list(ctx, reader, named("hook-00001"))
	if err != nil || len(items) != 1 {
		t.Fatalf("a caller with an uncomparable reader: %d objects, %v (want 1, nil)", len(items), err)
	}
}

// FINDING A, head of line: while such a caller is first in the queue, every
// other caller, of any reader, is stranded too (takeLocked always groups by
// next[0]'s reader, and run exits when it takes nothing).
func TestAttack21bUncomparableReaderStrandsOthers(t *testing.T) {
	good := newPagedReader(3)
	bad := mapReader{Reader: newPagedReader(3), m: map[string]int{}}
	var l liveReads
	badCtx, cancelBad := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancelBad()
	badRes := goList(badCtx, &l, bad, named("hook-00000"))
	time.Sleep(50 * time.Millisecond) // it is queued (and run has exited)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	items, err := l.list(ctx, good, named("hook-00002"))
	cancelBad()
	<-badRes
	if err != nil || len(items) != 1 {
		t.Fatalf("a caller with a plain reader queued behind an uncomparable one: %d objects, %v (want 1, nil)", len(items), err)
	}
}

// FINDING A, as the reconciler sees it: controller-runtime's
// interceptor.NewClient returns a struct value holding funcs (uncomparable),
// the usual way to hook a client in a test. conflictLive never answers.
func TestAttack21bInterceptorAPIReaderConflictLiveHangs(t *testing.T) {
	const sid = "WH0123456789abcdef0123456789abcdef"
	owner := attackWebhook("owner", "acct")
	owner.UID = "uid-owner"
	c := attackClient(t, owner)
	owner.Status.Sid = sid
	if err := c.Status().Update(t.Context(), owner); err != nil {
		t.Fatal(err)
	}
	hooked := interceptor.NewClient(c, interceptor.Funcs{})
	if reflect.TypeOf(hooked).Comparable() {
		t.Skip("interceptor client became comparable")
	}
	rec := &ConversationWebhookReconciler{Client: c, APIReader: hooked}
	other := attackWebhook("other", "acct")
	other.UID = "uid-other"
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	got, err := rec.conflictLive(ctx, other, sid)
	if err != nil || got != attackNS+"/owner" {
		t.Fatalf("conflictLive through an interceptor APIReader = %q, %v; want %q, nil", got, err, attackNS+"/owner")
	}
}

// attack21bWrapped is a common wrapper: a struct embedding a Reader. Its type
// is comparable (an interface field), but == panics when the reader it holds
// is not (a mapReader, an interceptor client).
type attack21bWrapped struct{ client.Reader }

// FINDING B. sameReader's guard checks reflect.Type.Comparable, which is true
// for a struct with an interface field; == then panics at run time
// ("comparing uncomparable type"). sameReader runs in takeLocked, on run's
// goroutine outside readAll's recover, under l.mu: the panic kills the
// manager.
func TestAttack21bSameReaderPanicsOnWrappedReader(t *testing.T) {
	a := attack21bWrapped{mapReader{m: map[string]int{}}}
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("sameReader panicked: %v", p)
		}
	}()
	_ = sameReader(a, a)
}

// FINDING B, end to end: one list call with such a reader crashes the process
// (run in a child process so that the crash does not take this one down).
func TestAttack21bWrappedReaderCrashesManager(t *testing.T) {
	if os.Getenv("ATTACK21B_CHILD") == "1" {
		var l liveReads
		reader := attack21bWrapped{mapReader{Reader: newPagedReader(1), m: map[string]int{}}}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, _ = l.list(ctx, reader, named("hook-00000"))
		time.Sleep(200 * time.Millisecond)
		return
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestAttack21bWrappedReaderCrashesManager$", "-test.count=1")
	cmd.Env = append(os.Environ(), "ATTACK21B_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("a list call with a wrapped reader killed the process: %v\n%s", err, tail(out, 1500))
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// deadlineReader records the deadline of each read's context.
type deadlineReader struct {
	*pagedReader
	deadlines chan time.Time
}

func (d *deadlineReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	dl, _ := ctx.Deadline()
	select {
	case d.deadlines <- dl:
	default:
	}
	return d.pagedReader.List(ctx, list, opts...)
}

// FINDING C (low). Before 4ff4e7b the read ran on the reconcile's context,
// bounded by ReconcileTimeout; now it is cut at DefaultReconcileTimeout (2m)
// whatever ReconcileTimeout says. With ReconcileTimeout raised because reads of
// every object are slow at a cluster's size, every such read now fails at 2m.
func TestAttack21bReadIgnoresReconcileTimeout(t *testing.T) {
	d := &deadlineReader{pagedReader: newPagedReader(1), deadlines: make(chan time.Time, 1)}
	rec := &ConversationWebhookReconciler{APIReader: d, ReconcileTimeout: 10 * time.Minute}
	ctx, cancel := context.WithTimeout(t.Context(), rec.reconcileTimeout())
	defer cancel()
	callerDeadline, _ := ctx.Deadline()
	if _, err := rec.liveObjects(ctx, func(*v1alpha1.ConversationWebhook) bool { return true }); err != nil {
		t.Fatal(err)
	}
	readDeadline := <-d.deadlines
	if readDeadline.Before(callerDeadline.Add(-time.Minute)) {
		t.Fatalf("the read is cut %s before the reconcile's own deadline (ReconcileTimeout %s)",
			callerDeadline.Sub(readDeadline).Round(time.Second), rec.ReconcileTimeout)
	}
}

// Sound: a caller whose context ends as its round delivers never double
// counts, never leaves a later round's callers cancelled. Many rounds, callers
// leaving at random points, a steady caller in each round that must always be
// served.
func TestAttack21bLeaveRacesDelivery(t *testing.T) {
	r := newPagedReader(5)
	stop := make(chan struct{})
	defer close(stop)
	go func() { // pagedReader reports each read on a buffer of 100
		for {
			select {
			case <-r.started:
			case <-stop:
				return
			}
		}
	}()
	var l liveReads
	for i := range 200 {
		ctx, cancel := context.WithCancel(t.Context())
		leaving := goList(ctx, &l, r, named("hook-00001"))
		steady := goList(t.Context(), &l, r, named("hook-00002"))
		if i%2 == 0 {
			cancel()
		} else {
			go cancel()
		}
		res := <-steady
		if res.err != nil || len(res.items) != 1 {
			t.Fatalf("round %d: steady caller got %d objects, %v", i, len(res.items), res.err)
		}
		lr := <-leaving
		if lr.err == nil && len(lr.items) != 1 {
			t.Fatalf("round %d: leaving caller got %d objects without error", i, len(lr.items))
		}
		if lr.err != nil && lr.items != nil {
			t.Fatalf("round %d: leaving caller got objects and an error", i)
		}
	}
	waitIdle(t, &l)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running != 0 {
		t.Fatalf("running = %d when idle", l.running)
	}
}
