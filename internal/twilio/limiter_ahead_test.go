package twilio

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// acquireAsync runs a.acquire(ctx) in a goroutine and reports name, or name
// and the error, on got.
func acquireAsync(a *accountLimiter, ctx context.Context, name string, got chan<- string) {
	go func() {
		if err := a.acquire(ctx); err != nil {
			got <- name + ": " + err.Error()
			return
		}
		got <- name
	}()
}

// served releases one slot of a and returns who took it.
func served(t *testing.T, a *accountLimiter, got <-chan string) string {
	t.Helper()
	a.release(true, false)
	select {
	case s := <-got:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("nobody took the freed slot")
		return ""
	}
}

func expectServed(t *testing.T, a *accountLimiter, got <-chan string, want string) {
	t.Helper()
	if s := served(t, a, got); s != want {
		t.Fatalf("the freed slot went to %q, want %q", s, want)
	}
}

func expectNoneTaken(t *testing.T, a *accountLimiter) {
	t.Helper()
	if in, _ := a.snapshot(); in != 0 {
		t.Fatalf("%d slots still taken after every request released its own", in)
	}
}

// fullLimiter is an account with n slots, all taken.
func fullLimiter(t *testing.T, n int) *accountLimiter {
	t.Helper()
	a := newAccountLimiter(unlimitedRate(n), 1, nil, nil)
	for range n {
		if err := a.acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// busyWithACreate is an account with one slot, taken, and a create waiting
// for it; got reports who takes a slot.
func busyWithACreate(t *testing.T) (a *accountLimiter, got chan string) {
	t.Helper()
	a = fullLimiter(t, 1)
	got = make(chan string, 4)
	acquireAsync(a, context.Background(), "create", got)
	waitingFor(t, a, 1)
	return a, got
}

// TestLimiterAheadOfQueue: a call made AheadOfQueue waits, and takes the next
// slot that frees before the requests that waited already; so do its
// context's later calls, until it is released.
func TestLimiterAheadOfQueue(t *testing.T) {
	a := fullLimiter(t, 1)
	got := make(chan string, 4)
	for i := range 3 {
		acquireAsync(a, context.Background(), fmt.Sprintf("create %d", i), got)
		waitingFor(t, a, i+1)
	}
	look, release := AheadOfQueue(context.Background())
	acquireAsync(a, look, "look", got)
	waitingFor(t, a, 4)
	expectServed(t, a, got, "look")
	// The same reconcile's next request (an update after its fetch).
	acquireAsync(a, look, "look's update", got)
	waitingFor(t, a, 4)
	expectServed(t, a, got, "look's update")
	release()
	// Released: its next call is any other's.
	acquireAsync(a, look, "after release", got)
	waitingFor(t, a, 4)
	for _, want := range []string{"create 0", "create 1", "create 2", "after release"} {
		expectServed(t, a, got, want)
	}
	a.release(true, false)
	expectNoneTaken(t, a)
}

// TestLimiterOneContextAheadAtATime: while one context holds the place ahead,
// another's first call is turned away (ErrAccountBusy): an account holds one
// worker so at most. Found by an attacker helper: with one waiter ahead at a
// time but the place given again as soon as it was served, three looks'
// workers waited at once behind eight creates for their next requests.
func TestLimiterOneContextAheadAtATime(t *testing.T) {
	a, got := busyWithACreate(t)
	first, releaseFirst := AheadOfQueue(context.Background())
	acquireAsync(a, first, "first look", got)
	waitingFor(t, a, 2)
	expectServed(t, a, got, "first look")
	// The first look's request is in flight, its reconcile goes on.
	second, releaseSecond := AheadOfQueue(context.Background())
	defer releaseSecond()
	if err := a.acquire(second); !errors.Is(err, ErrAccountBusy) {
		t.Fatalf("a second context ahead while the first holds the place: %v, want ErrAccountBusy", err)
	}
	releaseFirst()
	expectServed(t, a, got, "create")
	a.release(true, false)
	expectNoneTaken(t, a)
}

// TestLimiterAheadLeavesTheQueueItsShare: the place ahead is given again only
// once the waiters behind it have had a ceiling's worth of slots. Found by an
// attacker helper: looks of one object after another, each going ahead as soon
// as the last was served, overtook a queued create ten times in a row (its
// time to start would pass).
func TestLimiterAheadLeavesTheQueueItsShare(t *testing.T) {
	for _, ceiling := range []int{1, 3} {
		t.Run(fmt.Sprintf("ceiling %d", ceiling), func(t *testing.T) {
			a := fullLimiter(t, ceiling)
			got := make(chan string, 16)
			const creates = 8
			for i := range creates {
				acquireAsync(a, context.Background(), fmt.Sprintf("create %d", i), got)
				waitingFor(t, a, i+1)
			}
			next := 0 // the next create to be served
			for round := range 2 {
				look, release := AheadOfQueue(context.Background())
				name := fmt.Sprintf("look %d", round)
				acquireAsync(a, look, name, got)
				waitingFor(t, a, creates-next+1)
				expectServed(t, a, got, name)
				release()
				a.release(true, false) // the look's request is answered: a create takes the slot
				if s := <-got; s != fmt.Sprintf("create %d", next) {
					t.Fatalf("the look's slot went to %q", s)
				}
				next++
				// Until the creates have had a ceiling's worth since, another look is turned away.
				for range ceiling - 1 {
					other, releaseOther := AheadOfQueue(context.Background())
					if err := a.acquire(other); !errors.Is(err, ErrAccountBusy) {
						t.Fatalf("a look ahead again after %d slots behind it (ceiling %d): %v", next, ceiling, err)
					}
					releaseOther()
					expectServed(t, a, got, fmt.Sprintf("create %d", next))
					next++
				}
			}
			for ; next < creates; next++ {
				expectServed(t, a, got, fmt.Sprintf("create %d", next))
			}
			for range ceiling {
				a.release(true, false)
			}
			expectNoneTaken(t, a)
		})
	}
}

// TestLimiterAheadWaiterHonoursCutCeiling: a 429 cuts the ceiling while a
// look waits ahead; it is not let past the new ceiling (attacker helper's guard).
func TestLimiterAheadWaiterHonoursCutCeiling(t *testing.T) {
	a := fullLimiter(t, 10)
	got := make(chan string, 2)
	look, release := AheadOfQueue(context.Background())
	defer release()
	acquireAsync(a, look, "look", got)
	waitingFor(t, a, 1)
	a.release(false, true) // 429: ceiling 10 -> 7, 9 in flight
	for in := 9; in > 7; in-- {
		select {
		case s := <-got:
			t.Fatalf("%q with %d in flight over a ceiling of 7", s, in)
		case <-time.After(20 * time.Millisecond):
		}
		a.release(true, false)
	}
	if s := served(t, a, got); s != "look" {
		t.Fatal(s)
	}
}

// TestLimiterAheadWaiterEndsAtFront: a look whose context ends while it waits
// ahead leaves the queue, also when it ends just as the slot is handed to it
// (the slot passes on); once released, another look may go ahead (attacker
// helper's guard).
func TestLimiterAheadWaiterEndsAtFront(t *testing.T) {
	for i := range 50 {
		a, got := busyWithACreate(t)
		ahead, release := AheadOfQueue(context.Background())
		ctx, cancel := context.WithCancel(ahead)
		acquireAsync(a, ctx, "look", got)
		waitingFor(t, a, 2)
		if i%2 == 1 {
			// Ends just as the slot is handed to it.
			a.mu.Lock()
			cancel()
			a.inflight--
			a.grantLocked()
			a.mu.Unlock()
			seen := map[string]bool{<-got: true, <-got: true}
			if !seen["create"] || !seen["look: context canceled"] {
				t.Fatalf("got %v, want the create served and the look cancelled", seen)
			}
			release()
			a.release(true, false)
			expectNoneTaken(t, a)
			continue
		}
		cancel()
		if s := <-got; s != "look: context canceled" {
			t.Fatalf("got %q", s)
		}
		waitingFor(t, a, 1)
		release()
		next, releaseNext := AheadOfQueue(context.Background())
		acquireAsync(a, next, "next look", got)
		waitingFor(t, a, 2)
		expectServed(t, a, got, "next look")
		releaseNext()
		expectServed(t, a, got, "create")
		a.release(true, false)
		expectNoneTaken(t, a)
	}
}
