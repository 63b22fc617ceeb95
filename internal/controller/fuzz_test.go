package controller

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// FuzzConfigMatches checks the drift comparison's laws on arbitrary input, over
// every field the contract compares:
//   - a configuration matches itself;
//   - it matches a copy whose filters and triggers are reordered and repeated
//     (they are sets) and whose method differs in case (compared case-insensitively);
//     a method left unset in the spec (studio) is not compared;
//   - a difference in any one field is detected, in either direction: url,
//     method, a filter added or removed, a trigger added or removed, flowSid.
func FuzzConfigMatches(f *testing.F) {
	f.Add("https://e.com", "POST", "onMessageAdded,onMessageRemoved", "", "", uint64(1))
	f.Add("https://e.com/x", "get", "", "help,stop,help", "", uint64(2))
	f.Add("", "", "", "", "FW00000000000000000000000000000001", uint64(3))
	f.Add("http://a", "Post", "b,a,b", "z,y", "FW1", uint64(4))
	f.Add("https://e.com/ÄÖ", "gEt", "onConversationUpdated", "STOP,stop", "", uint64(5))
	f.Fuzz(func(t *testing.T, url, method, filters, triggers, flow string, seed uint64) {
		rng := rand.New(rand.NewPCG(seed, seed^0x5bd1e995)) //nolint:gosec // reproducible shuffles
		want := twilio.Configuration{URL: url, Method: method, Filters: split(filters), Triggers: split(triggers), FlowSid: flow}
		if !configMatches(want, want) {
			t.Fatalf("%+v does not match itself", want)
		}

		same := want
		same.Filters = shuffledWithRepeat(rng, want.Filters)
		same.Triggers = shuffledWithRepeat(rng, want.Triggers)
		same.Method = flipCase(rng, method)
		if !configMatches(want, same) {
			t.Fatalf("%+v does not match %+v: same sets, method in another case", want, same)
		}
		if want.Method == "" {
			for _, m := range []string{"", "get", "post", "POST"} {
				got := want
				got.Method = m
				if !configMatches(want, got) {
					t.Fatalf("a spec without a method does not match Twilio's method %q: %+v", m, want)
				}
			}
		}

		for field, changed := range oneFieldChanged(want) {
			if configMatches(want, changed) {
				t.Fatalf("%s: %+v matches %+v", field, want, changed)
			}
			if changed.Method != "" && want.Method != "" && configMatches(changed, want) {
				t.Fatalf("%s: %+v matches %+v (reversed)", field, changed, want)
			}
		}
	})
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// oneFieldChanged returns copies of c that each differ from it in one field.
func oneFieldChanged(c twilio.Configuration) map[string]twilio.Configuration {
	out := map[string]twilio.Configuration{}
	set := func(name string, change func(*twilio.Configuration)) {
		d := c
		d.Filters, d.Triggers = slices.Clone(c.Filters), slices.Clone(c.Triggers)
		change(&d)
		out[name] = d
	}
	set("url", func(d *twilio.Configuration) { d.URL += "/changed" })
	set("flowSid", func(d *twilio.Configuration) { d.FlowSid += "0" })
	if c.Method != "" { // an unset method is not compared
		set("method", func(d *twilio.Configuration) {
			d.Method = "get"
			if strings.EqualFold(c.Method, "get") {
				d.Method = "post"
			}
		})
	}
	set("filter added", func(d *twilio.Configuration) { d.Filters = append(d.Filters, absentFrom(c.Filters)) })
	set("trigger added", func(d *twilio.Configuration) { d.Triggers = append(d.Triggers, absentFrom(c.Triggers)) })
	if len(c.Filters) > 0 {
		set("filter removed", func(d *twilio.Configuration) { d.Filters = without(c.Filters, c.Filters[0]) })
	}
	if len(c.Triggers) > 0 {
		set("trigger removed", func(d *twilio.Configuration) { d.Triggers = without(c.Triggers, c.Triggers[0]) })
	}
	return out
}

// shuffledWithRepeat reorders s and repeats one of its elements.
func shuffledWithRepeat(rng *rand.Rand, s []string) []string {
	out := slices.Clone(s)
	if len(out) > 0 {
		out = append(out, out[rng.IntN(len(out))])
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// flipCase changes the case of a random selection of s's ASCII letters (the
// methods are GET and POST; other scripts' case rules are no concern of Twilio's).
func flipCase(rng *rand.Rand, s string) string {
	b := []byte(s)
	for i, c := range b {
		if rng.IntN(2) == 0 {
			continue
		}
		switch {
		case 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		case 'A' <= c && c <= 'Z':
			b[i] = c - 'A' + 'a'
		}
	}
	return string(b)
}

// absentFrom returns a value not in s.
func absentFrom(s []string) string {
	v := "onAbsent"
	for slices.Contains(s, v) {
		v += "X"
	}
	return v
}

// without returns s with every copy of v removed.
func without(s []string, v string) []string {
	return slices.DeleteFunc(slices.Clone(s), func(x string) bool { return x == v })
}
