package controller

import (
	"context"
	"fmt"
	"slices"
	"time"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// observation is what Twilio holds for one object, read without writing.
type observation struct {
	// recovered is the webhook a pending create made, found by listing.
	recovered *twilio.Webhook
	// unknown lists webhooks created since a pending create that match nothing
	// and belong to no object: possibly its result, changed outside the operator.
	unknown []string
	// claim is the webhook the webhook-sid annotation names, when it differs
	// from the owned one; claimGone says Twilio answered that it does not exist.
	claim     *twilio.Webhook
	claimGone bool
	// conflict names another object that manages the claimed or owned SID.
	conflict string
	// current is the owned webhook as Twilio last answered; currentGone says
	// Twilio answered that it does not exist.
	current     *twilio.Webhook
	currentGone bool
	// answer says which write current is the answer of: "" (a fetch), or
	// answerCreate / answerUpdate (the spec was just sent).
	answer string
	// pendingInFlight says the pending create is young enough to be still in
	// flight somewhere (PendingGrace): its result may not be listed yet.
	pendingInFlight bool
}

// Which write an observation is the answer of.
const (
	answerCreate = "create"
	answerUpdate = "update"
)

// observe reads what the ledger points at: the pending create's conversation,
// the webhook the annotation claims, or the owned webhook. It never writes.
func (r *ConversationWebhookReconciler) observe(ctx context.Context, obj *v1alpha1.ConversationWebhook, api twilio.WebhookAPI,
	led *ledger, want desired) (observation, error) {
	var obs observation
	var err error
	if led.pending != nil {
		obs.recovered, obs.unknown, err = r.findCreated(ctx, obj, api, led.pending, want,
			append(led.known(), r.creates.unapplied(obj.UID)...))
		return obs, err
	}
	if claim := led.claimed(); claim != "" {
		if obs.conflict, err = r.conflictLive(ctx, obj, claim); err != nil || obs.conflict != "" {
			return obs, err
		}
		obs.claim, err = api.FetchWebhook(ctx, want.scope, claim)
		switch {
		case twilio.IsNotFound(err):
			obs.claimGone, err = true, nil
		case err != nil:
			return obs, err
		default:
			fillScope(obs.claim, want.scope)
			return obs, nil
		}
	}
	if led.owned == nil {
		if want.observeOnly && led.claimed() == "" {
			obs.claim, err = r.findMatching(ctx, obj, api, want)
		}
		return obs, err
	}
	if obs.conflict, err = r.conflict(ctx, obj, led.owned.sid, true); err != nil || obs.conflict != "" {
		return obs, err
	}
	obs.current, err = api.FetchWebhook(ctx, led.owned.scope, led.owned.sid)
	if twilio.IsNotFound(err) {
		return observation{claimGone: obs.claimGone, currentGone: true}, nil
	}
	fillScope(obs.current, led.owned.scope)
	return obs, err
}

// claimed is the SID the webhook-sid annotation asks to manage when it differs
// from the owned one: a user adopting a webhook, or a stale value re-applied
// from Git. The operator's own previous value (the superseded webhook) is not a claim.
func (led *ledger) claimed() string {
	switch {
	case led.annotated == "":
		return ""
	case led.owned != nil && led.annotated == led.owned.sid:
		return ""
	case led.superseded != nil && led.annotated == led.superseded.sid:
		return ""
	}
	return led.annotated
}

// fillScope completes an answer that left out where the webhook lives (Twilio's
// spec marks those fields nullable) with the scope it was read from.
func fillScope(wh *twilio.Webhook, scope twilio.Scope) {
	if wh == nil {
		return
	}
	if wh.ConversationSid == "" {
		wh.ConversationSid = scope.ConversationSid
	}
	if wh.ServiceSid == "" {
		wh.ServiceSid = scope.ServiceSid
	}
}

// unknownSlack is how long before a pending create's stamp a webhook can have
// been created and still be suspected to be its result (clocks differ).
const unknownSlack = time.Minute

// findCreated lists the conversation a pending create was sent to for its
// webhook: one that matches what that create sent (or, without a fingerprint,
// the spec) and that no other object manages.
//
// When none does, unknown lists the webhooks created since that create that no
// object manages: one of them may be its result, changed outside the operator
// before the operator could learn its SID. They are never adopted on a guess
// (they may be someone else's); the caller names them in a warning.
func (r *ConversationWebhookReconciler) findCreated(ctx context.Context, obj *v1alpha1.ConversationWebhook, api twilio.WebhookAPI,
	p *pendingRecord, want desired, exclude []string) (*twilio.Webhook, []string, error) {
	list, err := api.ListWebhooks(ctx, p.scope)
	switch {
	case twilio.IsConversationNotFound(err):
		return nil, nil, nil // no conversation, so nothing was created there
	case err != nil && twilio.IsTerminal(err) && !twilio.IsUnauthorized(err):
		return nil, nil, stalled(v1alpha1.ReasonCreateIncomplete,
			fmt.Errorf("a create may have succeeded, but the webhooks of %s cannot be listed to find it: %w", p.scope, err))
	case err != nil:
		return nil, nil, err
	}
	var unknown []string
	for i := range list {
		wh := &list[i]
		// Made before the create was sent, it cannot be its result (a webhook
		// this object manages, or someone's made by hand).
		recent := wh.DateCreated.IsZero() || !wh.DateCreated.Before(p.since.Add(-unknownSlack))
		if slices.Contains(exclude, wh.Sid) || !recent {
			continue
		}
		match := (p.fingerprint != "" && fingerprint(wh.Target, wh.Configuration) == p.fingerprint) ||
			(p.scope == want.scope && matchesSpec(want, wh))
		other, err := r.conflictLive(ctx, obj, wh.Sid)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case other != "":
		case match:
			fillScope(wh, p.scope)
			return wh, nil, nil
		default:
			unknown = append(unknown, wh.Sid)
		}
	}
	return nil, unknown, nil
}

// findMatching (managementPolicy Observe, nothing recorded and no webhook-sid)
// lists the spec's conversation for a webhook that matches the spec and that no
// other object manages.
func (r *ConversationWebhookReconciler) findMatching(ctx context.Context, obj *v1alpha1.ConversationWebhook, api twilio.WebhookAPI,
	want desired) (*twilio.Webhook, error) {
	list, err := api.ListWebhooks(ctx, want.scope)
	if err != nil {
		return nil, err
	}
	for i := range list {
		if !matchesSpec(want, &list[i]) {
			continue
		}
		other, err := r.conflictLive(ctx, obj, list[i].Sid)
		if err != nil {
			return nil, err
		}
		if other == "" {
			fillScope(&list[i], want.scope)
			return &list[i], nil
		}
	}
	return nil, nil
}
