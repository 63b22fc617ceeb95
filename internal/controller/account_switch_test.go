package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

// An attacker helper's specs on the AccountChanged guard ("the operator never
// recreates a webhook in another account while the old one may still exist"):
// three ways around it made the operator act on a webhook through the wrong
// Twilio account, and a deletion then left it in the first account with no
// Warning naming it (twice with a Normal Deleted event that was not true).
var _ = Describe("Account switches", func() {
	var t *tenant
	BeforeEach(func() {
		t = newTenant(1)
		resetFake()
		DeferCleanup(resetFake)
		DeferCleanup(fake.ClearFaults)
		fake.AddAccount(otherAccount, "otherAuthTOKEN00000000000000002")
		fake.AddAPIKey(otherAccount, otherKeySid, otherKeySecret)
	})

	otherSecret := func(name string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: ctrlObjectMeta(name, t.ns),
			StringData: map[string]string{"accountSid": otherAccount, "apiKeySid": otherKeySid, "apiKeySecret": otherKeySecret}}
	}
	switchToOther := func(o *v1alpha1.ConversationWebhook) {
		GinkgoHelper()
		Expect(k8sClient.Create(ctx, otherSecret("other"))).To(Succeed())
		Expect(k8sClient.Create(ctx, twilioAccount(t.ns, "other", "other"))).To(Succeed())
		patchSpec(o, func(o *v1alpha1.ConversationWebhook) { o.Spec.AccountRef = &v1alpha1.AccountReference{Name: "other"} })
	}
	swapSecret := func() { rewriteSecret(t.ns, otherAccount, otherKeySid, otherKeySecret) }
	// deleteLeavesNamed deletes the object and expects what it leaves in the
	// first account (still there) named by a Warning Orphaned event.
	deleteLeavesNamed := func(o *v1alpha1.ConversationWebhook, sid, named string) {
		GinkgoHelper()
		Expect(k8sClient.Delete(ctx, o)).To(Succeed())
		waitGone(o)
		_, exists := fake.Webhook(sid)
		Expect(exists).To(BeTrue(), "webhook %s was deleted through another account", sid)
		Eventually(func() bool {
			for _, e := range objectEvents(o) {
				if e.Type == corev1.EventTypeWarning && e.Reason == EventOrphaned && strings.Contains(e.Note, named) {
					return true
				}
			}
			return false
		}).WithTimeout(10*time.Second).WithPolling(waitPoll).Should(BeTrue(), "no Warning Orphaned names %s; events: %v", named, eventNotes(o))
		Expect(eventReasons(o)).NotTo(ContainElement(EventDeleted))
	}

	It("a Twilio answer without account_sid records the account the request acted for: AccountChanged still holds", func() {
		Expect(fake.SetNullFields("account_sid")).To(Succeed())
		o := t.object("nullacct")
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		sid := waitReady(o).Status.Sid
		Expect(get(o).Status.AccountSid).To(Equal(testAccount))
		switchToOther(o)
		waitStalled(o, v1alpha1.ReasonAccountChanged)
		Expect(authLog.usersFor(t.convs[0])).NotTo(ContainElement(otherKeySid))
		deleteLeavesNamed(o, sid, sid)
	})

	It("a Secret rewritten with another account's key is not used until Twilio verified it; then AccountChanged", func() {
		o := t.object("swap")
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		sid := waitReady(o).Status.Sid
		// Twilio cannot verify for now (an outage of GET /v1/Configuration).
		fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultServerError, Operation: twiliofake.OpConfiguration, Sticky: true})
		swapSecret() // a mistake: the tenant's Secret now holds another Twilio account's key
		patchSpec(o, func(o *v1alpha1.ConversationWebhook) { o.Spec.URL = "https://hooks.example.com/swap-2" })
		Eventually(func() string { return condition(get(o), v1alpha1.ConditionReady) }).
			WithTimeout(waitTimeout).WithPolling(waitPoll).Should(Equal("False/" + v1alpha1.ReasonAccountNotReady))
		Consistently(func() []string { return authLog.usersFor(t.convs[0]) }).
			WithTimeout(2 * syncPeriod).WithPolling(200 * time.Millisecond).ShouldNot(ContainElement(otherKeySid))
		// A deletion waits too, rather than act with credentials nobody verified.
		Expect(k8sClient.Delete(ctx, o)).To(Succeed())
		Consistently(func() error {
			return k8sClient.Get(ctx, client.ObjectKeyFromObject(o), &v1alpha1.ConversationWebhook{})
		}).
			WithTimeout(2 * syncPeriod).WithPolling(200 * time.Millisecond).Should(Succeed())
		// Twilio answers again: the new key is verified, for the other account.
		fake.ClearFaults()
		waitGone(o)
		_, exists := fake.Webhook(sid)
		Expect(exists).To(BeTrue())
		Expect(authLog.usersFor(t.convs[0])).NotTo(ContainElement(otherKeySid))
		Eventually(func() []string { return eventNotes(o) }).WithTimeout(10 * time.Second).WithPolling(waitPoll).
			Should(ContainElement(And(ContainSubstring(sid), ContainSubstring("Twilio account "+testAccount))))
	})

	It("a create that may have made a webhook in one account is not looked for in another after an accountRef switch", func() {
		o := t.object("pending")
		// The create is processed, its answer lost; listing the conversation
		// fails for a while, so the pending record stays in status.
		fake.InjectFaults(
			twiliofake.Fault{Kind: twiliofake.FaultLoseResponse, Operation: twiliofake.OpCreate, Conversations: t.convs[:1]},
			twiliofake.Fault{Kind: twiliofake.FaultServerError, Operation: twiliofake.OpList, Conversations: t.convs[:1], Sticky: true},
		)
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		Eventually(func() int { return len(fakeHooks(t.convs[0])) }).WithTimeout(waitTimeout).WithPolling(waitPoll).Should(Equal(1))
		made := fakeHooks(t.convs[0])[0].Sid
		Eventually(func() *v1alpha1.PendingCreate { return get(o).Status.PendingCreate }).
			WithTimeout(waitTimeout).WithPolling(waitPoll).Should(HaveField("AccountSid", testAccount))
		Expect(get(o).Status.Sid).To(BeEmpty())

		switchToOther(o) // GitOps "fixes" the object's account: another Twilio account
		waitStalled(o, v1alpha1.ReasonAccountChanged)
		fake.ClearFaults()
		Consistently(func() []string { return authLog.usersFor(t.convs[0]) }).
			WithTimeout(2 * syncPeriod).WithPolling(200 * time.Millisecond).ShouldNot(ContainElement(otherKeySid))
		deleteLeavesNamed(o, made, t.convs[0])
	})
})

