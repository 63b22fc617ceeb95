// Package importer turns webhooks that already exist in Twilio into
// ConversationWebhook objects, for cwh-import and for tests that apply its
// output. It reads Twilio through twilio.WebhookAPI and never writes to it.
// An object is returned only if the CRD would admit it (see Validate); every
// other webhook comes back as a Refusal naming the fields it cannot express.
package importer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// DefaultNamePrefix is put before the lowercased WH… SID to name an object.
const DefaultNamePrefix = "wh-"

// Options shape the objects Manifests returns.
type Options struct {
	// Namespace of every object; empty leaves metadata.namespace unset, for
	// kubectl apply -n or a kustomization to choose.
	Namespace string
	// NamePrefix is put before the lowercased webhook SID to make
	// metadata.name. Empty means DefaultNamePrefix.
	NamePrefix string
	// Manage writes managementPolicy Full and deletionPolicy Delete: the operator
	// takes the webhook over at once. Without it the objects only observe
	// (managementPolicy Observe) and are orphaned on deletion (deletionPolicy
	// Orphan), so that neither drift correction nor pruning touches a webhook
	// before its team has reviewed the imported spec.
	Manage bool
	// Account, when set, is written as spec.accountRef; unset, the objects use
	// the operator's --default-account.
	Account *v1alpha1.AccountReference
}

// Validate checks the options: the namespace and the names they make must be
// DNS-1123 names.
func (o Options) Validate() error {
	if o.Namespace != "" {
		if errs := validation.IsDNS1123Label(o.Namespace); len(errs) > 0 {
			return fmt.Errorf("namespace %q: %s", o.Namespace, strings.Join(errs, "; "))
		}
	}
	sample := o.name("WH" + strings.Repeat("0", 32))
	if errs := validation.IsDNS1123Subdomain(sample); len(errs) > 0 {
		return fmt.Errorf("name prefix %q makes names such as %q: %s", o.NamePrefix, sample, strings.Join(errs, "; "))
	}
	return nil
}

func (o Options) name(webhookSid string) string {
	prefix := o.NamePrefix
	if prefix == "" {
		prefix = DefaultNamePrefix
	}
	return prefix + strings.ToLower(webhookSid)
}

// Refusal is a webhook that no ConversationWebhook can express: the CRD would
// reject the object made from Twilio's answer. Problems name each field.
type Refusal struct {
	// Scope is the conversation the webhook was listed in.
	Scope twilio.Scope
	// WebhookSid is the webhook's WH… SID as Twilio returned it.
	WebhookSid string
	// Target is the webhook's target as Twilio returned it.
	Target string
	// Problems are the rules the object would break, one per field.
	Problems []Problem
}

// String is one line per problem, each naming the webhook and its conversation.
func (r Refusal) String() string {
	lines := make([]string, 0, len(r.Problems))
	for _, p := range r.Problems {
		lines = append(lines, fmt.Sprintf("refused %s (conversation %s): %s", r.WebhookSid, r.Scope, p))
	}
	return strings.Join(lines, "\n")
}

// ParseScope reads "CH…" or "IS…/CH…" and checks each SID against its
// pattern, so that nothing unchecked reaches a Twilio URL path.
func ParseScope(s string) (twilio.Scope, error) {
	s = strings.TrimSpace(s)
	service, conversation, scoped := strings.Cut(s, "/")
	if !scoped {
		service, conversation = "", s
	}
	if scoped && !twilio.IsServiceSid(service) {
		return twilio.Scope{}, fmt.Errorf("%q: %q is not a Conversation Service SID (IS + 32 hex digits)", s, service)
	}
	if !twilio.IsConversationSid(conversation) {
		return twilio.Scope{}, fmt.Errorf("%q: %q is not a conversation SID (CH + 32 hex digits)", s, conversation)
	}
	return twilio.Scope{ServiceSid: service, ConversationSid: conversation}, nil
}

