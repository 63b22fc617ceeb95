package controller

import (
	"context"
	"fmt"
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
)

// liveReadTimeout bounds one read of every object from the API server, which
// no single reconcile owns (liveReads): no caller waits longer than a reconcile.
const liveReadTimeout = DefaultReconcileTimeout

// liveReads shares the reads of every ConversationWebhook from the API server
// that decide ownership (a lost create found, a webhook taken) among the
// reconciles that need one at the same time. Each such read lists every object
// in the cluster; a burst of lost creates (a conflict storm, an API server that
// fell behind) made one each, at once: at 10,000 objects the bench saw 17 such
// reads in flight for minutes, kube-apiserver's CPU spent on them, and the
// reconciles behind them timing out and reading again.
//
// A caller is served by a read that began after it asked, never by one already
// under way, so that it sees what it would have seen reading alone: at most one
// read runs at a time, and it serves every caller that asked before it began,
// each through its own filter, a page at a time. The zero value is ready.
type liveReads struct {
	mu      sync.Mutex
	next    []*liveCall // asked since the running read began
	running bool
	// reads counts the reads made (tests).
	reads int
}

// liveCall is one caller's share of a read.
type liveCall struct {
	keep func(*v1alpha1.ConversationWebhook) bool
	out  []v1alpha1.ConversationWebhook
	err  error
	done chan struct{}
}

// list returns the objects keep selects, from a read of reader that begins
// after the call.
func (l *liveReads) list(ctx context.Context, reader client.Reader, keep func(*v1alpha1.ConversationWebhook) bool) (
	[]v1alpha1.ConversationWebhook, error) {
	call := &liveCall{keep: keep, done: make(chan struct{})}
	l.mu.Lock()
	l.next = append(l.next, call)
	if !l.running {
		l.running = true
		// The read serves others too: it outlives this caller's context.
		go l.run(context.WithoutCancel(ctx), reader)
	}
	l.mu.Unlock()
	select {
	case <-call.done:
		return call.out, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// run makes reads until no caller waits for one.
func (l *liveReads) run(ctx context.Context, reader client.Reader) {
	for {
		l.mu.Lock()
		calls := l.next
		l.next = nil
		if len(calls) == 0 {
			l.running = false
			l.mu.Unlock()
			return
		}
		l.reads++
		l.mu.Unlock()
		err := readAll(ctx, reader, calls)
		for _, c := range calls {
			if err != nil {
				c.out, c.err = nil, err
			}
			close(c.done)
		}
	}
}

// readAll pages through every object once, handing each caller what its filter
// keeps (its own copies).
func readAll(ctx context.Context, reader client.Reader, calls []*liveCall) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("reading objects from the API server: %v", p)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, liveReadTimeout)
	defer cancel()
	opts := []client.ListOption{client.Limit(livePage)}
	for {
		var list v1alpha1.ConversationWebhookList
		if err := reader.List(ctx, &list, opts...); err != nil {
			return err
		}
		for i := range list.Items {
			for _, c := range calls {
				if c.keep(&list.Items[i]) {
					c.out = append(c.out, *list.Items[i].DeepCopy())
				}
			}
		}
		if list.Continue == "" {
			return nil
		}
		opts = []client.ListOption{client.Limit(livePage), client.Continue(list.Continue)}
	}
}