// An account's change wakes its Ready objects only when its verdict changes;
// otherwise only the objects that may be waiting for it.
var _ = Describe("Account wakes", func() {
	var t *tenant
	BeforeEach(func() {
		t = newTenant(1)
		resetFake()
		DeferCleanup(resetFake)
		DeferCleanup(fake.ClearFaults)
	})
	hourly := func(o *v1alpha1.ConversationWebhook) {
		o.Annotations = map[string]string{v1alpha1.AnnotationPollInterval: "1h"}
	}
	account := func() *v1alpha1.TwilioAccount {
		GinkgoHelper()
		a := &v1alpha1.TwilioAccount{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: t.ns, Name: accountName}, a)).To(Succeed())
		return a
	}

	It("a change of the account's limits, verified again, costs its Ready objects no Twilio fetch", func() {
		o := t.object("limits", hourly)
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		waitReady(o)
		fetches := countInConversation(t.convs[0], twiliofake.OpFetch)
		// The tenant's account is the suite's shared Twilio account, whose
		// limiter takes the smallest limit of its account objects: the limit
		// goes with the spec, or later specs' requests would run under it.
		DeferCleanup(func() {
			Eventually(func() error {
				a := account()
				a.Spec.Limits = nil
				return k8sClient.Update(ctx, a)
			}).WithTimeout(waitTimeout).WithPolling(waitPoll).Should(Succeed())
		})
		Eventually(func() error {
			a := account()
			a.Spec.Limits = &v1alpha1.AccountLimits{MaxInFlight: new(int32(7))}
			return k8sClient.Update(ctx, a)
		}).WithTimeout(waitTimeout).WithPolling(waitPoll).Should(Succeed())
		Eventually(func() int64 { a := account(); return a.Status.ObservedGeneration - a.Generation }).
			WithTimeout(waitTimeout).WithPolling(waitPoll).Should(BeZero())
		Consistently(func() int { return countInConversation(t.convs[0], twiliofake.OpFetch) }).
			WithTimeout(3 * time.Second).WithPolling(200 * time.Millisecond).Should(Equal(fetches))
	})

	It("an object that waited for its account's changed Secret is woken once the account verified it, same account SID", func() {
		o := t.object("rotated", hourly)
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		waitReady(o)
		fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultServerError, Operation: twiliofake.OpConfiguration, Sticky: true})
		rewriteSecret(t.ns, testAccount, testDefaultKeySid, testDefaultKeySecret) // a key rotation: another key of the same account
		patchSpec(o, func(o *v1alpha1.ConversationWebhook) { o.Spec.URL = "https://hooks.example.com/rotated-2" })
		Eventually(func() string { return condition(get(o), v1alpha1.ConditionReady) }).
			WithTimeout(waitTimeout).WithPolling(waitPoll).Should(Equal("False/" + v1alpha1.ReasonAccountNotReady))
		fake.ClearFaults()
		// Its poll is an hour away: only the account's wake brings it back.
		got := waitReady(o)
		Expect(got.Status.Configuration.URL).To(Equal("https://hooks.example.com/rotated-2"))
		Expect(authLog.usersFor(t.convs[0])).To(ContainElement(testDefaultKeySid))
	})
})