// Manifests lists the webhooks of each conversation and returns one object per
// webhook the CRD can express, and a Refusal for each one it cannot, in the
// order of scopes and of Twilio's lists. A webhook listed under two scopes is
// returned once. A conversation whose list fails is skipped and its error
// joined into the returned error; the others are still imported, except after
// a 401, which would fail them all. Every scope is checked with ParseScope's
// rules before any request is made.
func Manifests(ctx context.Context, api twilio.WebhookAPI, scopes []twilio.Scope, opts Options) ([]*v1alpha1.ConversationWebhook, []Refusal, error) {
	if err := opts.Validate(); err != nil {
		return nil, nil, err
	}
	for _, sc := range scopes {
		parsed, err := ParseScope(sc.String())
		if err != nil {
			return nil, nil, err
		}
		if parsed != sc {
			return nil, nil, fmt.Errorf("scope %q: SIDs must not carry spaces", sc.String())
		}
	}
	var (
		objs     []*v1alpha1.ConversationWebhook
		refusals []Refusal
		errs     []error
		seen     = map[string]bool{}
		names    = map[string]string{} // metadata.name → WH… SID
	)
	for _, sc := range scopes {
		hooks, err := api.ListWebhooks(ctx, sc)
		if err != nil {
			hint := ""
			if twilio.IsConversationNotFound(err) && sc.ServiceSid == "" {
				hint = " (a conversation of a named service is given as IS…/CH…)"
			}
			errs = append(errs, fmt.Errorf("listing the webhooks of conversation %s%s: %w", sc, hint, err))
			if twilio.IsUnauthorized(err) || ctx.Err() != nil {
				break
			}
			continue
		}
		for i := range hooks {
			if seen[hooks[i].Sid] {
				continue
			}
			seen[hooks[i].Sid] = true
			obj, refusal := Manifest(sc, hooks[i], opts)
			if refusal == nil && names[obj.Name] != "" {
				// SIDs that differ only in the case of their hex digits.
				refusal = &Refusal{Scope: sc, WebhookSid: hooks[i].Sid, Target: hooks[i].Target, Problems: []Problem{{
					Field: "metadata.name", Reason: fmt.Sprintf("%q is already the name of %s", obj.Name, names[obj.Name]),
				}}}
			}
			if refusal != nil {
				refusals = append(refusals, *refusal)
				continue
			}
			names[obj.Name] = hooks[i].Sid
			objs = append(objs, obj)
		}
	}
	return objs, refusals, errors.Join(errs...)
}

// Manifest makes the object for one webhook listed in scope, or says why the
// CRD would reject it. It is pure: spec from Twilio's answer as the client reads
// it (method upper-cased, duplicates dropped from the filter and trigger sets),
// the webhook-sid annotation, and the policies of opts.
func Manifest(scope twilio.Scope, wh twilio.Webhook, opts Options) (*v1alpha1.ConversationWebhook, *Refusal) {
	spec := SpecOf(scope, wh)
	if opts.Manage {
		spec.ManagementPolicy, spec.DeletionPolicy = v1alpha1.ManagementPolicyFull, v1alpha1.DeletionPolicyDelete
	} else {
		spec.ManagementPolicy, spec.DeletionPolicy = v1alpha1.ManagementPolicyObserve, v1alpha1.DeletionPolicyOrphan
	}
	problems := Validate(&spec)
	if !twilio.IsWebhookSid(wh.Sid) {
		problems = append([]Problem{{
			Field:  "metadata.annotations[" + v1alpha1.AnnotationWebhookSid + "]",
			Reason: fmt.Sprintf("%q is not a webhook SID (WH + 32 hex digits)", wh.Sid),
		}}, problems...)
	}
	if wh.ConversationSid != "" && !strings.EqualFold(wh.ConversationSid, scope.ConversationSid) {
		problems = append(problems, Problem{
			Field:  "spec.conversationSid",
			Reason: fmt.Sprintf("Twilio listed it under %s but answered conversation %q", scope.ConversationSid, wh.ConversationSid),
		})
	}
	if len(problems) > 0 {
		return nil, &Refusal{Scope: scope, WebhookSid: wh.Sid, Target: wh.Target, Problems: problems}
	}
	obj := &v1alpha1.ConversationWebhook{
		TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "ConversationWebhook"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        opts.name(wh.Sid),
			Namespace:   opts.Namespace,
			Annotations: map[string]string{v1alpha1.AnnotationWebhookSid: wh.Sid},
		},
		Spec: spec,
	}
	if opts.Account != nil {
		obj.Spec.AccountRef = opts.Account.DeepCopy()
	}
	if p := roundTrip(obj); p != nil {
		return nil, &Refusal{Scope: scope, WebhookSid: wh.Sid, Target: wh.Target, Problems: []Problem{*p}}
	}
	return obj, nil
}

