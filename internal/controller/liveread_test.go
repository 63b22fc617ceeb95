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

// Twenty reconciles that need a live read while one is under way share the
// next one: two reads in all, where each made its own before.
func TestLiveReadsShareOneReadAmongWaiters(t *testing.T) {
	r := newPagedReader(livePage + 10)
	r.hold = make(chan struct{})
	var l liveReads
	first := goList(t.Context(), &l, r, named("hook-00000"))
	<-r.started
	var waiting []<-chan liveResult
	for i := range 20 {
		waiting = append(waiting, goList(t.Context(), &l, r, named(fmt.Sprintf("hook-%05d", 490+i))))
	}
	waitQueued(t, &l, 20)
	close(r.hold)
	if res := <-first; res.err != nil || len(res.items) != 1 || res.items[0].Name != "hook-00000" {
		t.Fatalf("first caller got %+v", res)
	}
	for i, ch := range waiting {
		want := fmt.Sprintf("hook-%05d", 490+i)
		if res := <-ch; res.err != nil || len(res.items) != 1 || res.items[0].Name != want {
			t.Fatalf("caller %d got %d objects, %v; want %s", i, len(res.items), res.err, want)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.reads != 2 || l.reads != 2 {
		t.Errorf("%d reads of every object (liveReads counted %d), want 2", r.reads, l.reads)
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
	waitQueued(t, &l, 1)
	close(r.hold)
	<-r.started
	if res := <-first; len(res.items) != 3 {
		t.Fatalf("first read: %d objects, want 3 (its snapshot): %v", len(res.items), res.err)
	}
	if res := <-second; res.err != nil || len(res.items) != 1 {
		t.Fatalf("a caller that asked after the read began was served by it: %d objects, %v", len(res.items), res.err)
	}
}

// A caller whose context ends gets its error at once; the read goes on for the
// others, on a context the caller's cancellation does not reach.
func TestLiveReadsCallerContextEnds(t *testing.T) {
	r := newPagedReader(5)
	r.hold = make(chan struct{})
	var l liveReads
	ctx, cancel := context.WithCancel(t.Context())
	gone := goList(ctx, &l, r, named("hook-00001"))
	<-r.started
	stays := goList(t.Context(), &l, r, named("hook-00002"))
	waitQueued(t, &l, 1)
	cancel()
	select {
	case res := <-gone:
		if !errors.Is(res.err, context.Canceled) {
			t.Fatalf("caller whose context ended got %v", res.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a caller whose context ended still waits")
	}
	close(r.hold)
	if res := <-stays; res.err != nil || len(res.items) != 1 {
		t.Fatalf("the other caller got %d objects, %v", len(res.items), res.err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, err := range r.ctxErrs {
		if err != nil {
			t.Fatalf("a read's context ended with a caller's: %v", err)
		}
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
	r.hold = make(chan struct{})
	var l liveReads
	block := goList(t.Context(), &l, r, named("none"))
	<-r.started
	a := goList(t.Context(), &l, r, named("hook-00001"))
	b := goList(t.Context(), &l, r, named("hook-00001"))
	waitQueued(t, &l, 2)
	close(r.hold)
	<-block
	ra, rb := <-a, <-b
	if len(ra.items) != 1 || len(rb.items) != 1 {
		t.Fatalf("got %d and %d objects", len(ra.items), len(rb.items))
	}
	ra.items[0].Annotations["k"] = "changed"
	if rb.items[0].Annotations["k"] != "v" {
		t.Fatal("two callers share one object's annotations")
	}
}

// A filter that panics fails its read with an error; the manager lives on and
// the next read is made.
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
