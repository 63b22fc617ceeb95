//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

// churner makes one random change per tick while faults are injected, and
// keeps the ledger the end checks need: how many creates each object may
// cause (one, plus one per replacement the churn caused), which webhooks the
// test made or deleted itself, and what Orphan deletions must have left.
type churner struct {
	ctx  context.Context
	c    client.Client
	w    *world
	rng  *rand.Rand
	n    int
	tick int

	actions  map[string]int
	history  map[string][]string // object name or webhook SID → what the churn did to it, for explaining a failure
	deleted  map[int]deletion    // objects deleted and not yet re-created
	unpause  map[int]time.Time
	specs    map[int]v1alpha1.ConversationWebhookSpec
	allowed  map[int]int     // creates each object may cause
	owner    map[string]int  // webhook SID → object, for webhooks the test made or assigned
	foreign  map[string]bool // webhooks the test made that belong to no object (see abandon)
	removed  map[string]bool
	made     map[string]int // webhook SID → object whose create made it, from the fake's log
	seen     int            // log entries read into made
	problems []string       // Orphan deletions that did not leave their webhook

	keys      int       // API keys made so far
	rotateAt  time.Time // next Secret rotation
	revokeAt  time.Time // when the previous key stops working
	revokeKey string
}

// deletion is an object deleted during the churn.
type deletion struct {
	at     time.Time
	orphan bool   // deletionPolicy Orphan: its webhook must stay in Twilio
	sid    string // the webhook it managed, for Orphan
}

// did counts an action of the churn and keeps it, with detail, in the history
// of each key (object names and webhook SIDs it touched).
func (h *churner) did(kind, detail string, keys ...string) {
	h.actions[kind]++
	line := time.Now().Format("15:04:05.000") + " " + kind
	if detail != "" {
		line += " (" + detail + ")"
	}
	for _, k := range keys {
		if k != "" {
			h.history[k] = append(h.history[k], line)
		}
	}
}

func (h *churner) step() {
	h.tick++
	i := h.rng.IntN(h.n)
	switch p := h.rng.IntN(100); {
	case p < 14:
		h.edit(i, false, "spec edit in place", func(o *v1alpha1.ConversationWebhook) string {
			return editInPlace(&o.Spec, i, h.tick, h.rng.IntN(3))
		})
	case p < 22:
		h.edit(i, true, "replace", func(o *v1alpha1.ConversationWebhook) string {
			o.Spec.ReplayAfter = ptr.To(int32(h.rng.IntN(50)))
			return "replayAfter"
		})
	case p < 30:
		h.edit(i, true, "move", h.moveConversation)
	case p < 35:
		h.edit(i, true, "move", h.moveService)
	case p < 42:
		h.edit(i, true, "move", func(o *v1alpha1.ConversationWebhook) string {
			targets := []v1alpha1.Target{v1alpha1.TargetWebhook, v1alpha1.TargetTrigger, v1alpha1.TargetStudio}
			t := targets[(h.rng.IntN(2)+1+indexOf(targets, o.Spec.Target))%3]
			setTarget(&o.Spec, i, h.tick, t)
			return "target → " + string(t)
		})
	case p < 46:
		h.pause(i)
	case p < 51:
		h.remove(i, false)
	case p < 54:
		h.remove(i, true)
	case p < 61:
		h.deleteBehind()
	case p < 68:
		h.editBehind()
	}
}

func indexOf(ts []v1alpha1.Target, t v1alpha1.Target) int {
	for i, x := range ts {
		if x == t {
			return i
		}
	}
	return 0
}

// edit changes object i. A change that replaces the webhook is made only to a
// converged object, so replacements do not stack past Twilio's five webhooks
// per conversation; it allows the object one more create.
func (h *churner) edit(i int, replaces bool, kind string, change func(*v1alpha1.ConversationWebhook) string) {
	o, ok := h.get(i)
	if !ok || (replaces && !converged1(o)) {
		return
	}
	what := change(o)
	if what == "" || h.c.Update(h.ctx, o) != nil {
		return
	}
	h.specs[i] = o.Spec
	h.did(kind+": "+what, "", objName(i))
	if replaces {
		h.allowed[i]++
	}
}

