package importer

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// Limits of the ConversationWebhook CRD (api/v1alpha1 markers and CEL rules).
const (
	// MaxURLLength is spec.url's maxLength.
	MaxURLLength = 512
	// MaxTriggers is spec.triggers' maxItems.
	MaxTriggers = 5
	// MaxTriggerLength is the maxLength of one trigger keyword.
	MaxTriggerLength = 248
	// MaxFilters is spec.filters' maxItems.
	MaxFilters = 10
)

// Filters are the event names the CRD's spec.filters enum allows, in its order.
var Filters = []v1alpha1.Filter{
	"onMessageAdded", "onMessageUpdated", "onMessageRemoved",
	"onConversationUpdated", "onConversationStateUpdated", "onConversationRemoved",
	"onParticipantAdded", "onParticipantUpdated", "onParticipantRemoved",
	"onDeliveryUpdated",
}

// Problem is one reason the CRD would reject a spec: the field (a path such as
// spec.filters[1]) and why. Reason never repeats a url, which may carry a password.
type Problem struct {
	// Field is the path of the offending field, e.g. spec.triggers[0].
	Field string
	// Reason says why the CRD rejects it.
	Reason string
}

// String is "field: reason".
func (p Problem) String() string { return p.Field + ": " + p.Reason }

// IsEventFilter says whether name is one of the CRD's filter names.
func IsEventFilter(name string) bool {
	return slices.Contains(Filters, v1alpha1.Filter(name))
}

