package controller

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// attack21Slow is a pagedReader whose reads take delay(n) before their first
// page (n counts reads from 1); a negative delay hangs until the read's
// context ends. Continue pages can be made to fail with failCont.
type attack21Slow struct {
	*pagedReader
	mu       sync.Mutex
	n        int
	delay    func(n int) time.Duration
	failCont error
}

func (s *attack21Slow) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	o := (&client.ListOptions{}).ApplyOptions(opts)
	if o.Continue == "" {
		s.mu.Lock()
		s.n++
		n := s.n
		s.mu.Unlock()
		if s.delay != nil {
			d := s.delay(n)
			var after <-chan time.Time
			if d >= 0 {
				after = time.After(d)
			}
			select {
			case <-after:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	} else if s.failCont != nil {
		return s.failCont
	}
	return s.pagedReader.List(ctx, list, opts...)
}

func attack21All(*v1alpha1.ConversationWebhook) bool { return true }

// FINDING 1a. A caller whose context ended stayed queued: a full read of
// every object was made for nobody (at 10,000 objects, 20 pages of the API
// server).
func TestAttack21ReadMadeForCallerThatLeft(t *testing.T) {
	r := newPagedReader(3)
	var l liveReads
	release := holdReads(t, &l, r)
	ctx, cancel := context.WithCancel(t.Context())
	gone := goList(ctx, &l, r, attack21All)
	waitQueued(t, &l, 1)
	cancel()
	if res := <-gone; !errors.Is(res.err, context.Canceled) {
		t.Fatalf("caller that left got %v", res.err)
	}
	release()
	waitIdle(t, &l)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reads != maxLiveReads {
		t.Errorf("%d reads of every object, want %d: a read was made for a caller that had already left", r.reads, maxLiveReads)
	}
}

// FINDING 1b. A read that hangs (one stuck request) runs to liveReadTimeout
// (2 min) after every caller that wanted it has left, and every ownership
// decision in the cluster queues behind it: a caller that arrives later, with
// a deadline a read of its own would easily meet, fails.
func TestAttack21HungReadOutlivesItsCallers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newPagedReader(3)
		s := &attack21Slow{pagedReader: r, delay: func(n int) time.Duration {
			if n == 1 {
				return -1 // the first read hangs until its context ends
			}
			return time.Second
		}}
		var l liveReads
		ctxA, cancelA := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancelA()
		if _, err := l.list(ctxA, s, attack21All); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("first caller: %v", err)
		}
		time.Sleep(10 * time.Second) // t = 20s: nobody waits for the hung read
		ctxB, cancelB := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancelB()
		start := time.Now()
		items, err := l.list(ctxB, s, named("hook-00001"))
		if err != nil || len(items) != 1 {
			t.Errorf("caller after the hung read's callers left: %d objects, %v after %s; a read of its own takes 1s",
				len(items), err, time.Since(start))
		}
		time.Sleep(2 * liveReadTimeout) // let the reads end inside the bubble
		synctest.Wait()
	})
}

// FINDING 2. Head of line: a caller that asks just after a read began waits
// for that read and then its own: up to twice a read. With a read of 70s (a
// loaded API server, 10,000 objects) and the 2-minute reconcile deadline, a
// caller that a read of its own would serve in 70s times out, and its read is
// then made for nobody (finding 1).
func TestAttack21WaitIsTwiceARead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newPagedReader(3)
		s := &attack21Slow{pagedReader: r, delay: func(int) time.Duration { return 70 * time.Second }}
		var l liveReads
		ctxA, cancelA := context.WithTimeout(t.Context(), DefaultReconcileTimeout)
		defer cancelA()
		first := goList(ctxA, &l, s, attack21All)
		time.Sleep(time.Second)
		ctxB, cancelB := context.WithTimeout(t.Context(), DefaultReconcileTimeout)
		defer cancelB()
		start := time.Now()
		items, err := l.list(ctxB, s, named("hook-00001"))
		if err != nil || len(items) != 1 {
			t.Errorf("second caller: %d objects, %v after %s; alone, its read takes 70s of its %s",
				len(items), err, time.Since(start), DefaultReconcileTimeout)
		}
		<-first
		time.Sleep(2 * liveReadTimeout) // let the reads end inside the bubble
		synctest.Wait()
	})
}

