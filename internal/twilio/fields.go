package twilio

import (
	"regexp"
	"strings"
)

// Names of the answer fields whose presence Webhook.Has reports. Top-level fields
// carry Twilio's JSON names; configuration fields are prefixed "configuration.".
const (
	FieldSid             = "sid"
	FieldAccountSid      = "account_sid"
	FieldConversationSid = "conversation_sid"
	FieldServiceSid      = "chat_service_sid"
	FieldTarget          = "target"
	FieldResourceURL     = "url"
	FieldURL             = "configuration.url"
	FieldMethod          = "configuration.method"
	FieldFilters         = "configuration.filters"
	FieldTriggers        = "configuration.triggers"
	FieldFlowSid         = "configuration.flow_sid"
	FieldReplayAfter     = "configuration.replay_after"
)

// fieldSet is a set of absent fields, one bit per field name.
type fieldSet uint16

var fieldBits = map[string]fieldSet{
	FieldSid: 1 << 0, FieldAccountSid: 1 << 1, FieldConversationSid: 1 << 2, FieldServiceSid: 1 << 3,
	FieldTarget: 1 << 4, FieldResourceURL: 1 << 5, FieldURL: 1 << 6, FieldMethod: 1 << 7,
	FieldFilters: 1 << 8, FieldTriggers: 1 << 9, FieldFlowSid: 1 << 10, FieldReplayAfter: 1 << 11,
}

// AllFields lists every field name Webhook.Has knows, in a stable order.
var AllFields = []string{
	FieldSid, FieldAccountSid, FieldConversationSid, FieldServiceSid, FieldTarget, FieldResourceURL,
	FieldURL, FieldMethod, FieldFilters, FieldTriggers, FieldFlowSid, FieldReplayAfter,
}

func (s *fieldSet) mark(field string, absent bool) {
	if absent {
		*s |= fieldBits[field]
	}
}

// Has reports whether Twilio's answer carried a usable value for the field (one of
// the Field… names), which may be empty ("" or an empty list). It is false when
// the field was absent, JSON null, or of the wrong type, and for names it does not
// know. A Webhook built by hand rather than decoded from an answer has every
// field. Callers must not update or replace a webhook because of a field it does
// not have: an absent field says nothing about Twilio's state.
func (w *Webhook) Has(field string) bool {
	bit, known := fieldBits[field]
	return w != nil && known && w.absent&bit == 0
}

// MarkAbsent records fields as absent from the answer, as the decoder does for
// absent and null fields: for tests of code that reads Webhook.Has.
func (w *Webhook) MarkAbsent(fields ...string) {
	for _, f := range fields {
		w.absent.mark(f, true)
	}
}

// Absent lists the fields the answer did not carry, in AllFields order.
func (w *Webhook) Absent() []string {
	var out []string
	for _, f := range AllFields {
		if !w.Has(f) {
			out = append(out, f)
		}
	}
	return out
}

var webhookSidPattern = regexp.MustCompile(`^WH[0-9a-fA-F]{32}$`)

// IsWebhookSid reports whether s is a webhook SID: WH and 32 hexadecimal digits.
func IsWebhookSid(s string) bool { return webhookSidPattern.MatchString(s) }

// eventNames are the ten conversation events a filter may name.
var eventNames = map[string]bool{
	"onMessageAdded": true, "onMessageUpdated": true, "onMessageRemoved": true,
	"onConversationUpdated": true, "onConversationStateUpdated": true, "onConversationRemoved": true,
	"onParticipantAdded": true, "onParticipantUpdated": true, "onParticipantRemoved": true,
	"onDeliveryUpdated": true,
}

// IsEventName reports whether s is one of the ten events a filter may name
// (onMessageAdded … onDeliveryUpdated).
func IsEventName(s string) bool { return eventNames[s] }

// DecodeConfiguration reads the free-form configuration object of a Twilio webhook
// answer without knowing the webhook's target: keywords are read from triggers
// only. Prefer DecodeWebhookConfiguration, which also reads Twilio's other shape.
func DecodeConfiguration(raw *interface{}) Configuration {
	cfg, _ := decodeConfiguration("", raw)
	return cfg
}

// DecodeWebhookConfiguration reads the free-form configuration object of a Twilio
// webhook answer whose target is target. Twilio names fields in snake_case
// (flow_sid, replay_after); camelCase is accepted too. Values of the wrong type
// count as absent, unknown fields are ignored.
//
// Trigger keywords come in two shapes. The keywords are read from triggers when
// that key holds a list (even an empty one). When triggers is absent or null and
// the target is trigger (case-insensitively), they are read from filters, the
// shape of every example in Twilio's OpenAPI document: the entries of filters that
// are one of the ten event names (onMessageAdded … onDeliveryUpdated) stay
// Filters, every other entry is a keyword and goes to Triggers. A keyword spelled
// exactly like an event name therefore reads as a filter. For any other target
// filters and triggers are read as they are.
func DecodeWebhookConfiguration(target string, raw *interface{}) Configuration {
	cfg, _ := decodeConfiguration(target, raw)
	return cfg
}

func decodeConfiguration(target string, raw *interface{}) (Configuration, fieldSet) {
	var cfg Configuration
	var absent fieldSet
	m := map[string]interface{}{}
	if raw != nil {
		if obj, ok := (*raw).(map[string]interface{}); ok {
			m = obj
		}
	}
	pick := func(keys ...string) interface{} {
		for _, k := range keys {
			if v, ok := m[k]; ok && v != nil {
				return v
			}
		}
		return nil
	}
	var ok bool
	cfg.URL, ok = pick("url").(string)
	absent.mark(FieldURL, !ok)
	cfg.Method, ok = pick("method").(string)
	absent.mark(FieldMethod, !ok)
	cfg.FlowSid, ok = pick("flow_sid", "flowSid", "flow_id").(string)
	absent.mark(FieldFlowSid, !ok)
	cfg.ReplayAfter = intValue(pick("replay_after", "replayAfter"))
	absent.mark(FieldReplayAfter, cfg.ReplayAfter == nil)
	filters, hasFilters := stringList(pick("filters"))
	triggers, hasTriggers := stringList(pick("triggers"))
	if !hasTriggers && hasFilters && strings.EqualFold(target, "trigger") {
		filters, triggers, hasTriggers = splitKeywords(filters)
	}
	cfg.Filters, cfg.Triggers = filters, triggers
	absent.mark(FieldFilters, !hasFilters)
	absent.mark(FieldTriggers, !hasTriggers)
	return cfg, absent
}

// splitKeywords separates event names (filters) from keywords (triggers). Both
// results are non-nil: the answer carried both, possibly empty.
func splitKeywords(list []string) (filters, keywords []string, ok bool) {
	filters, keywords = []string{}, []string{}
	for _, s := range list {
		if eventNames[s] {
			filters = append(filters, s)
		} else {
			keywords = append(keywords, s)
		}
	}
	return filters, keywords, true
}
