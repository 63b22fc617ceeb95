package twilio

import (
	"context"
	"errors"
	"testing"
	"time"
)

// fakeClock is a deterministic clock for the limiter.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) step(d time.Duration)    { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock               { return &fakeClock{t: time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)} }
func unlimitedRate(inflight int) Limits      { return Limits{MaxInFlight: inflight, RequestsPerSecond: 1e9} }
func ceilingOf(a *accountLimiter) (ceil int) { _, ceil = a.snapshot(); return ceil }

func TestLimiterAdaptsAIMD(t *testing.T) {
	clock := newFakeClock()
	a := newAccountLimiter(unlimitedRate(10), 1, clock.now, nil)
	ctx := context.Background()
	throttle := func() {
		t.Helper()
		if err := a.acquire(ctx); err != nil {
			t.Fatal(err)
		}
		a.release(false, true)
	}
	succeed := func(n int) {
		t.Helper()
		for range n {
			if err := a.acquire(ctx); err != nil {
				t.Fatal(err)
			}
			a.release(true, false)
		}
	}
	steps := []struct {
		name string
		do   func()
		want int
	}{
		{"starts at the configured ceiling", func() {}, 10},
		{"a 429 cuts it to 70%", throttle, 7},
		{"a burst of 429s within the cooldown counts once", func() { throttle(); throttle() }, 7},
		{"after the cooldown another 429 cuts it again", func() { clock.step(time.Second); throttle() }, 4},
		{"one success short of twice the ceiling does not raise it", func() { succeed(7) }, 4},
		{"twice the ceiling in successes raises it by one", func() { succeed(1) }, 5},
		{"the next raise takes twice the new ceiling", func() { succeed(9) }, 5},
		{"…and raises by one", func() { succeed(1) }, 6},
		{"raising it to the ceiling of the last 429 (7) takes five times as many", func() { succeed(59) }, 6},
		{"…then raises by one", func() { succeed(1) }, 7},
		{"past it, too", func() { succeed(69) }, 7},
		{"…by one", func() { succeed(1) }, 8},
		{"once past it, raising is fast again", func() { succeed(16) }, 9},
		{"never above the configured ceiling", func() { succeed(1000) }, 10},
		{"a failure that is not a 429 leaves it", func() {
			if err := a.acquire(ctx); err != nil {
				t.Fatal(err)
			}
			a.release(false, false)
		}, 10},
		{"never below one", func() {
			for range 10 {
				clock.step(time.Second)
				throttle()
			}
		}, 1},
	}
	for _, s := range steps {
		s.do()
		if got := ceilingOf(a); got != s.want {
			t.Fatalf("%s: ceiling %d, want %d", s.name, got, s.want)
		}
	}
}

