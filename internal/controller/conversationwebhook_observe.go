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
		obs.recovered, obs.unknown, err = r.findCreated(ctx, obj, api, led.pending, want, led.known())
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
			fillScope(obs.claim, want.scope, api.AccountSid())
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
	fillScope(obs.current, led.owned.scope, api.AccountSid())
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

// fillScope writes the request's scope into an answer, and the account the
// request acted for when the answer names it in another case or not at all: a
// webhook is recorded where it was asked for (the client refuses an answer
// naming another conversation, service or account), so that the next fetch and
// the deletion go to the webhook, never where an answer pointed.
func fillScope(wh *twilio.Webhook, scope twilio.Scope, account string) {
	if wh == nil {
		return
	}
	wh.ConversationSid, wh.ServiceSid = scope.ConversationSid, scope.ServiceSid
	if account != "" && (wh.AccountSid == "" || strings.EqualFold(wh.AccountSid, account)) {
		wh.AccountSid = account
	}
}

// unknownSlack is how long before a pending create's stamp a webhook can have
// been created and still be suspected to be its result (clocks differ).
const unknownSlack = time.Minute

// findCreated lists the conversation a pending create was sent to for its
// webhook: one that matches what that create sent (or, without a fingerprint,
// the spec) and that is not another object's (see elsewhere).
//
// When none does, unknown lists the webhooks created since that create that no
// object records: one of them may be its result, changed outside the operator
// before the operator could learn its SID, or claimed by another object's
// annotation. They are never adopted on a guess (they may be someone else's);
// the caller names them in a warning.
//
// A match that may be another object's create still in flight is not taken
// while it may be: a waitError says until when. exclude (what the object itself
// knows) and the answers of this manager's creates not recorded yet are never
// candidates.
func (r *ConversationWebhookReconciler) findCreated(ctx context.Context, obj *v1alpha1.ConversationWebhook, api twilio.WebhookAPI,
	p *pendingRecord, want desired, exclude []string) (*twilio.Webhook, []string, error) {
	exclude = append(slices.Clip(exclude), r.creates.unapplied(obj.UID)...)
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
	candidates := list[:0]
	credible := credibleStamp(p.since, r.Clock.Now())
	for _, wh := range list {
		// Made before the create was sent, it cannot be its result (a webhook
		// this object manages, or someone's made by hand). Without a credible
		// stamp, when the create was sent is unknown, as for a webhook
		// without a date.
		recent := !credible || wh.DateCreated.IsZero() || !wh.DateCreated.Before(p.since.Add(-unknownSlack))
		if recent && !slices.Contains(exclude, wh.Sid) {
			fillScope(&wh, p.scope, api.AccountSid())
			candidates = append(candidates, wh)
		}
	}
	if len(candidates) == 0 {
		return nil, nil, nil
	}
	others, err := r.othersIn(ctx, obj, p.scope, candidates)
	if err != nil {
		return nil, nil, err
	}
	var unknown []string
	wait := time.Duration(0)
	for i := range candidates {
		wh := &candidates[i]
		e := r.elsewhere(others, obj, wh)
		match := (p.fingerprint != "" && fingerprint(wh.Target, wh.Configuration) == p.fingerprint) ||
			(p.scope == want.scope && matchesSpec(want, wh))
		switch {
		case e.recorded:
		case e.inFlight > 0:
			wait = max(wait, e.inFlight)
		case match && !e.claimed:
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

// othersIn reads from the API server itself (the cache may not show yet what
// another object recorded a moment ago) the objects that name one of the
// webhooks, or that have a create pending in the conversation, page by page:
// only those are kept.
func (r *ConversationWebhookReconciler) othersIn(ctx context.Context, obj *v1alpha1.ConversationWebhook, scope twilio.Scope,
	hooks []twilio.Webhook) ([]v1alpha1.ConversationWebhook, error) {
	sids := make([]string, 0, len(hooks))
	for _, wh := range hooks {
		sids = append(sids, twilio.CanonicalSid(wh.Sid))
	}
	// The filter runs on the read's goroutine: it holds values, not obj.
	uid, conversation := obj.UID, scope.ConversationSid
	others, err := r.liveObjects(ctx, func(o *v1alpha1.ConversationWebhook) bool {
		if o.UID == uid {
			return false
		}
		if p := o.Status.PendingCreate; p != nil && strings.EqualFold(p.ConversationSid, conversation) {
			return true
		}
		return slices.ContainsFunc(SidsOf(o), func(sid string) bool { return slices.Contains(sids, sid) })
	})
	if err != nil {
		return nil, fmt.Errorf("listing objects that manage webhooks in %s: %w", scope, err)
	}
	return others, nil
}

// otherClaim is what other objects hold of a webhook found in a conversation.
type otherClaim struct {
	// recorded: another object records it (as its webhook, or as one it
	// superseded and is about to delete), or is recording it (its webhook-sid
	// annotation names it while its create in that conversation is pending:
	// the operator writes the annotation before status). Left to that object.
	recorded bool
	// claimed: an older object whose spec points at that conversation claims
	// it by annotation (it adopts it). Not taken; named in a warning.
	claimed bool
	// pending: another object's pending create, of any age, in that
	// conversation may have made it; inFlight is how long that create may
	// still be in flight (its stamp plus PendingGrace, from now).
	pending  bool
	inFlight time.Duration
}

// elsewhere says what other objects hold of a webhook found in a conversation
// (its scope filled in). A claim by a newer object, or by one whose spec points
// elsewhere, does not count (it loses to this object, or can never adopt the
// webhook): a user's annotation never makes a look leave a webhook silently.
func (r *ConversationWebhookReconciler) elsewhere(others []v1alpha1.ConversationWebhook, obj *v1alpha1.ConversationWebhook,
	wh *twilio.Webhook) otherClaim {
	var out otherClaim
	sid := twilio.CanonicalSid(wh.Sid)
	now := r.Clock.Now()
	fp := comparablePrint(wh)
	for i := range others {
		o := &others[i]
		if o.UID == obj.UID {
			continue
		}
		p := o.Status.PendingCreate
		pendingHere := p != nil && strings.EqualFold(p.ConversationSid, wh.ConversationSid) &&
			credibleStamp(p.Since.Time, now)
		recorded := recordsSid(o, sid)
		annotated := twilio.IsWebhookSid(o.Annotations[v1alpha1.AnnotationWebhookSid]) &&
			twilio.CanonicalSid(o.Annotations[v1alpha1.AnnotationWebhookSid]) == sid
		switch {
		case recorded, annotated && pendingHere:
			out.recorded = true
		case annotated && claimedFirst(o, obj) && strings.EqualFold(o.Spec.ConversationSid, wh.ConversationSid):
			out.claimed = true
		}
		if !pendingHere || !mayHaveMade(p, wh, fp) {
			continue
		}
		out.pending = true
		if r.PendingGrace > 0 {
			out.inFlight = max(out.inFlight, p.Since.Add(r.PendingGrace).Sub(now))
		}
	}
	return out
}

// comparablePrint is the webhook's fingerprint, or "" when the answer lacks a
// field the fingerprint covers (Twilio's spec marks them nullable): then it
// cannot be compared with what a create sent.
func comparablePrint(wh *twilio.Webhook) string {
	for _, f := range []string{twilio.FieldTarget, twilio.FieldURL, twilio.FieldMethod, twilio.FieldFilters,
		twilio.FieldTriggers, twilio.FieldFlowSid} {
		if !wh.Has(f) {
			return ""
		}
	}
	return fingerprint(wh.Target, wh.Configuration)
}

// mayHaveMade says whether a pending create may have made the webhook (fp:
// its comparablePrint): made after it was sent (give or take how clocks
// differ), with what it sent, when both are known (an earlier version's record
// has no fingerprint).
func mayHaveMade(p *v1alpha1.PendingCreate, wh *twilio.Webhook, fp string) bool {
	if !wh.DateCreated.IsZero() && wh.DateCreated.Before(p.Since.Add(-unknownSlack)) {
		return false
	}
	return p.Fingerprint == "" || fp == "" || p.Fingerprint == fp
}

// findMatching (managementPolicy Observe, nothing recorded and no webhook-sid)
// lists the spec's conversation for a webhook that matches the spec and that is
// not another object's: recorded or claimed by one, possibly made by one's
// pending create (of any age: its owner has not looked for it yet), or the
// answer of a create of this manager not applied yet. Observing, the object
// looks again next period.
func (r *ConversationWebhookReconciler) findMatching(ctx context.Context, obj *v1alpha1.ConversationWebhook, api twilio.WebhookAPI,
	want desired) (*twilio.Webhook, error) {
	list, err := api.ListWebhooks(ctx, want.scope)
	if err != nil {
		return nil, err
	}
	unapplied := r.creates.unapplied(obj.UID)
	matches := list[:0]
	for _, wh := range list {
		if matchesSpec(want, &wh) && !slices.Contains(unapplied, wh.Sid) {
			fillScope(&wh, want.scope, api.AccountSid())
			matches = append(matches, wh)
		}
	}
	if len(matches) == 0 {
		return nil, nil
	}
	others, err := r.othersIn(ctx, obj, want.scope, matches)
	if err != nil {
		return nil, err
	}
	for i := range matches {
		if e := r.elsewhere(others, obj, &matches[i]); !e.recorded && !e.claimed && !e.pending {
			return &matches[i], nil
		}
	}
	return nil, nil
}
