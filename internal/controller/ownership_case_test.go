package controller

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

const (
	caseConv  = "CH0123456789abcdef0123456789abcdef"
	caseLower = "WH0123456789abcdef0123456789abcdef"
	caseUpper = "WH0123456789ABCDEF0123456789ABCDEF"
	caseOther = "WHfedcba9876543210fedcba9876543210"
)

func TestLedgerReadsSidsInCanonicalForm(t *testing.T) {
	want := desired{scope: twilio.Scope{ConversationSid: caseConv}}
	cases := []struct {
		name                   string
		status                 v1alpha1.ConversationWebhookStatus
		annotation             string
		owned, superseded      string
		claimed                string
		annotationNeedsRewrite bool
	}{
		{name: "owned in upper case", status: v1alpha1.ConversationWebhookStatus{Sid: caseUpper, ConversationSid: caseConv},
			annotation: caseLower, owned: caseLower},
		{name: "annotation in upper case names the owned webhook: no claim, no rewrite",
			status: v1alpha1.ConversationWebhookStatus{Sid: caseLower, ConversationSid: caseConv}, annotation: caseUpper, owned: caseLower},
		{name: "annotation names another webhook: a claim, rewritten once the claim is resolved",
			status: v1alpha1.ConversationWebhookStatus{Sid: caseLower, ConversationSid: caseConv}, annotation: caseOther,
			owned: caseLower, claimed: caseOther, annotationNeedsRewrite: true},
		{name: "a superseded record naming the owned webhook in another case is dropped",
			status: v1alpha1.ConversationWebhookStatus{Sid: caseLower, ConversationSid: caseConv,
				SupersededWebhook: &v1alpha1.WebhookReference{Sid: caseUpper, ConversationSid: caseConv}},
			annotation: caseLower, owned: caseLower},
		{name: "a superseded record naming the owned webhook in the same case is dropped",
			status: v1alpha1.ConversationWebhookStatus{Sid: caseLower, ConversationSid: caseConv,
				SupersededWebhook: &v1alpha1.WebhookReference{Sid: caseLower, ConversationSid: caseConv}},
			annotation: caseLower, owned: caseLower},
		{name: "another superseded webhook is kept, in canonical form",
			status: v1alpha1.ConversationWebhookStatus{Sid: caseOther, ConversationSid: caseConv,
				SupersededWebhook: &v1alpha1.WebhookReference{Sid: caseUpper, ConversationSid: caseConv}},
			annotation: caseOther, owned: caseOther, superseded: caseLower},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := &v1alpha1.ConversationWebhook{
				ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{v1alpha1.AnnotationWebhookSid: tc.annotation},
					Finalizers: []string{v1alpha1.Finalizer}, CreationTimestamp: metav1.NewTime(time.Now())},
				Status: tc.status,
			}
			led, err := readLedger(obj, want)
			if err != nil {
				t.Fatal(err)
			}
			if led.owned == nil || led.owned.sid != tc.owned {
				t.Errorf("owned %+v, want %s", led.owned, tc.owned)
			}
			gotSuperseded := ""
			if led.superseded != nil {
				gotSuperseded = led.superseded.sid
			}
			if gotSuperseded != tc.superseded {
				t.Errorf("superseded %q, want %q", gotSuperseded, tc.superseded)
			}
			if got := led.claimed(); got != tc.claimed {
				t.Errorf("claimed %q, want %q", got, tc.claimed)
			}
			if got := !led.metaInSync(obj); got != tc.annotationNeedsRewrite {
				t.Errorf("annotations to write: %v, want %v", got, tc.annotationNeedsRewrite)
			}
		})
	}
}

func TestScopeLocksKeyOnTheConversationAlone(t *testing.T) {
	var locks scopeLocks
	unlock := locks.lock(twilio.Scope{ConversationSid: caseConv})
	taken := make(chan struct{})
	go func() {
		defer locks.lock(twilio.Scope{ServiceSid: "IS0123456789abcdef0123456789abcdef", ConversationSid: "CH0123456789ABCDEF0123456789ABCDEF"})()
		close(taken)
	}()
	select {
	case <-taken:
		t.Fatal("the same conversation, in upper case and with its service, was locked while held")
	case <-time.After(100 * time.Millisecond):
	}
	unlock()
	<-taken
}
