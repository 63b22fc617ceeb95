package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// sidIndex holds the webhook SIDs an object records in status or claims by annotation.
const sidIndex = "conversations.twilio-operator.io/webhook-sid"

// sidsOf lists the SIDs an object records (status.sid) or claims (a well-formed
// webhook-sid annotation), in canonical form (twilio.CanonicalSid): a claim
// that differs from a record only in case names the same webhook.
func sidsOf(o *v1alpha1.ConversationWebhook) []string {
	var out []string
	add := func(sid string) {
		if sid = twilio.CanonicalSid(sid); !slices.Contains(out, sid) {
			out = append(out, sid)
		}
	}
	if o.Status.Sid != "" {
		add(o.Status.Sid)
	}
	if s := o.Status.SupersededWebhook; s != nil && s.Sid != "" {
		add(s.Sid)
	}
	if a := o.Annotations[v1alpha1.AnnotationWebhookSid]; twilio.IsWebhookSid(a) {
		add(a)
	}
	return out
}

func (r *ConversationWebhookReconciler) setupSidIndex(ctx context.Context, mgr ctrl.Manager) error {
	return indexClusterWide(ctx, mgr.GetCache(), &v1alpha1.ConversationWebhook{}, sidIndex, func(o client.Object) []string {
		return sidsOf(o.(*v1alpha1.ConversationWebhook))
	})
}

// conflict names another object that manages sid, or "". An object that records
// the SID in status (as its webhook, or as the one a replacement superseded and
// is about to delete) owns it (the first created, should two records collide);
// for a SID this object only claims (owned false), an earlier-created object
// that claims it by annotation wins as well. It reads the manager's cache.
func (r *ConversationWebhookReconciler) conflict(ctx context.Context, obj *v1alpha1.ConversationWebhook, sid string, owned bool) (string, error) {
	sid = twilio.CanonicalSid(sid)
	var list v1alpha1.ConversationWebhookList
	if err := r.List(ctx, &list, client.MatchingFields{sidIndex: sid}); err != nil {
		return "", fmt.Errorf("listing objects that manage webhook %s: %w", sid, err)
	}
	return conflictIn(list.Items, obj, sid, owned), nil
}

// conflictLive is conflict read from the API server itself, for a step that
// takes a webhook found in Twilio: the cache may not show yet what another
// object recorded a moment ago.
func (r *ConversationWebhookReconciler) conflictLive(ctx context.Context, obj *v1alpha1.ConversationWebhook, sid string) (string, error) {
	if r.APIReader == nil {
		return r.conflict(ctx, obj, sid, false)
	}
	var list v1alpha1.ConversationWebhookList
	if err := r.APIReader.List(ctx, &list); err != nil {
		return "", fmt.Errorf("listing objects that manage webhook %s: %w", sid, err)
	}
	return conflictIn(list.Items, obj, sid, false), nil
}

func conflictIn(items []v1alpha1.ConversationWebhook, obj *v1alpha1.ConversationWebhook, sid string, owned bool) string {
	sid = twilio.CanonicalSid(sid)
	for i := range items {
		o := &items[i]
		if o.UID == obj.UID || !slices.Contains(sidsOf(o), sid) {
			continue
		}
		records := twilio.CanonicalSid(o.Status.Sid) == sid ||
			o.Status.SupersededWebhook != nil && twilio.CanonicalSid(o.Status.SupersededWebhook.Sid) == sid
		if (records && (!owned || claimedFirst(o, obj))) || (!owned && !records && claimedFirst(o, obj)) {
			return o.Namespace + "/" + o.Name
		}
	}
	return ""
}

// sidConflictError is the Stalled error of an object whose webhook another object manages.
func sidConflictError(sid, other string) error {
	return stalled(v1alpha1.ReasonSidConflict, fmt.Errorf(
		"webhook %s is already managed by ConversationWebhook %s; remove the %s annotation or delete one of the two",
		sid, other, v1alpha1.AnnotationWebhookSid))
}

func claimedFirst(a, b *v1alpha1.ConversationWebhook) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return client.ObjectKeyFromObject(a).String() < client.ObjectKeyFromObject(b).String()
}

// scopeLocks serialises, within this manager, the steps that take a webhook
// found in Twilio (a lost create's result, a webhook adopted by annotation),
// one conversation at a time: two objects never take the same one at once. The
// key is case-folded: CHab… and CHAB… may be one conversation to Twilio.
type scopeLocks struct{ m sync.Map }

func (l *scopeLocks) lock(key string) func() {
	mu, _ := l.m.LoadOrStore(strings.ToLower(key), &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	return mu.(*sync.Mutex).Unlock
}
