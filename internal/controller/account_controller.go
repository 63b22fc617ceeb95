package controller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// AccountVerifier checks credentials with Twilio (*twilio.Factory in the manager).
type AccountVerifier interface {
	// VerifyAccount returns the account SID Twilio answers for the credentials.
	VerifyAccount(ctx context.Context, creds twilio.Credentials) (string, error)
}

// AccountLimits records the limits each account object sets for the Twilio
// account it is verified for (*twilio.Factory): this reconciler is their one
// writer, so a deleted or re-pointed object's limits never linger.
type AccountLimits interface {
	SetLimits(accountSid, source, uid string, l twilio.Limits)
	ForgetLimits(source string)
}

// secretIndex holds "namespace/name" of the Secret an account names.
const secretIndex = "conversations.twilio-operator.io/credentials-secret"

// AccountReconciler verifies the credentials of TwilioAccount and
// ClusterTwilioAccount objects and records the account SID Twilio returns.
type AccountReconciler struct {
	client.Client
	// APIReader reads Secret data straight from the API server: the manager
	// caches Secret metadata only.
	APIReader client.Reader
	// Verifier checks credentials with Twilio.
	Verifier AccountVerifier
	// SyncPeriod is how often credentials are verified again.
	SyncPeriod time.Duration
	// Cluster selects ClusterTwilioAccount (true) or TwilioAccount (false).
	Cluster bool
	// Limits, when set, receives each object's spec.limits while it is Ready
	// (verified), and forgets them once it is not, or gone.
	Limits AccountLimits

	credentials credentialCache
}

// +kubebuilder:rbac:groups=conversations.twilio-operator.io,resources=twilioaccounts;clustertwilioaccounts,verbs=get;list;watch
// +kubebuilder:rbac:groups=conversations.twilio-operator.io,resources=twilioaccounts/status;clustertwilioaccounts/status,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// account is what the reconciler needs of either kind.
type account struct {
	obj    client.Object
	secret types.NamespacedName
	status *v1alpha1.TwilioAccountStatus
	limits *v1alpha1.AccountLimits
}

func (r *AccountReconciler) newObject() client.Object {
	if r.Cluster {
		return &v1alpha1.ClusterTwilioAccount{}
	}
	return &v1alpha1.TwilioAccount{}
}

func accountOf(obj client.Object) account {
	switch a := obj.(type) {
	case *v1alpha1.ClusterTwilioAccount:
		ref := a.Spec.CredentialsSecretRef
		return account{obj: a, secret: types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, status: &a.Status, limits: a.Spec.Limits}
	case *v1alpha1.TwilioAccount:
		return account{obj: a, secret: types.NamespacedName{Namespace: a.Namespace, Name: a.Spec.CredentialsSecretRef.Name},
			status: &a.Status, limits: a.Spec.Limits}
	}
	panic(fmt.Sprintf("not an account: %T", obj))
}

// Reconcile verifies one account's credentials.
func (r *AccountReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	obj := r.newObject()
	key := accountKeyOf(req.Namespace, req.Name)
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) && r.Limits != nil {
			// Gone: its spec.limits no longer bind the Twilio account.
			r.Limits.ForgetLimits(key)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	base := obj.DeepCopyObject().(client.Object)
	acc := accountOf(obj)
	defer func() {
		if equality.Semantic.DeepEqual(accountOf(base).status, acc.status) {
			return
		}
		if err := r.Status().Patch(ctx, obj, client.MergeFrom(base)); err != nil && !apierrors.IsNotFound(err) {
			retErr = errors.Join(retErr, fmt.Errorf("patching status: %w", err))
		}
	}()
	creds, version, err := r.credentials.read(ctx, r.Client, r.APIReader, acc.secret)
	if err == nil {
		var sid string
		if sid, err = r.Verifier.VerifyAccount(ctx, creds); err == nil {
			sid, err = sameAccount(acc.status, obj.GetGeneration(), version, sid)
		}
		if err == nil {
			r.setLimits(sid, key, acc)
			acc.status.AccountSid = sid
			// ConversationWebhooks act only with this version of the Secret.
			acc.status.VerifiedSecretVersion = version
			setAccountReady(acc.status, obj.GetGeneration(), metav1.ConditionTrue, v1alpha1.ReasonVerified,
				fmt.Sprintf("Twilio accepted the credentials in Secret %s for account %s", acc.secret, sid))
			return ctrl.Result{RequeueAfter: jitter(r.SyncPeriod)}, nil
		}
	}
	reason, terminal := classify(err)
	if !terminal {
		// Twilio or the API server failed in a way a retry may fix: keep what was
		// verified (a Twilio outage must not stop every webhook of the account),
		// its limits included (after a restart too). A Secret changed since is
		// not verified: the webhooks wait for it (twilioFor), and the account's
		// message says why, with the same verdict (a change of it would wake
		// every webhook of the account).
		if verified(acc.status, obj.GetGeneration()) {
			r.setLimits(acc.status.AccountSid, key, acc)
			if version != "" && version != acc.status.VerifiedSecretVersion {
				setAccountReady(acc.status, obj.GetGeneration(), metav1.ConditionTrue, v1alpha1.ReasonVerified,
					fmt.Sprintf("Twilio accepted the credentials in Secret %s for account %s; the Secret has changed since, and its "+
						"new credentials are not verified yet (%s): the account's webhooks wait for them", acc.secret, acc.status.AccountSid,
						echo(err.Error(), maxAccountEcho)))
			}
		}
		return ctrl.Result{}, err
	}
	if r.Limits != nil {
		// Not Ready: it acts for no account.
		r.Limits.ForgetLimits(key)
	}
	acc.status.VerifiedSecretVersion = ""
	if reason != v1alpha1.ReasonCredentialsMissing {
		reason = v1alpha1.ReasonCredentialsInvalid
	}
	setAccountReady(acc.status, obj.GetGeneration(), metav1.ConditionFalse, reason, err.Error())
	// Fixing the Secret reconciles again (watched); a rejected key is retried each period.
	return ctrl.Result{RequeueAfter: jitter(r.SyncPeriod)}, nil
}

