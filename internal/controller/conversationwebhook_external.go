package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// Event reasons for changes made in Twilio.
const (
	EventCreated        = "Created"
	EventUpdated        = "Updated"
	EventDriftCorrected = "DriftCorrected"
	EventRecreated      = "Recreated"
	EventReplaced       = "Replaced"
	EventAdopted        = "Adopted"
	EventDeleted        = "Deleted"
	EventOrphaned       = "Orphaned"
	// EventPossibleOrphan (Warning) names webhooks that may be the unrecognisable
	// result of a create whose answer was lost.
	EventPossibleOrphan = "PossibleOrphan"
)

// desired is the webhook a spec asks for.
type desired struct {
	scope  twilio.Scope
	target string
	cfg    twilio.Configuration
}

func desiredOf(spec *v1alpha1.ConversationWebhookSpec) desired {
	cfg := twilio.Configuration{URL: spec.URL, Triggers: spec.Triggers, FlowSid: spec.FlowSid, ReplayAfter: spec.ReplayAfter}
	for _, f := range spec.Filters {
		cfg.Filters = append(cfg.Filters, string(f))
	}
	if spec.Target != v1alpha1.TargetStudio {
		cfg.Method = string(spec.Method)
		if cfg.Method == "" {
			cfg.Method = string(v1alpha1.MethodPOST)
		}
	}
	return desired{
		scope:  twilio.Scope{ServiceSid: spec.ServiceSid, ConversationSid: spec.ConversationSid},
		target: string(spec.Target), cfg: cfg,
	}
}

// configMatches compares the fields Twilio can update in place: method
// case-insensitively, filters and triggers as sets. Twilio's default method is POST.
func configMatches(want, got twilio.Configuration) bool {
	method := func(m string) string {
		if m == "" {
			return "post"
		}
		return strings.ToLower(m)
	}
	return want.URL == got.URL && want.FlowSid == got.FlowSid &&
		(want.Method == "" || method(want.Method) == method(got.Method)) &&
		sameSet(want.Filters, got.Filters) && sameSet(want.Triggers, got.Triggers)
}

// matchesSpec says whether an existing webhook is the one the spec describes
// (used to find the result of a create whose answer was lost).
func matchesSpec(want desired, wh *twilio.Webhook) bool {
	replayOK := wh.Configuration.ReplayAfter == nil || want.cfg.ReplayAfter == nil ||
		*wh.Configuration.ReplayAfter == *want.cfg.ReplayAfter
	return strings.EqualFold(wh.Target, want.target) && replayOK && configMatches(want.cfg, wh.Configuration)
}

// fingerprint identifies a webhook's target and configuration as Twilio returns
// them (method in lower case, filters and triggers sorted; replayAfter left out,
// since Twilio may not return it), so a created webhook can be recognised later.
func fingerprint(target string, cfg twilio.Configuration) string {
	norm := func(s []string) []string {
		out := slices.Clone(s)
		slices.Sort(out)
		return slices.Compact(out)
	}
	method, url := strings.ToLower(cfg.Method), cfg.URL
	if method == "" {
		method = "post"
	}
	if strings.EqualFold(target, string(v1alpha1.TargetStudio)) {
		method, url = "", ""
	}
	data, _ := json.Marshal([]interface{}{strings.ToLower(target), url, method, norm(cfg.Filters), norm(cfg.Triggers), cfg.FlowSid})
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:12])
}

func sameSet(a, b []string) bool {
	as, bs := slices.Clone(a), slices.Clone(b)
	slices.Sort(as)
	slices.Sort(bs)
	return slices.Equal(slices.Compact(as), slices.Compact(bs))
}

// recordedScope is where the managed webhook lives: as recorded in status for
// this SID, else where the spec points.
func recordedScope(obj *v1alpha1.ConversationWebhook, sid string, want desired) twilio.Scope {
	if obj.Status.Sid == sid && obj.Status.ConversationSid != "" {
		return twilio.Scope{ServiceSid: obj.Status.ServiceSid, ConversationSid: obj.Status.ConversationSid}
	}
	return want.scope
}

