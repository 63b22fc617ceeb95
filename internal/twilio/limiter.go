package twilio

import (
	"container/list"
	"context"
	"errors"
	"math"
	"sync"
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

type firstCallKey struct{}

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

// firstCall marks how a context's calls to an account wait for a slot until
// one of them has taken one of that account's: not at all (WithoutWaiting), or,
// holding the account's place ahead of the queue, at its front (AheadOfQueue).
// Once a call made with it has taken a slot of the account, later calls with it
// to that account (a retry, a look's next page or fetch) wait for theirs: at
// the front while the context holds the account's place ahead, else at the
// back, as any other.
type firstCall struct {
	took  sync.Map    // *accountLimiter → struct{}: the accounts a call made with it took a slot of
	ahead *aheadPlace // nil: WithoutWaiting
}

// tookOf says whether a call made with ctx has taken a slot of a.
func (f *firstCall) tookOf(a *accountLimiter) bool {
	_, ok := f.took.Load(a)
	return ok
}

// aheadPlace is an AheadOfQueue context's claim on the place ahead of the
// queue of the accounts it has called, until released.
type aheadPlace struct {
	mu       sync.Mutex
	released bool
	held     []*accountLimiter
}

// hold records that p holds a's place ahead; false once p is released.
func (p *aheadPlace) hold(a *accountLimiter) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.released {
		return false
	}
	p.held = append(p.held, a)
	return true
}

func (p *aheadPlace) release() {
	p.mu.Lock()
	held := p.held
	p.released, p.held = true, nil
	p.mu.Unlock()
	for _, a := range held {
		a.mu.Lock()
		if a.ahead == p {
			a.ahead = nil
		}
		a.mu.Unlock()
	}
}

// WithoutWaiting marks ctx so that the next call made with it fails at once
// with ErrAccountBusy when the account has no free slot, instead of waiting.
// Once a call made with it has taken a slot, later calls with it wait for
// theirs: what was spent on the first is not thrown away because another
// request queued meanwhile.
func WithoutWaiting(ctx context.Context) context.Context {
	return context.WithValue(ctx, firstCallKey{}, &firstCall{})
}

// AheadOfQueue marks ctx so that its calls that find no free slot wait at the
// front of the account's waiters, for the next slot that frees, until release
// is called (it must be). One context at a time holds an account's place ahead,
// and it is given again only once the waiters behind it have had a ceiling's
// worth of slots: a call made with another context marked so fails at once
// with ErrAccountBusy, as WithoutWaiting (unless a call of its own has taken a
// slot already: then it waits at the back). For a reconcile whose looks
// WithoutWaiting has turned away for too long: an account holds one worker so
// at most, for about one request at a time, and its queued creates keep most
// of its slots.
func AheadOfQueue(ctx context.Context) (context.Context, func()) {
	p := &aheadPlace{}
	return context.WithValue(ctx, firstCallKey{}, &firstCall{ahead: p}), p.release
}

// firstCallOf is ctx's mark, if it has one.
func firstCallOf(ctx context.Context) *firstCall {
	f, _ := ctx.Value(firstCallKey{}).(*firstCall)
	return f
}

// tookSlot records that a call made with ctx took a slot of a.
func tookSlot(ctx context.Context, a *accountLimiter) {
	if f := firstCallOf(ctx); f != nil {
		f.took.Store(a, struct{}{})
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
	// waiters are the requests waiting for a slot, first come first served
	// (but those of the context holding the place ahead at the front): each a
	// *waiter whose channel is closed when a slot is handed to it (counted in
	// inflight already). No slot is free while one waits (grantLocked).
	waiters list.List
	// ahead holds the place ahead of the queue (AheadOfQueue), if any; behind
	// counts the slots handed to the waiters behind it since it was last used
	// (math.MaxInt, and not counted on, until it is first used).
	ahead  *aheadPlace
	behind int

	observe func(inflight int, ceiling int, throttled bool)
}

func newAccountLimiter(l Limits, burst int, now func() time.Time, observe func(int, int, bool)) *accountLimiter {
	if now == nil {
		now = time.Now
	}
	a := &accountLimiter{rate: rate.NewLimiter(rate.Limit(l.RequestsPerSecond), max(burst, 1)), now: now,
		cooldown: time.Second, observe: observe, behind: math.MaxInt}
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

// waiter is one request waiting for a slot.
type waiter struct {
	granted chan struct{}
	ahead   bool
}

// slot takes a free slot, or waits until one is handed to it or ctx ends: at
// the front of the waiters while ctx holds the account's place ahead (taking
// it if it is free and the waiters behind have had their share), else at the
// back; a call marked WithoutWaiting or AheadOfQueue that has taken no slot
// yet and cannot wait ahead does not wait (ErrAccountBusy).
func (a *accountLimiter) slot(ctx context.Context) error {
	a.mu.Lock()
	if a.waiters.Len() == 0 && a.inflight < a.limitLocked() {
		a.inflight++
		a.report(false)
		a.mu.Unlock()
		tookSlot(ctx, a)
		return nil
	}
	ahead := false
	if mark := firstCallOf(ctx); mark != nil {
		ahead = mark.ahead != nil && a.placeAheadLocked(mark.ahead)
		if !ahead && !mark.tookOf(a) {
			a.mu.Unlock()
			return ErrAccountBusy
		}
	}
	// Allocated only for a wait: a look turned away (often, under a storm of
	// creates) costs no channel.
	w := &waiter{granted: make(chan struct{}), ahead: ahead}
	var e *list.Element
	if w.ahead {
		e = a.waiters.PushFront(w)
	} else {
		e = a.waiters.PushBack(w)
	}
	a.mu.Unlock()
	select {
	case <-w.granted:
		tookSlot(ctx, a)
		return nil
	case <-ctx.Done():
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	select {
	case <-w.granted:
		// Handed a slot as ctx ended: pass it on (the waiters behind the
		// place ahead have not had it).
		a.inflight--
		a.report(false)
		if !w.ahead && a.behind > 0 && a.behind < math.MaxInt {
			a.behind--
		}
	default:
		a.waiters.Remove(e)
	}
	a.grantLocked()
	return ctx.Err()
}

// placeAheadLocked says whether p holds the account's place ahead of the
// queue, giving it to p when no one holds it and the waiters behind have had
// a ceiling's worth of slots since it was last used (or none waits).
func (a *accountLimiter) placeAheadLocked(p *aheadPlace) bool {
	if a.ahead == p {
		return true
	}
	// A call of a context that has let go of the place may still wait at the
	// front: the place is not given again until it has been served.
	front := a.waiters.Front()
	if a.ahead != nil || (front != nil && front.Value.(*waiter).ahead) ||
		(a.behind < a.limitLocked() && front != nil) || !p.hold(a) {
		return false
	}
	a.ahead = p
	return true
}

// grantLocked hands the free slots to the waiters, in their order.
func (a *accountLimiter) grantLocked() {
	for a.inflight < a.limitLocked() {
		e := a.waiters.Front()
		if e == nil {
			return
		}
		a.waiters.Remove(e)
		a.inflight++
		a.report(false)
		w := e.Value.(*waiter)
		if w.ahead {
			a.behind = 0
		} else if a.behind < math.MaxInt {
			a.behind++
		}
		close(w.granted)
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
