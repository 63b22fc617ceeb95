package twilio

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
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

// TestLimiterSlotsBalanceUnderCancellation: requests that give up while slots
// are being handed to them never take a slot away or leave one behind.
func TestLimiterSlotsBalanceUnderCancellation(t *testing.T) {
	const ceiling = 3
	a := newAccountLimiter(unlimitedRate(ceiling), 1, nil, nil)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		holding int
		most    int
	)
	for i := range 400 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(i), 1))
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(r.IntN(2000))*time.Microsecond)
			defer cancel()
			if err := a.acquire(ctx); err != nil {
				return
			}
			mu.Lock()
			holding++
			most = max(most, holding)
			mu.Unlock()
			time.Sleep(time.Duration(r.IntN(300)) * time.Microsecond)
			mu.Lock()
			holding--
			mu.Unlock()
			a.release(true, false)
		}()
	}
	wg.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.inflight != 0 || a.waiters.Len() != 0 {
		t.Fatalf("after every request ended: %d in flight, %d waiting; want 0 and 0", a.inflight, a.waiters.Len())
	}
	if most > ceiling {
		t.Fatalf("%d requests held a slot at once, ceiling %d", most, ceiling)
	}
}
