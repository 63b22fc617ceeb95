package controller

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// TestElsewhere: what other objects hold of a webhook found in a conversation,
// which a look for a lost create (or an Observe object's look for a match)
// leaves to them.
func TestElsewhere(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	const (
		sid   = "WH0123456789abcdef0123456789abcdef"
		conv  = "CH0123456789abcdef0123456789abcdef"
		conv2 = "CHfedcba9876543210fedcba9876543210"
	)
	cfg := twilio.Configuration{URL: "https://hooks.example.com/a", Method: "POST", Filters: []string{"onMessageAdded"}}
	fp := fingerprint("webhook", cfg)
	hook := func(mods ...func(*twilio.Webhook)) *twilio.Webhook {
		wh := &twilio.Webhook{Sid: sid, ConversationSid: conv, Target: "webhook", Configuration: cfg, DateCreated: now.Add(-2 * time.Second)}
		for _, m := range mods {
			m(wh)
		}
		return wh
	}
	self := v1alpha1.ConversationWebhook{ObjectMeta: metav1.ObjectMeta{Name: "self", Namespace: "team-a", UID: "self",
		CreationTimestamp: metav1.NewTime(now.Add(-time.Hour))}}
	n := 0
	other := func(mods ...func(*v1alpha1.ConversationWebhook)) v1alpha1.ConversationWebhook {
		n++
		o := v1alpha1.ConversationWebhook{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "team-b",
			UID: types.UID(fmt.Sprintf("other-%d", n)), CreationTimestamp: metav1.NewTime(now.Add(-time.Minute))}}
		o.Spec.ConversationSid = conv
		for _, m := range mods {
			m(&o)
		}
		return o
	}
	pending := func(since time.Time, conversation, fp string) func(*v1alpha1.ConversationWebhook) {
		return func(o *v1alpha1.ConversationWebhook) {
			o.Status.PendingCreate = &v1alpha1.PendingCreate{Since: metav1.NewTime(since), ConversationSid: conversation, Fingerprint: fp}
		}
	}
	annotated := func(v string) func(*v1alpha1.ConversationWebhook) {
		return func(o *v1alpha1.ConversationWebhook) {
			o.Annotations = map[string]string{v1alpha1.AnnotationWebhookSid: v}
		}
	}
	older := func(o *v1alpha1.ConversationWebhook) { o.CreationTimestamp = metav1.NewTime(now.Add(-2 * time.Hour)) }
	upper := sid[:2] + strings.ToUpper(sid[2:])
	cases := []struct {
		name   string
		others []v1alpha1.ConversationWebhook
		wh     *twilio.Webhook
		grace  time.Duration
		want   otherClaim
	}{
		{name: "nobody else"},
		{name: "recorded by another object, in upper case", others: []v1alpha1.ConversationWebhook{
			other(func(o *v1alpha1.ConversationWebhook) { o.Status.Sid = upper })}, want: otherClaim{recorded: true}},
		{name: "superseded by another object", others: []v1alpha1.ConversationWebhook{
			other(func(o *v1alpha1.ConversationWebhook) {
				o.Status.SupersededWebhook = &v1alpha1.WebhookReference{Sid: sid}
			})},
			want: otherClaim{recorded: true}},
		{name: "being recorded: annotated by an object whose create there is pending", others: []v1alpha1.ConversationWebhook{
			other(annotated(upper), pending(now.Add(-5*time.Second), conv, fp))},
			want: otherClaim{recorded: true, pending: true, inFlight: 5 * time.Second}},
		{name: "claimed by an older object's annotation, its spec in the conversation", others: []v1alpha1.ConversationWebhook{
			other(annotated(sid), older)}, want: otherClaim{claimed: true}},
		{name: "an annotation of a newer object does not count", others: []v1alpha1.ConversationWebhook{
			other(annotated(sid))}},
		{name: "an annotation of an older object whose spec points elsewhere does not count", others: []v1alpha1.ConversationWebhook{
			other(annotated(sid), older, func(o *v1alpha1.ConversationWebhook) { o.Spec.ConversationSid = conv2 })}},
		{name: "a malformed annotation does not count", others: []v1alpha1.ConversationWebhook{
			other(annotated(sid+"0"), older)}},
		{name: "named by the object itself", others: []v1alpha1.ConversationWebhook{
			func() v1alpha1.ConversationWebhook { o := self; o.Status.Sid = sid; return o }()}},
		{name: "another object's create in flight there, with what made it", others: []v1alpha1.ConversationWebhook{
			other(pending(now.Add(-3*time.Second), conv, fp))}, want: otherClaim{pending: true, inFlight: 7 * time.Second}},
		{name: "the longest of two in flight, conversations compared in any case", others: []v1alpha1.ConversationWebhook{
			other(pending(now.Add(-3*time.Second), conv, fp)),
			other(pending(now.Add(-time.Second), conv[:2]+strings.ToUpper(conv[2:]), ""))},
			want: otherClaim{pending: true, inFlight: 9 * time.Second}},
		{name: "in flight without a fingerprint (an earlier version's record)", others: []v1alpha1.ConversationWebhook{
			other(pending(now.Add(-3*time.Second), conv, ""))}, want: otherClaim{pending: true, inFlight: 7 * time.Second}},
		{name: "in flight in another conversation", others: []v1alpha1.ConversationWebhook{
			other(pending(now.Add(-3*time.Second), conv2, fp))}},
		{name: "in flight with something else", others: []v1alpha1.ConversationWebhook{
			other(pending(now.Add(-3*time.Second), conv, fingerprint("webhook", twilio.Configuration{URL: "https://other.example.com"})))}},
		{name: "something else, but Twilio answered the target null: it may be that create's", others: []v1alpha1.ConversationWebhook{
			other(pending(now.Add(-3*time.Second), conv, fingerprint("webhook", twilio.Configuration{URL: "https://other.example.com"})))},
			wh:   hook(func(wh *twilio.Webhook) { wh.Target = ""; wh.MarkAbsent(twilio.FieldTarget) }),
			want: otherClaim{pending: true, inFlight: 7 * time.Second}},
		{name: "in flight, but the webhook was made long before it", others: []v1alpha1.ConversationWebhook{
			other(pending(now.Add(unknownSlack/2), conv, fp))},
			wh: hook(func(wh *twilio.Webhook) { wh.DateCreated = now.Add(-unknownSlack) })},
		{name: "pending for longer than the grace: pending, no longer in flight", others: []v1alpha1.ConversationWebhook{
			other(pending(now.Add(-11*time.Second), conv, fp))}, want: otherClaim{pending: true}},
		{name: "a stamp further ahead than clocks differ is not credible", others: []v1alpha1.ConversationWebhook{
			other(pending(now.AddDate(10, 0, 0), conv, fp))},
			wh: hook(func(wh *twilio.Webhook) { wh.DateCreated = time.Time{} })}, // date_created null
		{name: "a stamp a little ahead (clocks differ) waits at most grace and that", others: []v1alpha1.ConversationWebhook{
			other(pending(now.Add(30*time.Second), conv, fp))}, want: otherClaim{pending: true, inFlight: 40 * time.Second}},
		{name: "no grace: pending, nothing waited for", grace: -1, others: []v1alpha1.ConversationWebhook{
			other(pending(now.Add(-3*time.Second), conv, fp))}, want: otherClaim{pending: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &ConversationWebhookReconciler{PendingGrace: 10 * time.Second, Clock: clocktesting.NewFakePassiveClock(now)}
			if tc.grace < 0 {
				r.PendingGrace = 0
			}
			wh := tc.wh
			if wh == nil {
				wh = hook()
			}
			if got := r.elsewhere(tc.others, &self, wh); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