// sameAccount refuses an answer that moves an account whose Secret did not
// change to another Twilio account: a credential belongs to one account, so
// Twilio cannot answer that (an impostor or a misrouted proxy can), and taking
// it would stall every webhook recorded in the account (AccountChanged). An
// answer differing only in the case of its hexadecimal digits is the same
// account, kept as first verified.
//
// sid is VerifyAccount's, checked against the account SID pattern there.
func sameAccount(st *v1alpha1.TwilioAccountStatus, generation int64, version, sid string) (string, error) {
	if !verified(st, generation) || version != st.VerifiedSecretVersion || st.AccountSid == "" {
		return sid, nil
	}
	if strings.EqualFold(sid, st.AccountSid) {
		return st.AccountSid, nil
	}
	return "", &twilio.APIError{Operation: twilio.OpVerify, Status: http.StatusBadGateway,
		Message: fmt.Sprintf("the credential check answered account %s for the Secret verified for %s, unchanged since: "+
			"Twilio cannot answer that (a credential belongs to one account); kept %s", sid, st.AccountSid, st.AccountSid)}
}

// setLimits hands the object's spec.limits to the factory for the account
// SID it is verified for.
func (r *AccountReconciler) setLimits(accountSid, key string, acc account) {
	if r.Limits != nil {
		r.Limits.SetLimits(accountSid, key, string(acc.obj.GetUID()), limitsOf(acc.limits))
	}
}

func setAccountReady(st *v1alpha1.TwilioAccountStatus, generation int64, status metav1.ConditionStatus, reason, message string) {
	st.ObservedGeneration = generation
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: status, Reason: reason,
		Message: message, ObservedGeneration: generation})
}

// SetupWithManager registers the controller for its kind, an index of the
// Secrets accounts name, and a watch of Secret metadata, so a changed Secret is
// verified again.
func (r *AccountReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	name := "twilioaccount"
	if r.Cluster {
		name = "clustertwilioaccount"
	}
	if err := indexClusterWide(ctx, mgr.GetCache(), r.newObject(), secretIndex, func(o client.Object) []string {
		return []string{accountOf(o).secret.String()}
	}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(r.newObject(), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.accountsForSecret)).
		Named(name).
		Complete(r)
}

// accountsForSecret maps a Secret to the accounts of this kind that name it.
func (r *AccountReconciler) accountsForSecret(ctx context.Context, secret client.Object) []reconcile.Request {
	key := types.NamespacedName{Namespace: secret.GetNamespace(), Name: secret.GetName()}.String()
	var list client.ObjectList = &v1alpha1.TwilioAccountList{}
	if r.Cluster {
		list = &v1alpha1.ClusterTwilioAccountList{}
	}
	if err := r.List(ctx, list, client.MatchingFields{secretIndex: key}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing accounts that use a Secret", "secret", key)
		return nil
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Reading accounts that use a Secret", "secret", key)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(items))
	for _, o := range items {
		if obj, ok := o.(client.Object); ok {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(obj)})
		}
	}
	return reqs
}
