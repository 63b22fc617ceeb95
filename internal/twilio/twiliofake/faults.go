package twiliofake

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"golang.org/x/time/rate"
)

// FaultKind is a failure the fake can inject.
type FaultKind string

// Fault kinds.
const (
	// FaultNone is no fault.
	FaultNone FaultKind = ""
	// FaultRateLimited answers 429 with Twilio code 20429 without processing.
	FaultRateLimited FaultKind = "429"
	// FaultServerError answers 500 with Twilio code 20500 without processing.
	FaultServerError FaultKind = "500"
	// FaultTimeout never answers: the request hangs until the client gives up.
	FaultTimeout FaultKind = "timeout"
	// FaultLoseResponse processes the request, then drops the connection unanswered
	// ("the create succeeded but the response was lost").
	FaultLoseResponse FaultKind = "lost-response"
	// FaultError answers Fault.Status with Twilio code Fault.Code without processing
	// (for codes a client's own validation would never let through).
	FaultError FaultKind = "error"
	// FaultDeletedFirst deletes the webhook the request names, as someone else
	// would just before it arrives, then processes the request (a fetch, update
	// or delete then answers 404 with code 20404).
	FaultDeletedFirst FaultKind = "deleted-first"
	// FaultConcurrencyLimit is a 429 answered because too many requests were in flight.
	FaultConcurrencyLimit FaultKind = "concurrency-429"
	// FaultAccountRate is a 429 answered because the account's rate was exceeded.
	FaultAccountRate FaultKind = "rate-429"
	// FaultUnauthorized answers 401 with Twilio code 20003 without processing, as
	// Twilio does for credentials it no longer accepts.
	FaultUnauthorized FaultKind = "401"
	// FaultHTML404 answers 404 with a text/html page without processing, as a proxy
	// or a wrong API URL path does: not Twilio saying a webhook is gone.
	FaultHTML404 FaultKind = "html-404"
	// FaultNonJSON answers 502 with a text/html page without processing, as a load
	// balancer in front of Twilio does.
	FaultNonJSON FaultKind = "non-json"
	// FaultNullSid processes the request, then answers its webhook's sid as JSON
	// null (a create that succeeded with an answer the client cannot use); for a
	// list, every listed sid.
	FaultNullSid FaultKind = "null-sid"
)

// Fault is one scripted failure, applied to the next request of Operation ("" any).
type Fault struct {
	Kind      FaultKind
	Operation string
	// RetryAfter, for FaultRateLimited, is sent as a Retry-After header when positive.
	RetryAfter time.Duration
	// Status and Code, for FaultError, are the answer's HTTP status and Twilio code.
	Status int
	Code   int
	// Sticky faults apply to every matching request until ClearFaults.
	Sticky bool
	// Conversations, when set, limits the fault to requests under one of these
	// conversations (a test's own), so that another object's request (one
	// still retrying from an earlier test) never takes it.
	Conversations []string
}

// scoped says whether a fault's operation names a conversation in its path
// (the configuration's does not), and so can be limited to conversations.
func (f Fault) scoped() bool {
	return f.Operation != OpConfiguration
}

// in says whether a request under conversation (its parsed route's; "" for
// none) is one the fault may apply to: any, when it names no conversation.
func (f Fault) in(conversation string) bool {
	return len(f.Conversations) == 0 || slices.Contains(f.Conversations, conversation)
}

type randomFaults struct {
	rate  float64
	kinds []FaultKind
	rng   *rand.Rand
}

// InjectFaults queues scripted faults; each applies once, in order, to the next
// request of its operation. With RequireScopedFaults, it panics on a fault
// that could apply to a conversation and names none.
func (s *Server) InjectFaults(faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.requireScoped {
		for _, f := range faults {
			if f.scoped() && len(f.Conversations) == 0 {
				panic(fmt.Sprintf("twiliofake: fault %s on %q names no conversation: "+
					"with many tests' objects on one fake, another test's request would take it", f.Kind, f.Operation))
			}
		}
	}
	s.script = append(s.script, faults...)
}

// RequireScopedFaults makes InjectFaults refuse (panic on) a fault that could
// apply to requests under a conversation and is not limited to any: for a fake
// shared by tests whose objects outlive them.
func (s *Server) RequireScopedFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requireScoped = true
}

// ClearFaults removes every queued and sticky fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = nil
}

// SetRandomFaults injects one of kinds at random into a fraction of requests
// (0 ≤ fraction ≤ 1), reproducibly for a given seed. A fraction of 0 turns it off.
func (s *Server) SetRandomFaults(fraction float64, seed uint64, kinds ...FaultKind) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fraction <= 0 || len(kinds) == 0 {
		s.random = nil
		return
	}
	s.random = &randomFaults{rate: fraction, kinds: kinds, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))} //nolint:gosec // reproducible faults
}

// SetLatency delays every answer.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// SetMaxInFlight answers 429/20429 to a request that arrives while n requests of
// the same account are in flight (0 turns it off), as Twilio's concurrency
// limit does.
func (s *Server) SetMaxInFlight(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxInFlight = n
}

// SetAccountRate answers 429/20429 past rps requests per second per account, with
// a token bucket of the given burst (rps 0 turns it off). retryAfter, when
// positive, is sent as a Retry-After header on those answers.
func (s *Server) SetAccountRate(rps float64, burst int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rps, s.burst, s.retryAfter429 = rps, burst, retryAfter
	s.applyRateLocked()
}

func (s *Server) applyRateLocked() {
	for _, a := range s.accounts {
		if s.rps <= 0 {
			a.limiter = nil
			continue
		}
		a.limiter = rate.NewLimiter(rate.Limit(s.rps), max(s.burst, 1))
	}
}

// FaultCounts returns how many faults of each kind were injected.
func (s *Server) FaultCounts() map[FaultKind]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.injected)
}

// pickFaultLocked decides the fault for a request, scripted faults first.
func (s *Server) pickFaultLocked(op, conversation string) Fault {
	for i, f := range s.script {
		if (f.Operation == "" || f.Operation == op) && f.in(conversation) {
			if !f.Sticky {
				s.script = append(s.script[:i], s.script[i+1:]...)
			}
			return f
		}
	}
	if s.random != nil && s.random.rng.Float64() < s.random.rate {
		return Fault{Kind: s.random.kinds[s.random.rng.IntN(len(s.random.kinds))]}
	}
	return Fault{}
}
