package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// accountIndex holds the account an object uses: "TwilioAccount/<namespace>/<name>"
// or "ClusterTwilioAccount/<name>" (the default account included).
const accountIndex = "conversations.twilio-operator.io/account"

// resolvedAccount is the account an object acts with, resolved and verified.
type resolvedAccount struct {
	// key is the account's accountIndex value.
	key string
	// secret holds its credentials.
	secret types.NamespacedName
	// accountSid is the SID Twilio verified.
	accountSid string
	// secretVersion is the resourceVersion of the Secret Twilio verified.
	secretVersion string
	limits        *v1alpha1.AccountLimits
	// uid is the account object's.
	uid types.UID
}

// accountKey is the accountIndex value of the account an object names (or the
// default one), or "" when it names none and there is no default.
func (r *ConversationWebhookReconciler) accountKey(obj *v1alpha1.ConversationWebhook) string {
	ref := obj.Spec.AccountRef
	switch {
	case ref == nil && r.DefaultAccount == "":
		return ""
	case ref == nil:
		return accountKeyOf("", r.DefaultAccount)
	case ref.Kind == v1alpha1.AccountKindCluster:
		return accountKeyOf("", ref.Name)
	}
	return accountKeyOf(obj.Namespace, ref.Name)
}

// resolveAccount finds the object's account and checks that its namespace may
// use it and that its credentials are verified. Every failure is terminal
// (Stalled) except an account not verified yet (the object waits for it).
func (r *ConversationWebhookReconciler) resolveAccount(ctx context.Context, obj *v1alpha1.ConversationWebhook) (*resolvedAccount, error) {
	ref := obj.Spec.AccountRef
	if ref == nil && r.DefaultAccount == "" {
		return nil, stalled(v1alpha1.ReasonAccountNotFound,
			errors.New("no spec.accountRef, and the operator has no --default-account"))
	}
	acc := &resolvedAccount{key: r.accountKey(obj)}
	var status *v1alpha1.TwilioAccountStatus
	var generation int64
	if ref != nil && ref.Kind != v1alpha1.AccountKindCluster {
		a := &v1alpha1.TwilioAccount{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: obj.Namespace, Name: ref.Name}, a); err != nil {
			return nil, accountGetError(err, fmt.Sprintf("TwilioAccount %s/%s", obj.Namespace, ref.Name))
		}
		acc.secret = types.NamespacedName{Namespace: a.Namespace, Name: a.Spec.CredentialsSecretRef.Name}
		acc.limits, status, generation, acc.uid = a.Spec.Limits, &a.Status, a.Generation, a.UID
	} else {
		name := r.DefaultAccount
		if ref != nil {
			name = ref.Name
		}
		a := &v1alpha1.ClusterTwilioAccount{}
		if err := r.Get(ctx, types.NamespacedName{Name: name}, a); err != nil {
			return nil, accountGetError(err, "ClusterTwilioAccount "+name)
		}
		if err := r.namespaceAllowed(ctx, obj.Namespace, a); err != nil {
			return nil, err
		}
		acc.secret = types.NamespacedName{Namespace: a.Spec.CredentialsSecretRef.Namespace, Name: a.Spec.CredentialsSecretRef.Name}
		acc.limits, status, generation, acc.uid = a.Spec.Limits, &a.Status, a.Generation, a.UID
	}
	if err := rejected(acc.key, status, generation); err != nil {
		return nil, err
	}
	if !verified(status, generation) {
		return nil, &accountWaitError{account: acc.key}
	}
	acc.accountSid, acc.secretVersion = status.AccountSid, status.VerifiedSecretVersion
	if err := accountChanged(&obj.Status, acc); err != nil {
		return nil, err
	}
	return acc, nil
}

