package controller

import (
	"context"
	"errors"
	"strings"

	corev1 "k8s.io/api/core/v1"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// deletion is what an object's deletion removes from Twilio: only webhooks it
// owns, read from its status (never from user-writable annotations).
type deletion struct {
	targets []ref
	// superseded is the webhook a replacement superseded: deleted even when
	// the object's own webhook is orphaned, since nothing else uses it.
	superseded *ref
	// known lists what status records, never a pending create's result.
	known []string
	// pending is a create recorded in status whose result is not known yet.
	pending *pendingRecord
	// left names what is left in Twilio without being looked for or deleted.
	left []string
}

// planDeletion reads from status what the object's deletion may delete. A
// webhook another object records as its own is left to that object.
func (r *ConversationWebhookReconciler) planDeletion(ctx context.Context, obj *v1alpha1.ConversationWebhook) (deletion, error) {
	var d deletion
	led, err := readRecord(&obj.Status, desiredOf(&obj.Spec).scope)
	if err != nil {
		return d, err
	}
	if o := led.owned; o != nil {
		other, err := r.conflict(ctx, obj, o.sid, true)
		switch {
		case err != nil:
			return d, err
		case other != "":
			d.left = append(d.left, o.sid+" (managed by "+other+")")
		default:
			d.targets = append(d.targets, *o)
		}
	}
	if s := led.superseded; s != nil {
		other, err := r.conflict(ctx, obj, s.sid, true)
		switch {
		case err != nil:
			return d, err
		case other == "":
			d.superseded = s
		}
	}
	d.known = led.known()
	d.pending = led.pending
	if _, annotated := obj.Annotations[v1alpha1.AnnotationCreatePending]; annotated && d.pending == nil && led.owned == nil {
		d.left = append(d.left, "any webhook an unrecorded create made in "+desiredOf(&obj.Spec).scope.String())
	}
	return d, nil
}

// deleteExternal deletes the object's webhooks unless the policy is Orphan. A
// webhook that cannot be deleted for a reason only a person can fix (missing or
// rejected credentials, a malformed status) is left in Twilio with a Warning
// event naming it, so deletion never hangs on it.
func (r *ConversationWebhookReconciler) deleteExternal(ctx context.Context, obj *v1alpha1.ConversationWebhook) error {
	d, err := r.planDeletion(ctx, obj)
	if _, terminal := classify(err); terminal {
		r.orphaned(obj, err, nil)
		return nil
	}
	if err != nil {
		return err
	}
	switch why := keepReason(obj); {
	case why != "":
		if len(d.targets) > 0 || d.pending != nil {
			r.event(obj, EventOrphaned, "Delete", "Left webhook(s) %s in Twilio (%s)", strings.Join(d.sids(), ", "), why)
		}
		if obj.Spec.ManagementPolicy == v1alpha1.ManagementPolicyObserve || d.superseded == nil {
			return nil
		}
		d.targets, d.pending = []ref{*d.superseded}, nil
	case d.superseded != nil:
		d.targets = append(d.targets, *d.superseded)
	}
	if len(d.targets) > 0 || d.pending != nil {
		err = r.deleteTargets(ctx, obj, &d)
	}
	if twilio.IsUnauthorized(err) {
		// The account was verified a moment ago (resolving it checked): a 401
		// now is a key revoked since, or a passing refusal. Retry, each period,
		// until the account controller says the key is bad; only then leave the
		// webhook, below, rather than orphan it on one answer.
		return err
	}
	var inFlight *waitError
	if errors.As(err, &inFlight) {
		// The webhook of a lost create may be another object's create still
		// in flight: looked for again once that create is answered.
		return err
	}
	if _, terminal := classify(err); terminal || len(d.left) > 0 {
		// Deletion never hangs on what only a person can fix (credentials gone
		// with their namespace, a rejected key): the webhooks left are named.
		r.orphaned(obj, err, &d)
		return nil
	}
	return err
}

// deleteTargets finds a pending create's webhook, then deletes every target.
// Gone already counts as done. Deleted targets are removed from d.
func (r *ConversationWebhookReconciler) deleteTargets(ctx context.Context, obj *v1alpha1.ConversationWebhook, d *deletion) error {
	api, _, err := r.twilioFor(ctx, obj)
	if err != nil {
		return err
	}
	if p := d.pending; p != nil {
		// Under the conversation's take lock until the webhook found is
		// deleted: another object's record of a webhook in that conversation
		// is written first, and then found (see sync).
		defer r.takes.lock(p.scope)()
		wh, unknown, err := r.findCreated(ctx, obj, api, p, desiredOf(&obj.Spec), d.known)
		if err != nil {
			return err
		}
		if wait := r.inFlightFor(p); wh == nil && wait > 0 {
			// The object's own create may still be in flight (sent by a
			// manager that stopped, or answered with a timeout): its webhook
			// is looked for again once it cannot be, as sync waits for it.
			return &waitError{after: wait}
		}
		r.warnUnknown(obj, p.scope, unknown, "deleting the object without it")
		if wh != nil {
			d.targets = append(d.targets, ref{sid: wh.Sid, scope: p.scope})
		}
		d.pending = nil
	}
	for len(d.targets) > 0 {
		t := d.targets[0]
		if err := api.DeleteWebhook(ctx, t.scope, t.sid); err != nil && !gone(err) {
			return err
		}
		r.event(obj, EventDeleted, "Delete", "Deleted webhook %s", t.sid)
		d.targets = d.targets[1:]
	}
	return nil
}

func (d *deletion) sids() []string {
	out := make([]string, 0, len(d.targets)+1)
	for _, t := range d.targets {
		out = append(out, t.sid)
	}
	if d.pending != nil {
		out = append(out, "any webhook a create whose answer was lost made in "+d.pending.scope.String())
	}
	return out
}

// orphaned warns that the object goes while webhooks stay in Twilio.
func (r *ConversationWebhookReconciler) orphaned(obj *v1alpha1.ConversationWebhook, err error, d *deletion) {
	why, left := "", []string(nil)
	if err != nil {
		why = "Deletion cannot reach Twilio (" + err.Error() + "); "
	}
	if d != nil {
		left = append(d.sids(), d.left...)
	}
	if len(left) == 0 {
		left = []string{"nothing this object recorded could be read from its status"}
	}
	r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, EventOrphaned, "Delete",
		"%sleft in Twilio: %s. Delete by hand what nothing uses", why, strings.Join(left, ", "))
}

// keepReason says why the object's deletion leaves its webhooks in Twilio, or "".
func keepReason(obj *v1alpha1.ConversationWebhook) string {
	switch {
	case obj.Spec.ManagementPolicy == v1alpha1.ManagementPolicyObserve:
		return "managementPolicy Observe never writes to Twilio"
	case obj.Spec.DeletionPolicy == v1alpha1.DeletionPolicyOrphan:
		return "deletionPolicy Orphan"
	}
	return ""
}
