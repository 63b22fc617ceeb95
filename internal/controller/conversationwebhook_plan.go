package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// desired is the webhook a spec asks for.
type desired struct {
	scope  twilio.Scope
	target string
	cfg    twilio.Configuration
	// observeOnly is managementPolicy Observe: nothing is written to Twilio.
	observeOnly bool
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
		observeOnly: spec.ManagementPolicy == v1alpha1.ManagementPolicyObserve,
	}
}

// stepKind is one thing the reconciler does next.
type stepKind string

// Steps. Each makes at most one write to Twilio and commits the ledger once.
const (
	// stepNone: Twilio matches the spec and the ledger is in order.
	stepNone stepKind = "None"
	// stepCreate creates the webhook (first create, recreate, replacement).
	stepCreate stepKind = "Create"
	// stepRecord records a webhook found in Twilio as the managed one
	// (a pending create's result, or a webhook adopted by annotation).
	stepRecord stepKind = "Record"
	// stepUpdate updates the managed webhook in place.
	stepUpdate stepKind = "Update"
	// stepAnnotate rewrites the bookkeeping annotations to match the ledger.
	stepAnnotate stepKind = "Annotate"
	// stepDeleteSuperseded deletes the webhook a replacement superseded.
	stepDeleteSuperseded stepKind = "DeleteSuperseded"
	// stepStall stops until a person changes something.
	stepStall stepKind = "Stall"
	// stepReport (managementPolicy Observe) reports what Twilio holds, writing nothing to it.
	stepReport stepKind = "Report"
	// stepWait waits for a pending create that may still be in flight (in
	// another manager, during a leader handover) before looking for its result again.
	stepWait stepKind = "Wait"
)

// Why a step is taken: its event reason.
const (
	whyFirst    = EventCreated
	whyRecreate = EventRecreated
	whyReplace  = EventReplaced
	whyRecover  = "Recovered"
	whyAdopt    = EventAdopted
	whyMatch    = "Matched"
	whySpec     = EventUpdated
	whyStaleSid = EventStaleWebhookSid
	whyBookkeep = "Bookkeeping"
)

// step is plan's decision.
type step struct {
	kind stepKind
	// why is the event reason; for stepStall, the condition reason.
	why string
	// webhook is the webhook to record (stepRecord).
	webhook *twilio.Webhook
	// supersede says the owned webhook still exists and must be deleted once
	// the new one is recorded (a replacement or an adoption).
	supersede bool
	// detail says what differs, for events and messages.
	detail string
}

// plan decides the next step from the spec, what Twilio holds and the ledger.
// It is pure: every input is in its arguments. Bookkeeping comes first, so a
// superseded webhook is deleted before anything could supersede another.
func plan(want desired, obs *observation, led *ledger, annotationsInSync bool) step {
	if want.observeOnly {
		return planObserve(obs, led, annotationsInSync)
	}
	switch {
	case led.pending != nil && obs.recovered != nil:
		return step{kind: stepRecord, why: whyRecover, webhook: obs.recovered, supersede: led.owned != nil}
	case led.pending != nil && obs.pendingInFlight:
		return step{kind: stepWait}
	case led.pending != nil:
		return step{kind: stepCreate, why: whyFirst, supersede: led.owned != nil}
	case !annotationsInSync && led.claimed() == "" && !obs.currentGone:
		return step{kind: stepAnnotate, why: whyBookkeep}
	case led.superseded != nil:
		return step{kind: stepDeleteSuperseded, why: whyReplace}
	case obs.conflict != "":
		return step{kind: stepStall, why: v1alpha1.ReasonSidConflict, detail: obs.conflict}
	case obs.claim != nil:
		return step{kind: stepRecord, why: whyAdopt, webhook: obs.claim, supersede: led.owned != nil}
	case led.owned == nil && obs.claimGone:
		return step{kind: stepCreate, why: whyRecreate, detail: led.annotated}
	case led.owned == nil:
		return step{kind: stepCreate, why: whyFirst}
	case obs.currentGone:
		return step{kind: stepCreate, why: whyRecreate, detail: led.owned.sid}
	}
	if s, ok := planCurrent(want, obs, led); ok {
		return s
	}
	if !annotationsInSync {
		return step{kind: stepAnnotate, why: whyStaleSid, detail: led.annotated}
	}
	return step{kind: stepNone}
}