// accountChanged is the Stalled error of an object whose status records a
// webhook (its own or one a replacement superseded), or a create that may have
// made one, in another Twilio account than the one its account now acts for:
// looked for, fetched or deleted through the new account, it would look gone.
// It runs before the record is read (readRecord), so it checks what it uses: a
// recorded account SID that is not one is InvalidStatus, and SIDs repeated in
// the message are cut as any echoed value.
func accountChanged(st *v1alpha1.ConversationWebhookStatus, acc *resolvedAccount) error {
	rec, what, field := "", "", ""
	switch {
	case st.AccountSid != "" && st.Sid != "":
		rec, what, field = st.AccountSid, "webhook "+echo(st.Sid, maxEcho)+" was recorded", "status.accountSid"
	case st.AccountSid != "" && st.SupersededWebhook != nil:
		rec, what, field = st.AccountSid, "webhook "+echo(st.SupersededWebhook.Sid, maxEcho)+" was recorded", "status.accountSid"
	}
	if p := st.PendingCreate; p != nil && p.AccountSid != "" && (rec == "" || rec == acc.accountSid) {
		rec, what, field = p.AccountSid, "a create whose webhook may exist was sent at "+p.Since.UTC().Format(time.RFC3339),
			"status.pendingCreate.accountSid"
	}
	if rec == "" || rec == acc.accountSid {
		return nil
	}
	if !twilio.IsAccountSid(rec) {
		return invalidError(v1alpha1.ReasonInvalidStatus, field, rec)
	}
	return stalled(v1alpha1.ReasonAccountChanged, fmt.Errorf(
		"%s in Twilio account %s, but %s acts for account %s; the operator never recreates a webhook in another "+
			"account while the old one may exist: point spec.accountRef back, or move the webhook as the README's \"Moving a webhook "+
			"between accounts\" says", what, rec, acc.key, acc.accountSid))
}

// verified says an account's status records credentials Twilio accepted for
// its current spec: Ready=True at its generation, with a well-formed account SID.
func verified(status *v1alpha1.TwilioAccountStatus, generation int64) bool {
	ready := meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionReady)
	return ready != nil && ready.Status == metav1.ConditionTrue && ready.ObservedGeneration == generation &&
		twilio.IsAccountSid(status.AccountSid)
}

func accountGetError(err error, what string) error {
	if apierrors.IsNotFound(err) {
		return stalled(v1alpha1.ReasonAccountNotFound, fmt.Errorf("%s not found", what))
	}
	return fmt.Errorf("reading %s: %w", what, err)
}

// rejected is the Stalled error of an object whose account's credentials are
// missing or were refused for its current spec (its Ready condition False at its
// generation), with the account's reason: only a person can fix the Secret. The
// account's watch reconciles the object again once it is verified.
func rejected(key string, status *v1alpha1.TwilioAccountStatus, generation int64) error {
	ready := meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionFalse || ready.ObservedGeneration != generation {
		return nil
	}
	reason := ready.Reason
	if reason != v1alpha1.ReasonCredentialsMissing {
		reason = v1alpha1.ReasonCredentialsInvalid
	}
	// The account's message names the Secret and key, or carries Twilio's
	// code, never a credential; cut to the length an echo may have.
	return stalled(reason, fmt.Errorf("%s is not Ready (%s: %s); nothing is sent to Twilio until its credentials are verified",
		key, ready.Reason, echo(ready.Message, maxAccountEcho)))
}

// maxAccountEcho caps the account's Ready message repeated in an object's.
const maxAccountEcho = 512

// accountWaitError is an account whose credentials are not verified yet for its
// current spec: the object waits, without calling Twilio, and is reconciled
// when the account changes.
type accountWaitError struct {
	account string
	// secret names the account's Secret when it changed since it was verified.
	secret string
}

func (e *accountWaitError) Error() string {
	if e.secret != "" {
		return fmt.Sprintf("waiting for %s to verify its credentials Secret %s, changed since Twilio accepted it; nothing is sent to Twilio",
			e.account, e.secret)
	}
	return fmt.Sprintf("waiting for %s to be Ready (its credentials verified); nothing is sent to Twilio", e.account)
}

// namespaceAllowed checks a ClusterTwilioAccount's conditions against a
// namespace: listed by name, or its labels match a selector. No conditions
// allow nothing.
func (r *ConversationWebhookReconciler) namespaceAllowed(ctx context.Context, namespace string, a *v1alpha1.ClusterTwilioAccount) error {
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	if err := r.Get(ctx, types.NamespacedName{Name: namespace}, ns); err != nil {
		return fmt.Errorf("reading namespace %s: %w", namespace, err)
	}
	for _, c := range a.Spec.Conditions {
		if slices.Contains(c.Namespaces, namespace) {
			return nil
		}
		if c.NamespaceSelector == nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(c.NamespaceSelector)
		if err != nil {
			continue // an invalid selector matches nothing
		}
		if sel.Matches(labels.Set(ns.Labels)) {
			return nil
		}
	}
	return stalled(v1alpha1.ReasonAccountNotAllowed, fmt.Errorf(
		"ClusterTwilioAccount %s does not allow namespace %s: none of its spec.conditions matches it", a.Name, namespace))
}

