package controller

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
)

// pagedReader is an API server's list of ConversationWebhooks, paged by
// Limit/Continue. A read takes its snapshot at its first page; hold, when set,
// stops each first page until released.
type pagedReader struct {
	mu      sync.Mutex
	objects []v1alpha1.ConversationWebhook
	reads   int // first pages served
	pages   int
	fail    error         // the next read's first page fails
	hold    chan struct{} // first pages wait for it to close
	started chan struct{} // a first page was asked for
	ctxErrs []error       // each page's context, as it was served
	snaps   map[string][]v1alpha1.ConversationWebhook
}

func newPagedReader(n int) *pagedReader {
	r := &pagedReader{snaps: map[string][]v1alpha1.ConversationWebhook{}, started: make(chan struct{}, 100)}
	for i := range n {
		r.add(fmt.Sprintf("hook-%05d", i))
	}
	return r
}

func (r *pagedReader) add(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.objects = append(r.objects, v1alpha1.ConversationWebhook{ObjectMeta: metav1.ObjectMeta{
		Name: name, Namespace: "ns", Annotations: map[string]string{"k": "v"}}})
}

// setHold makes the reads that begin from now on wait for hold (nil: none).
func (r *pagedReader) setHold(hold chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hold = hold
}

func (r *pagedReader) Get(context.Context, client.ObjectKey, client.Object, ...client.GetOption) error {
	return errors.New("not served")
}

