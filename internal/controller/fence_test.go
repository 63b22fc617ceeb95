package controller

import (
	"context"
	"errors"
	"testing"

	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

type fenceFunc func() bool

func (f fenceFunc) Held() bool { return f() }

func TestFencedAPISendsNoWriteWithoutTheLease(t *testing.T) {
	held := false
	sent := 0
	inner := &webhookAPIFns{t: t,
		create: func(twilio.Scope, twilio.CreateWebhookInput) (*twilio.Webhook, error) {
			sent++
			return &twilio.Webhook{}, nil
		},
		update: func(twilio.Scope, string, twilio.Configuration) (*twilio.Webhook, error) {
			sent++
			return &twilio.Webhook{}, nil
		},
		del:   func(twilio.Scope, string) error { sent++; return nil },
		fetch: func(twilio.Scope, string) (*twilio.Webhook, error) { return &twilio.Webhook{}, nil },
	}
	api := fencedAPI{WebhookAPI: inner, fence: fenceFunc(func() bool { return held })}
	ctx := context.Background()
	writes := func() []error {
		_, e1 := api.CreateWebhook(ctx, twilio.Scope{}, twilio.CreateWebhookInput{})
		_, e2 := api.UpdateWebhook(ctx, twilio.Scope{}, planOwned, twilio.Configuration{})
		return []error{e1, e2, api.DeleteWebhook(ctx, twilio.Scope{}, planOwned)}
	}
	for _, err := range writes() {
		if !errors.Is(err, errLeaseLost) || !twilio.IsRetryable(err) || twilio.IsTerminal(err) {
			t.Fatalf("a write without the lease: %v, want a retryable errLeaseLost", err)
		}
	}
	if sent != 0 {
		t.Fatalf("%d writes sent without the lease", sent)
	}
	if _, err := api.FetchWebhook(ctx, twilio.Scope{}, planOwned); err != nil {
		t.Fatalf("a read is fenced: %v", err)
	}
	held = true
	for _, err := range writes() {
		if err != nil {
			t.Fatal(err)
		}
	}
	if sent != 3 {
		t.Fatalf("%d writes sent with the lease, want 3", sent)
	}
}
