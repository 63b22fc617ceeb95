package twilio

import (
	"context"
	"strings"
	"testing"
	"time"
)

// refusedOrWaiting returns "" once the call reported on got was refused
// (ErrAccountBusy), or "waiting" once n requests wait for a slot of a.
func refusedOrWaiting(t *testing.T, a *accountLimiter, got <-chan string, n int) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case s := <-got:
			if !strings.Contains(s, ErrAccountBusy.Error()) {
				t.Fatalf("got %q, want a refusal or a wait", s)
			}
			return ""
		default:
		}
		a.mu.Lock()
		l := a.waiters.Len()
		a.mu.Unlock()
		if l == n {
			return "waiting"
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("neither refused nor waiting")
	return ""
}

func aheadWaiters(a *accountLimiter) (n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for e := a.waiters.Front(); e != nil; e = e.Next() {
		if e.Value.(*waiter).ahead {
			n++
		}
	}
	return n
}

// TestAttackAhead20bReleasedWaiterStaysAhead: a place released while a call of
// its context still waits at the front leaves that waiter ahead (w.ahead is
// fixed at push time) and clears a.ahead, so a second context takes the place
// and pushes in front of it: two contexts overtake the queued create, in the
// wrong order among themselves. Not reachable from sync (it releases after its
// calls return), but AheadOfQueue's contract ("one context at a time") breaks.
func TestAttackAhead20bReleasedWaiterStaysAhead(t *testing.T) {
	a, got := busyWithACreate(t)
	first, releaseFirst := AheadOfQueue(context.Background())
	acquireAsync(a, first, "first", got)
	waitingFor(t, a, 2)
	releaseFirst() // while its call still waits at the front
	second, releaseSecond := AheadOfQueue(context.Background())
	defer releaseSecond()
	acquireAsync(a, second, "second", got)
	if refusedOrWaiting(t, a, got, 3) == "waiting" {
		n := aheadWaiters(a)
		// Drain so that the goroutines end.
		var order []string
		for range 3 {
			order = append(order, served(t, a, got))
		}
		t.Fatalf("%d waiters ahead of the create at once; slots went to %v", n, order)
	}
}

// TestAttackAhead20bPassedOnSlotCountsAsShare: a slot handed to a waiter
// behind the place just as its context ended is passed on, and counted twice
// in behind (once for the waiter that did not take it, once for the next): with
// a ceiling of 2, the place is given again after the queue had one slot.
func TestAttackAhead20bPassedOnSlotCountsAsShare(t *testing.T) {
	a := fullLimiter(t, 2)
	got := make(chan string, 8)
	c1, cancel1 := context.WithCancel(context.Background())
	defer cancel1()
	acquireAsync(a, c1, "create 1", got)
	waitingFor(t, a, 1)
	acquireAsync(a, context.Background(), "create 2", got)
	waitingFor(t, a, 2)
	acquireAsync(a, context.Background(), "create 3", got)
	waitingFor(t, a, 3)
	look, releaseLook := AheadOfQueue(context.Background())
	acquireAsync(a, look, "look", got)
	waitingFor(t, a, 4)
	expectServed(t, a, got, "look")
	releaseLook()
	// The look's request is answered just as create 1's context ends.
	a.mu.Lock()
	cancel1()
	a.inflight--
	a.grantLocked()
	a.mu.Unlock()
	seen := map[string]bool{<-got: true, <-got: true}
	if !seen["create 1: context canceled"] || !seen["create 2"] {
		t.Fatalf("got %v", seen)
	}
	// The queue has had one slot (create 2's) since the look, of a ceiling of 2.
	next, releaseNext := AheadOfQueue(context.Background())
	defer releaseNext()
	acquireAsync(a, next, "next look", got)
	if refusedOrWaiting(t, a, got, 2) == "waiting" {
		first := served(t, a, got)
		served(t, a, got)
		t.Fatalf("the place was given again after one slot behind it (ceiling 2); the next slot went to %q", first)
	}
}

// TestAttackAhead20bTookOnAnotherAccount: took is per context, not per
// account: a WithoutWaiting context whose call took a slot of one account
// then waits at the back of another, busy, account (holding its worker)
// instead of being turned away. Not reachable from sync (one account per
// reconcile).
func TestAttackAhead20bTookOnAnotherAccount(t *testing.T) {
	free := newAccountLimiter(unlimitedRate(1), 1, nil, nil)
	busy, got := busyWithACreate(t)
	ctx := WithoutWaiting(context.Background())
	if err := free.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	acquireAsync(busy, ctx, "look on the busy account", got)
	if refusedOrWaiting(t, busy, got, 2) == "waiting" {
		served(t, busy, got)
		served(t, busy, got)
		t.Fatal("a WithoutWaiting call waits for a slot of an account it never took one of")
	}
}