// FINDING 3. A caller's filter runs on the read's goroutine after the caller
// has left: othersIn's filter reads obj.UID, and the reconcile that left goes
// on to write obj (its deferred status patch decodes the answer into obj,
// on a context that outlives the reconcile's). A data race: fails under -race.
func TestAttack21FilterReadsObjectOfCallerThatLeft(t *testing.T) {
	pr := newPagedReader(2*livePage + 10)
	pr.hold = make(chan struct{})
	rec := &ConversationWebhookReconciler{APIReader: pr}
	obj := &v1alpha1.ConversationWebhook{ObjectMeta: metav1.ObjectMeta{Name: "mine", Namespace: "ns", UID: "uid-mine"}}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := rec.othersIn(ctx, obj, twilio.Scope{ConversationSid: "CH00000000000000000000000000000001"},
			[]twilio.Webhook{{Sid: "WH00000000000000000000000000000001"}})
		done <- err
	}()
	<-pr.started
	cancel() // the reconcile ran out of time
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("othersIn: %v", err)
	}
	close(pr.hold)
	// The reconcile's deferred status patch decodes the stored object into obj.
	stored := &v1alpha1.ConversationWebhook{ObjectMeta: metav1.ObjectMeta{Name: "mine", Namespace: "ns",
		UID: "uid-mine", ResourceVersion: "42"}}
	obj.ObjectMeta = *stored.ObjectMeta.DeepCopy()
	waitIdle(t, &rec.live)
}

// FINDING 4 (latent). The reader was the first caller's: a caller that
// passed another reader was answered from the first one's.
func TestAttack21ReaderOfAnotherCaller(t *testing.T) {
	a := newPagedReader(2)
	b := newPagedReader(0)
	b.add("only-in-b")
	var l liveReads
	release := holdReads(t, &l, a)
	fromA := goList(t.Context(), &l, a, attack21All)
	waitQueued(t, &l, 1)
	second := goList(t.Context(), &l, b, named("only-in-b"))
	waitQueued(t, &l, 2)
	a.setHold(nil)
	release()
	if res := <-fromA; res.err != nil || len(res.items) != 2 {
		t.Errorf("caller reading a got %d objects, %v", len(res.items), res.err)
	}
	if res := <-second; res.err != nil || len(res.items) != 1 {
		t.Errorf("caller reading b got %d objects, %v: it was answered from a", len(res.items), res.err)
	}
}

// FINDING 5 (minor). One caller's filter that panicked failed every caller
// that shared its read, not only its own.
func TestAttack21PanickingFilterFailsOthers(t *testing.T) {
	r := newPagedReader(2)
	var l liveReads
	release := holdReads(t, &l, r)
	bad := goList(t.Context(), &l, r, func(*v1alpha1.ConversationWebhook) bool { panic("bad filter") })
	good := goList(t.Context(), &l, r, named("hook-00001"))
	waitQueued(t, &l, 2)
	r.setHold(nil)
	release()
	if res := <-bad; res.err == nil {
		t.Error("the panicking caller got no error")
	}
	if res := <-good; res.err != nil || len(res.items) != 1 {
		t.Errorf("a caller sharing a read with a panicking filter got %d objects, %v", len(res.items), res.err)
	}
}

// SAFE. Freshness under load: each caller creates its own object, then asks;
// it must see it (a read that began before its call could miss it). Reads are
// shared, the goroutine exits, nothing is left queued.
func TestAttack21FreshnessStress(t *testing.T) {
	r := newPagedReader(livePage + 50)
	r.started = make(chan struct{}, 100000)
	s := &attack21Slow{pagedReader: r, delay: func(int) time.Duration {
		return time.Duration(rand.IntN(300)) * time.Microsecond
	}}
	var l liveReads
	const callers = 400
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		wg.Go(func() {
			time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
			name := fmt.Sprintf("own-%d", i)
			r.add(name)
			items, err := l.list(t.Context(), s, named(name))
			if err != nil || len(items) != 1 {
				errs <- fmt.Errorf("caller %d: %d objects: %w", i, len(items), err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitIdle(t, &l)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reads >= callers {
		t.Errorf("%d reads for %d callers: none shared", r.reads, callers)
	}
	t.Logf("%d reads for %d callers", r.reads, callers)
}

// SAFE. A read that fails on a later page gives every caller the error and no
// partial list; the next caller gets a new read.
func TestAttack21LaterPageFailsWholeRound(t *testing.T) {
	r := newPagedReader(2*livePage + 1)
	s := &attack21Slow{pagedReader: r, failCont: errors.New("continue token expired")}
	var l liveReads
	items, err := l.list(t.Context(), s, attack21All)
	if err == nil || items != nil {
		t.Fatalf("got %d objects, %v; want none and the error", len(items), err)
	}
	s.failCont = nil
	if items, err := l.list(t.Context(), s, attack21All); err != nil || len(items) != 2*livePage+1 {
		t.Fatalf("next read: %d objects, %v", len(items), err)
	}
}
