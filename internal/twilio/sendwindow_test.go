package twilio

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// A create whose time to start has passed when it reaches the client is not
// sent and spends no rate token: on a rate-bound account, a token spent on a
// create that is then refused is one a create that can still start loses
// (found by an attacker's review: the window was checked after the token).
func TestStaleCreateSpendsNoToken(t *testing.T) {
	var sent atomic.Int32 // answers nothing: counts what would have been sent
	tr := roundTripperFunc(func(*http.Request) (*http.Response, error) {
		sent.Add(1)
		return nil, http.ErrHandlerTimeout
	})
	f, err := NewFactory(Options{BaseURL: "https://conversations.twilio.com", RequestsPerSecond: 2, Burst: 1,
		MaxInFlight: 1, MaxAttempts: 1, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.For(Credentials{AccountSid: "AC00000000000000000000000000000001",
		APIKeySid: "SK00000000000000000000000000000001", APIKeySecret: "keySECRET0000000000000000000001"})
	if err != nil {
		t.Fatal(err)
	}
	lim := f.limiter("AC00000000000000000000000000000001")
	if tok := lim.rate.Tokens(); tok < 0.99 {
		t.Fatalf("setup: %v tokens, want 1", tok)
	}
	ctx := WithSendBy(t.Context(), time.Now().Add(-time.Second)) // already stale
	_, err = c.CreateWebhook(ctx, Scope{ConversationSid: "CH00000000000000000000000000000001"},
		CreateWebhookInput{Target: "webhook", Configuration: Configuration{URL: "https://e.com/a", Method: "POST"}})
	if !IsNotSent(err) || sent.Load() != 0 {
		t.Fatalf("err %v, %d sent: want not sent, none", err, sent.Load())
	}
	if tok := lim.rate.Tokens(); tok < 0.99 {
		t.Errorf("a create that could never be sent spent a rate token (tokens now %.2f)", tok)
	}
	if inflight, _ := lim.snapshot(); inflight != 0 {
		t.Errorf("%d slots held after a create that was not sent", inflight)
	}
}

// The reservation count under a lowered ceiling: no new place while more than
// the new cap are held, reservable never negative, every release counted once,
// back to zero.
func TestReservationsUnderALoweredCeiling(t *testing.T) {
	clock := newFakeClock()
	a := newAccountLimiter(unlimitedRate(10), 1, clock.now, nil)
	var held []func()
	for {
		rel, ok := a.reserve()
		if !ok {
			break
		}
		held = append(held, rel)
	}
	if len(held) != reserveFactor*10 {
		t.Fatalf("%d reserved, want %d", len(held), reserveFactor*10)
	}
	for range 10 { // 429s every cooldown: 10 → 7 → 4 → 2 → 1
		if err := a.acquire(t.Context()); err != nil {
			t.Fatal(err)
		}
		a.release(false, true)
		clock.step(time.Second)
	}
	if c := ceilingOf(a); c != 1 {
		t.Fatalf("ceiling %d, want 1", c)
	}
	for i, rel := range held {
		if n := a.reservable(); n != max(reserveFactor-(len(held)-i), 0) {
			t.Fatalf("after %d releases reservable %d", i, n)
		}
		if extra, ok := a.reserve(); ok && len(held)-i >= reserveFactor {
			t.Fatalf("reserved with %d held over a cap of %d", len(held)-i, reserveFactor)
		} else if ok {
			extra()
		}
		rel()
		rel() // twice: counted once
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.reserved != 0 {
		t.Fatalf("reserved %d after every release, want 0", a.reserved)
	}
}

// Reservations are bounded by the rate as well as by the ceiling: no more than
// the rate lets start within reserveRateWindow, at least one.
func TestReservationsBoundedByRate(t *testing.T) {
	for _, tc := range []struct {
		limits Limits
		want   int
	}{
		{Limits{MaxInFlight: 10, RequestsPerSecond: 25}, reserveFactor * 10}, // the defaults: the ceiling bounds
		{Limits{MaxInFlight: 10, RequestsPerSecond: 47}, reserveFactor * 10},
		{Limits{MaxInFlight: 10, RequestsPerSecond: 5}, 10},
		{Limits{MaxInFlight: 10, RequestsPerSecond: 1}, 2},
		{Limits{MaxInFlight: 10, RequestsPerSecond: 0.1}, 1},
		{Limits{MaxInFlight: 1, RequestsPerSecond: 1}, 2},
		{Limits{MaxInFlight: 3, RequestsPerSecond: 1e9}, reserveFactor * 3},
	} {
		a := newAccountLimiter(tc.limits, 1, nil, nil)
		if got := a.reservable(); got != tc.want {
			t.Errorf("%+v: %d reservable, want %d", tc.limits, got, tc.want)
		}
	}
	// A new rate applies at once.
	a := newAccountLimiter(Limits{MaxInFlight: 10, RequestsPerSecond: 25}, 1, nil, nil)
	a.setLimits(Limits{MaxInFlight: 10, RequestsPerSecond: 2})
	if got := a.reservable(); got != 4 {
		t.Errorf("after the rate went to 2/s: %d reservable, want 4", got)
	}
}

// A request marked WithSendBy waits for a slot or a token no later than its
// time to start, then is not sent: ErrNotSent, no slot held, no token spent.
// A request without one waits as before.
func TestAcquireWaitsNoLaterThanSendBy(t *testing.T) {
	t.Run("slot", func(t *testing.T) {
		a := newAccountLimiter(unlimitedRate(1), 1, nil, nil)
		if err := a.acquire(t.Context()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second) // without the bound it would wait for ever
		defer cancel()
		err := a.acquire(WithSendBy(ctx, time.Now().Add(50*time.Millisecond)))
		if !errors.Is(err, ErrNotSent) {
			t.Fatalf("waiting for the only slot past the time to start: %v, want ErrNotSent", err)
		}
		if inflight, _ := a.snapshot(); inflight != 1 {
			t.Fatalf("%d slots held, want the first request's 1", inflight)
		}
	})
	t.Run("token", func(t *testing.T) {
		a := newAccountLimiter(Limits{MaxInFlight: 5, RequestsPerSecond: 0.5}, 1, nil, nil)
		if err := a.acquire(t.Context()); err != nil { // the bucket's one token
			t.Fatal(err)
		}
		a.release(true, false)
		start := time.Now()
		err := a.acquire(WithSendBy(t.Context(), time.Now().Add(500*time.Millisecond)))
		if !errors.Is(err, ErrNotSent) {
			t.Fatalf("the next token comes in 2 s, the time to start in 0.5 s: %v, want ErrNotSent", err)
		}
		if waited := time.Since(start); waited > 400*time.Millisecond {
			t.Errorf("waited %s for a token it could not use", waited)
		}
		if inflight, _ := a.snapshot(); inflight != 0 {
			t.Errorf("%d slots held after a request that was not sent", inflight)
		}
		if tok := a.rate.Tokens(); tok < -0.01 {
			t.Errorf("a token was reserved for a request that was not sent (tokens %.2f)", tok)
		}
	})
	t.Run("caller's context", func(t *testing.T) {
		a := newAccountLimiter(unlimitedRate(1), 1, nil, nil)
		if err := a.acquire(t.Context()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := a.acquire(WithSendBy(ctx, time.Now().Add(time.Hour))); !errors.Is(err, context.Canceled) {
			t.Fatalf("a cancelled caller: %v, want context.Canceled (not ErrNotSent)", err)
		}
	})
}
