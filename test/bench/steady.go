package main

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

// steadyWindow is how long the converged operator is watched: long enough for
// every webhook's first whole interval between two fetches to fall in it. The
// window opens inside each webhook's current interval, which its first fetch
// ends at most 1.1 periods in (DESIGN's ±10% jitter); the next fetch comes at
// most 1.1 periods after that.
func steadyWindow(period time.Duration) time.Duration {
	return period*22/10 + 10*time.Second
}

// steady is what the Twilio fake saw of the converged operator in the window.
type steady struct {
	period time.Duration
	// counts are the calls by operation.
	counts map[string]int
	// first is each webhook's first whole interval between two fetches. It is
	// a fresh draw of the jittered period (the interval the window opened in is
	// not: a long one is more likely to contain the window's start), so its
	// mean estimates the period at which the operator fetches each webhook.
	first []time.Duration
	// shortest is the shortest interval between two fetches of one webhook;
	// short counts intervals below 0.9 periods, the jitter's least.
	shortest time.Duration
	short    int
	// missing counts webhooks with fewer than two fetches in the window.
	missing int
}

// watchSteady logs the fake's requests while wait runs and measures the
// steady state of the webhooks the fake holds. The bench keeps the request log
// off while converging (N creates are many entries), so it is turned on here,
// for the window only.
func watchSteady(fake *twiliofake.Server, period time.Duration, wait func()) steady {
	fake.ResetLog()
	fake.SetRecordRequests(true)
	defer fake.SetRecordRequests(false)
	wait()
	hooks := fake.Webhooks()
	sids := make([]string, 0, len(hooks))
	for _, h := range hooks {
		sids = append(sids, h.Sid)
	}
	return measureSteady(fake.Requests(), fake.Counts(), sids, period)
}

// measureSteady reads the fake's request log of the window for the webhooks sids.
func measureSteady(reqs []twiliofake.Request, counts map[string]int, sids []string, period time.Duration) steady {
	out := steady{period: period, counts: counts, shortest: -1}
	fetches := map[string][]time.Time{}
	for _, r := range reqs {
		if r.Operation == twiliofake.OpFetch && r.WebhookSid != "" {
			fetches[r.WebhookSid] = append(fetches[r.WebhookSid], r.Time)
		}
	}
	for _, sid := range sids {
		times := fetches[sid]
		if len(times) < 2 {
			out.missing++
			continue
		}
		slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
		out.first = append(out.first, times[1].Sub(times[0]))
		for i := 1; i < len(times); i++ {
			d := times[i].Sub(times[i-1])
			if out.shortest < 0 || d < out.shortest {
				out.shortest = d
			}
			if d < period*9/10 {
				out.short++
			}
		}
	}
	return out
}

// perPeriod is fetches per webhook per sync period (the period over the mean
// first interval), and its standard error from the intervals' spread.
func (s steady) perPeriod() (rate, stderr float64) {
	if len(s.first) == 0 {
		return math.Inf(1), 0
	}
	var sum, sq float64
	for _, d := range s.first {
		sum += d.Seconds()
	}
	mean := sum / float64(len(s.first))
	for _, d := range s.first {
		sq += (d.Seconds() - mean) * (d.Seconds() - mean)
	}
	sd := math.Sqrt(sq / float64(max(len(s.first)-1, 1)))
	rate = s.period.Seconds() / mean
	// rate = period/mean: its relative error is the mean's.
	return rate, rate * sd / mean / math.Sqrt(float64(len(s.first)))
}

// ok is the target: at most one fetch per webhook per period (within three
// standard errors of the estimate), no webhook fetched again sooner than the
// jitter allows, every webhook fetched, and no call but fetches (and the
// account's verification, GET /v1/Configuration, once a period, which is not a
// webhook call).
func (s steady) ok() bool {
	rate, stderr := s.perPeriod()
	others := 0
	for op, n := range s.counts {
		if op != twiliofake.OpFetch && op != twiliofake.OpConfiguration {
			others += n
		}
	}
	return rate <= targetFetchesPerWH+3*stderr && s.short == 0 && s.missing == 0 && others == 0
}

func (s steady) text(n int) string {
	rate, stderr := s.perPeriod()
	return fmt.Sprintf("%.3f ± %.3f fetches per webhook per period (period ÷ mean of each webhook's first whole interval, %d webhooks; "+
		"%d fetched fewer than twice); shortest interval %s (%d below 0.9 periods); all calls in %s: %v (%.3f per webhook per period)",
		rate, stderr, len(s.first), s.missing, s.shortest.Round(time.Millisecond), s.short,
		steadyWindow(s.period).Round(time.Second), s.counts, s.callsPerPeriod(n))
}

func (s steady) callsPerPeriod(n int) float64 {
	total := 0
	for _, v := range s.counts {
		total += v
	}
	return float64(total) / float64(n) / (steadyWindow(s.period).Seconds() / s.period.Seconds())
}
