package twilio

import (
	"container/list"
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Limits bound the requests to one Twilio account.
type Limits struct {
	// MaxInFlight is the most requests in flight at once (Twilio answers 429,
	// error 20429, past the account's concurrency).
	MaxInFlight int
	// RequestsPerSecond is the most requests per second.
	RequestsPerSecond float64
}

// The adaptive ceiling's steps.
const (
	// decrease multiplies the ceiling on a 429.
	decrease = 0.7
	// increaseAfter × the ceiling successes in a row raise it by one.
	increaseAfter = 2
	// probeSlowdown multiplies the successes needed to raise the ceiling to,
	// or past, the one at which the last 429 came: the ceiling climbs back
	// fast, then probes the account's real limit slowly (as TCP CUBIC does
	// around its last loss), so an account whose real limit is below the
	// configured one sees few 429s.
	probeSlowdown = 5
	// reserveFactor × the ceiling is how many requests may be reserved (handed
	// to a sender that waits for a slot) at once. A reservation is taken before
	// the object's pending create is written (two API-server writes, which on a
	// busy control plane take as long as a Twilio request or longer), so it
	// must cover those writes too: at twice the ceiling, the rate-bound bench
	// at N=10,000 sent 41 requests a second of the 47 allowed (its
	// reservations spent more time waiting for the API server than for
	// Twilio); at four times, 47. A reserved request still waits for its slot
	// no longer than about three requests' latency.
	reserveFactor = 4
	// reserveRateWindow × the rate also bounds the reservations: about half
	// of a create's 5 s window to start (DefaultSendWindow in the controller).
	reserveRateWindow = 2 * time.Second
)

// ErrAccountBusy is returned, before anything is sent, by a call whose context
// asks not to wait (WithoutWaiting) while the account has no free slot: the
// caller should come back later instead of holding a worker.
var ErrAccountBusy = errors.New("every request slot of the Twilio account is in use")

type noWaitKey struct{}

type sendByKey struct{}

// ErrNotSent is returned, with nothing sent, by a call made WithSendBy whose
// deadline to start sending passed while it waited for a slot or a retry.
var ErrNotSent = errors.New("not sent: its time to start sending had passed")

// WithSendBy marks ctx so that a request made with it is sent only if it can
// start by t (checked right before each attempt is sent): a create recorded as
// pending at some time must end while others still wait for it.
func WithSendBy(ctx context.Context, t time.Time) context.Context {
	return context.WithValue(ctx, sendByKey{}, t)
}

// sendByOf is the time to start a request marked WithSendBy, if it is marked.
func sendByOf(ctx context.Context) (time.Time, bool) {
	t, ok := ctx.Value(sendByKey{}).(time.Time)
	return t, ok
}

// WithoutWaiting marks ctx so that the next call made with it fails at once
// with ErrAccountBusy when the account has no free slot, instead of waiting.
// Once a call made with it has taken a slot, later calls with it (a retry, a
// look's next page or fetch) wait for theirs: what was spent on the first is
// not thrown away because another request queued meanwhile.
func WithoutWaiting(ctx context.Context) context.Context {
	return context.WithValue(ctx, noWaitKey{}, new(atomic.Bool))
}

// mayWait says whether a call made with ctx waits for a slot: unless ctx is
// marked WithoutWaiting and no call made with it has taken one yet.
func mayWait(ctx context.Context) bool {
	took, ok := ctx.Value(noWaitKey{}).(*atomic.Bool)
	return !ok || took.Load()
}

// tookSlot records that a call made with ctx took a slot.
func tookSlot(ctx context.Context) {
	if took, ok := ctx.Value(noWaitKey{}).(*atomic.Bool); ok {
		took.Store(true)
	}
}

// accountLimiter bounds one Twilio account's requests: a token bucket for the
// rate, and an adaptive ceiling for requests in flight. The ceiling follows
// additive increase, multiplicative decrease, as TCP's congestion avoidance
// does: each 429 cuts it to 70% (at most once per cooldown, so one burst of
// 429s counts once), and each run of twice the ceiling in successes without a
// 429 raises it by one, never above the configured MaxInFlight. An account
// whose real limit is below the configured one converges on it with few 429s
// (about one request in twenty-five, in the unit test's model).
type accountLimiter struct {
	rate *rate.Limiter
	now  func() time.Time
	// cooldown is the least time between two decreases.
	cooldown time.Duration

	mu       sync.Mutex
	max      int
	ceiling  float64
	inflight int
	reserved int
	// throttledAt is the ceiling at which the last 429 came (0: none, or the
	// ceiling has since risen past it).
	throttledAt int
	successes   int
	decreased   time.Time
	// waiters are the requests waiting for a slot, first come first served:
	// each a channel closed when a slot is handed to it (counted in inflight
	// already). No slot is free while one waits (grantLocked).
	waiters list.List

	observe func(inflight int, ceiling int, throttled bool)
}

func newAccountLimiter(l Limits, burst int, now func() time.Time, observe func(int, int, bool)) *accountLimiter {
	if now == nil {
		now = time.Now
	}
	a := &accountLimiter{rate: rate.NewLimiter(rate.Limit(l.RequestsPerSecond), max(burst, 1)), now: now,
		cooldown: time.Second, observe: observe}
	a.max, a.ceiling = max(l.MaxInFlight, 1), float64(max(l.MaxInFlight, 1))
	return a
}

// setLimits applies new configured limits; the ceiling never exceeds MaxInFlight.
func (a *accountLimiter) setLimits(l Limits) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rate.Limit() != rate.Limit(l.RequestsPerSecond) {
		a.rate.SetLimit(rate.Limit(l.RequestsPerSecond))
	}
	if m := max(l.MaxInFlight, 1); m != a.max {
		a.max = m
		a.ceiling = math.Min(a.ceiling, float64(m))
		if a.ceiling < 1 {
			a.ceiling = 1
		}
		a.grantLocked()
	}
}

