package controller

import (
	"context"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	fakeclient "sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

const (
	attackSidA = "AC11111111111111111111111111111111"
	attackSidB = "AC22222222222222222222222222222222"
	attackNS   = "team"
)

// limitsFactory is the manager's factory: both reconcilers' limits go to it,
// and Limits tells what is in force.
func limitsFactory(t *testing.T) *twilio.Factory {
	t.Helper()
	f, err := twilio.NewFactory(twilio.Options{BaseURL: "https://example.test", MaxInFlight: 10, RequestsPerSecond: 25})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// fixedVerifier verifies every credential as one account SID.
type fixedVerifier struct{ sid string }

func (v *fixedVerifier) VerifyAccount(context.Context, twilio.Credentials) (string, error) {
	return v.sid, nil
}

// hookReader runs hook (once) before the first Secret read, that is between
// resolveAccount's read of the account and twilioFor's SetLimits.
type hookReader struct {
	client.Reader
	once sync.Once
	hook func()
}

func (h *hookReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*corev1.Secret); ok && h.hook != nil {
		h.once.Do(h.hook)
	}
	return h.Reader.Get(ctx, key, obj, opts...)
}

// attackSecretVersion is the resourceVersion of the fixture's Secret, which
// its accounts record as verified.
const attackSecretVersion = "7"

// attackAccount is a TwilioAccount verified for attackSidA.
func attackAccount(name string, maxInFlight int32) *v1alpha1.TwilioAccount {
	a := &v1alpha1.TwilioAccount{
		ObjectMeta: metav1.ObjectMeta{Namespace: attackNS, Name: name, Generation: 1},
		Spec:       v1alpha1.TwilioAccountSpec{CredentialsSecretRef: v1alpha1.SecretReference{Name: "creds"}},
	}
	if maxInFlight > 0 {
		a.Spec.Limits = &v1alpha1.AccountLimits{MaxInFlight: ptr.To(maxInFlight)}
	}
	a.Status.AccountSid, a.Status.VerifiedSecretVersion = attackSidA, attackSecretVersion
	setAccountReady(&a.Status, 1, metav1.ConditionTrue, v1alpha1.ReasonVerified, "verified")
	return a
}

func attackWebhook(name, account string) *v1alpha1.ConversationWebhook {
	return &v1alpha1.ConversationWebhook{
		ObjectMeta: metav1.ObjectMeta{Namespace: attackNS, Name: name, Generation: 1},
		Spec: v1alpha1.ConversationWebhookSpec{
			ConversationSid: "CH00000000000000000000000000000001",
			AccountRef:      &v1alpha1.AccountReference{Kind: v1alpha1.AccountKindNamespaced, Name: account},
		},
	}
}

// attackClient is a fake API server holding the objects and the accounts'
// Secret, with the account index the wake handler lists by and the
// webhook-SID index.
func attackClient(t *testing.T, objs ...client.Object) client.WithWatch {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: attackNS, Name: "creds", ResourceVersion: attackSecretVersion},
		Data: map[string][]byte{keyAccountSid: []byte(attackSidA), keyAuthToken: []byte("token")}}
	keyOf := (&ConversationWebhookReconciler{}).accountKey
	return fakeclient.NewClientBuilder().WithScheme(scheme).
		WithStatusSubresource(&v1alpha1.TwilioAccount{}, &v1alpha1.ConversationWebhook{}).
		WithIndex(&v1alpha1.ConversationWebhook{}, accountIndex, func(o client.Object) []string {
			if k := keyOf(o.(*v1alpha1.ConversationWebhook)); k != "" {
				return []string{k}
			}
			return nil
		}).
		WithIndex(&v1alpha1.ConversationWebhook{}, sidIndex, func(o client.Object) []string {
			return SidsOf(o.(*v1alpha1.ConversationWebhook))
		}).
		WithObjects(append(objs, secret)...).Build()
}

