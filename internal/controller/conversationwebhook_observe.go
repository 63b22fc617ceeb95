package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
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
// the spec) and that no other object names.
//
// When none does, unknown lists the webhooks created since that create that no
// object names: one of them may be its result, changed outside the operator
// before the operator could learn its SID. They are never adopted on a guess
// (they may be someone else's); the caller names them in a warning.
//
// A match that may be another object's create still in flight is not taken
// while it may be: a waitError says until when.
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
	var others []v1alpha1.ConversationWebhook
	listed := false
	var unknown []string
	wait := time.Duration(0)
	for i := range list {
		wh := &list[i]
		// Made before the create was sent, it cannot be its result (a webhook
		// this object manages, or someone's made by hand).
		recent := wh.DateCreated.IsZero() || !wh.DateCreated.Before(p.since.Add(-unknownSlack))
		if slices.Contains(exclude, wh.Sid) || !recent {
			continue
		}
		fillScope(wh, p.scope)
		if !listed {
			if others, err = r.liveObjects(ctx); err != nil {
				return nil, nil, fmt.Errorf("listing objects that manage webhooks in %s: %w", p.scope, err)
			}
			listed = true
		}
		named, inFlight := r.elsewhere(others, obj, wh)
		match := (p.fingerprint != "" && fingerprint(wh.Target, wh.Configuration) == p.fingerprint) ||
			(p.scope == want.scope && matchesSpec(want, wh))
		switch {
		case named:
		case inFlight > 0:
			wait = max(wait, inFlight)
		case match:
			return wh, nil, nil
		default:
			unknown = append(unknown, wh.Sid)
		}
	}
	if wait > 0 {
		return nil, nil, &waitError{after: wait}
	}
	return nil, unknown, nil
}

// elsewhere says whether a webhook found in a conversation (its scope filled
// in) may be another object's rather than one to take: another object names it
// (records it, supersedes it, or claims it by annotation — the operator writes
// the annotation before status, so an annotation may be a record still being
// written), or it may be the result of another object's create still in flight
// (a pending record younger than PendingGrace, sent to this conversation with
// what made this webhook): inFlight is how long that may last.
func (r *ConversationWebhookReconciler) elsewhere(others []v1alpha1.ConversationWebhook, obj *v1alpha1.ConversationWebhook,
	wh *twilio.Webhook) (named bool, inFlight time.Duration) {
	sid := twilio.CanonicalSid(wh.Sid)
	for i := range others {
		o := &others[i]
		if o.UID == obj.UID {
			continue
		}
		if slices.Contains(SidsOf(o), sid) {
			return true, 0
		}
		p := o.Status.PendingCreate
		switch {
		case p == nil, r.PendingGrace <= 0, !strings.EqualFold(p.ConversationSid, wh.ConversationSid),
			p.Fingerprint != "" && p.Fingerprint != fingerprint(wh.Target, wh.Configuration),
			!wh.DateCreated.IsZero() && wh.DateCreated.Before(p.Since.Add(-unknownSlack)):
			continue
		}
		inFlight = max(inFlight, p.Since.Add(r.PendingGrace).Sub(r.Clock.Now()))
	}
	return false, inFlight
}

// findMatching (managementPolicy Observe, nothing recorded and no webhook-sid)
// lists the spec's conversation for a webhook that matches the spec and that no
// other object names, nor may be about to record (an answered create not
// applied yet, a create in flight).
func (r *ConversationWebhookReconciler) findMatching(ctx context.Context, obj *v1alpha1.ConversationWebhook, api twilio.WebhookAPI,
	want desired) (*twilio.Webhook, error) {
	list, err := api.ListWebhooks(ctx, want.scope)
	if err != nil {
		return nil, err
	}
	unapplied := r.creates.unapplied(obj.UID)
	var others []v1alpha1.ConversationWebhook
	listed := false
	for i := range list {
		wh := &list[i]
		if !matchesSpec(want, wh) || slices.Contains(unapplied, wh.Sid) {
			continue
		}
		if !listed {
			if others, err = r.liveObjects(ctx); err != nil {
				return nil, fmt.Errorf("listing objects that manage webhooks in %s: %w", want.scope, err)
			}
			listed = true
		}
		fillScope(wh, want.scope)
		if named, inFlight := r.elsewhere(others, obj, wh); !named && inFlight <= 0 {
			return wh, nil
		}
	}
	return nil, nil
}