// replaceNeeded says whether the spec changed a field Twilio cannot update:
// conversation, service, target, or replayAfter (known only for a webhook this
// object created).
func replaceNeeded(obj *v1alpha1.ConversationWebhook, sid string, scope twilio.Scope, want desired, wh *twilio.Webhook) bool {
	if !strings.EqualFold(wh.Target, want.target) || !strings.EqualFold(wh.ConversationSid, want.scope.ConversationSid) ||
		!strings.EqualFold(scope.ServiceSid, want.scope.ServiceSid) {
		return true
	}
	if obj.Status.Sid != sid || obj.Status.Configuration == nil {
		return false
	}
	had, want2 := obj.Status.Configuration.ReplayAfter, want.cfg.ReplayAfter
	return (had == nil) != (want2 == nil) || (had != nil && *had != *want2)
}

// phaseError carries the phase a failure happened in (the Ready reason).
type phaseError struct {
	phase string
	err   error
}

func (e *phaseError) Error() string { return e.err.Error() }
func (e *phaseError) Unwrap() error { return e.err }

func inPhase(phase string, err error) error {
	if err == nil {
		return nil
	}
	var pe *phaseError
	if errors.As(err, &pe) {
		return err
	}
	return &phaseError{phase: phase, err: err}
}

// phaseOf names the phase of a failure: the one it carries, else Creating for an
// object without a webhook and Updating for one with a webhook.
func phaseOf(obj *v1alpha1.ConversationWebhook, err error) string {
	var pe *phaseError
	if errors.As(err, &pe) {
		return pe.phase
	}
	if managedSid(obj) == "" {
		return v1alpha1.ReasonCreating
	}
	return v1alpha1.ReasonUpdating
}

// sync observes the webhook and creates, recovers, corrects or replaces it.
func (r *ConversationWebhookReconciler) sync(ctx context.Context, obj *v1alpha1.ConversationWebhook, api twilio.WebhookAPI) error {
	want := desiredOf(&obj.Spec)
	sid := managedSid(obj)
	if sid == "" {
		return r.createOrRecover(ctx, obj, api, want)
	}
	if err := r.finishReplacement(ctx, obj, api, sid); err != nil {
		return inPhase(v1alpha1.ReasonReplacing, err)
	}
	scope := recordedScope(obj, sid, want)
	wh, err := api.FetchWebhook(ctx, scope, sid)
	switch {
	case twilio.IsNotFound(err):
		return r.recreate(ctx, obj, api, want, sid)
	case err != nil:
		return inPhase(v1alpha1.ReasonUpdating, err)
	case replaceNeeded(obj, sid, scope, want, wh):
		return r.replace(ctx, obj, api, want, scope, wh)
	}
	adopting := obj.Status.Sid != sid
	if !configMatches(want.cfg, wh.Configuration) {
		drift := !adopting && obj.Status.Configuration != nil && !configMatches(recordedConfig(obj), wh.Configuration)
		updated, err := api.UpdateWebhook(ctx, scope, sid, want.cfg)
		if twilio.IsNotFound(err) { // deleted since the fetch
			return r.recreate(ctx, obj, api, want, sid)
		}
		if err != nil {
			return inPhase(v1alpha1.ReasonUpdating, err)
		}
		if drift {
			r.Metrics.driftCorrected(DriftUpdate)
			r.event(obj, EventDriftCorrected, "Update", "Restored webhook %s, changed outside the operator, to the spec", sid)
		} else {
			r.event(obj, EventUpdated, "Update", "Updated webhook %s to the spec", sid)
		}
		wh = updated
	}
	if adopting {
		r.event(obj, EventAdopted, "Adopt", "Adopted existing webhook %s", sid)
	}
	recordWebhook(&obj.Status, wh, nil)
	if obj.Annotations[v1alpha1.AnnotationWebhookSid] != sid {
		return r.patchMeta(ctx, obj, false, func(o *v1alpha1.ConversationWebhook) { setAnnotation(o, v1alpha1.AnnotationWebhookSid, sid) })
	}
	return nil
}

