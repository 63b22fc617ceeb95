package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

func TestMeasureSteady(t *testing.T) {
	const period = 100 * time.Second
	t0 := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	fetch := func(sid string, s float64) twiliofake.Request {
		return twiliofake.Request{Time: at(s), Operation: twiliofake.OpFetch, WebhookSid: sid}
	}
	// Each webhook fetched once a period (jittered): WH1 at 10, 105, 200; WH2 at
	// 80, 180 (logged out of order). The first whole intervals: 95 and 100.
	periodic := []twiliofake.Request{fetch("WH1", 10), fetch("WH2", 180), fetch("WH1", 105), fetch("WH2", 80), fetch("WH1", 200)}
	fetches := map[string]int{twiliofake.OpFetch: 5, twiliofake.OpConfiguration: 2}
	for _, tc := range []struct {
		name        string
		reqs        []twiliofake.Request
		counts      map[string]int
		sids        []string
		first       []time.Duration
		shortest    time.Duration
		short, miss int
		ok          bool
	}{
		{name: "once a period", reqs: periodic, counts: fetches, sids: []string{"WH1", "WH2"},
			first: []time.Duration{95 * time.Second, 100 * time.Second}, shortest: 95 * time.Second, ok: true},
		{name: "a webhook fetched once only", reqs: periodic, counts: fetches, sids: []string{"WH1", "WH2", "WH3"},
			first: []time.Duration{95 * time.Second, 100 * time.Second}, shortest: 95 * time.Second, miss: 1},
		{name: "an extra fetch soon after another", counts: fetches, sids: []string{"WH1", "WH2"},
			reqs:  append([]twiliofake.Request{fetch("WH2", 82)}, periodic...),
			first: []time.Duration{95 * time.Second, 2 * time.Second}, shortest: 2 * time.Second, short: 1},
		{name: "a call other than a fetch", reqs: periodic, sids: []string{"WH1", "WH2"},
			counts: map[string]int{twiliofake.OpFetch: 5, twiliofake.OpUpdate: 1},
			first:  []time.Duration{95 * time.Second, 100 * time.Second}, shortest: 95 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := measureSteady(tc.reqs, tc.counts, tc.sids, period)
			if len(got.first) != len(tc.first) {
				t.Fatalf("first intervals %v, want %v", got.first, tc.first)
			}
			for i := range tc.first {
				if got.first[i] != tc.first[i] {
					t.Fatalf("first intervals %v, want %v", got.first, tc.first)
				}
			}
			if got.shortest != tc.shortest || got.short != tc.short || got.missing != tc.miss {
				t.Errorf("shortest %s, short %d, missing %d; want %s, %d, %d", got.shortest, got.short, got.missing, tc.shortest, tc.short, tc.miss)
			}
			if got.ok() != tc.ok {
				t.Errorf("ok() = %v, want %v (%s)", got.ok(), tc.ok, got.text(len(tc.sids)))
			}
		})
	}
}

// The estimate of fetches per period is the period over the mean first
// interval, with the mean's standard error.
func TestSteadyPerPeriod(t *testing.T) {
	s := steady{period: 100 * time.Second, first: []time.Duration{90 * time.Second, 110 * time.Second, 90 * time.Second, 110 * time.Second}}
	rate, stderr := s.perPeriod()
	if rate != 1 {
		t.Errorf("rate %v, want 1", rate)
	}
	// sd of {90,110,90,110} (n-1) = 11.547; / mean 100 / sqrt(4) = 0.0577.
	if stderr < 0.0577 || stderr > 0.0578 {
		t.Errorf("stderr %v, want 0.0577", stderr)
	}
	s.first = []time.Duration{50 * time.Second, 50 * time.Second}
	if rate, _ := s.perPeriod(); rate != 2 {
		t.Errorf("fetched every half period: rate %v, want 2", rate)
	}
	if s.ok() {
		t.Error("fetched every half period, yet ok")
	}
}

// watchSteady measures the fetches the fake answers while it waits, even though
// the bench keeps the fake's request log off while converging (the bug this
// guards against: a log left off measured no fetches at all).
func TestWatchSteadyLogsTheWindow(t *testing.T) {
	const (
		acct = "AC00000000000000000000000000000001"
		tok  = "token0000000000000000000000000001"
		conv = "CH00000000000000000000000000000001"
	)
	fake := twiliofake.New()
	fake.AddAccount(acct, tok)
	fake.AddConversation(acct, conv)
	fake.SetRecordRequests(false) // as the bench converges
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	hook := twiliofake.Webhook{ConversationSid: conv, Target: "webhook", URL: "https://example.com/hook", Method: "POST"}
	wh1, wh2 := fake.CreateWebhook(hook), fake.CreateWebhook(hook)
	fetch := func(sid string) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/v1/Conversations/"+conv+"/Webhooks/"+sid, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(acct, tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("fetch %s: %d", sid, resp.StatusCode)
		}
	}
	fetch(wh1) // before the window: not counted
	got := watchSteady(fake, time.Minute, func() {
		fetch(wh1)
		fetch(wh2)
		fetch(wh1)
	})
	if len(got.first) != 1 || got.missing != 1 || got.counts[twiliofake.OpFetch] != 3 {
		t.Errorf("first intervals %v, missing %d, counts %v; want one interval (%s), one missing (%s), 3 fetches",
			got.first, got.missing, got.counts, wh1, wh2)
	}
	if got.short != 1 {
		t.Errorf("short %d, want 1 (two fetches of %s in the window, well under a period apart)", got.short, wh1)
	}
}

func TestPhaseOf(t *testing.T) {
	const converged, steadyEnd = 4 * time.Minute, 16 * time.Minute
	for _, tc := range []struct {
		at   time.Duration
		want string
	}{
		{-time.Second, "before the first create"}, // the manager's start
		{converged, "4m0s after the first create, while converging"},
		{converged + time.Second, "4m1s after the first create, in steady state"},
		{steadyEnd, "16m0s after the first create, in steady state"},
		{steadyEnd + time.Second, "16m1s after the first create, while re-converging"},
	} {
		if got := phaseOf(tc.at, converged, steadyEnd); got != tc.want {
			t.Errorf("phaseOf(%s) = %q, want %q", tc.at, got, tc.want)
		}
	}
}

func TestRefusedText(t *testing.T) {
	for _, tc := range []struct {
		refused map[string]int
		want    string
	}{
		{nil, ""},
		{map[string]int{"create": 0}, ""},
		{map[string]int{"fetch": 2, "configuration": 1, "create": 0}, ": configuration 1, fetch 2"},
	} {
		if got := refusedText(tc.refused); got != tc.want {
			t.Errorf("refusedText(%v) = %q, want %q", tc.refused, got, tc.want)
		}
	}
}
