package controller

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
)

// liveReadTimeout bounds a read of every object from the API server for a
// caller whose context has no deadline. A read (liveReads) lasts until the
// latest deadline of the callers it serves (a reconcile's is its
// ReconcileTimeout), and ends as soon as every one of them has left.
const liveReadTimeout = DefaultReconcileTimeout

// maxLiveReads is how many reads of every object liveReads makes at once: a
// caller that asks while one runs starts the second at once, so that none
// waits for a whole read it cannot use before its own begins (unless two are
// under way).
const maxLiveReads = 2

// liveReads shares the reads of every ConversationWebhook from the API server
// that decide ownership (a lost create found, a webhook taken) among the
// reconciles that need one at the same time. Each such read lists every object
// in the cluster; a burst of lost creates (a conflict storm, a cache that fell
// behind) made one each, at once: at 10,000 objects the bench saw 17 such
// reads in flight for minutes, kube-apiserver's CPU spent on them, and the
// reconciles behind them timing out and reading again.
//
// A caller is served by a read that began after it asked, never by one already
// under way, so that it sees what it would have seen reading alone. At most
// maxLiveReads reads run at once; each serves every caller that asked before
// it began, each through its own filter, a page at a time, with its own
// copies. A caller that leaves (its context ended) is dropped from the read
// that would have served it, and its filter is not called again once it has
// returned; a read that no caller waits for any more is cancelled. The zero
// value is ready.
type liveReads struct {
	mu      sync.Mutex
	next    []*liveCall // asked since the reads under way began
	running int         // goroutines making reads
}

// liveCall is one caller's share of a read.
type liveCall struct {
	reader   client.Reader
	keep     func(*v1alpha1.ConversationWebhook) bool
	deadline time.Time // the caller's, or liveReadTimeout from the call
	done     chan struct{}
	round    *liveRound // the read serving it, once one took it (liveReads.mu)

	mu   sync.Mutex // keep runs, and gone is set, under it
	gone bool
	out  []v1alpha1.ConversationWebhook
	err  error
}

// liveRound is one read under way.
type liveRound struct {
	cancel  context.CancelFunc
	waiting int // callers it serves that have not left (liveReads.mu)
}

// list returns the objects keep selects, from a read of reader that begins
// after the call.
func (l *liveReads) list(ctx context.Context, reader client.Reader, keep func(*v1alpha1.ConversationWebhook) bool) (
	[]v1alpha1.ConversationWebhook, error) {
	call := &liveCall{reader: reader, keep: keep, done: make(chan struct{})}
	if d, ok := ctx.Deadline(); ok {
		call.deadline = d
	} else {
		call.deadline = time.Now().Add(liveReadTimeout)
	}
	l.mu.Lock()
	l.next = append(l.next, call)
	if l.running < maxLiveReads {
		l.running++
		go l.run()
	}
	l.mu.Unlock()
	select {
	case <-call.done:
		return call.out, call.err
	case <-ctx.Done():
		l.leave(call)
		return nil, ctx.Err()
	}
}

// leave drops a caller whose context ended: from the queue, or from its read,
// which is cancelled when nobody waits for it any more. Its filter is not
// called after leave returns.
func (l *liveReads) leave(c *liveCall) {
	c.mu.Lock()
	c.gone, c.out = true, nil
	c.mu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if i := slices.Index(l.next, c); i >= 0 {
		l.next = slices.Delete(l.next, i, i+1)
		return
	}
	if r := c.round; r != nil {
		if r.waiting--; r.waiting == 0 {
			r.cancel()
		}
	}
}

// run makes reads until no caller waits for one.
func (l *liveReads) run() {
	for {
		l.mu.Lock()
		calls := l.takeLocked()
		if len(calls) == 0 {
			l.running--
			l.mu.Unlock()
			return
		}
		deadline := calls[0].deadline
		for _, c := range calls {
			if c.deadline.After(deadline) {
				deadline = c.deadline
			}
		}
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		round := &liveRound{cancel: cancel, waiting: len(calls)}
		for _, c := range calls {
			c.round = round
		}
		l.mu.Unlock()
		err := readAll(ctx, calls[0].reader, calls)
		cancel()
		for _, c := range calls {
			c.mu.Lock()
			if err != nil && c.err == nil {
				c.err = err
			}
			if c.err != nil {
				c.out = nil
			}
			c.mu.Unlock()
			close(c.done)
		}
	}
}

// takeLocked takes the first queued caller and those of the same reader.
func (l *liveReads) takeLocked() []*liveCall {
	if len(l.next) == 0 {
		return nil
	}
	reader := l.next[0].reader
	take, stay := []*liveCall{l.next[0]}, []*liveCall(nil)
	for _, c := range l.next[1:] {
		if sameReader(c.reader, reader) {
			take = append(take, c)
		} else {
			stay = append(stay, c)
		}
	}
	l.next = stay
	return take
}

// sameReader compares two readers without panicking on a type that cannot be
// compared, or that holds one (such readers are never shared).
func sameReader(a, b client.Reader) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if t := reflect.TypeOf(a); t != reflect.TypeOf(b) || !t.Comparable() {
		return false
	}
	return a == b
}

// readAll pages through every object once, handing each caller still waiting
// what its filter keeps (its own copies).
func readAll(ctx context.Context, reader client.Reader, calls []*liveCall) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("reading objects from the API server: %v", p)
		}
	}()
	opts := []client.ListOption{client.Limit(livePage)}
	for {
		var list v1alpha1.ConversationWebhookList
		if err := reader.List(ctx, &list, opts...); err != nil {
			return err
		}
		for _, c := range calls {
			c.filter(list.Items)
		}
		if list.Continue == "" {
			return nil
		}
		opts = []client.ListOption{client.Limit(livePage), client.Continue(list.Continue)}
	}
}

// filter keeps what the caller's filter selects of one page, unless the caller
// has left or its filter has failed; a filter that panics fails its caller only.
func (c *liveCall) filter(items []v1alpha1.ConversationWebhook) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gone || c.err != nil {
		return
	}
	defer func() {
		if p := recover(); p != nil {
			c.err, c.out = fmt.Errorf("selecting objects read from the API server: %v", p), nil
		}
	}()
	for i := range items {
		if c.keep(&items[i]) {
			c.out = append(c.out, *items[i].DeepCopy())
		}
	}
}