// twilioFor resolves the object's account and returns its Twilio client. The
// client acts for the account SID Twilio verified, whatever the Secret claims:
// its rate budget is shared by every account object of that Twilio account.
func (r *ConversationWebhookReconciler) twilioFor(ctx context.Context, obj *v1alpha1.ConversationWebhook) (twilio.WebhookAPI, string, error) {
	// Registered before the account is read: an update of the account that
	// this read does not see yet wakes the object (accountHandler), even
	// while the cache still shows it Ready.
	waiter, accountKey := client.ObjectKeyFromObject(obj), r.accountKey(obj)
	r.waiters.add(accountKey, waiter)
	acc, err := r.resolveAccount(ctx, obj)
	if err != nil {
		return nil, "", err
	}
	creds, version, err := r.credentials.read(ctx, r.Client, r.APIReader, acc.secret)
	if err == nil && version != acc.secretVersion {
		// The cache's view of the Secret may be older than the one the account
		// verified: ask the API server.
		creds, version, err = r.credentials.readLive(ctx, r.APIReader, acc.secret)
	}
	if err != nil {
		return nil, "", err
	}
	if version != acc.secretVersion {
		// The Secret changed since Twilio accepted it: its new credentials may
		// be another account's. The account's status write, once it verified
		// them, wakes the object.
		return nil, "", &accountWaitError{account: acc.key, secret: acc.secret.String()}
	}
	creds.AccountSid = acc.accountSid
	// The account reconciler sets them once it verified the credentials; right
	// after a restart it may not have run yet.
	r.Twilio.EnsureLimits(acc.accountSid, acc.key, string(acc.uid), limitsOf(acc.limits))
	api, err := r.Twilio.For(creds)
	if err != nil {
		return nil, "", stalled(v1alpha1.ReasonCredentialsInvalid, fmt.Errorf("credentials Secret %s: %w", acc.secret, err))
	}
	if r.Fence != nil {
		api = fencedAPI{WebhookAPI: api, fence: r.Fence}
	}
	r.waiters.remove(accountKey, waiter)
	return api, acc.accountSid, nil
}

// accountWaiters are, per account key, the objects whose last look at their
// account did not end with a usable client (or is under way): whatever the
// account's next update is, it wakes them.
type accountWaiters struct {
	mu sync.Mutex
	m  map[string]map[types.NamespacedName]struct{}
}

func (w *accountWaiters) add(account string, obj types.NamespacedName) {
	if account == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = map[string]map[types.NamespacedName]struct{}{}
	}
	if w.m[account] == nil {
		w.m[account] = map[types.NamespacedName]struct{}{}
	}
	w.m[account][obj] = struct{}{}
}

// remove leaves the account's set in place, empty or not: add and remove run
// on every reconcile, which would otherwise allocate a set each time.
func (w *accountWaiters) remove(account string, obj types.NamespacedName) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.m[account], obj)
}

// take returns the account's waiters and forgets them: a woken object that
// still waits registers again.
func (w *accountWaiters) take(account string) []types.NamespacedName {
	w.mu.Lock()
	defer w.mu.Unlock()
	set := w.m[account]
	delete(w.m, account)
	out := make([]types.NamespacedName, 0, len(set))
	for obj := range set {
		out = append(out, obj)
	}
	return out
}

func (r *ConversationWebhookReconciler) setupAccountIndex(ctx context.Context, mgr ctrl.Manager) error {
	return indexClusterWide(ctx, mgr.GetCache(), &v1alpha1.ConversationWebhook{}, accountIndex, func(o client.Object) []string {
		if key := r.accountKey(o.(*v1alpha1.ConversationWebhook)); key != "" {
			return []string{key}
		}
		return nil
	})
}

// accountKeyOf is an account object's accountIndex value (and the source of
// the limits it sets): a ClusterTwilioAccount has no namespace.
func accountKeyOf(namespace, name string) string {
	if namespace == "" {
		return string(v1alpha1.AccountKindCluster) + "/" + name
	}
	return string(v1alpha1.AccountKindNamespaced) + "/" + namespace + "/" + name
}