func (r *pagedReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	o := (&client.ListOptions{}).ApplyOptions(opts)
	r.mu.Lock()
	hold := r.hold
	var snap []v1alpha1.ConversationWebhook
	if o.Continue == "" {
		// A read sees the objects as they are when it begins.
		snap = append(snap, r.objects...)
	}
	r.mu.Unlock()
	if o.Continue == "" {
		r.started <- struct{}{}
		if hold != nil {
			select {
			case <-hold:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ctxErrs = append(r.ctxErrs, ctx.Err())
	r.pages++
	from := 0
	if o.Continue == "" {
		r.reads++
		if err := r.fail; err != nil {
			r.fail = nil
			return err
		}
	} else {
		snap = r.snaps[o.Continue]
		from, _ = strconv.Atoi(o.Continue)
	}
	to := min(len(snap), from+int(o.Limit))
	out := list.(*v1alpha1.ConversationWebhookList)
	for i := from; i < to; i++ {
		out.Items = append(out.Items, *snap[i].DeepCopy())
	}
	if to < len(snap) {
		out.Continue = strconv.Itoa(to)
		r.snaps[out.Continue] = snap
	}
	return nil
}

func named(name string) func(*v1alpha1.ConversationWebhook) bool {
	return func(o *v1alpha1.ConversationWebhook) bool { return o.Name == name }
}

type liveResult struct {
	items []v1alpha1.ConversationWebhook
	err   error
}

func goList(ctx context.Context, l *liveReads, r client.Reader, keep func(*v1alpha1.ConversationWebhook) bool) <-chan liveResult {
	ch := make(chan liveResult, 1)
	go func() {
		items, err := l.list(ctx, r, keep)
		ch <- liveResult{items, err}
	}()
	return ch
}

// holdReads starts maxLiveReads reads that the reader holds (keeping nothing),
// so that later callers queue; release lets them end and waits for them. Reads
// begun after it returns wait for r.hold as it is then.
func holdReads(t *testing.T, l *liveReads, r *pagedReader) (release func()) {
	t.Helper()
	hold := make(chan struct{})
	r.setHold(hold)
	var held []<-chan liveResult
	for range maxLiveReads {
		held = append(held, goList(t.Context(), l, r, named("none")))
		<-r.started
	}
	return func() {
		close(hold)
		for _, ch := range held {
			if res := <-ch; res.err != nil {
				t.Errorf("a held read: %v", res.err)
			}
		}
	}
}

// waitQueued waits until n callers wait for the next read.
func waitQueued(t *testing.T, l *liveReads, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l.mu.Lock()
		queued := len(l.next)
		l.mu.Unlock()
		if queued == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d callers wait for the next read, want %d", queued, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestLiveReadsPagesThroughEveryObject(t *testing.T) {
	r := newPagedReader(2*livePage + 34)
	var l liveReads
	items, err := l.list(t.Context(), r, func(*v1alpha1.ConversationWebhook) bool { return true })
	if err != nil || len(items) != 2*livePage+34 {
		t.Fatalf("got %d objects, %v; want %d", len(items), err, 2*livePage+34)
	}
	if r.pages != 3 || r.reads != 1 {
		t.Errorf("%d pages in %d reads, want 3 in 1", r.pages, r.reads)
	}
}

// Twenty reconciles that need a live read while reads are under way share
// the next one: three reads in all (the two under way, one for the twenty),
// where each made its own before.
func TestLiveReadsShareOneReadAmongWaiters(t *testing.T) {
	r := newPagedReader(livePage + 10)
	var l liveReads
	release := holdReads(t, &l, r)
	var waiting []<-chan liveResult
	for i := range 20 {
		waiting = append(waiting, goList(t.Context(), &l, r, named(fmt.Sprintf("hook-%05d", 490+i))))
	}
	waitQueued(t, &l, 20)
	r.setHold(nil)
	release()
	for i, ch := range waiting {
		want := fmt.Sprintf("hook-%05d", 490+i)
		if res := <-ch; res.err != nil || len(res.items) != 1 || res.items[0].Name != want {
			t.Fatalf("caller %d got %d objects, %v; want %s", i, len(res.items), res.err, want)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reads != 3 {
		t.Errorf("%d reads of every object, want 3", r.reads)
	}
}

// A caller that asks while a read is under way is not served by it: an object
// created after that read took its snapshot is in its answer.
func TestLiveReadsBeginAfterTheCall(t *testing.T) {
	r := newPagedReader(3)
	r.hold = make(chan struct{})
	var l liveReads
	first := goList(t.Context(), &l, r, func(*v1alpha1.ConversationWebhook) bool { return true })
	<-r.started
	r.add("late") // after the first read began
	second := goList(t.Context(), &l, r, named("late"))
	<-r.started
	close(r.hold)
	if res := <-first; len(res.items) != 3 {
		t.Fatalf("first read: %d objects, want 3 (its snapshot): %v", len(res.items), res.err)
	}
	if res := <-second; res.err != nil || len(res.items) != 1 {
		t.Fatalf("a caller that asked after the read began was served by it: %d objects, %v", len(res.items), res.err)
	}
}

// With every read slot taken, a caller waits for the first to end, then for a
// read of its own: it is never handed the answer of one under way.
func TestLiveReadsQueuedCallerGetsAReadOfItsOwn(t *testing.T) {
	r := newPagedReader(3)
	var l liveReads
	release := holdReads(t, &l, r)
	r.add("late") // after the reads under way began
	queued := goList(t.Context(), &l, r, named("late"))
	waitQueued(t, &l, 1)
	r.setHold(nil)
	release()
	if res := <-queued; res.err != nil || len(res.items) != 1 {
		t.Fatalf("queued caller: %d objects, %v", len(res.items), res.err)
	}
}

// A caller whose context ends gets its error at once; the read it shares goes
// on for the others, on a context the caller's cancellation does not reach.
// A read nobody waits for any more is cancelled.
func TestLiveReadsCallerContextEnds(t *testing.T) {
	r := newPagedReader(5)
	var l liveReads
	release := holdReads(t, &l, r)
	ctx, cancel := context.WithCancel(t.Context())
	gone := goList(ctx, &l, r, named("hook-00001"))
	stays := goList(t.Context(), &l, r, named("hook-00002"))
	waitQueued(t, &l, 2)
	hold := make(chan struct{})
	r.setHold(hold)
	release() // the two queued callers share the next read, held
	<-r.started
	cancel()
	select {
	case res := <-gone:
		if !errors.Is(res.err, context.Canceled) {
			t.Fatalf("caller whose context ended got %v", res.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a caller whose context ended still waits")
	}
	close(hold)
	if res := <-stays; res.err != nil || len(res.items) != 1 {
		t.Fatalf("the other caller got %d objects, %v", len(res.items), res.err)
	}
	r.mu.Lock()
	for _, err := range r.ctxErrs {
		if err != nil {
			t.Fatalf("a read's context ended with a caller's: %v", err)
		}
	}
	r.mu.Unlock()

	// Alone in its read, a caller that leaves ends it.
	ctx, cancel = context.WithCancel(t.Context())
	hold = make(chan struct{})
	r.setHold(hold)
	alone := goList(ctx, &l, r, named("hook-00001"))
	<-r.started
	cancel()
	<-alone
	waitIdle(t, &l) // the held read was cancelled
}

// waitIdle waits until liveReads makes no read and none is queued.
func waitIdle(t *testing.T, l *liveReads) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.mu.Lock()
		idle := l.running == 0 && len(l.next) == 0
		l.mu.Unlock()
		if idle {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("liveReads never went idle")
		}
		time.Sleep(time.Millisecond)
	}
}

// A read that fails fails its callers only; the next caller gets a new read.
func TestLiveReadsErrorGoesToItsRound(t *testing.T) {
	r := newPagedReader(4)
	r.fail = errors.New("etcd is down")
	var l liveReads
	if _, err := l.list(t.Context(), r, named("hook-00001")); err == nil || err.Error() != "etcd is down" {
		t.Fatalf("got %v, want the read's error", err)
	}
	items, err := l.list(t.Context(), r, named("hook-00001"))
	if err != nil || len(items) != 1 {
		t.Fatalf("next read: %d objects, %v", len(items), err)
	}
}

// Callers keeping the same object get their own copies.
func TestLiveReadsCopiesPerCaller(t *testing.T) {
	r := newPagedReader(2)
	var l liveReads
	release := holdReads(t, &l, r)
	a := goList(t.Context(), &l, r, named("hook-00001"))
	b := goList(t.Context(), &l, r, named("hook-00001"))
	waitQueued(t, &l, 2)
	r.setHold(nil)
	release()
	ra, rb := <-a, <-b
	if len(ra.items) != 1 || len(rb.items) != 1 {
		t.Fatalf("got %d and %d objects", len(ra.items), len(rb.items))
	}
	ra.items[0].Annotations["k"] = "changed"
	if rb.items[0].Annotations["k"] != "v" {
		t.Fatal("two callers share one object's annotations")
	}
	if r.reads != 3 {
		t.Errorf("%d reads, want 3: the two callers share one", r.reads)
	}
}

// A filter that panics fails its caller with an error; the manager lives on
// and the next read is made.
func TestLiveReadsFilterPanic(t *testing.T) {
	r := newPagedReader(2)
	var l liveReads
	_, err := l.list(t.Context(), r, func(*v1alpha1.ConversationWebhook) bool { panic("bad filter") })
	if err == nil {
		t.Fatal("a panicking filter's read succeeded")
	}
	if items, err := l.list(t.Context(), r, named("hook-00000")); err != nil || len(items) != 1 {
		t.Fatalf("next read: %d objects, %v", len(items), err)
	}
}

// mapReader cannot be compared with ==.
type mapReader struct {
	client.Reader
	m map[string]int
}

func TestSameReader(t *testing.T) {
	a, b := newPagedReader(0), newPagedReader(0)
	m1, m2 := mapReader{m: map[string]int{}}, mapReader{m: map[string]int{}}
	for _, tc := range []struct {
		name string
		x, y client.Reader
		want bool
	}{
		{"same pointer", a, a, true},
		{"two pointers", a, b, false},
		{"types differ", a, m1, false},
		{"not comparable", m1, m2, false},
		{"not comparable, one value", m1, m1, false},
		{"nil and nil", nil, nil, true},
		{"nil and a reader", nil, a, false},
	} {
		if got := sameReader(tc.x, tc.y); got != tc.want {
			t.Errorf("%s: sameReader = %v, want %v", tc.name, got, tc.want)
		}
	}
}
