package twilio_test

import (
	"strings"
	"testing"

	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

func TestSidChecks(t *testing.T) {
	const hex = "0123456789abcdef0123456789ABCDEF"
	checks := map[string]func(string) bool{
		"AC": twilio.IsAccountSid, "WH": twilio.IsWebhookSid, "CH": twilio.IsConversationSid,
		"IS": twilio.IsServiceSid, "FW": twilio.IsFlowSid,
	}
	for prefix, is := range checks {
		t.Run(prefix, func(t *testing.T) {
			for value, want := range map[string]bool{
				prefix + hex:                          true,
				prefix + hex[:31]:                     false, // 31 digits
				prefix + hex + "0":                    false, // 33 digits
				prefix + hex[:31] + "g":               false, // not hexadecimal
				strings.ToLower(prefix) + hex:         false, // prefix in lower case
				"XX" + hex:                            false, // another kind of SID
				" " + prefix + hex:                    false, // surrounded by anything
				prefix + hex + "\n":                   false,
				prefix + hex[:16] + "/../" + hex[:12]: false, // a path
				"":                                    false,
			} {
				if got := is(value); got != want {
					t.Errorf("Is…Sid(%q) = %v, want %v", value, got, want)
				}
			}
		})
	}
}

func TestCanonicalSid(t *testing.T) {
	for in, want := range map[string]string{
		"WH0123456789ABCDEF0123456789abcdef": "WH0123456789abcdef0123456789abcdef",
		"WH0123456789abcdef0123456789abcdef": "WH0123456789abcdef0123456789abcdef",
		"AC0123456789ABCDEF0123456789ABCDEF": "AC0123456789abcdef0123456789abcdef",
		"WH":                                 "WH",
		"":                                   "",
	} {
		if got := twilio.CanonicalSid(in); got != want {
			t.Errorf("CanonicalSid(%q) = %q, want %q", in, got, want)
		}
	}
}
