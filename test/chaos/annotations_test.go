//go:build chaos

package chaos

import (
	"fmt"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/controller"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

// annotator is issue 9's annotation churner: on random objects it writes
// webhook-sid values a user could write (the SID of a webhook that exists but
// belongs to no object, in the object's conversation or another; a malformed
// one; a stale one, deleted since) and malformed create-pending values. A
// malformed value legitimately stalls an object, so before the final phase
// restore removes each one it left.
type annotator struct {
	h         *churner
	foreign   map[string]bool           // webhooks the test made that belong to no object
	malformed map[int]map[string]string // object → annotation key → the malformed value written
}

// foreignURL marks the webhooks made as foreign.
const foreignURL = "https://foreign.example.com/"

func newAnnotator(h *churner) *annotator {
	// The foreign set is the churner's: its deletions abandon webhooks too.
	a := &annotator{h: h, foreign: h.foreign, malformed: map[int]map[string]string{}}
	return a
}

func (a *annotator) step() {
	h := a.h
	i := h.rng.IntN(h.n)
	o, ok := h.get(i)
	if !ok {
		return
	}
	switch p := h.rng.IntN(6); p {
	case 0: // a foreign webhook in the object's own conversation: adopting it may replace
		if len(h.w.fake.ConversationWebhooks(o.Spec.ConversationSid)) > 1 {
			return
		}
		sid := h.w.fake.CreateWebhook(twiliofake.Webhook{ConversationSid: o.Spec.ConversationSid, Target: "webhook",
			URL: fmt.Sprintf("%s%d", foreignURL, h.tick), Method: "post", Filters: []string{"onMessageAdded"}})
		a.foreign[sid] = true
		if a.write(i, v1alpha1.AnnotationWebhookSid, sid, "webhook-sid: foreign, same conversation") {
			h.owner[sid] = i
			h.allowed[i]++
		}
	case 1: // a foreign webhook in a conversation the object cannot reach, named by no other object
		sid := h.w.fake.CreateWebhook(twiliofake.Webhook{ConversationSid: h.w.foreignConv, Target: "webhook",
			URL: fmt.Sprintf("%s%d", foreignURL, h.tick), Method: "post", Filters: []string{"onMessageAdded"}})
		a.foreign[sid] = true
		a.write(i, v1alpha1.AnnotationWebhookSid, sid, "webhook-sid: foreign, other conversation")
	case 2, 3:
		v := a.malformedSid(o)
		if a.write(i, v1alpha1.AnnotationWebhookSid, v, "webhook-sid: malformed") {
			a.remember(i, v1alpha1.AnnotationWebhookSid, v)
		}
	case 4:
		if sid := a.stale(); sid != "" {
			a.write(i, v1alpha1.AnnotationWebhookSid, sid, "webhook-sid: stale (deleted)")
		}
	default:
		v := []string{"yesterday", "2026-13-45T99:00:00Z", strings.Repeat("9", 100), "../../" + o.Spec.ConversationSid}[h.rng.IntN(4)]
		if a.write(i, annCreatePending, v, "create-pending: malformed") {
			a.remember(i, annCreatePending, v)
		}
	}
}

// stale is a SID deleted from Twilio that no object names any more (one that
// another object still names is issue 9's SidConflict, which stalls by design):
// not in status.sid, not as the superseded webhook a replacement has yet to
// delete, not in a webhook-sid annotation.
func (a *annotator) stale() string {
	var list v1alpha1.ConversationWebhookList
	if a.h.c.List(a.h.ctx, &list, client.InNamespace(ns)) != nil {
		return ""
	}
	named := map[string]bool{}
	for i := range list.Items {
		for _, sid := range controller.SidsOf(&list.Items[i]) { // as the operator reads them, canonical
			named[sid] = true
		}
	}
	for sid := range a.h.removed {
		if _, exists := a.h.w.fake.Webhook(sid); !exists && !named[sid] {
			return sid
		}
	}
	return ""
}

// malformedSid is a webhook-sid no Twilio path may carry.
func (a *annotator) malformedSid(o *v1alpha1.ConversationWebhook) string {
	hex := fmt.Sprintf("%032x", a.h.tick)
	return []string{
		"../../" + o.Spec.ConversationSid,
		"WH" + hex[:31],
		"WH" + strings.Repeat(hex, 4)[:98],
		"WH" + hex + "/../../" + o.Spec.ConversationSid,
		"WH" + hex[:30] + "zz",
		"wh" + hex,
	}[a.h.rng.IntN(6)]
}

func (a *annotator) write(i int, key, value, kind string) bool {
	before, ok := a.h.annotateFrom(i, key, value)
	if !ok {
		return false
	}
	if key != v1alpha1.AnnotationWebhookSid {
		a.h.did("annotation "+kind, key+"="+value, objName(i))
		return true
	}
	a.h.did("annotation "+kind, key+"="+value+" over "+before.Annotations[key]+", recorded "+before.Status.Sid, objName(i), value)
	a.h.abandon(i, before, "annotation overwrote a webhook-sid not adopted yet")
	return true
}

// abandon accounts for a webhook-sid overwritten, or an object deleted, before
// the operator recorded the webhook the annotation named, when that webhook is
// one the test made in Twilio for the object to adopt when it re-created it:
// as a user who changed their mind, the test left it to no object, so it is
// foreign, and the object may create its own instead (the operator deletes
// only what an object recorded). Nothing else is excused: a webhook-sid the
// operator wrote itself (its record writes the annotations before status)
// names a webhook it must still own or delete, and a foreign webhook of the
// annotator's case 0 is foreign already, with the create it allows counted
// when it was written.
func (h *churner) abandon(i int, before *v1alpha1.ConversationWebhook, kind string) {
	sid := before.Annotations[v1alpha1.AnnotationWebhookSid]
	if sid == "" || strings.EqualFold(sid, before.Status.Sid) || h.foreign[sid] {
		return
	}
	if j, ok := h.owner[sid]; !ok || j != i {
		return
	}
	if _, exists := h.w.fake.Webhook(sid); !exists {
		return
	}
	h.foreign[sid] = true
	h.allowed[i]++
	h.did(kind, sid, objName(i), sid)
}

func (a *annotator) remember(i int, key, value string) {
	if a.malformed[i] == nil {
		a.malformed[i] = map[string]string{}
	}
	a.malformed[i][key] = value
}

// restore removes every malformed value the churner wrote that is still there.
func (a *annotator) restore() error {
	for i, written := range a.malformed {
		o := &v1alpha1.ConversationWebhook{}
		if err := a.h.c.Get(a.h.ctx, client.ObjectKey{Namespace: ns, Name: objName(i)}, o); client.IgnoreNotFound(err) != nil {
			return err
		} else if err == nil {
			changed := 0
			for key, value := range written {
				if o.Annotations[key] == value {
					delete(o.Annotations, key)
					changed++
				}
			}
			if changed > 0 {
				if err := a.h.c.Update(a.h.ctx, o); err != nil {
					return err
				}
			}
			a.h.actions["annotation restored (malformed value removed)"] += changed
		}
		delete(a.malformed, i)
	}
	return nil
}
