package controller

import (
	"testing"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// DESIGN.md, "Ready is earned": Twilio's spec examples return a trigger's
// keywords under configuration.filters; "read both shapes, and never replace or
// update because a field is absent". The client decodes that shape
// (DecodeWebhookConfiguration); plan must then see nothing to do.
func TestAttackPlanTriggerKeywordsUnderFilters(t *testing.T) {
	const conv = "CH0123456789abcdef0123456789abcdef"
	const sid = "WH0123456789abcdef0123456789abcdef"
	spec := v1alpha1.ConversationWebhookSpec{ConversationSid: conv, Target: v1alpha1.TargetTrigger,
		URL: "https://hooks.example.com/t", Method: v1alpha1.MethodPOST, Triggers: []string{"help", "stop"}}
	want := desiredOf(&spec)
	var raw interface{} = map[string]interface{}{"url": spec.URL, "method": "post", "filters": []interface{}{"help", "stop"}}
	wh := &twilio.Webhook{Sid: sid, ConversationSid: conv, Target: "trigger",
		Configuration: twilio.DecodeWebhookConfiguration("trigger", &raw)}
	led := ledger{owned: &ref{sid: sid, scope: want.scope}, annotated: sid, replay: recordedReplay{known: true}}
	for _, answer := range []string{"", answerCreate, answerUpdate} {
		st := plan(want, &observation{current: wh, answer: answer}, &led, true)
		if st.kind != stepNone {
			t.Errorf("answer %q: Twilio holds the spec's keywords (under filters), but plan says %s %s: %s", answer, st.kind, st.why, st.detail)
		}
	}
}

// Same rule: an update's answer that leaves filters out (null) is no reason to
// replace the webhook (planCurrent takes any difference in an update's answer
// as "Twilio cannot apply it in place").
func TestAttackPlanAbsentFiltersNeverReplace(t *testing.T) {
	const conv = "CH0123456789abcdef0123456789abcdef"
	const sid = "WH0123456789abcdef0123456789abcdef"
	spec := v1alpha1.ConversationWebhookSpec{ConversationSid: conv, Target: v1alpha1.TargetWebhook,
		URL: "https://hooks.example.com/w", Method: v1alpha1.MethodPOST, Filters: []v1alpha1.Filter{"onMessageAdded"}}
	want := desiredOf(&spec)
	wh := &twilio.Webhook{Sid: sid, ConversationSid: conv, Target: "webhook",
		Configuration: twilio.Configuration{URL: spec.URL, Method: "post"}}
	wh.MarkAbsent(twilio.FieldFilters) // answered null, as the decoder records it
	led := ledger{owned: &ref{sid: sid, scope: want.scope}, annotated: sid, replay: recordedReplay{known: true}}
	st := plan(want, &observation{current: wh, answer: answerUpdate}, &led, true)
	if st.kind == stepCreate {
		t.Errorf("an update's answer without filters: plan says %s %s: %s", st.kind, st.why, st.detail)
	}
}
