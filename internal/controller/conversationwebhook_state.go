package controller

import (
	"fmt"
	"time"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// maxEcho is how much of a malformed value a message repeats.
const maxEcho = 64

// echo is s cut to at most n bytes, at a character boundary, with "…" when
// cut: a message never carries half a UTF-8 character (the API server would
// store U+FFFD, and the status read back would never equal the one computed).
func echo(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// ref locates one webhook.
type ref struct {
	sid   string
	scope twilio.Scope
}

// pendingRecord is a create whose webhook is not recorded yet.
type pendingRecord struct {
	since time.Time
	scope twilio.Scope
	// fingerprint of what the create sent; empty when only the create-pending
	// annotation survives (a restored object): then the spec is matched.
	fingerprint string
	// account is the Twilio account SID the create was sent for ("" in a
	// record written by an earlier version, or from the annotation alone).
	account string
	// recorded is true when status holds it (the operator wrote it); false when
	// only the user-writable annotation says a create may be pending.
	recorded bool
}

// ledger is the operator's state for one object, read once per reconcile and
// validated when read. Status is the operator's own record; the webhook-sid and
// create-pending annotations mirror it for users, backups and GitOps, and are
// input: a user may point webhook-sid at another webhook to adopt it.
type ledger struct {
	// owned is the webhook recorded in status: the one this object manages.
	owned *ref
	// annotated is the webhook-sid annotation ("" when absent).
	annotated string
	// pending is a create whose result is not recorded yet.
	pending *pendingRecord
	// superseded is a webhook this object managed before, to delete.
	superseded *ref
	// legacy lists bookkeeping annotations of earlier versions, never obeyed.
	legacy []string
	// replay is the owned webhook's recorded replayAfter.
	replay recordedReplay
}

// invalidError is a malformed annotation or status value.
func invalidError(reason, what, value string) error {
	return stalled(reason, fmt.Errorf("%s: %q is malformed; nothing was sent to Twilio", what, echo(value, maxEcho)))
}

// readLedger reads and validates the object's state. want is the spec's
// webhook (the scope of a create-pending annotation with no record in status).
func readLedger(obj *v1alpha1.ConversationWebhook, want desired) (ledger, error) {
	led, err := readRecord(&obj.Status, want.scope)
	if err != nil {
		return led, err
	}
	ann := obj.Annotations
	if v, ok := ann[v1alpha1.AnnotationWebhookSid]; ok {
		if !twilio.IsWebhookSid(v) {
			return led, invalidError(v1alpha1.ReasonInvalidAnnotation, "annotation "+v1alpha1.AnnotationWebhookSid, v)
		}
		led.annotated = twilio.CanonicalSid(v)
	}
	if v, ok := ann[v1alpha1.AnnotationCreatePending]; ok {
		since, perr := time.Parse(time.RFC3339, v)
		if perr != nil {
			return led, invalidError(v1alpha1.ReasonInvalidAnnotation, "annotation "+v1alpha1.AnnotationCreatePending, v)
		}
		// Without a record in status, the annotation alone means a create may be
		// pending only for an object that manages and names nothing (a restored
		// one): its webhook is looked for where the spec points, never deleted on
		// a guess. A webhook-sid next to it names the webhook to look at instead.
		if led.pending == nil && led.owned == nil && led.annotated == "" {
			led.pending = &pendingRecord{since: since, scope: want.scope}
		}
	}
	for _, k := range []string{v1alpha1.AnnotationCreatePendingSpec, v1alpha1.AnnotationReplacedWebhook} {
		if _, ok := ann[k]; ok {
			led.legacy = append(led.legacy, k)
		}
	}
	return led, nil
}

// readRecord reads the operator's record from status. A webhook recorded
// without its conversation (by an earlier version) lives where the spec points.
func readRecord(st *v1alpha1.ConversationWebhookStatus, specScope twilio.Scope) (ledger, error) {
	var led ledger
	var err error
	if st.Sid != "" {
		service, conversation := st.ServiceSid, st.ConversationSid
		if conversation == "" {
			service, conversation = specScope.ServiceSid, specScope.ConversationSid
		}
		if led.owned, err = readRef("status.sid", st.Sid, service, conversation); err != nil {
			return led, err
		}
		if st.Configuration != nil {
			led.replay = recordedReplay{value: st.Configuration.ReplayAfter, known: true}
		}
	}
	if s := st.SupersededWebhook; s != nil {
		if led.superseded, err = readRef("status.supersededWebhook", s.Sid, s.ServiceSid, s.ConversationSid); err != nil {
			return led, err
		}
		if led.owned != nil && led.superseded.sid == led.owned.sid {
			// A webhook does not supersede itself (a status restored or edited
			// by hand): the record is dropped, never acted on by a delete.
			led.superseded = nil
		}
	}
	if p := st.PendingCreate; p != nil {
		scope, err := readScope("status.pendingCreate", p.ServiceSid, p.ConversationSid)
		if err != nil {
			return led, err
		}
		led.pending = &pendingRecord{since: p.Since.Time, scope: scope, fingerprint: p.Fingerprint, account: p.AccountSid, recorded: true}
	}
	return led, nil
}

func readRef(what, sid, service, conversation string) (*ref, error) {
	if !twilio.IsWebhookSid(sid) {
		return nil, invalidError(v1alpha1.ReasonInvalidStatus, what, sid)
	}
	scope, err := readScope(what, service, conversation)
	if err != nil {
		return nil, err
	}
	return &ref{sid: twilio.CanonicalSid(sid), scope: scope}, nil
}

func readScope(what, service, conversation string) (twilio.Scope, error) {
	if !twilio.IsConversationSid(conversation) {
		return twilio.Scope{}, invalidError(v1alpha1.ReasonInvalidStatus, what+" conversation", conversation)
	}
	if service != "" && !twilio.IsServiceSid(service) {
		return twilio.Scope{}, invalidError(v1alpha1.ReasonInvalidStatus, what+" service", service)
	}
	return twilio.Scope{ServiceSid: service, ConversationSid: conversation}, nil
}

// writeRecord stores the ledger's operator-owned part in status.
func writeRecord(st *v1alpha1.ConversationWebhookStatus, led *ledger) {
	st.PendingCreate = nil
	if p := led.pending; p != nil && p.recorded {
		st.PendingCreate = &v1alpha1.PendingCreate{
			Since: metav1.NewTime(p.since), ServiceSid: p.scope.ServiceSid,
			ConversationSid: p.scope.ConversationSid, Fingerprint: p.fingerprint, AccountSid: p.account,
		}
	}
	st.SupersededWebhook = nil
	if s := led.superseded; s != nil {
		st.SupersededWebhook = &v1alpha1.WebhookReference{
			Sid: s.sid, ServiceSid: s.scope.ServiceSid, ConversationSid: s.scope.ConversationSid,
		}
	}
}

// wantedAnnotations are the bookkeeping annotations the ledger implies:
// webhook-sid names the owned webhook (or keeps what a user wrote while nothing
// is owned), create-pending is present while a create is pending, and the
// legacy ones are gone. A value that is nil is removed.
func (led *ledger) wantedAnnotations() map[string]*string {
	out := map[string]*string{v1alpha1.AnnotationCreatePending: nil}
	if led.owned != nil {
		out[v1alpha1.AnnotationWebhookSid] = &led.owned.sid
	}
	if led.pending != nil {
		stamp := led.pending.since.UTC().Format(time.RFC3339)
		out[v1alpha1.AnnotationCreatePending] = &stamp
		if led.owned == nil {
			out[v1alpha1.AnnotationWebhookSid] = nil
		}
	}
	for _, k := range led.legacy {
		out[k] = nil
	}
	return out
}

// metaInSync says whether the object's annotations already say what the
// ledger implies, and its finalizer guards what the ledger records.
func (led *ledger) metaInSync(o *v1alpha1.ConversationWebhook) bool {
	if (led.owned != nil || led.pending != nil || led.superseded != nil) && !controllerutil.ContainsFinalizer(o, v1alpha1.Finalizer) {
		return false
	}
	return led.annotationsInSync(o.Annotations)
}

// annotationsInSync says whether annotations already say what the ledger
// implies. A webhook-sid that differs from the owned SID only in the case of its
// hex digits says the same (a GitOps tool re-applying it is not fought).
func (led *ledger) annotationsInSync(ann map[string]string) bool {
	for k, v := range led.wantedAnnotations() {
		got, ok := ann[k]
		if k == v1alpha1.AnnotationWebhookSid {
			got = twilio.CanonicalSid(got)
		}
		if (v == nil) == ok || (v != nil && got != *v) {
			return false
		}
	}
	return true
}

// applyAnnotations makes the object's annotations say what the ledger implies.
func (led *ledger) applyAnnotations(o *v1alpha1.ConversationWebhook) {
	for k, v := range led.wantedAnnotations() {
		if v == nil {
			delete(o.Annotations, k)
			continue
		}
		if o.Annotations == nil {
			o.Annotations = map[string]string{}
		}
		o.Annotations[k] = *v
	}
}

// known lists the webhooks this object records: never the result of its own
// pending create.
func (led *ledger) known() []string {
	var out []string
	if led.owned != nil {
		out = append(out, led.owned.sid)
	}
	if led.superseded != nil {
		out = append(out, led.superseded.sid)
	}
	return out
}