// recreate creates the webhook again after Twilio answered 404 for it.
func (r *ConversationWebhookReconciler) recreate(ctx context.Context, obj *v1alpha1.ConversationWebhook, api twilio.WebhookAPI,
	want desired, sid string) error {
	r.Metrics.driftCorrected(DriftRecreate)
	return r.create(ctx, obj, api, want, EventRecreated, fmt.Sprintf(" (webhook %s was deleted outside the operator)", sid), nil)
}

func recordedConfig(obj *v1alpha1.ConversationWebhook) twilio.Configuration {
	c := obj.Status.Configuration
	return twilio.Configuration{URL: c.URL, Method: c.Method, Filters: c.Filters, Triggers: c.Triggers, FlowSid: c.FlowSid}
}

// createOrRecover creates the webhook, unless a create-pending marker says an
// earlier create may have succeeded unseen: then the conversation's webhooks are
// listed first and a match is adopted instead.
func (r *ConversationWebhookReconciler) createOrRecover(ctx context.Context, obj *v1alpha1.ConversationWebhook, api twilio.WebhookAPI, want desired) error {
	if _, pending := obj.Annotations[v1alpha1.AnnotationCreatePending]; pending {
		wh, unknown, err := r.findCreated(ctx, obj, api, want)
		if err != nil {
			return inPhase(v1alpha1.ReasonCreating, err)
		}
		if wh != nil {
			if err := r.patchMeta(ctx, obj, false, func(o *v1alpha1.ConversationWebhook) {
				setAnnotation(o, v1alpha1.AnnotationWebhookSid, wh.Sid)
				clearPending(o)
			}); err != nil {
				return inPhase(v1alpha1.ReasonCreating, err)
			}
			recordWebhook(&obj.Status, wh, nil)
			r.event(obj, EventAdopted, "Adopt", "Recovered webhook %s, created by an earlier attempt whose answer was lost", wh.Sid)
			// The spec may have changed since that create: bring the webhook to it.
			return r.sync(ctx, obj, api)
		}
		r.warnUnknown(obj, pendingScope(obj, want), unknown, "creating another")
	}
	if err := r.create(ctx, obj, api, want, EventCreated, "", nil); err != nil {
		return err
	}
	// A replacement interrupted before its create leaves the old webhook recorded.
	return inPhase(v1alpha1.ReasonReplacing, r.finishReplacement(ctx, obj, api, obj.Status.Sid))
}

// unknownSlack is how long before a pending create's stamp a webhook can have
// been created and still be suspected to be its result (clocks differ).
const unknownSlack = time.Minute