// roundTrip checks that the manifest YAML writes reads back as this object's
// spec: YAML cannot hold some characters Twilio and the CRD accept (C1 controls
// and DEL make it fail; U+0085 reads back as a space). Such a webhook is
// refused, named, rather than written as something else or stopping the output.
func roundTrip(obj *v1alpha1.ConversationWebhook) *Problem {
	const spec = "spec"
	data, err := YAML(obj)
	if err != nil {
		return &Problem{Field: unrenderable(obj.Spec), Reason: "cannot be written as YAML (" + err.Error() + ")"}
	}
	var back manifest
	if err := yaml.UnmarshalStrict(data, &back); err != nil {
		return &Problem{Field: spec, Reason: "written as YAML that does not read back (" + err.Error() + ")"}
	}
	if equality.Semantic.DeepEqual(back.Spec, obj.Spec) {
		return nil
	}
	field, wrote, read := spec, "", ""
	switch a, b := obj.Spec, back.Spec; {
	case a.URL != b.URL:
		field, wrote, read = "spec.url", a.URL, b.URL
	case a.FlowSid != b.FlowSid:
		field, wrote, read = "spec.flowSid", a.FlowSid, b.FlowSid
	case !slices.Equal(a.Triggers, b.Triggers):
		field, wrote, read = "spec.triggers", strings.Join(a.Triggers, ","), strings.Join(b.Triggers, ",")
	}
	return &Problem{Field: field, Reason: fmt.Sprintf("%q reads back from YAML as %q: it holds a character YAML does not keep (such as U+0085)", wrote, read)}
}

// unrenderable names the spec's string field YAML cannot write ("spec" when
// none alone fails): the values taken from Twilio's answer.
func unrenderable(sp v1alpha1.ConversationWebhookSpec) string {
	fields := make([][2]string, 0, 2+len(sp.Triggers))
	fields = append(fields, [2]string{"spec.url", sp.URL}, [2]string{"spec.flowSid", sp.FlowSid})
	for i, t := range sp.Triggers {
		fields = append(fields, [2]string{fmt.Sprintf("spec.triggers[%d]", i), t})
	}
	for _, f := range fields {
		if _, err := yaml.Marshal(f[1]); err != nil {
			return f[0]
		}
	}
	return "spec"
}

// SpecOf maps Twilio's answer to a spec without judging it (see Validate). The
// scope, already checked, gives conversationSid and serviceSid. Method is
// upper-cased (Twilio answers "post"), and POST when Twilio left it out, as
// Twilio defaults it; studio webhooks carry no method, since the operator
// neither sends nor compares one for them. replayAfter is set only when
// Twilio returned it.
func SpecOf(scope twilio.Scope, wh twilio.Webhook) v1alpha1.ConversationWebhookSpec {
	cfg := wh.Configuration
	target := v1alpha1.Target(strings.ToLower(strings.TrimSpace(wh.Target)))
	// A trigger's keywords answered under configuration.filters (as Twilio's
	// OpenAPI examples do) are already in Triggers: the client reads them as
	// the operator does, and the spec must be what the operator will compare.
	filters, triggers := cfg.Filters, cfg.Triggers
	spec := v1alpha1.ConversationWebhookSpec{
		ConversationSid: scope.ConversationSid,
		ServiceSid:      scope.ServiceSid,
		Target:          target,
		URL:             cfg.URL,
		FlowSid:         cfg.FlowSid,
	}
	if target != v1alpha1.TargetStudio {
		spec.Method = v1alpha1.HTTPMethod(strings.ToUpper(strings.TrimSpace(cfg.Method)))
		if spec.Method == "" {
			spec.Method = v1alpha1.MethodPOST
		}
	}
	for _, f := range dedupe(filters) {
		spec.Filters = append(spec.Filters, v1alpha1.Filter(f))
	}
	spec.Triggers = dedupe(triggers)
	if cfg.ReplayAfter != nil {
		v := *cfg.ReplayAfter
		spec.ReplayAfter = &v
	}
	return spec
}

// dedupe drops repeated entries, keeping the first of each; nil stays nil.
func dedupe(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	out := make([]string, 0, len(in))
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