// rewriteSecret replaces the data of the tenant's credentials Secret.
func rewriteSecret(namespace, account, keySid, keySecret string) {
	GinkgoHelper()
	Eventually(func() error {
		s := &corev1.Secret{}
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: secretName}, s); err != nil {
			return err
		}
		s.Data = map[string][]byte{"accountSid": []byte(account), "apiKeySid": []byte(keySid), "apiKeySecret": []byte(keySecret)}
		return k8sClient.Update(ctx, s)
	}).WithTimeout(waitTimeout).WithPolling(waitPoll).Should(Succeed())
}

// verdictChanged: what in an account's status wakes all of its objects.
func TestVerdictChanged(t *testing.T) {
	ready := func(status metav1.ConditionStatus, reason string, gen int64) []metav1.Condition {
		return []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: status, Reason: reason, ObservedGeneration: gen}}
	}
	const acA, acB = "AC0000000000000000000000000000000a", "AC0000000000000000000000000000000b"
	verified := v1alpha1.TwilioAccountStatus{AccountSid: acA, VerifiedSecretVersion: "1", Conditions: ready(metav1.ConditionTrue, v1alpha1.ReasonVerified, 1)}
	cases := []struct {
		name string
		cur  v1alpha1.TwilioAccountStatus
		want bool
	}{
		{"nothing", verified, false},
		{"a Secret verified again", v1alpha1.TwilioAccountStatus{AccountSid: acA, VerifiedSecretVersion: "2", Conditions: verified.Conditions}, false},
		{"a new generation verified", v1alpha1.TwilioAccountStatus{AccountSid: acA, VerifiedSecretVersion: "1", Conditions: ready(metav1.ConditionTrue, v1alpha1.ReasonVerified, 2)}, false},
		{"another account SID", v1alpha1.TwilioAccountStatus{AccountSid: acB, VerifiedSecretVersion: "1", Conditions: verified.Conditions}, true},
		{"rejected", v1alpha1.TwilioAccountStatus{AccountSid: acA, Conditions: ready(metav1.ConditionFalse, v1alpha1.ReasonCredentialsInvalid, 1)}, true},
		{"another reason", v1alpha1.TwilioAccountStatus{AccountSid: acA, VerifiedSecretVersion: "1", Conditions: ready(metav1.ConditionTrue, "Other", 1)}, true},
		{"no condition", v1alpha1.TwilioAccountStatus{AccountSid: acA}, true},
	}
	for _, tc := range cases {
		if got := verdictChanged(&verified, &tc.cur); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if verdictChanged(&v1alpha1.TwilioAccountStatus{}, &v1alpha1.TwilioAccountStatus{}) {
		t.Error("two empty statuses")
	}
}

// accountChanged stalls an object whose status records a webhook, a superseded
// one, or a create that may have made one, in another Twilio account.
func TestAccountChanged(t *testing.T) {
	const acA, acB = "AC0000000000000000000000000000000a", "AC0000000000000000000000000000000b"
	pending := func(account string) *v1alpha1.PendingCreate {
		return &v1alpha1.PendingCreate{ConversationSid: planConv, AccountSid: account}
	}
	cases := []struct {
		name    string
		st      v1alpha1.ConversationWebhookStatus
		changed bool
	}{
		{"nothing recorded", v1alpha1.ConversationWebhookStatus{}, false},
		{"webhook in the same account", v1alpha1.ConversationWebhookStatus{Sid: planOwned, AccountSid: acA}, false},
		{"webhook in another account", v1alpha1.ConversationWebhookStatus{Sid: planOwned, AccountSid: acB}, true},
		{"an account left from a webhook no longer recorded", v1alpha1.ConversationWebhookStatus{AccountSid: acB}, false},
		{"superseded webhook in another account",
			v1alpha1.ConversationWebhookStatus{AccountSid: acB, SupersededWebhook: &v1alpha1.WebhookReference{Sid: planOther, ConversationSid: planConv}}, true},
		{"pending create in another account", v1alpha1.ConversationWebhookStatus{PendingCreate: pending(acB)}, true},
		{"pending create in the same account", v1alpha1.ConversationWebhookStatus{PendingCreate: pending(acA)}, false},
		{"pending create of an earlier version (no account)", v1alpha1.ConversationWebhookStatus{PendingCreate: pending("")}, false},
		{"webhook here, its replacement's create sent elsewhere",
			v1alpha1.ConversationWebhookStatus{Sid: planOwned, AccountSid: acA, PendingCreate: pending(acB)}, true},
	}
	for _, tc := range cases {
		err := accountChanged(&tc.st, &resolvedAccount{key: "TwilioAccount/ns/a", accountSid: acA})
		if got := err != nil; got != tc.changed {
			t.Errorf("%s: %v, want changed %v", tc.name, err, tc.changed)
		}
		if err != nil && classifyReason(err) != v1alpha1.ReasonAccountChanged {
			t.Errorf("%s: reason %s", tc.name, classifyReason(err))
		}
	}
}