// limit is the current ceiling, a whole number of slots.
func (a *accountLimiter) limitLocked() int { return max(int(a.ceiling), 1) }

// acquire takes a slot (waiting for one, unless ctx says WithoutWaiting), then
// a token of the rate. A request marked WithSendBy waits no later than its time
// to start: past it, or when the rate's next token comes after it, acquire
// returns ErrNotSent at once, without holding a slot or spending a token (a
// create queued behind too many others must not spend the account's budget on
// being refused, nor hold a slot while others could use it).
func (a *accountLimiter) acquire(ctx context.Context) error {
	by, ok := sendByOf(ctx)
	if !ok {
		return a.take(ctx)
	}
	bounded, cancel := context.WithDeadline(ctx, by)
	defer cancel()
	err := a.take(bounded)
	if err != nil && ctx.Err() == nil && !errors.Is(err, ErrAccountBusy) {
		// Only the time to start ends a wait that the caller's context did
		// not (rate.Wait refuses a token that comes after the deadline).
		return ErrNotSent
	}
	return err
}

// take waits for a slot, in arrival order (a request that came later never
// takes a slot before one waiting already), then for a token of the rate.
func (a *accountLimiter) take(ctx context.Context) error {
	if err := a.slot(ctx); err != nil {
		return err
	}
	if err := a.rate.Wait(ctx); err != nil {
		a.release(false, false)
		return err
	}
	return nil
}

// slot takes a free slot, or joins the back of the waiters (unless ctx says
// WithoutWaiting) until one is handed to it or ctx ends.
func (a *accountLimiter) slot(ctx context.Context) error {
	a.mu.Lock()
	if a.waiters.Len() == 0 && a.inflight < a.limitLocked() {
		a.inflight++
		a.report(false)
		a.mu.Unlock()
		tookSlot(ctx)
		return nil
	}
	if !mayWait(ctx) {
		a.mu.Unlock()
		return ErrAccountBusy
	}
	granted := make(chan struct{})
	e := a.waiters.PushBack(granted)
	a.mu.Unlock()
	select {
	case <-granted:
		tookSlot(ctx)
		return nil
	case <-ctx.Done():
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	select {
	case <-granted:
		// Handed a slot as ctx ended: pass it on.
		a.inflight--
		a.report(false)
	default:
		a.waiters.Remove(e)
	}
	a.grantLocked()
	return ctx.Err()
}

// grantLocked hands the free slots to the waiters, first come first served.
func (a *accountLimiter) grantLocked() {
	for a.inflight < a.limitLocked() {
		e := a.waiters.Front()
		if e == nil {
			return
		}
		a.waiters.Remove(e)
		a.inflight++
		a.report(false)
		close(e.Value.(chan struct{}))
	}
}

// release frees a slot and adapts the ceiling: throttled (a 429) lowers it,
// a success counts towards raising it; other failures leave it.
func (a *accountLimiter) release(success, throttled bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.inflight--
	switch {
	case throttled:
		a.successes = 0
		if now := a.now(); a.decreased.IsZero() || now.Sub(a.decreased) >= a.cooldown {
			a.throttledAt = a.limitLocked()
			a.ceiling = math.Max(1, math.Floor(a.ceiling*decrease))
			a.decreased = now
		}
	case success:
		a.successes++
		need := increaseAfter * a.limitLocked()
		if a.throttledAt > 0 && a.limitLocked()+1 >= a.throttledAt {
			need *= probeSlowdown
		}
		if a.successes >= need && a.ceiling < float64(a.max) {
			a.ceiling++
			a.successes = 0
			if a.limitLocked() > a.throttledAt {
				a.throttledAt = 0
			}
		}
	}
	a.report(throttled)
	a.grantLocked()
}

func (a *accountLimiter) report(throttled bool) {
	if a.observe != nil {
		a.observe(a.inflight, a.limitLocked(), throttled)
	}
}

// reserve admits one request to be sent later, without waiting: false when
// reservationsLocked are reserved already. The returned function ends
// the reservation (it may be called more than once).
func (a *accountLimiter) reserve() (func(), bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.reserved >= a.reservationsLocked() {
		return nil, false
	}
	a.reserved++
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			a.reserved--
			a.mu.Unlock()
		})
	}, true
}

// reservable is how many more reservations reserve would admit now.
func (a *accountLimiter) reservable() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return max(a.reservationsLocked()-a.reserved, 0)
}

// reservationsLocked is how many requests may be reserved at once:
// reserveFactor × the ceiling, and no more than the rate lets start within
// reserveRateWindow (at least one), so that a reserved create on an account
// with a low rate still starts within its send window (a create that cannot
// is not sent, and made again: with a queue longer than the rate drains in
// that window, every create would wait past it).
func (a *accountLimiter) reservationsLocked() int {
	n := reserveFactor * a.limitLocked()
	if limit := a.rate.Limit(); limit != rate.Inf {
		n = min(n, max(int(float64(limit)*reserveRateWindow.Seconds()), 1))
	}
	return n
}

// snapshot returns the slots in use and the current ceiling.
func (a *accountLimiter) snapshot() (inflight, ceiling int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.inflight, a.limitLocked()
}