func TestLimiterSlots(t *testing.T) {
	a := newAccountLimiter(unlimitedRate(2), 1, nil, nil)
	ctx := context.Background()
	for range 2 {
		if err := a.acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.acquire(WithoutWaiting(ctx)); !errors.Is(err, ErrAccountBusy) {
		t.Fatalf("a full account without waiting: %v, want ErrAccountBusy", err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := a.acquire(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a full account until the deadline: %v", err)
	}
	got := make(chan error, 1)
	go func() { got <- a.acquire(ctx) }()
	select {
	case err := <-got:
		t.Fatalf("acquired a third slot of two: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	a.release(true, false)
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a freed slot did not wake the waiter")
	}
	if inflight, _ := a.snapshot(); inflight != 2 {
		t.Fatalf("in flight %d, want 2", inflight)
	}
}

// TestLimiterFindsTheRealLimit runs an account whose real concurrency limit is
// 5 while the operator is configured for 10: requests sent past 5 in flight are
// answered 429. Each round sends as many requests as the ceiling allows, one
// round per cooldown period. Few requests are refused once the ceiling finds
// the limit.
func TestLimiterFindsTheRealLimit(t *testing.T) {
	const realLimit, rounds = 5, 400
	clock := newFakeClock()
	a := newAccountLimiter(unlimitedRate(10), 1, clock.now, nil)
	ctx := context.Background()
	sent, refused := 0, 0
	for range rounds {
		n := ceilingOf(a)
		for range n {
			if err := a.acquire(ctx); err != nil {
				t.Fatal(err)
			}
		}
		for i := range n {
			sent++
			over := i >= realLimit
			if over {
				refused++
			}
			a.release(!over, over)
		}
		clock.step(250 * time.Millisecond)
	}
	// 4.8% without the slow probe near the last 429's ceiling; 2.2% with it.
	if frac := float64(refused) / float64(sent); frac > 0.03 {
		t.Fatalf("%d of %d requests refused (%.1f%%), want at most 3%%", refused, sent, 100*frac)
	}
	if c := ceilingOf(a); c > realLimit+1 || c < 2 {
		t.Fatalf("ceiling %d after %d rounds, want near the real limit %d", c, rounds, realLimit)
	}
	if avg := float64(sent) / rounds; avg < 0.6*realLimit {
		t.Fatalf("%.1f requests per round on average, want the slots mostly used (real limit %d)", avg, realLimit)
	}
}

func TestFactorySharesOneLimiterPerAccount(t *testing.T) {
	f, err := NewFactory(Options{BaseURL: "https://example.test", MaxInFlight: 10, RequestsPerSecond: 25})
	if err != nil {
		t.Fatal(err)
	}
	const acct = "AC11111111111111111111111111111111"
	a, _ := f.For(Credentials{AccountSid: acct, APIKeySid: "SK11111111111111111111111111111111", APIKeySecret: "one"})
	b, _ := f.For(Credentials{AccountSid: acct, APIKeySid: "SK22222222222222222222222222222222", APIKeySecret: "two"})
	if a.(*Client).limiter != b.(*Client).limiter {
		t.Fatal("two credentials of one account got two limiters")
	}
	f.SetLimits(acct, "TwilioAccount/a/x", "uid", Limits{MaxInFlight: 8})
	f.SetLimits(acct, "ClusterTwilioAccount/y", "uid", Limits{MaxInFlight: 4, RequestsPerSecond: 5})
	if _, c := f.AccountInFlight(acct); c != 4 {
		t.Fatalf("ceiling %d, want the smallest MaxInFlight 4", c)
	}
	if r := b.(*Client).limiter.rate.Limit(); r != 5 {
		t.Fatalf("rate %v, want the smallest 5", r)
	}
	f.SetLimits(acct, "ClusterTwilioAccount/y", "uid", Limits{})
	if _, c := f.AccountInFlight(acct); c != 4 {
		t.Fatalf("ceiling %d: a raised limit lets the adaptive ceiling grow back, never jump", c)
	}
	if r := b.(*Client).limiter.rate.Limit(); r != 25 {
		t.Fatalf("rate %v, want the default 25 back", r)
	}
}

// A deleted account object's limits stop applying, and so do those an account
// object set for the account its credentials named before.
func TestFactoryForgetsASourcesLimits(t *testing.T) {
	f, err := NewFactory(Options{BaseURL: "https://example.test", MaxInFlight: 10, RequestsPerSecond: 25})
	if err != nil {
		t.Fatal(err)
	}
	const acct, other = "AC11111111111111111111111111111111", "AC22222222222222222222222222222222"
	c, _ := f.For(Credentials{AccountSid: acct, APIKeySid: "SK11111111111111111111111111111111", APIKeySecret: "one"})
	rate := func() float64 { return float64(c.(*Client).limiter.rate.Limit()) }
	f.SetLimits(acct, "TwilioAccount/a/strict", "uid", Limits{RequestsPerSecond: 5})
	f.SetLimits(acct, "TwilioAccount/b/loose", "uid", Limits{RequestsPerSecond: 20})
	if r := rate(); r != 5 {
		t.Fatalf("rate %v, want the smallest 5", r)
	}
	f.ForgetLimits("TwilioAccount/a/strict")
	if r := rate(); r != 20 {
		t.Fatalf("rate %v after the strict account object is deleted, want the remaining 20", r)
	}
	f.ForgetLimits("TwilioAccount/a/strict") // again: nothing changes
	if r := rate(); r != 20 {
		t.Fatalf("rate %v after a second ForgetLimits, want 20", r)
	}
	f.SetLimits(other, "TwilioAccount/b/loose", "uid", Limits{RequestsPerSecond: 20})
	if r := rate(); r != 25 {
		t.Fatalf("rate %v once the only source names another account, want the default 25", r)
	}
}

// EnsureLimits (a reconcile about to use an account) fills in limits only
// where the account reconciler has said nothing: it never overrides SetLimits,
// never brings back a forgotten object's limits, but does take a re-created
// object's (another UID).
func TestFactoryEnsureLimits(t *testing.T) {
	f, err := NewFactory(Options{BaseURL: "https://example.test", MaxInFlight: 10, RequestsPerSecond: 25})
	if err != nil {
		t.Fatal(err)
	}
	const acct, src = "AC11111111111111111111111111111111", "TwilioAccount/a/strict"
	inflight := func() int { return f.Limits(acct).MaxInFlight }
	f.EnsureLimits(acct, src, "uid-1", Limits{MaxInFlight: 2})
	if got := inflight(); got != 2 {
		t.Fatalf("max in flight %d, want 2: nothing was known of the source", got)
	}
	f.SetLimits(acct, src, "uid-1", Limits{MaxInFlight: 4})
	f.EnsureLimits(acct, src, "uid-1", Limits{MaxInFlight: 2}) // a reconcile with a stale view
	if got := inflight(); got != 4 {
		t.Fatalf("max in flight %d, want the account reconciler's 4", got)
	}
	f.ForgetLimits(src)
	f.EnsureLimits(acct, src, "uid-1", Limits{MaxInFlight: 4}) // read just before the deletion
	if got := inflight(); got != 10 {
		t.Fatalf("max in flight %d: a deleted object's limits came back", got)
	}
	f.EnsureLimits(acct, src, "uid-2", Limits{MaxInFlight: 3}) // re-created under the same name
	if got := inflight(); got != 3 {
		t.Fatalf("max in flight %d, want the re-created object's 3", got)
	}
}

// Reservations admit reserveFactor × the current ceiling, follow it down after a 429,
// and come back when ended (once, however often the release is called).
func TestLimiterReservationsFollowTheCeiling(t *testing.T) {
	clock := newFakeClock()
	a := newAccountLimiter(unlimitedRate(10), 1, clock.now, nil)
	take := func(n int) []func() {
		t.Helper()
		var out []func()
		for i := range n {
			release, ok := a.reserve()
			if !ok {
				t.Fatalf("reservation %d of %d refused", i+1, n)
			}
			out = append(out, release)
		}
		return out
	}
	held := take(reserveFactor * 10)
	if _, ok := a.reserve(); ok {
		t.Fatalf("a reservation past %d × the ceiling (%d) was admitted", reserveFactor, reserveFactor*10)
	}
	held[0]()
	held[0]() // a second call ends nothing more
	take(1)
	if _, ok := a.reserve(); ok {
		t.Fatal("ending one reservation twice freed two")
	}
	for _, release := range held[1:] {
		release()
	}
	// A 429 lowers the ceiling to 7: now reserveFactor × 7 may be reserved, of which 1 is.
	if err := a.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	a.release(false, true)
	if got := ceilingOf(a); got != 7 {
		t.Fatalf("ceiling after a 429 = %d, want 7", got)
	}
	take(reserveFactor*7 - 1)
	if _, ok := a.reserve(); ok {
		t.Fatalf("a reservation past %d × the lowered ceiling (%d) was admitted", reserveFactor, reserveFactor*7)
	}
}

// The factory's Timeout is what bounds a request, after defaults: the
// controller derives how long a pending create is waited for from it.
func TestFactoryTimeout(t *testing.T) {
	for set, want := range map[time.Duration]time.Duration{0: 10 * time.Second, -time.Second: 10 * time.Second, 3 * time.Second: 3 * time.Second} {
		f, err := NewFactory(Options{BaseURL: "https://conversations.twilio.com", Timeout: set})
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Timeout(); got != want {
			t.Errorf("Timeout %s: factory says %s, want %s", set, got, want)
		}
	}
}