// Validate returns every rule of the ConversationWebhook CRD that spec breaks:
// the OpenAPI markers (patterns, enums, lengths, list sizes, sets) and the CEL
// rules of api/v1alpha1 (which fields each target requires or forbids, the url
// shape). It is pure and mirrors config/crd/bases; an empty result means the
// API server admits the spec. Fields the importer never writes (accountRef,
// credentialsSecretRef) are checked only as far as their presence goes.
func Validate(spec *v1alpha1.ConversationWebhookSpec) []Problem {
	var ps []Problem
	add := func(field, format string, args ...interface{}) {
		ps = append(ps, Problem{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if !twilio.IsConversationSid(spec.ConversationSid) {
		add("spec.conversationSid", "%q is not a conversation SID (CH + 32 hex digits)", spec.ConversationSid)
	}
	if spec.ServiceSid != "" && !twilio.IsServiceSid(spec.ServiceSid) {
		add("spec.serviceSid", "%q is not a Conversation Service SID (IS + 32 hex digits)", spec.ServiceSid)
	}
	target := spec.Target
	switch target {
	case v1alpha1.TargetWebhook, v1alpha1.TargetTrigger, v1alpha1.TargetStudio:
	default:
		add("spec.target", "%q is not a target the CRD knows (webhook, trigger, studio)", string(target))
	}
	ps = append(ps, validateURL(spec)...)
	switch spec.Method {
	case "", v1alpha1.MethodPOST:
	case v1alpha1.MethodGET:
		if target == v1alpha1.TargetStudio {
			add("spec.method", "must not be set when target is studio")
		}
	default:
		add("spec.method", "%q is not GET or POST", string(spec.Method))
	}
	ps = append(ps, validateFilters(spec)...)
	ps = append(ps, validateTriggers(spec)...)
	switch {
	case target == v1alpha1.TargetStudio && spec.FlowSid == "":
		add("spec.flowSid", "a studio webhook needs a flow SID, and Twilio returned none")
	case target != v1alpha1.TargetStudio && spec.FlowSid != "":
		add("spec.flowSid", "may only be set when target is studio")
	case spec.FlowSid != "" && !twilio.IsFlowSid(spec.FlowSid):
		add("spec.flowSid", "%q is not a Studio flow SID (FW + 32 hex digits)", spec.FlowSid)
	}
	if spec.ReplayAfter != nil && *spec.ReplayAfter < 0 {
		add("spec.replayAfter", "%d is negative", *spec.ReplayAfter)
	}
	switch spec.DeletionPolicy {
	case "", v1alpha1.DeletionPolicyDelete, v1alpha1.DeletionPolicyOrphan:
	default:
		add("spec.deletionPolicy", "%q is not Delete or Orphan", string(spec.DeletionPolicy))
	}
	switch spec.ManagementPolicy {
	case "", v1alpha1.ManagementPolicyFull, v1alpha1.ManagementPolicyObserve:
	default:
		add("spec.managementPolicy", "%q is not Full or Observe", string(spec.ManagementPolicy))
	}
	return ps
}

// validateURL mirrors the url rules: required for webhook and trigger, forbidden
// for studio, at most MaxURLLength characters, an absolute http or https URL
// with a host. Its reasons never quote the url.
func validateURL(spec *v1alpha1.ConversationWebhookSpec) []Problem {
	const field = "spec.url"
	u := spec.URL
	switch {
	case spec.Target == v1alpha1.TargetStudio && u != "":
		return []Problem{{field, "must not be set when target is studio"}}
	case u == "" && (spec.Target == v1alpha1.TargetWebhook || spec.Target == v1alpha1.TargetTrigger):
		return []Problem{{field, "is required when target is webhook or trigger, and Twilio returned none"}}
	case u == "":
		return nil
	}
	var ps []Problem
	if n := utf8.RuneCountInString(u); n > MaxURLLength {
		ps = append(ps, Problem{field, fmt.Sprintf("is %d characters long, more than the CRD's %d", n, MaxURLLength)})
	}
	if !absoluteHTTPURL(u) {
		ps = append(ps, Problem{field, "is not an absolute http or https URL with a host"})
	}
	return ps
}

// absoluteHTTPURL mirrors the CRD's CEL rule on url: isURL, scheme http or
// https, and a non-empty hostname. Kubernetes' isURL checks with
// url.ParseRequestURI; its url() then parses again with url.Parse.
func absoluteHTTPURL(s string) bool {
	if _, err := url.ParseRequestURI(s); err != nil {
		return false
	}
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	return (u.Scheme == "http" || u.Scheme == "https") && u.Hostname() != ""
}

func validateFilters(spec *v1alpha1.ConversationWebhookSpec) []Problem {
	var ps []Problem
	if spec.Target == v1alpha1.TargetWebhook && len(spec.Filters) == 0 {
		ps = append(ps, Problem{"spec.filters", "a webhook target needs at least one event filter, and Twilio returned none"})
	}
	if len(spec.Filters) > MaxFilters {
		ps = append(ps, Problem{"spec.filters", fmt.Sprintf("has %d entries, more than the CRD's %d", len(spec.Filters), MaxFilters)})
	}
	seen := map[v1alpha1.Filter]bool{}
	for i, f := range spec.Filters {
		field := fmt.Sprintf("spec.filters[%d]", i)
		switch {
		case !IsEventFilter(string(f)):
			ps = append(ps, Problem{field, fmt.Sprintf("%q is not an event name the CRD knows (%s)", string(f), joinFilters())})
		case seen[f]:
			ps = append(ps, Problem{field, fmt.Sprintf("%q is listed twice (a set)", string(f))})
		}
		seen[f] = true
	}
	return ps
}

func validateTriggers(spec *v1alpha1.ConversationWebhookSpec) []Problem {
	const field = "spec.triggers"
	switch {
	case spec.Target == v1alpha1.TargetTrigger && len(spec.Triggers) == 0:
		return []Problem{{field, "a trigger target needs 1 to 5 keywords, and Twilio returned none"}}
	case spec.Target != v1alpha1.TargetTrigger && spec.Triggers != nil:
		return []Problem{{field, "may only be set when target is trigger"}}
	}
	var ps []Problem
	if len(spec.Triggers) > MaxTriggers {
		ps = append(ps, Problem{field, fmt.Sprintf("has %d keywords, more than the CRD's %d", len(spec.Triggers), MaxTriggers)})
	}
	seen := map[string]bool{}
	for i, t := range spec.Triggers {
		item := fmt.Sprintf("%s[%d]", field, i)
		switch n := utf8.RuneCountInString(t); {
		case n == 0:
			ps = append(ps, Problem{item, "is empty"})
		case n > MaxTriggerLength:
			ps = append(ps, Problem{item, fmt.Sprintf("is %d characters long, more than the CRD's %d", n, MaxTriggerLength)})
		case seen[t]:
			ps = append(ps, Problem{item, fmt.Sprintf("%q is listed twice (a set)", t)})
		}
		seen[t] = true
	}
	return ps
}

func joinFilters() string {
	names := make([]string, len(Filters))
	for i, f := range Filters {
		names[i] = string(f)
	}
	return strings.Join(names, ", ")
}