// A recorded account SID that is not one is a malformed status, cut when
// repeated: nothing that reads as another account stalls the object.
func TestAccountChangedReadsWhatItUses(t *testing.T) {
	acc := &resolvedAccount{key: "TwilioAccount/ns/a", accountSid: "AC0000000000000000000000000000000a"}
	for name, st := range map[string]v1alpha1.ConversationWebhookStatus{
		"status.accountSid": {Sid: planOwned, AccountSid: strings.Repeat("x", 5000)},
		"status.pendingCreate.accountSid": {PendingCreate: &v1alpha1.PendingCreate{ConversationSid: planConv,
			AccountSid: "AC../../" + strings.Repeat("0", 5000)}},
	} {
		err := accountChanged(&st, acc)
		if classifyReason(err) != v1alpha1.ReasonInvalidStatus || !strings.Contains(err.Error(), name) || len(err.Error()) > 400 {
			t.Errorf("%s: %v; want InvalidStatus naming it, cut", name, err)
		}
	}
	long := v1alpha1.ConversationWebhookStatus{Sid: strings.Repeat("W", 5000), AccountSid: "AC0000000000000000000000000000000b"}
	if err := accountChanged(&long, acc); classifyReason(err) != v1alpha1.ReasonAccountChanged || len(err.Error()) > 600 {
		t.Errorf("a long recorded SID: %v; want AccountChanged, cut", err)
	}
}

func classifyReason(err error) string {
	reason, _ := classify(err)
	return reason
}

// A change of which namespaces a ClusterTwilioAccount allows is checked by
// every object using it at once; other spec changes are not a wake for all.
func TestConditionsChanged(t *testing.T) {
	cluster := func(namespaces ...string) *v1alpha1.ClusterTwilioAccount {
		return &v1alpha1.ClusterTwilioAccount{Spec: v1alpha1.ClusterTwilioAccountSpec{
			Conditions: []v1alpha1.AccountCondition{{Namespaces: namespaces}}}}
	}
	limited := cluster("a")
	limited.Spec.Limits = &v1alpha1.AccountLimits{MaxInFlight: new(int32(3))}
	for _, tc := range []struct {
		name     string
		old, cur client.Object
		want     bool
	}{
		{"namespaces narrowed", cluster("a", "b"), cluster("a"), true},
		{"unchanged", cluster("a"), cluster("a"), false},
		{"limits only", cluster("a"), limited, false},
		{"a namespaced account", &v1alpha1.TwilioAccount{}, &v1alpha1.TwilioAccount{}, false},
	} {
		if got := conditionsChanged(tc.old, tc.cur); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// failingVerifier answers every verification with a transient failure.
type failingVerifier struct{}

func (failingVerifier) VerifyAccount(context.Context, twilio.Credentials) (string, error) {
	return "", &twilio.APIError{Operation: twilio.OpVerify, Status: 500, Code: 20500, Message: "Internal Server Error"}
}

// A Secret changed since it was verified, whose new credentials Twilio cannot
// verify for now, keeps the account Ready for its webhooks' sake (their verdict
// unchanged, so no wake of all), with a message that says their webhooks wait.
func TestAccountSaysItsChangedSecretIsNotVerified(t *testing.T) {
	acct := attackAccount("acc", 0)
	acct.Status.VerifiedSecretVersion = "1" // the Secret's is attackSecretVersion
	c := attackClient(t, acct)
	ar := &AccountReconciler{Client: c, APIReader: c, Verifier: failingVerifier{}}
	if _, err := ar.Reconcile(t.Context(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(acct)}); err == nil {
		t.Fatal("a transient failure is retried: want an error")
	}
	got := &v1alpha1.TwilioAccount{}
	if err := c.Get(t.Context(), client.ObjectKeyFromObject(acct), got); err != nil {
		t.Fatal(err)
	}
	ready := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionTrue || ready.Reason != v1alpha1.ReasonVerified ||
		!strings.Contains(ready.Message, "not verified yet") || !strings.Contains(ready.Message, "20500") {
		t.Fatalf("Ready = %+v", ready)
	}
	if got.Status.VerifiedSecretVersion != "1" {
		t.Errorf("verifiedSecretVersion %q: nothing new was verified", got.Status.VerifiedSecretVersion)
	}
	if verdictChanged(&acct.Status, &got.Status) {
		t.Error("the verdict changed: every webhook of the account would be woken")
	}
}