// findCreated lists the conversation's webhooks for the one a pending create made:
// it matches the configuration that create sent (create-pending-spec) or the
// current spec, no other object manages it, and it is not being replaced.
//
// When none does, unknown lists the webhooks created since that create that no
// object manages: one of them may be its result, changed outside the operator
// before the operator could learn its SID. They are never adopted on a guess
// (they may be someone else's); the caller names them in a warning.
func (r *ConversationWebhookReconciler) findCreated(ctx context.Context, obj *v1alpha1.ConversationWebhook, api twilio.WebhookAPI,
	want desired) (*twilio.Webhook, []string, error) {
	scope, sent := parsePendingSpec(obj.Annotations[v1alpha1.AnnotationCreatePendingSpec], want.scope)
	list, err := api.ListWebhooks(ctx, scope)
	switch {
	case twilio.IsConversationNotFound(err) || twilio.IsNotFound(err):
		// No conversation, so no webhook was created: drop the marker.
		if perr := r.patchMeta(ctx, obj, false, clearPending); perr != nil {
			return nil, nil, perr
		}
		if scope != want.scope {
			return nil, nil, nil // the spec has moved on to another conversation
		}
		return nil, nil, stalled(v1alpha1.ReasonConversationNotFound, err)
	case err != nil && twilio.IsTerminal(err) && !twilio.IsUnauthorized(err):
		return nil, nil, stalled(v1alpha1.ReasonCreateIncomplete,
			fmt.Errorf("a create may have succeeded, but the conversation's webhooks cannot be listed to find it: %w", err))
	case err != nil:
		return nil, nil, err
	}
	_, replacedSid := parseRef(obj.Annotations[v1alpha1.AnnotationReplacedWebhook])
	since, stampErr := time.Parse(time.RFC3339, obj.Annotations[v1alpha1.AnnotationCreatePending])
	var unknown []string
	for i := range list {
		wh := &list[i]
		if wh.Sid == replacedSid {
			continue
		}
		match := (sent != "" && fingerprint(wh.Target, wh.Configuration) == sent) || matchesSpec(want, wh)
		suspect := stampErr == nil && !wh.DateCreated.Before(since.Add(-unknownSlack))
		if !match && !suspect {
			continue
		}
		others, err := r.owners(ctx, obj, wh.Sid)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case len(others) > 0:
		case match:
			if wh.ConversationSid == "" {
				wh.ConversationSid = scope.ConversationSid
			}
			return wh, nil, nil
		default:
			unknown = append(unknown, wh.Sid)
		}
	}
	return nil, unknown, nil
}

// warnUnknown names the webhooks findCreated could not rule out as the result of
// a lost create; the operator leaves them in Twilio.
func (r *ConversationWebhookReconciler) warnUnknown(obj *v1alpha1.ConversationWebhook, scope twilio.Scope, unknown []string, doing string) {
	if len(unknown) == 0 {
		return
	}
	r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, EventPossibleOrphan, "Recover",
		"The webhook of an earlier create whose answer was lost was not found (%s). Webhook(s) %s in %s were created since, "+
			"belong to no ConversationWebhook and do not match what was sent: if one was that create's, changed outside the operator "+
			"before its SID was recorded, delete it by hand", doing, strings.Join(unknown, ", "), scope)
}

// create writes the create-pending marker (with an optimistic lock, so a stale
// view never creates), creates the webhook, and records its SID. 429 and 4xx
// answers clear the marker (Twilio created nothing); a timeout, a connection
// error or a 5xx keeps it for the next reconcile to resolve by listing.
func (r *ConversationWebhookReconciler) create(ctx context.Context, obj *v1alpha1.ConversationWebhook, api twilio.WebhookAPI,
	want desired, reason, why string, prepare func(*v1alpha1.ConversationWebhook)) error {
	stamp := r.Clock.Now().UTC().Format(time.RFC3339)
	if err := r.patchMeta(ctx, obj, true, func(o *v1alpha1.ConversationWebhook) {
		setAnnotation(o, v1alpha1.AnnotationCreatePending, stamp)
		setAnnotation(o, v1alpha1.AnnotationCreatePendingSpec, formatPendingSpec(want))
		controllerutil.AddFinalizer(o, v1alpha1.Finalizer)
		delete(o.Annotations, v1alpha1.AnnotationWebhookSid)
		if prepare != nil {
			prepare(o)
		}
	}); err != nil {
		return inPhase(v1alpha1.ReasonCreating, err)
	}
	wh, err := api.CreateWebhook(ctx, want.scope, twilio.CreateWebhookInput{Target: want.target, Configuration: want.cfg})
	if err != nil {
		if twilio.IsRateLimited(err) || twilio.IsTerminal(err) {
			if perr := r.patchMeta(ctx, obj, false, clearPending); perr != nil {
				err = errors.Join(err, perr)
			}
		}
		if twilio.IsNotFound(err) {
			err = stalled(v1alpha1.ReasonConversationNotFound, err)
		}
		return inPhase(v1alpha1.ReasonCreating, err)
	}
	if err := r.patchMeta(ctx, obj, false, func(o *v1alpha1.ConversationWebhook) {
		setAnnotation(o, v1alpha1.AnnotationWebhookSid, wh.Sid)
		clearPending(o)
	}); err != nil {
		return inPhase(v1alpha1.ReasonCreating, fmt.Errorf("recording created webhook %s: %w", wh.Sid, err))
	}
	recordWebhook(&obj.Status, wh, want.cfg.ReplayAfter)
	if reason != "" {
		r.event(obj, reason, "Create", "Created webhook %s in conversation %s%s", wh.Sid, want.scope, why)
	}
	return nil
}

