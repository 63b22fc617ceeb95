package controller

import (
	"context"
	"errors"

	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// LeaseFence says whether this manager still holds the leader-election lease:
// its last renewal is recent enough that no other manager can have taken it.
// A leader frozen (a paused VM, SIGSTOP, a long GC) past its lease, then woken,
// keeps reconciling until its elector notices; the fence stops its writes to
// Twilio meanwhile.
type LeaseFence interface {
	// Held is true while the lease was renewed recently enough.
	Held() bool
}

// errLeaseLost is returned instead of a Twilio write when the lease may have passed to another manager.
var errLeaseLost = errors.New("this manager may no longer hold the leader-election lease: no write is sent to Twilio")

// fencedAPI checks the fence before every write to Twilio; reads pass.
type fencedAPI struct {
	twilio.WebhookAPI
	fence LeaseFence
}

func (f fencedAPI) held(op string) error {
	if f.fence.Held() {
		return nil
	}
	return &twilio.APIError{Operation: op, Message: errLeaseLost.Error(), Err: errLeaseLost}
}

func (f fencedAPI) CreateWebhook(ctx context.Context, scope twilio.Scope, in twilio.CreateWebhookInput) (*twilio.Webhook, error) {
	if err := f.held(twilio.OpCreate); err != nil {
		return nil, err
	}
	return f.WebhookAPI.CreateWebhook(ctx, scope, in)
}

func (f fencedAPI) UpdateWebhook(ctx context.Context, scope twilio.Scope, sid string, cfg twilio.Configuration) (*twilio.Webhook, error) {
	if err := f.held(twilio.OpUpdate); err != nil {
		return nil, err
	}
	return f.WebhookAPI.UpdateWebhook(ctx, scope, sid, cfg)
}

func (f fencedAPI) DeleteWebhook(ctx context.Context, scope twilio.Scope, sid string) error {
	if err := f.held(twilio.OpDelete); err != nil {
		return err
	}
	return f.WebhookAPI.DeleteWebhook(ctx, scope, sid)
}
