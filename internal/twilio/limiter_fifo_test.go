package twilio

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitingFor returns once n requests wait for a slot of a.
func waitingFor(t *testing.T, a *accountLimiter, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		a.mu.Lock()
		got := a.waiters.Len()
		a.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests wait for a slot, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLimiterHandsSlotsOutInArrivalOrder: each freed slot goes to the request
// that has waited longest (with a broadcast wake, any of them, at random).
func TestLimiterHandsSlotsOutInArrivalOrder(t *testing.T) {
	const waiting = 12
	a := newAccountLimiter(unlimitedRate(1), 1, nil, nil)
	ctx := context.Background()
	if err := a.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	order := make(chan int, waiting)
	for i := range waiting {
		go func() {
			if err := a.acquire(ctx); err != nil {
				t.Error(err)
				return
			}
			order <- i
		}()
		waitingFor(t, a, i+1)
	}
	for want := range waiting {
		a.release(true, false)
		select {
		case got := <-order:
			if got != want {
				t.Fatalf("slot %d went to waiter %d (numbered in arrival order), want waiter %d", want, got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("slot %d was handed to no one", want)
		}
	}
}

// TestLimiterNewcomerWaitsBehindWaiters: a slot freed while others wait is
// theirs; a request that has not waited is told the account is busy.
func TestLimiterNewcomerWaitsBehindWaiters(t *testing.T) {
	a := newAccountLimiter(unlimitedRate(1), 1, nil, nil)
	ctx := context.Background()
	if err := a.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- a.acquire(ctx) }()
	waitingFor(t, a, 1)
	a.release(true, false)
	if err := a.acquire(WithoutWaiting(ctx)); !errors.Is(err, ErrAccountBusy) {
		t.Fatalf("a newcomer took the slot a waiter was owed: %v", err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}

// TestLimiterCeilingRiseWakesAsManyAsItFrees: a raised ceiling hands out every
// slot it adds, and a waiter that gives up leaves the queue.
func TestLimiterCeilingRiseWakesAsManyAsItFrees(t *testing.T) {
	a := newAccountLimiter(unlimitedRate(3), 1, nil, nil)
	a.mu.Lock()
	a.ceiling = 1
	a.mu.Unlock()
	ctx := context.Background()
	if err := a.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	gaveUp, cancel := context.WithCancel(ctx)
	quit := make(chan error, 1)
	go func() { quit <- a.acquire(gaveUp) }()
	waitingFor(t, a, 1)
	got := make(chan error, 2)
	for i := range 2 {
		go func() { got <- a.acquire(ctx) }()
		waitingFor(t, a, i+2)
	}
	cancel()
	if err := <-quit; !errors.Is(err, context.Canceled) {
		t.Fatalf("the waiter that gave up: %v", err)
	}
	waitingFor(t, a, 2)
	a.mu.Lock()
	a.ceiling = 3
	a.grantLocked()
	a.mu.Unlock()
	for range 2 {
		select {
		case err := <-got:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a slot the raised ceiling added was handed to no one")
		}
	}
	if inflight, _ := a.snapshot(); inflight != 3 {
		t.Fatalf("in flight %d, want 3", inflight)
	}
}

// TestLimiterSlotsBalanceUnderChurn: 1,500 requests — ended before they come,
// not waiting, past their time to start (the rate's token after it), timing
// out — with 429s and successes moving the ceiling and MaxInFlight lowered and
// raised meanwhile. Sampled under the lock: in flight never negative, never
// fewer than the requests holding a slot, nobody waiting while a slot is
// free; at the end nothing in flight and nobody waiting.
func TestLimiterSlotsBalanceUnderChurn(t *testing.T) {
	a := newAccountLimiter(Limits{MaxInFlight: 4, RequestsPerSecond: 3000}, 2, nil, nil)
	a.cooldown = 0
	var holders, granted atomic.Int64
	mostWaiting := 0
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	var bad atomic.Value
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			a.mu.Lock()
			h := holders.Load()
			mostWaiting = max(mostWaiting, a.waiters.Len())
			switch {
			case a.inflight < 0:
				bad.Store("inflight negative")
			case int64(a.inflight) < h:
				bad.Store("fewer slots counted than holders")
			case a.waiters.Len() > 0 && a.inflight < a.limitLocked():
				bad.Store("a request waits while a slot is free")
			}
			a.mu.Unlock()
			time.Sleep(20 * time.Microsecond)
		}
	}()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := rand.New(rand.NewPCG(1, 1))
		for range 300 {
			a.setLimits(Limits{MaxInFlight: 1 + r.IntN(6), RequestsPerSecond: 3000})
			time.Sleep(time.Duration(r.IntN(2000)) * time.Microsecond)
		}
	}()
	for i := range 1500 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(i), 2))
			time.Sleep(time.Duration(r.IntN(300)) * time.Millisecond)
			ctx := context.Background()
			var cancel context.CancelFunc = func() {}
			switch r.IntN(6) {
			case 0:
				ctx, cancel = context.WithCancel(ctx)
				cancel() // ended before it comes
			case 1:
				ctx = WithoutWaiting(ctx)
			case 5:
				ahead, release := AheadOfQueue(ctx)
				var end context.CancelFunc
				ctx, end = context.WithTimeout(ahead, time.Duration(r.IntN(5000))*time.Microsecond)
				cancel = func() { end(); release() }
			case 2:
				ctx = WithSendBy(ctx, time.Now().Add(time.Duration(r.IntN(3000))*time.Microsecond))
			default:
				ctx, cancel = context.WithTimeout(ctx, time.Duration(r.IntN(5000))*time.Microsecond)
			}
			defer cancel()
			if err := a.acquire(ctx); err != nil {
				return
			}
			holders.Add(1)
			granted.Add(1)
			time.Sleep(time.Duration(r.IntN(500)) * time.Microsecond)
			holders.Add(-1)
			a.release(r.IntN(3) > 0, r.IntN(6) == 0)
		}()
	}
	wg.Wait()
	close(stop)
	sampler.Wait()
	t.Logf("%d of 1500 requests got a slot; at most %d waited at once", granted.Load(), mostWaiting)
	if v := bad.Load(); v != nil {
		t.Fatal(v)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.inflight != 0 || a.waiters.Len() != 0 {
		t.Fatalf("after every request ended: %d in flight, %d waiting", a.inflight, a.waiters.Len())
	}
}

