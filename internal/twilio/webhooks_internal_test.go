package twilio

import (
	"encoding/json"
	"testing"
	"time"
)

func TestDecodeConfiguration(t *testing.T) {
	i := func(v int32) *int32 { return &v }
	cases := []struct {
		name string
		json string
		want Configuration
	}{
		{"null", `null`, Configuration{}},
		{"not an object", `"x"`, Configuration{}},
		{"webhook", `{"url":"https://e.com","method":"get","filters":["onMessageAdded","onMessageRemoved"]}`,
			Configuration{URL: "https://e.com", Method: "get", Filters: []string{"onMessageAdded", "onMessageRemoved"}}},
		{"trigger", `{"url":"https://e.com","method":"POST","triggers":["a"]}`, Configuration{URL: "https://e.com", Method: "POST", Triggers: []string{"a"}}},
		{"studio snake case", `{"flow_sid":"FW1","replay_after":3}`, Configuration{FlowSid: "FW1", ReplayAfter: i(3)}},
		{"studio camel case", `{"flowSid":"FW1","replayAfter":"0"}`, Configuration{FlowSid: "FW1", ReplayAfter: i(0)}},
		{"wrong types ignored", `{"url":5,"filters":"onMessageAdded","triggers":[1,"a"],"replay_after":-1}`, Configuration{Triggers: []string{"a"}}},
		{"fractional replay ignored", `{"replay_after":1.5}`, Configuration{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var raw interface{}
			if err := json.Unmarshal([]byte(tc.json), &raw); err != nil {
				t.Fatal(err)
			}
			got := DecodeConfiguration(&raw)
			gotJSON, _ := json.Marshal(got)
			wantJSON, _ := json.Marshal(tc.want)
			if string(gotJSON) != string(wantJSON) {
				t.Fatalf("got %s, want %s", gotJSON, wantJSON)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := map[string]time.Duration{
		"":                              0,
		"3":                             3 * time.Second,
		"0":                             0,
		"-1":                            0,
		"1.5":                           0,
		"soon":                          0,
		"Thu, 01 Jan 2026 00:00:10 GMT": 10 * time.Second,
		"Wed, 31 Dec 2025 23:59:00 GMT": 0,
		// A wait a proxy asks for past a day is read as a day: seconds past
		// what a Duration holds do not wrap around.
		"86401":                         maxRetryAfter,
		"9223372036854775807":           maxRetryAfter,
		"99999999999999999999999":       maxRetryAfter,
		"007":                           7 * time.Second,
		"Fri, 01 Jan 2100 00:00:00 GMT": maxRetryAfter,
	}
	for in, want := range cases {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestBackoffStaysWithinBounds(t *testing.T) {
	for attempt := 1; attempt < 40; attempt++ {
		d := backoff(100*time.Millisecond, 2*time.Second, attempt)
		ceiling := min(100*time.Millisecond<<min(attempt-1, 20), 2*time.Second)
		if d < ceiling/2 || d > ceiling {
			t.Fatalf("attempt %d: %v outside [%v, %v]", attempt, d, ceiling/2, ceiling)
		}
	}
}
