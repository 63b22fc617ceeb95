package controller

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// TestElsewhere: which webhooks found in a conversation a look for a lost
// create (or an Observe object's look for a match) leaves to other objects.
func TestElsewhere(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	const (
		sid   = "WH0123456789abcdef0123456789abcdef"
		conv  = "CH0123456789abcdef0123456789abcdef"
		conv2 = "CHfedcba9876543210fedcba9876543210"
	)
	cfg := twilio.Configuration{URL: "https://hooks.example.com/a", Method: "POST", Filters: []string{"onMessageAdded"}}
	fp := fingerprint("webhook", cfg)
	wh := &twilio.Webhook{Sid: sid, ConversationSid: conv, Target: "webhook", Configuration: cfg, DateCreated: now.Add(-2 * time.Second)}
	self := v1alpha1.ConversationWebhook{ObjectMeta: metav1.ObjectMeta{Name: "self", Namespace: "team-a", UID: "self"}}
	other := func(mod func(*v1alpha1.ConversationWebhook)) v1alpha1.ConversationWebhook {
		o := v1alpha1.ConversationWebhook{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "team-b", UID: "other"}}
		mod(&o)
		return o
	}
	pending := func(since time.Time, conversation, fp string) func(*v1alpha1.ConversationWebhook) {
		return func(o *v1alpha1.ConversationWebhook) {
			o.Status.PendingCreate = &v1alpha1.PendingCreate{Since: metav1.NewTime(since), ConversationSid: conversation, Fingerprint: fp}
		}
	}
	upper := sid[:2] + strings.ToUpper(sid[2:])
	cases := []struct {
		name     string
		others   []v1alpha1.ConversationWebhook
		grace    time.Duration
		named    bool
		inFlight time.Duration
	}{
		{name: "nobody else", others: nil},
		{name: "recorded by another object, in upper case", others: []v1alpha1.ConversationWebhook{
			other(func(o *v1alpha1.ConversationWebhook) { o.Status.Sid = upper })}, named: true},
		{name: "superseded by another object", others: []v1alpha1.ConversationWebhook{
			other(func(o *v1alpha1.ConversationWebhook) {
				o.Status.SupersededWebhook = &v1alpha1.WebhookReference{Sid: sid}
			})}, named: true},
		{name: "claimed by another object's annotation (a record still being written)", others: []v1alpha1.ConversationWebhook{
			other(func(o *v1alpha1.ConversationWebhook) {
				o.Annotations = map[string]string{v1alpha1.AnnotationWebhookSid: sid}
			})}, named: true},
		{name: "named by the object itself", others: []v1alpha1.ConversationWebhook{
			func() v1alpha1.ConversationWebhook { o := self; o.Status.Sid = sid; return o }()}},
		{name: "another object's create in flight there, with what made it", others: []v1alpha1.ConversationWebhook{
			other(pending(now.Add(-3*time.Second), conv, fp))}, inFlight: 7 * time.Second},
		{name: "the longest of two in flight", others: []v1alpha1.ConversationWebhook{
			other(pending(now.Add(-3*time.Second), conv, fp)),
			func() v1alpha1.ConversationWebhook {
				o := other(pending(now.Add(-time.Second), conv[:2]+strings.ToUpper(conv[2:]), ""))
				o.UID = "third"
				return o
			}()}, inFlight: 9 * time.Second},
		{name: "in flight without a fingerprint (an earlier version's record)", others: []v1alpha1.ConversationWebhook{
			other(pending(now.Add(-3*time.Second), conv, ""))}, inFlight: 7 * time.Second},
		{name: "in flight in another conversation", others: []v1alpha1.ConversationWebhook{
			other(pending(now.Add(-3*time.Second), conv2, fp))}},
		{name: "in flight with something else", others: []v1alpha1.ConversationWebhook{
			other(pending(now.Add(-3*time.Second), conv, fingerprint("webhook", twilio.Configuration{URL: "https://other.example.com"})))}},
		{name: "in flight, but the webhook was made long before it", others: []v1alpha1.ConversationWebhook{
			other(pending(now.Add(2*unknownSlack), conv, fp))}},
		{name: "pending for longer than the grace: no longer in flight", others: []v1alpha1.ConversationWebhook{
			other(pending(now.Add(-11*time.Second), conv, fp))}},
		{name: "no grace: nothing is waited for", grace: -1, others: []v1alpha1.ConversationWebhook{
			other(pending(now.Add(-3*time.Second), conv, fp))}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &ConversationWebhookReconciler{PendingGrace: 10 * time.Second, Clock: clocktesting.NewFakePassiveClock(now)}
			if tc.grace < 0 {
				r.PendingGrace = 0
			}
			named, inFlight := r.elsewhere(tc.others, &self, wh)
			if named != tc.named {
				t.Errorf("named %v, want %v", named, tc.named)
			}
			if max(inFlight, 0) != tc.inFlight {
				t.Errorf("in flight for %s more, want %s", inFlight, tc.inFlight)
			}
		})
	}
}
