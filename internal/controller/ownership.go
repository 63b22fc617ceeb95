package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// sidIndex holds the webhook SIDs an object records in status or claims by annotation.
const sidIndex = "conversations.twilio-operator.io/webhook-sid"

// SidsOf lists the SIDs an object records (status.sid) or claims (a well-formed
// webhook-sid annotation), in canonical form (twilio.CanonicalSid): a claim
// that differs from a record only in case names the same webhook.
func SidsOf(o *v1alpha1.ConversationWebhook) []string {
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
		return SidsOf(o.(*v1alpha1.ConversationWebhook))
	})
}

// claimantsOfReleased wakes the objects that name a webhook SID another object
// stopped naming: it recorded another webhook, deleted the one a replacement
// superseded, dropped its webhook-sid, or is gone. An object that lost a
// SidConflict over that SID is Stalled, waiting for a change of its own that
// need not come; woken, it looks again, and takes the webhook (or, gone from
// Twilio, makes its own) now that nothing else names it.
func (r *ConversationWebhookReconciler) claimantsOfReleased() handler.EventHandler {
	type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]
	return handler.Funcs{
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q queue) {
			old, ok1 := e.ObjectOld.(*v1alpha1.ConversationWebhook)
			cur, ok2 := e.ObjectNew.(*v1alpha1.ConversationWebhook)
			if ok1 && ok2 {
				now := SidsOf(cur)
				released := slices.DeleteFunc(SidsOf(old), func(sid string) bool { return slices.Contains(now, sid) })
				r.wakeNaming(ctx, cur, released, q)
			}
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q queue) {
			if o, ok := e.Object.(*v1alpha1.ConversationWebhook); ok {
				r.wakeNaming(ctx, o, SidsOf(o), q)
			}
		},
	}
}

// wakeNaming queues the objects Stalled with SidConflict that name one of sids
// (the others are not waiting for it: an owner is not woken for nothing, nor
// every copy of a template's annotation each time one is fixed).
func (r *ConversationWebhookReconciler) wakeNaming(ctx context.Context, from *v1alpha1.ConversationWebhook, sids []string,
	q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	for _, sid := range sids {
		var list v1alpha1.ConversationWebhookList
		if err := r.List(ctx, &list, client.MatchingFields{sidIndex: sid}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Listing objects that name a released webhook", "webhook", sid)
			continue
		}
		for i := range list.Items {
			o := &list.Items[i]
			stalled := meta.FindStatusCondition(o.Status.Conditions, v1alpha1.ConditionStalled)
			if o.UID != from.UID && stalled != nil && stalled.Status == metav1.ConditionTrue && stalled.Reason == v1alpha1.ReasonSidConflict {
				q.Add(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(o)})
			}
		}
	}
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
	canonical := twilio.CanonicalSid(sid)
	items, err := r.liveObjects(ctx, func(o *v1alpha1.ConversationWebhook) bool { return slices.Contains(SidsOf(o), canonical) })
	if err != nil {
		return "", fmt.Errorf("listing objects that manage webhook %s: %w", sid, err)
	}
	return conflictIn(items, obj, sid, false), nil
}

// livePage is how many objects a read from the API server holds at once.
const livePage = 500

// liveObjects lists the ConversationWebhooks keep selects from the API server
// itself, a page at a time (a look in one conversation never holds every
// object of a large cluster in memory), in a read shared with the reconciles
// that need one at the same time and begun after this call (liveReads).
// Without an APIReader, as in unit tests, it reads the cache.
func (r *ConversationWebhookReconciler) liveObjects(ctx context.Context, keep func(*v1alpha1.ConversationWebhook) bool) (
	[]v1alpha1.ConversationWebhook, error) {
	if r.APIReader != nil {
		return r.live.list(ctx, r.APIReader, keep)
	}
	var list v1alpha1.ConversationWebhookList
	if err := r.List(ctx, &list); err != nil {
		return nil, err
	}
	var out []v1alpha1.ConversationWebhook
	for i := range list.Items {
		if keep(&list.Items[i]) {
			out = append(out, list.Items[i])
		}
	}
	return out, nil
}

func conflictIn(items []v1alpha1.ConversationWebhook, obj *v1alpha1.ConversationWebhook, sid string, owned bool) string {
	sid = twilio.CanonicalSid(sid)
	for i := range items {
		o := &items[i]
		if o.UID == obj.UID || !slices.Contains(SidsOf(o), sid) {
			continue
		}
		records := recordsSid(o, sid)
		if (records && (!owned || claimedFirst(o, obj))) || (!owned && !records && claimedFirst(o, obj)) {
			return o.Namespace + "/" + o.Name
		}
	}
	return ""
}

// recordsSid says whether the object's status records the webhook (canonical
// sid): as its webhook, or as one a replacement superseded and is to delete.
func recordsSid(o *v1alpha1.ConversationWebhook, sid string) bool {
	return twilio.CanonicalSid(o.Status.Sid) == sid ||
		o.Status.SupersededWebhook != nil && twilio.CanonicalSid(o.Status.SupersededWebhook.Sid) == sid
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
// found in Twilio (a lost create's result, a webhook adopted by annotation)
// or record one, one conversation at a time: two objects never take the same
// one at once. The key is the conversation alone, case-folded: a conversation
// of the account's default service is one conversation with or without the
// service's SID, and CHab… and CHAB… may be one conversation to Twilio.
type scopeLocks struct{ m sync.Map }

func (l *scopeLocks) lock(scope twilio.Scope) func() {
	mu, _ := l.m.LoadOrStore(strings.ToLower(scope.ConversationSid), &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	return mu.(*sync.Mutex).Unlock
}