func (h *churner) get(i int) (*v1alpha1.ConversationWebhook, bool) {
	if _, gone := h.deleted[i]; gone {
		return nil, false
	}
	o := &v1alpha1.ConversationWebhook{}
	if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: ns, Name: objName(i)}, o); err != nil || !o.DeletionTimestamp.IsZero() {
		return nil, false
	}
	return o, true
}

// converged1 is an object Ready at its generation, not paused, with no create pending.
func converged1(o *v1alpha1.ConversationWebhook) bool {
	ready := meta.FindStatusCondition(o.Status.Conditions, v1alpha1.ConditionReady)
	_, pending := o.Annotations[annCreatePending]
	return ready != nil && ready.Status == metav1.ConditionTrue && ready.ObservedGeneration == o.Generation &&
		o.Status.ObservedGeneration == o.Generation && !pending && o.Annotations[v1alpha1.AnnotationPaused] != "true"
}

// moveConversation moves the object to a conversation (of either service) that
// holds fewer than perConv objects and at most two webhooks.
func (h *churner) moveConversation(o *v1alpha1.ConversationWebhook) string {
	load := map[string]int{}
	for _, s := range h.specs {
		load[s.ConversationSid]++
	}
	all := append(append([]string{}, h.w.convs...), h.w.svcConvs...)
	start := h.rng.IntN(len(all))
	for k := range all {
		conv := all[(start+k)%len(all)]
		if conv == o.Spec.ConversationSid || load[conv] >= perConv || len(h.w.fake.ConversationWebhooks(conv)) > 2 {
			continue
		}
		o.Spec.ConversationSid, o.Spec.ServiceSid = conv, ""
		if k%2 == 0 {
			o.Spec.ServiceSid = h.w.defaultService
		}
		if (start+k)%len(all) >= len(h.w.convs) {
			o.Spec.ServiceSid = h.w.service
			return "conversation (to the named service)"
		}
		return "conversation"
	}
	return ""
}

// moveService switches between the account-scoped and the service-scoped path
// of the same default-service conversation.
func (h *churner) moveService(o *v1alpha1.ConversationWebhook) string {
	switch o.Spec.ServiceSid {
	case "":
		o.Spec.ServiceSid = h.w.defaultService
		return "serviceSid set"
	case h.w.defaultService:
		o.Spec.ServiceSid = ""
		return "serviceSid cleared"
	}
	return ""
}

// pause pauses object i for 2–6 s.
func (h *churner) pause(i int) {
	if _, paused := h.unpause[i]; paused {
		return
	}
	if h.annotate(i, v1alpha1.AnnotationPaused, "true") {
		h.unpause[i] = time.Now().Add(time.Duration(2000+h.rng.IntN(4000)) * time.Millisecond)
		h.did("paused", "", objName(i))
	}
}

// annotate sets (value non-empty) or removes an annotation of object i.
func (h *churner) annotate(i int, key, value string) bool {
	_, ok := h.annotateFrom(i, key, value)
	return ok
}

// annotateFrom is annotate, also returning what the object held before the
// write (the write carries its resourceVersion, so nothing changed between).
func (h *churner) annotateFrom(i int, key, value string) (before *v1alpha1.ConversationWebhook, ok bool) {
	o, ok := h.get(i)
	if !ok {
		return nil, false
	}
	before = o.DeepCopy()
	if value == "" {
		delete(o.Annotations, key)
	} else {
		if o.Annotations == nil {
			o.Annotations = map[string]string{}
		}
		o.Annotations[key] = value
	}
	if h.c.Update(h.ctx, o) != nil {
		return nil, false
	}
	return before, true
}

// unpauseDue unpauses objects whose pause is over (all of them with all set).
func (h *churner) unpauseDue(all bool) {
	for i, at := range h.unpause {
		if !all && time.Now().Before(at) {
			continue
		}
		o := &v1alpha1.ConversationWebhook{}
		err := h.c.Get(h.ctx, client.ObjectKey{Namespace: ns, Name: objName(i)}, o)
		if apierrors.IsNotFound(err) {
			delete(h.unpause, i)
			continue
		}
		if err == nil {
			delete(o.Annotations, v1alpha1.AnnotationPaused)
			err = h.c.Update(h.ctx, o)
		}
		if err == nil {
			delete(h.unpause, i)
			h.did("unpaused", "", objName(i))
		}
	}
}