// An account object deleted (and its deletion reconciled by the account
// reconciler) while a ConversationWebhook's reconcile is between reading it and
// using its limits: the reconcile must not bring the deleted object's limits
// back, even when nothing reconciles that webhook again (GitOps deletes the
// app, account and webhooks together: its requeue ends at its own Get).
func TestAttackDeletedAccountLimitsResurrectedByInFlightReconcile(t *testing.T) {
	acct := attackAccount("strict", 2)
	wh := attackWebhook("w", "strict")
	c := attackClient(t, acct, wh)
	ledger := limitsFactory(t)
	ar := &AccountReconciler{Client: c, APIReader: c, Verifier: &fixedVerifier{attackSidA}, Limits: ledger}
	reader := &hookReader{Reader: c}
	r := &ConversationWebhookReconciler{Client: c, APIReader: reader, Twilio: ledger}
	ran := false
	reader.hook = func() {
		ran = true
		if err := c.Delete(t.Context(), acct.DeepCopy()); err != nil {
			t.Fatal(err)
		}
		if _, err := ar.Reconcile(t.Context(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(acct)}); err != nil {
			t.Fatal(err)
		}
	}
	obj := &v1alpha1.ConversationWebhook{}
	if err := c.Get(t.Context(), client.ObjectKeyFromObject(wh), obj); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.twilioFor(t.Context(), obj); err != nil {
		t.Fatal(err)
	}
	if !ran {
		t.Fatal("the account was not deleted while the reconcile was in flight")
	}
	// The webhook goes as well (its deletion has nothing to delete in Twilio:
	// deletionPolicy Orphan, nothing created yet; or the straddling reconcile
	// was the deletion's own, which then removed the finalizer); its requeue
	// (the account's deletion enqueued it) finds it gone.
	if err := c.Delete(t.Context(), obj); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(t.Context(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(wh)}); err != nil {
		t.Fatal(err)
	}
	// Nothing reconciles the account again: its deletion was its last event.
	if got := ledger.Limits(attackSidA).MaxInFlight; got != 10 {
		t.Errorf("max in flight %d: the deleted TwilioAccount %s/strict still limits %s after every reconcile ended", got, attackNS, attackSidA)
	}
}

// An account object whose credentials now verify to another account SID,
// while its webhooks are recorded in the first one (they stall on
// AccountChanged before using the account): its limits move to the new SID.
func TestAttackRotatedAccountKeepsLimitingTheOldSid(t *testing.T) {
	acct := attackAccount("rotating", 2)
	wh := attackWebhook("w", "rotating")
	c := attackClient(t, acct, wh)
	ledger := limitsFactory(t)
	r := &ConversationWebhookReconciler{Client: c, APIReader: c, Twilio: ledger}
	obj := &v1alpha1.ConversationWebhook{}
	if err := c.Get(t.Context(), client.ObjectKeyFromObject(wh), obj); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.twilioFor(t.Context(), obj); err != nil {
		t.Fatal(err)
	}
	// The webhook is made in account A.
	obj.Status.Sid, obj.Status.AccountSid = "WH00000000000000000000000000000001", attackSidA
	// The credentials are rotated to account B (the Secret changes); the
	// account reconciler verifies them.
	secret := &corev1.Secret{}
	if err := c.Get(t.Context(), client.ObjectKey{Namespace: attackNS, Name: "creds"}, secret); err != nil {
		t.Fatal(err)
	}
	secret.Data[keyAuthToken] = []byte("rotatedtoken0000000000000000000b")
	if err := c.Update(t.Context(), secret); err != nil {
		t.Fatal(err)
	}
	ar := &AccountReconciler{Client: c, APIReader: c, Verifier: &fixedVerifier{attackSidB}, Limits: ledger}
	if _, err := ar.Reconcile(t.Context(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(acct)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.twilioFor(t.Context(), obj); err == nil {
		t.Fatal("want AccountChanged")
	}
	if got := ledger.Limits(attackSidA).MaxInFlight; got != 10 {
		t.Errorf("max in flight %d: TwilioAccount %s/rotating verifies to %s but its limits still bind %s", got, attackNS, attackSidB, attackSidA)
	}
	if got := ledger.Limits(attackSidB).MaxInFlight; got != 2 {
		t.Errorf("max in flight %d for %s, want the rotated object's 2", got, attackSidB)
	}
}

// Two account objects of one Twilio account, the strict one with no webhook
// reconciling (none yet, all paused, or after a restart before any of its own
// ran): its limits bind the account as soon as it is verified, so the other
// object's webhooks do not run at the defaults.
func TestAttackStrictAccountWithoutWebhooksDoesNotLimit(t *testing.T) {
	strict := attackAccount("strict", 2)
	loose := attackAccount("loose", 0)
	wh := attackWebhook("w", "loose")
	c := attackClient(t, strict, loose, wh)
	ledger := limitsFactory(t)
	ar := &AccountReconciler{Client: c, APIReader: c, Verifier: &fixedVerifier{attackSidA}, Limits: ledger}
	for _, a := range []*v1alpha1.TwilioAccount{strict, loose} {
		if _, err := ar.Reconcile(t.Context(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(a)}); err != nil {
			t.Fatal(err)
		}
	}
	r := &ConversationWebhookReconciler{Client: c, APIReader: c, Twilio: ledger}
	obj := &v1alpha1.ConversationWebhook{}
	if err := c.Get(t.Context(), types.NamespacedName{Namespace: attackNS, Name: "w"}, obj); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.twilioFor(t.Context(), obj); err != nil {
		t.Fatal(err)
	}
	if got := ledger.Limits(attackSidA).MaxInFlight; got != 2 {
		t.Errorf("max in flight %d: webhooks of %s/loose act for %s without the limits (2) of %s/strict, verified for the same account",
			got, attackNS, attackSidA, attackNS)
	}
}
