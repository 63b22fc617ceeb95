package twilio

import (
	"regexp"
	"strings"
)

// Twilio SIDs: two letters naming the kind of resource and 32 hexadecimal
// digits. Every SID the operator puts in a Twilio path, or trusts as an
// account's identity, matches one of these first.
var (
	accountSidPattern      = sidPattern("AC")
	apiKeySidPattern       = sidPattern("SK")
	webhookSidPattern      = sidPattern("WH")
	conversationSidPattern = sidPattern("CH")
	serviceSidPattern      = sidPattern("IS")
	flowSidPattern         = sidPattern("FW")
)

func sidPattern(prefix string) *regexp.Regexp {
	return regexp.MustCompile(`^` + prefix + `[0-9a-fA-F]{32}$`)
}

// IsAccountSid reports whether s is an account SID (AC…).
func IsAccountSid(s string) bool { return accountSidPattern.MatchString(s) }

// IsWebhookSid reports whether s is a webhook SID (WH…).
func IsWebhookSid(s string) bool { return webhookSidPattern.MatchString(s) }

// IsConversationSid reports whether s is a conversation SID (CH…).
func IsConversationSid(s string) bool { return conversationSidPattern.MatchString(s) }

// IsServiceSid reports whether s is a Conversation Service SID (IS…).
func IsServiceSid(s string) bool { return serviceSidPattern.MatchString(s) }

// IsFlowSid reports whether s is a Studio Flow SID (FW…).
func IsFlowSid(s string) bool { return flowSidPattern.MatchString(s) }

// CanonicalSid writes a SID as Twilio does, its hexadecimal digits in lower
// case. The patterns above accept either case, as Twilio's API description
// does; comparing canonical forms keeps WHAB… and WHab… from passing for two
// webhooks, whether or not Twilio's paths tell the two apart.
func CanonicalSid(sid string) string {
	if len(sid) <= 2 || strings.ToLower(sid[2:]) == sid[2:] {
		return sid // no copy: the ownership index holds one per SID
	}
	return sid[:2] + strings.ToLower(sid[2:])
}