// remove deletes object i; with orphan, a converged one after setting
// deletionPolicy Orphan, remembering the webhook it must leave behind.
func (h *churner) remove(i int, orphan bool) {
	o, ok := h.get(i)
	if !ok || (orphan && !converged1(o)) {
		return
	}
	if orphan {
		o.Spec.DeletionPolicy = v1alpha1.DeletionPolicyOrphan
		if h.c.Update(h.ctx, o) != nil {
			return
		}
	}
	if h.c.Delete(h.ctx, o) != nil {
		return
	}
	h.abandon(i, o, "deleted before adopting its webhook-sid")
	h.deleted[i] = deletion{at: time.Now(), orphan: orphan, sid: o.Status.Sid}
	if orphan {
		h.did("deleted (deletionPolicy Orphan)", "recorded "+o.Status.Sid, objName(i), o.Status.Sid)
	} else {
		h.did("deleted", "recorded "+o.Status.Sid, objName(i), o.Status.Sid)
	}
}

// recreate re-creates deleted objects once their finalizer is done, after
// checking (Orphan) that their webhook stayed, then removing it as its owner
// would. One in five comes back adopting a webhook made directly in Twilio.
func (h *churner) recreate() {
	for j, d := range h.deleted {
		if time.Since(d.at) < 2*time.Second {
			continue
		}
		err := h.c.Get(h.ctx, client.ObjectKey{Namespace: ns, Name: objName(j)}, &v1alpha1.ConversationWebhook{})
		if !apierrors.IsNotFound(err) {
			continue
		}
		if d.orphan && d.sid != "" {
			h.checkOrphan(j, d.sid)
		}
		o := &v1alpha1.ConversationWebhook{ObjectMeta: metav1.ObjectMeta{Name: objName(j), Namespace: ns}, Spec: h.specs[j]}
		o.Spec.DeletionPolicy = ""
		adopt := h.rng.IntN(5) == 0 && len(h.w.fake.ConversationWebhooks(o.Spec.ConversationSid)) < 3
		var sid string
		if adopt {
			sid = h.w.fake.CreateWebhook(webhookFor(&o.Spec, j, h.tick, h.rng.IntN(2) == 0))
			o.Annotations = map[string]string{v1alpha1.AnnotationWebhookSid: sid}
		}
		if err := h.c.Create(h.ctx, o); err != nil {
			if sid != "" {
				h.w.fake.DeleteWebhook(sid)
			}
			continue
		}
		delete(h.deleted, j)
		if adopt {
			h.owner[sid] = j
			h.did("re-created adopting a webhook made in Twilio", "webhook-sid "+sid, objName(j), sid)
		} else {
			h.allowed[j]++
			h.did("re-created", "", objName(j))
		}
	}
}

// checkOrphan checks that an object deleted with deletionPolicy Orphan left
// its webhook (unless someone else deleted it: the churner, or a deleted-first
// fault), then removes it as its owner would.
func (h *churner) checkOrphan(j int, sid string) {
	if _, ok := h.w.fake.Webhook(sid); !ok && !h.removed[sid] {
		var named []string
		for _, r := range h.w.fake.Requests() {
			if r.Fault == twiliofake.FaultDeletedFirst && strings.HasSuffix(r.Path, "/"+sid) {
				named = nil
				break
			}
			if strings.Contains(r.Path, sid) {
				named = append(named, describe(r))
			}
		}
		if named != nil {
			h.problems = append(h.problems, fmt.Sprintf("%s (deletionPolicy Orphan) deleted its webhook %s; requests naming it:\n    %s",
				objName(j), sid, strings.Join(named, "\n    ")))
		}
	}
	h.w.fake.DeleteWebhook(sid)
	h.removed[sid] = true
	h.did("webhook of an Orphan deletion removed by the test", sid, objName(j), sid)
}

