package twilio_test

import (
	"strings"
	"testing"

	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

func TestCredentialsAreTrimmed(t *testing.T) {
	e := newEnv(t)
	again, err := e.factory.For(twilio.Credentials{AccountSid: account + "\n", APIKeySid: keySid, APIKeySecret: keySecret + "\n"})
	if err != nil || again != e.client {
		t.Fatalf("trimmed credentials equal to the cached ones built a new client (%v)", err)
	}
	for name, creds := range map[string]twilio.Credentials{
		"API key from files made by echo": {AccountSid: account + "\n", APIKeySid: " " + keySid + "\n", APIKeySecret: keySecret + "\r\n"},
		"auth token with tabs":            {AccountSid: "\t" + account, AuthToken: authToken + "\n\t "},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := e.factory.For(creds)
			if err != nil {
				t.Fatalf("For: %v", err)
			}
			if c.AccountSid() != account {
				t.Fatalf("account %q", c.AccountSid())
			}
			if _, err := c.ListWebhooks(t.Context(), twilio.Scope{ConversationSid: conv}); err != nil {
				t.Fatalf("list with trimmed credentials: %v", err)
			}
		})
	}
}

func TestCredentialsTwilioGoWouldRefuse(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name   string
		creds  twilio.Credentials
		key    string
		secret string
	}{
		{"auth token with an inner newline", twilio.Credentials{AccountSid: account, AuthToken: "tokenSEC\nRET42"}, "authToken", "tokenSEC\nRET42"},
		{"auth token with a dash", twilio.Credentials{AccountSid: account, AuthToken: "tokenSEC-RET42"}, "authToken", "tokenSEC-RET42"},
		{"API key secret with a space", twilio.Credentials{AccountSid: account, APIKeySid: keySid, APIKeySecret: "keySEC RET42"}, "apiKeySecret", "keySEC RET42"},
		{"API key secret with unicode", twilio.Credentials{AccountSid: account, APIKeySid: keySid, APIKeySecret: "keySECRETé42"}, "apiKeySecret", "keySECRETé42"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.fake.ResetLog()
			c, err := e.factory.For(tc.creds)
			if c != nil || err == nil {
				t.Fatalf("For accepted credentials twilio-go refuses: %v", c)
			}
			apiErr := twilio.AsAPIError(err)
			if apiErr == nil || !twilio.IsUnauthorized(err) || !twilio.IsTerminal(err) || twilio.IsRetryable(err) {
				t.Fatalf("%v: want an *APIError, unauthorized, terminal", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.key) {
				t.Fatalf("message %q does not name the Secret key %s", msg, tc.key)
			}
			for _, part := range []string{tc.secret, strings.Fields(tc.secret)[0], authToken, keySecret} {
				if strings.Contains(msg, part) {
					t.Fatalf("message %q shows a credential value", msg)
				}
			}
			if n := len(e.fake.Requests()); n != 0 {
				t.Fatalf("%d requests sent", n)
			}
		})
	}
}

func TestCredentialShapeErrorsShowNoValue(t *testing.T) {
	e := newEnv(t)
	for _, creds := range []twilio.Credentials{
		{AccountSid: "ACsecretVALUE1"},
		{AccountSid: account, APIKeySid: "SKsecretVALUE1", APIKeySecret: "secretVALUE2"},
		{AccountSid: account, APIKeySid: keySid},
	} {
		_, err := e.factory.For(creds)
		if err == nil {
			t.Fatalf("%v accepted", creds)
		}
		for _, v := range []string{"secretVALUE1", "secretVALUE2"} {
			if strings.Contains(err.Error(), v) {
				t.Fatalf("error %q shows a value", err)
			}
		}
	}
}

func TestValidateJudgesTrimmedValues(t *testing.T) {
	if err := (twilio.Credentials{AccountSid: account + "\n", AuthToken: " " + authToken + "\n"}).Validate(); err != nil {
		t.Fatalf("newline-terminated values: %v", err)
	}
	if err := (twilio.Credentials{AccountSid: account, AuthToken: " \n"}).Validate(); err == nil {
		t.Fatal("a whitespace-only auth token passed")
	}
}