// replace creates the webhook the new spec describes, records it, then deletes
// the old one. The old one is remembered in the replaced-webhook annotation until
// it is gone, so a crash in between leaves nothing behind.
func (r *ConversationWebhookReconciler) replace(ctx context.Context, obj *v1alpha1.ConversationWebhook, api twilio.WebhookAPI,
	want desired, oldScope twilio.Scope, old *twilio.Webhook) error {
	ref := formatRef(oldScope, old.Sid)
	if err := r.create(ctx, obj, api, want, "", "", func(o *v1alpha1.ConversationWebhook) {
		setAnnotation(o, v1alpha1.AnnotationReplacedWebhook, ref)
	}); err != nil {
		return inPhase(v1alpha1.ReasonReplacing, err)
	}
	return inPhase(v1alpha1.ReasonReplacing, r.finishReplacement(ctx, obj, api, obj.Status.Sid))
}

// finishReplacement deletes the webhook a replacement superseded, then forgets it.
func (r *ConversationWebhookReconciler) finishReplacement(ctx context.Context, obj *v1alpha1.ConversationWebhook, api twilio.WebhookAPI, current string) error {
	ref := obj.Annotations[v1alpha1.AnnotationReplacedWebhook]
	if ref == "" {
		return nil
	}
	scope, sid := parseRef(ref)
	if sid != "" && sid != current {
		if err := api.DeleteWebhook(ctx, scope, sid); err != nil && !gone(err) {
			return err
		}
		r.event(obj, EventReplaced, "Replace", "Replaced webhook %s with %s", sid, current)
	}
	return r.patchMeta(ctx, obj, false, func(o *v1alpha1.ConversationWebhook) {
		delete(o.Annotations, v1alpha1.AnnotationReplacedWebhook)
	})
}

// deleteExternal deletes the webhook (and a superseded one, and the result of a
// pending create) unless the policy is Orphan. A webhook that cannot be deleted
// for a reason only a person can fix (missing or rejected credentials) is left in
// Twilio with a Warning event naming it, so deletion never hangs on it.
func (r *ConversationWebhookReconciler) deleteExternal(ctx context.Context, obj *v1alpha1.ConversationWebhook) error {
	want := desiredOf(&obj.Spec)
	sid := managedSid(obj)
	if obj.Spec.DeletionPolicy == v1alpha1.DeletionPolicyOrphan {
		if sid != "" {
			r.event(obj, EventOrphaned, "Delete", "Left webhook %s in Twilio (deletionPolicy Orphan)", sid)
		}
		return nil
	}
	targets := map[string]twilio.Scope{}
	if sid != "" {
		targets[sid] = recordedScope(obj, sid, want)
	}
	if scope, old := parseRef(obj.Annotations[v1alpha1.AnnotationReplacedWebhook]); old != "" {
		targets[old] = scope
	}
	_, pending := obj.Annotations[v1alpha1.AnnotationCreatePending]
	if len(targets) == 0 && !pending {
		return nil
	}
	api, err := r.twilioFor(ctx, obj)
	unconfirmed := pending && sid == "" // a create whose webhook's SID is unknown
	pscope := pendingScope(obj, want)
	if err == nil && unconfirmed {
		var wh *twilio.Webhook
		var unknown []string
		if wh, unknown, err = r.findCreated(ctx, obj, api, want); wh != nil {
			targets[wh.Sid] = pscope
			unconfirmed = false
		}
		r.warnUnknown(obj, pscope, unknown, "deleting the object without it")
		var se *stalledError
		if errors.As(err, &se) && se.reason == v1alpha1.ReasonConversationNotFound {
			err = nil
		}
	}
	for delSid, scope := range targets {
		if err != nil {
			break
		}
		if err = api.DeleteWebhook(ctx, scope, delSid); err == nil || gone(err) {
			err = nil
			r.event(obj, EventDeleted, "Delete", "Deleted webhook %s", delSid)
		}
	}
	if _, terminal := classify(err); terminal {
		left := sortedKeys(targets)
		if unconfirmed {
			left = append(left, "any webhook a create whose answer was lost made in "+pscope.String())
		}
		r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, EventOrphaned, "Delete",
			"Deletion cannot reach Twilio (%s); left webhook(s) %s in Twilio: delete by hand", err.Error(), strings.Join(left, ", "))
		return nil
	}
	return err
}