// deleteBehind deletes a random webhook in Twilio, as someone else would; its
// object may create a new one.
func (h *churner) deleteBehind() {
	hooks := h.w.fake.Webhooks()
	if len(hooks) == 0 {
		return
	}
	w := hooks[h.rng.IntN(len(hooks))]
	if w.ConversationSid == h.w.foreignConv || !h.w.fake.DeleteWebhook(w.Sid) {
		return
	}
	h.removed[w.Sid] = true
	owner := ""
	if i, ok := h.ownerOf(w); ok {
		h.allowed[i]++
		owner = objName(i)
	}
	h.did("webhook deleted behind the operator's back", w.Sid, owner, w.Sid)
}

// ownerOf says which object a webhook was made for: one the test made or
// assigned, else the object whose create request made it (its url may have
// been edited since).
func (h *churner) ownerOf(w twiliofake.Webhook) (int, bool) {
	if i, ok := h.owner[w.Sid]; ok {
		return i, true
	}
	reqs := h.w.fake.Requests()
	for _, r := range reqs[h.seen:] {
		if i, ok := objectOf(r.Form); ok && r.Operation == twiliofake.OpCreate && r.WebhookSid != "" {
			h.made[r.WebhookSid] = i
		}
	}
	h.seen = len(reqs)
	i, ok := h.made[w.Sid]
	return i, ok
}

// editBehind edits a webhook some object records, as someone else would.
// (A lost create's webhook, edited before the operator recognised it, is
// indistinguishable from someone else's: the operator leaves it and warns.)
func (h *churner) editBehind() {
	var list v1alpha1.ConversationWebhookList
	if h.c.List(h.ctx, &list, client.InNamespace(ns)) != nil || len(list.Items) == 0 {
		return
	}
	o := list.Items[h.rng.IntN(len(list.Items))]
	sid := o.Annotations[v1alpha1.AnnotationWebhookSid]
	if sid == "" || sid != o.Status.Sid {
		return
	}
	if h.w.fake.EditWebhook(sid, func(w *twiliofake.Webhook) {
		switch w.Target {
		case string(v1alpha1.TargetStudio):
			w.FlowSid = fmt.Sprintf("FW%032x", 0xbad)
		case string(v1alpha1.TargetTrigger):
			w.URL, w.Triggers = "https://tampered.example.com", []string{"tampered"}
		default:
			w.URL, w.Filters = "https://tampered.example.com", []string{"onMessageRemoved"}
		}
	}) {
		h.did("webhook edited behind the operator's back", sid, o.Name, sid)
	}
}

// rotate registers a new API key, points the Secret at it, and schedules the
// old key's revocation 3–6 s later.
func (h *churner) rotate(force bool) {
	if force && !h.revokeAt.IsZero() {
		h.revokeAt = time.Now().Add(-time.Second)
		h.revokeDue()
	}
	if !force && (time.Now().Before(h.rotateAt) || !h.revokeAt.IsZero()) {
		return
	}
	old := keySid(h.keys)
	h.keys++
	h.w.fake.AddAPIKey(account, keySid(h.keys), keySecret(h.keys))
	s := &corev1.Secret{}
	if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: ns, Name: secret}, s); err != nil {
		return
	}
	s.Data = map[string][]byte{"accountSid": []byte(account), "apiKeySid": []byte(keySid(h.keys)),
		"apiKeySecret": []byte(keySecret(h.keys))}
	if h.c.Update(h.ctx, s) != nil {
		return
	}
	h.did("Secret rotated to a new API key", "")
	h.revokeKey, h.revokeAt = old, time.Now().Add(time.Duration(3000+h.rng.IntN(3000))*time.Millisecond)
	h.rotateAt = time.Now().Add(time.Duration(12000+h.rng.IntN(6000)) * time.Millisecond)
}

// revokeDue revokes the previous API key once its time has come.
func (h *churner) revokeDue() {
	if !h.revokeAt.IsZero() && time.Now().After(h.revokeAt) {
		h.w.fake.AddAPIKey(account, h.revokeKey, "revoked")
		h.revokeAt = time.Time{}
		h.did("API key revoked (the old one)", "")
	}
}

func keySid(k int) string    { return fmt.Sprintf("SK%032x", 0x9000+k) }
func keySecret(k int) string { return fmt.Sprintf("chaosKeySecret%d", k) }