// objectsForAccount maps an account to the objects that use it.
func (r *ConversationWebhookReconciler) objectsForAccount(ctx context.Context, account client.Object) []reconcile.Request {
	return r.requestsFor(ctx, nil, client.MatchingFields{accountIndex: accountKeyOf(account.GetNamespace(), account.GetName())})
}

// accountHandler wakes the objects that use an account when it appears or goes,
// or its verdict changes (Ready's status or reason, or the account SID it is
// verified for). Any other change (its spec, a Secret verified again, the
// generation its status describes) wakes only the objects that may be waiting
// for it: those not Ready, and those whose last look at it did not end with a
// usable client or is under way (accountWaiters: the cache may still show
// them Ready). A Ready object's next poll sees the change, and waking
// thousands of them would cost a Twilio fetch each.
func (r *ConversationWebhookReconciler) accountHandler() handler.EventHandler {
	all := handler.EnqueueRequestsFromMapFunc(r.objectsForAccount)
	return handler.Funcs{
		CreateFunc: all.Create, DeleteFunc: all.Delete, GenericFunc: all.Generic,
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			key := accountKeyOf(e.ObjectNew.GetNamespace(), e.ObjectNew.GetName())
			for _, obj := range r.waiters.take(key) {
				q.Add(reconcile.Request{NamespacedName: obj})
			}
			if verdictChanged(accountOf(e.ObjectOld).status, accountOf(e.ObjectNew).status) || conditionsChanged(e.ObjectOld, e.ObjectNew) {
				all.Update(ctx, e, q)
				return
			}
			notReady := func(o *v1alpha1.ConversationWebhook) bool {
				return !meta.IsStatusConditionTrue(o.Status.Conditions, v1alpha1.ConditionReady)
			}
			for _, req := range r.requestsFor(ctx, notReady, client.MatchingFields{accountIndex: key}) {
				q.Add(req)
			}
		},
	}
}

// conditionsChanged says a ClusterTwilioAccount's spec.conditions (which
// namespaces may use it) changed: every object using it is checked again.
func conditionsChanged(old, cur client.Object) bool {
	o, ok1 := old.(*v1alpha1.ClusterTwilioAccount)
	c, ok2 := cur.(*v1alpha1.ClusterTwilioAccount)
	return ok1 && ok2 && !equality.Semantic.DeepEqual(o.Spec.Conditions, c.Spec.Conditions)
}

// verdictChanged says an account's status says something else of its
// credentials: Ready's status or reason, or the account SID.
func verdictChanged(old, cur *v1alpha1.TwilioAccountStatus) bool {
	if old.AccountSid != cur.AccountSid {
		return true
	}
	o, c := meta.FindStatusCondition(old.Conditions, v1alpha1.ConditionReady), meta.FindStatusCondition(cur.Conditions, v1alpha1.ConditionReady)
	if o == nil || c == nil {
		return o != c
	}
	return o.Status != c.Status || o.Reason != c.Reason
}

// objectsForNamespace maps a namespace (its labels changed) to its objects that
// use a ClusterTwilioAccount, whose conditions may now match it or not.
func (r *ConversationWebhookReconciler) objectsForNamespace(ctx context.Context, ns client.Object) []reconcile.Request {
	var list v1alpha1.ConversationWebhookList
	if err := r.List(ctx, &list, client.InNamespace(ns.GetName())); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing objects of a namespace", "namespace", ns.GetName())
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if o := &list.Items[i]; o.Spec.AccountRef == nil || o.Spec.AccountRef.Kind == v1alpha1.AccountKindCluster {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(o)})
		}
	}
	return reqs
}

// requestsFor lists the objects the options select (from the cache) that keep
// passes (all, when nil).
func (r *ConversationWebhookReconciler) requestsFor(ctx context.Context, keep func(*v1alpha1.ConversationWebhook) bool,
	opts ...client.ListOption) []reconcile.Request {
	var list v1alpha1.ConversationWebhookList
	if err := r.List(ctx, &list, opts...); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing objects that use an account")
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		if keep == nil || keep(&list.Items[i]) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return reqs
}

// limitsOf converts an account's limits; unset fields are the operator's defaults.
func limitsOf(l *v1alpha1.AccountLimits) twilio.Limits {
	var out twilio.Limits
	if l == nil {
		return out
	}
	if l.MaxInFlight != nil {
		out.MaxInFlight = int(*l.MaxInFlight)
	}
	if l.RequestsPerSecond != nil {
		out.RequestsPerSecond = float64(*l.RequestsPerSecond)
	}
	return out
}