// planObserve is plan for managementPolicy Observe: it records what it finds
// (a pending create's result, the webhook the annotation names or the one that
// matches the spec), never superseding, creating, updating or deleting.
func planObserve(obs *observation, led *ledger, annotationsInSync bool) step {
	switch {
	case led.pending != nil && obs.recovered != nil:
		return step{kind: stepRecord, why: whyRecover, webhook: obs.recovered}
	case obs.conflict != "":
		return step{kind: stepStall, why: v1alpha1.ReasonSidConflict, detail: obs.conflict}
	case obs.claim != nil && led.claimed() == "":
		// Not named by webhook-sid: found by listing for the spec's match.
		return step{kind: stepRecord, why: whyMatch, webhook: obs.claim}
	case obs.claim != nil:
		return step{kind: stepRecord, why: whyAdopt, webhook: obs.claim}
	case !annotationsInSync && obs.current != nil && (led.claimed() == "" || obs.claimGone):
		return step{kind: stepAnnotate, why: map[bool]string{true: whyStaleSid, false: whyBookkeep}[obs.claimGone], detail: led.annotated}
	}
	return step{kind: stepReport}
}

// planCurrent compares the owned webhook with the spec: a field Twilio cannot
// change in place, or a change an update did not apply, replaces it; any other
// difference updates it.
func planCurrent(want desired, obs *observation, led *ledger) (step, bool) {
	wh := obs.current
	if wh == nil {
		return step{}, false
	}
	if why := replaceReason(want, wh, led.owned.scope, led.replay); why != "" {
		if obs.answer == answerCreate {
			return step{kind: stepStall, why: v1alpha1.ReasonConfigurationRejected,
				detail: "Twilio's answer to the create differs from what was sent: " + why}, true
		}
		return step{kind: stepCreate, why: whyReplace, supersede: true, detail: why}, true
	}
	diff := configDiff(want.cfg, wh)
	if diff == "" {
		return step{}, false
	}
	switch obs.answer {
	case answerCreate:
		return step{kind: stepStall, why: v1alpha1.ReasonConfigurationRejected,
			detail: "Twilio's answer to the create differs from what was sent: " + diff}, true
	case answerUpdate:
		// Twilio cannot apply it in place (an empty list cannot be sent): replace.
		return step{kind: stepCreate, why: whyReplace, supersede: true, detail: diff + " (not applied by an update)"}, true
	}
	return step{kind: stepUpdate, why: whySpec, detail: diff}, true
}

// replaceReason names a field Twilio cannot update that differs, as
// "field Twilio's value → the spec's", or "".
func replaceReason(want desired, wh *twilio.Webhook, scope twilio.Scope, replay recordedReplay) string {
	d := replaceDiff(want, wh, scope, replay)
	if d == nil {
		return ""
	}
	return fmt.Sprintf("%s %s → %s", d.field, d.twilio, d.spec)
}

// replaceDiff finds a field Twilio cannot update that differs: conversation,
// service, target, or replayAfter (recorded when the webhook was created).
// Fields Twilio's answer left out never count as different.
func replaceDiff(want desired, wh *twilio.Webhook, scope twilio.Scope, replay recordedReplay) *fieldDiff {
	switch {
	case wh.Has(twilio.FieldTarget) && wh.Target != "" && !strings.EqualFold(wh.Target, want.target):
		return &fieldDiff{field: "target", spec: want.target, twilio: wh.Target}
	case !strings.EqualFold(scope.ConversationSid, want.scope.ConversationSid):
		return &fieldDiff{field: "conversationSid", spec: want.scope.ConversationSid, twilio: scope.ConversationSid}
	case !strings.EqualFold(scope.ServiceSid, want.scope.ServiceSid):
		return &fieldDiff{field: "serviceSid", spec: show(want.scope.ServiceSid), twilio: show(scope.ServiceSid)}
	}
	had, known := wh.Configuration.ReplayAfter, true
	if had == nil {
		had, known = replay.value, replay.known
	}
	if w := want.cfg.ReplayAfter; known && ((had == nil) != (w == nil) || had != nil && *had != *w) {
		return &fieldDiff{field: "replayAfter", spec: intString(w), twilio: intString(had)}
	}
	return nil
}