// TestLimiterEndedArrivalLeavesTheQueue: a request whose context ended before
// it came, or whose time to start has passed, returns at once and leaves no
// place in the queue; the waiter in front still gets the next slot.
func TestLimiterEndedArrivalLeavesTheQueue(t *testing.T) {
	a := newAccountLimiter(unlimitedRate(1), 1, nil, nil)
	bg := context.Background()
	if err := a.acquire(bg); err != nil {
		t.Fatal(err)
	}
	front := make(chan error, 1)
	go func() { front <- a.acquire(bg) }()
	waitingFor(t, a, 1)
	dead, cancel := context.WithCancel(bg)
	cancel()
	if err := a.acquire(dead); !errors.Is(err, context.Canceled) {
		t.Fatalf("a request ended before it came: %v", err)
	}
	if err := a.acquire(WithSendBy(bg, time.Now().Add(-time.Second))); !errors.Is(err, ErrNotSent) {
		t.Fatalf("a request past its time to start: %v", err)
	}
	waitingFor(t, a, 1)
	a.release(true, false)
	if err := <-front; err != nil {
		t.Fatal(err)
	}
	a.release(true, false)
	if inflight, _ := a.snapshot(); inflight != 0 {
		t.Fatalf("in flight %d, want 0", inflight)
	}
}

// TestWithoutWaitingOnlyTheFirstCall: a look's first call does not wait for a
// slot; once it has taken one, the look's next call (a fetch after a stale
// claim, a list's next page) waits for its turn instead of being refused
// because another request queued meanwhile, which would throw away the
// request already spent.
func TestWithoutWaitingOnlyTheFirstCall(t *testing.T) {
	a := newAccountLimiter(unlimitedRate(1), 1, nil, nil)
	bg := context.Background()
	look := WithoutWaiting(bg)
	if err := a.acquire(look); err != nil {
		t.Fatal(err)
	}
	if err := a.acquire(WithoutWaiting(bg)); !errors.Is(err, ErrAccountBusy) {
		t.Fatalf("another look's first call with every slot taken: %v, want ErrAccountBusy", err)
	}
	create := make(chan error, 1)
	go func() { create <- a.acquire(bg) }()
	waitingFor(t, a, 1)
	a.release(true, false) // the look's first answer; the slot goes to the create
	if err := <-create; err != nil {
		t.Fatal(err)
	}
	second := make(chan error, 1)
	go func() { second <- a.acquire(look) }()
	waitingFor(t, a, 1)
	a.release(true, false) // the create's answer
	if err := <-second; err != nil {
		t.Fatalf("the look's second call: %v, want a slot after the create's", err)
	}
	a.release(true, false)
}
