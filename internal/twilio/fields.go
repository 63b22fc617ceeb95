package twilio

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

// carriesAny reports whether the answer carried at least one of fields.
func (w *Webhook) carriesAny(fields ...string) bool {
	for _, f := range fields {
		if w.Has(f) {
			return true
		}
	}
	return false
}