func intString(i *int32) string {
	if i == nil {
		return "unset"
	}
	return fmt.Sprint(*i)
}

// configDiff names the fields Twilio can update in place that differ, or "":
// method case-insensitively (Twilio's default is POST), filters and triggers as sets.
func configDiff(want twilio.Configuration, wh *twilio.Webhook) string {
	diffs := configDiffs(want, wh)
	names := make([]string, 0, len(diffs))
	for _, d := range diffs {
		names = append(names, d.field)
	}
	return strings.Join(names, ", ")
}

// fieldDiff is one field that differs: the spec's value and Twilio's.
type fieldDiff struct {
	field, spec, twilio string
}

func (d fieldDiff) String() string { return fmt.Sprintf("%s: %s → %s", d.field, d.spec, d.twilio) }

// configDiffs lists the updatable fields that differ. A field Twilio's answer
// left out (absent or null) is unknown, never different: it never causes an
// update or a replacement.
func configDiffs(want twilio.Configuration, wh *twilio.Webhook) []fieldDiff {
	got := wh.Configuration
	var diffs []fieldDiff
	add := func(field, answerField string, differ bool, spec, tw interface{}) {
		if differ && wh.Has(answerField) {
			diffs = append(diffs, fieldDiff{field: field, spec: show(spec), twilio: show(tw)})
		}
	}
	add("url", twilio.FieldURL, want.URL != got.URL, want.URL, got.URL)
	add("method", twilio.FieldMethod, want.Method != "" && normMethod(want.Method) != normMethod(got.Method), want.Method, got.Method)
	add("filters", twilio.FieldFilters, !sameSet(want.Filters, got.Filters), want.Filters, got.Filters)
	add("triggers", twilio.FieldTriggers, !sameSet(want.Triggers, got.Triggers), want.Triggers, got.Triggers)
	add("flowSid", twilio.FieldFlowSid, want.FlowSid != got.FlowSid, want.FlowSid, got.FlowSid)
	return diffs
}

// driftOf lists every field in which the webhook differs from the spec, as
// "field: spec → Twilio" (managementPolicy Observe's Synced message).
func driftOf(want desired, wh *twilio.Webhook, scope twilio.Scope, replay recordedReplay) []string {
	var out []string
	if d := replaceDiff(want, wh, scope, replay); d != nil {
		out = append(out, d.String())
	}
	for _, d := range configDiffs(want.cfg, wh) {
		out = append(out, d.String())
	}
	return out
}

func show(v interface{}) string {
	switch x := v.(type) {
	case string:
		if x == "" {
			return "unset"
		}
		return x
	case []string:
		if len(x) == 0 {
			return "[]"
		}
		sorted := slices.Clone(x)
		slices.Sort(sorted)
		return "[" + strings.Join(slices.Compact(sorted), " ") + "]"
	}
	return fmt.Sprint(v)
}

func normMethod(m string) string {
	if m == "" {
		return "post"
	}
	return strings.ToLower(m)
}

// configMatches says whether got's updatable fields match want.
func configMatches(want, got twilio.Configuration) bool {
	return len(configDiffs(want, &twilio.Webhook{Configuration: got})) == 0
}

// matchesSpec says whether an existing webhook is the one the spec describes
// (used to find the result of a create whose answer was lost).
func matchesSpec(want desired, wh *twilio.Webhook) bool {
	replayOK := wh.Configuration.ReplayAfter == nil || want.cfg.ReplayAfter == nil ||
		*wh.Configuration.ReplayAfter == *want.cfg.ReplayAfter
	targetOK := !wh.Has(twilio.FieldTarget) || strings.EqualFold(wh.Target, want.target)
	return targetOK && replayOK && len(configDiffs(want.cfg, wh)) == 0
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

// recordedReplay is the replayAfter the operator recorded for the owned webhook
// (Twilio may leave it out of its answers): known once the webhook was recorded.
type recordedReplay struct {
	value *int32
	known bool
}
