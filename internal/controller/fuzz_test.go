package controller

import (
	"slices"
	"strings"
	"testing"

	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// FuzzConfigMatches checks the drift comparison's laws on arbitrary input: a
// configuration matches itself, matches a copy with filters and triggers
// reordered and the method's case changed, and does not match one whose URL differs.
func FuzzConfigMatches(f *testing.F) {
	f.Add("https://e.com", "POST", "onMessageAdded,onMessageRemoved", "", "")
	f.Add("https://e.com/x", "get", "", "help,stop,help", "")
	f.Add("", "", "", "", "FW00000000000000000000000000000001")
	f.Add("http://a", "Post", "b,a,b", "z,y", "FW1")
	f.Fuzz(func(t *testing.T, url, method, filters, triggers, flow string) {
		split := func(s string) []string {
			if s == "" {
				return nil
			}
			return strings.Split(s, ",")
		}
		want := twilio.Configuration{URL: url, Method: method, Filters: split(filters), Triggers: split(triggers), FlowSid: flow}
		if !configMatches(want, want) {
			t.Fatalf("%+v does not match itself", want)
		}
		shuffled := want
		shuffled.Filters = slices.Clone(want.Filters)
		slices.Reverse(shuffled.Filters)
		shuffled.Triggers = slices.Clone(want.Triggers)
		slices.Reverse(shuffled.Triggers)
		shuffled.Method = strings.ToUpper(method)
		if !configMatches(want, shuffled) {
			t.Fatalf("%+v does not match its reordering %+v", want, shuffled)
		}
		changed := want
		changed.URL = url + "/changed"
		if configMatches(want, changed) {
			t.Fatalf("%+v matches a different URL", want)
		}
		if configMatches(want, shuffled) != configMatches(shuffled, want) && method != "" {
			t.Fatalf("comparison is not symmetric for %+v", want)
		}
	})
}
