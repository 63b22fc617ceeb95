//go:build live

package live

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// TestSixthWebhook fills a throwaway conversation with five webhooks and checks
// how Twilio refuses a sixth.
func TestSixthWebhook(t *testing.T) {
	s := newSuite(t)
	scope := s.conversation()
	in := twilio.CreateWebhookInput{Target: "webhook", Configuration: twilio.Configuration{
		URL: "https://example.com/cwh-live/limit", Method: "POST", Filters: []string{"onMessageAdded"},
	}}
	for i := range 5 {
		wh, err := s.api.CreateWebhook(t.Context(), scope, in)
		if err != nil {
			s.assume("limit/five-webhooks-allowed", false, true, "create %d: %v", i+1, err)
			t.FailNow()
		}
		s.created(scope, wh.Sid)
	}
	s.assume("limit/five-webhooks-allowed", true, true, "5 created")
	wh, err := s.api.CreateWebhook(t.Context(), scope, in)
	if err == nil {
		s.created(scope, wh.Sid)
	}
	x := s.rec.last()
	s.assume("limit/sixth-webhook-is-50361", twilio.IsLimitReached(err) && twilio.IsTerminal(err), true,
		"HTTP %d, code %d, content type %q: %v", x.status, codeOf(err), x.contentType, err)
}

// TestMissingConversation checks what Twilio says to a create in a conversation
// that does not exist.
func TestMissingConversation(t *testing.T) {
	s := newSuite(t)
	scope := twilio.Scope{ConversationSid: "CH" + strings.Repeat("0", 32)}
	wh, err := s.api.CreateWebhook(t.Context(), scope, twilio.CreateWebhookInput{Target: "webhook", Configuration: twilio.Configuration{
		URL: "https://example.com/cwh-live/none", Method: "POST", Filters: []string{"onMessageAdded"},
	}})
	if err == nil {
		s.created(scope, wh.Sid)
	}
	x := s.rec.last()
	s.assume("missing-conversation/create-is-50350", twilio.IsConversationNotFound(err), true,
		"HTTP %d, code %d, content type %q: %v", x.status, codeOf(err), x.contentType, err)
	_, err = s.api.FetchWebhook(t.Context(), scope, "WH"+strings.Repeat("0", 32))
	x = s.rec.last()
	s.assume("missing-conversation/fetch-is-not-webhook-not-found", !twilio.IsNotFound(err) || twilio.IsConversationNotFound(err), false,
		"HTTP %d, code %d: %v", x.status, codeOf(err), err)
}

// TestWrongSecret checks that Twilio's refusal of credentials reads as
// unauthorized, and that the error never shows the secret.
func TestWrongSecret(t *testing.T) {
	s := newSuite(t)
	creds := env.creds
	const wrong = "0123456789abcdef0123456789abcdef"
	if creds.APIKeySid != "" {
		creds.APIKeySecret = wrong
	} else {
		creds.AuthToken = wrong
	}
	f, err := twilio.NewFactory(twilio.Options{BaseURL: env.apiURL, Transport: s.rec, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	api, err := f.For(creds)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, err = api.ListWebhooks(ctx, twilio.Scope{ConversationSid: "CH" + strings.Repeat("0", 32)})
	x := s.rec.last()
	s.assume("credentials/wrong-secret-is-unauthorized", twilio.IsUnauthorized(err) && twilio.IsTerminal(err), true,
		"HTTP %d, code %d, content type %q", x.status, codeOf(err), x.contentType)
	s.assume("credentials/error-shows-no-secret", err != nil && !strings.Contains(err.Error(), wrong), true, "%v", err)
}