// gone says a webhook no longer exists: it, or its conversation, is not found.
func gone(err error) bool {
	return twilio.IsNotFound(err) || twilio.IsConversationNotFound(err)
}

func (r *ConversationWebhookReconciler) event(obj *v1alpha1.ConversationWebhook, reason, action, note string, args ...interface{}) {
	r.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, reason, action, note, args...)
}

// clearPending removes the create-pending marker and its fingerprint.
func clearPending(o *v1alpha1.ConversationWebhook) {
	delete(o.Annotations, v1alpha1.AnnotationCreatePending)
	delete(o.Annotations, v1alpha1.AnnotationCreatePendingSpec)
}

func setAnnotation(o *v1alpha1.ConversationWebhook, key, value string) {
	if o.Annotations == nil {
		o.Annotations = map[string]string{}
	}
	o.Annotations[key] = value
}

// formatRef writes "[IS…/]CH…/WH…".
func formatRef(scope twilio.Scope, sid string) string { return scope.String() + "/" + sid }

// parseRef reads formatRef's output; a malformed value yields an empty SID.
func parseRef(ref string) (twilio.Scope, string) {
	parts := strings.Split(ref, "/")
	switch {
	case len(parts) == 2 && strings.HasPrefix(parts[0], "CH") && strings.HasPrefix(parts[1], "WH"):
		return twilio.Scope{ConversationSid: parts[0]}, parts[1]
	case len(parts) == 3 && strings.HasPrefix(parts[0], "IS") && strings.HasPrefix(parts[1], "CH") && strings.HasPrefix(parts[2], "WH"):
		return twilio.Scope{ServiceSid: parts[0], ConversationSid: parts[1]}, parts[2]
	}
	return twilio.Scope{}, ""
}

// formatPendingSpec writes where a create is sent and what it sends:
// "[IS…/]CH…:<fingerprint>". Recovery and deletion look for its webhook there,
// even after the spec moved to another conversation.
func formatPendingSpec(want desired) string {
	return want.scope.String() + ":" + fingerprint(want.target, want.cfg)
}

// parsePendingSpec reads formatPendingSpec's output; a value without a scope
// (or an unreadable one) means the spec's scope.
func parsePendingSpec(v string, specScope twilio.Scope) (twilio.Scope, string) {
	ref, fp, ok := strings.Cut(v, ":")
	if !ok {
		return specScope, v
	}
	if scope, _ := parseRef(ref + "/WH"); scope.ConversationSid != "" {
		return scope, fp
	}
	return specScope, fp
}

// pendingScope is where the pending create was sent.
func pendingScope(obj *v1alpha1.ConversationWebhook, want desired) twilio.Scope {
	scope, _ := parsePendingSpec(obj.Annotations[v1alpha1.AnnotationCreatePendingSpec], want.scope)
	return scope
}

func sortedKeys(m map[string]twilio.Scope) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
