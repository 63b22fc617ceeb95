package controller

import (
	"context"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

// A second Twilio account, with its own API key.
const (
	otherAccount   = "AC22222222222222222222222222222222"
	otherKeySid    = "SK44444444444444444444444444444444"
	otherKeySecret = "otherKEYsecretVALUE0000000000002"
)

var _ = Describe("Accounts", func() {
	var t *tenant
	BeforeEach(func() {
		t = newTenant(1)
		resetFake()
		DeferCleanup(resetFake)
		fake.AddAccount(otherAccount, "otherAuthTOKEN00000000000000002")
		fake.AddAPIKey(otherAccount, otherKeySid, otherKeySecret)
	})

	accountReady := func(obj client.Object) string {
		GinkgoHelper()
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
		var st *v1alpha1.TwilioAccountStatus
		switch a := obj.(type) {
		case *v1alpha1.TwilioAccount:
			st = &a.Status
		case *v1alpha1.ClusterTwilioAccount:
			st = &a.Status
		}
		c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionReady)
		if c == nil {
			return ""
		}
		return string(c.Status) + "/" + c.Reason + ": " + c.Message
	}
	clusterAccount := func(conds ...v1alpha1.AccountCondition) *v1alpha1.ClusterTwilioAccount {
		a := &v1alpha1.ClusterTwilioAccount{ObjectMeta: ctrlObjectMeta("c-"+utilrand.String(6), ""),
			Spec: v1alpha1.ClusterTwilioAccountSpec{
				CredentialsSecretRef: v1alpha1.NamespacedSecretReference{Namespace: defaultCreds.Namespace, Name: defaultCreds.Name},
				Conditions:           conds,
			}}
		Expect(k8sClient.Create(ctx, a)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(context.Background(), a))).To(Succeed()) })
		return a
	}
	setNamespaceLabel := func(ns, key, value string) {
		GinkgoHelper()
		Eventually(func() error {
			n := &corev1.Namespace{}
			if err := k8sClient.Get(ctx, client.ObjectKey{Name: ns}, n); err != nil {
				return err
			}
			if value == "" {
				delete(n.Labels, key)
			} else {
				n.Labels[key] = value
			}
			return k8sClient.Update(ctx, n)
		}).WithTimeout(10 * time.Second).Should(Succeed())
	}
	waitWaiting := func(o *v1alpha1.ConversationWebhook) {
		GinkgoHelper()
		Eventually(func(g Gomega) {
			got := get(o)
			g.Expect(condition(got, v1alpha1.ConditionReady)).To(Equal("False/" + v1alpha1.ReasonAccountNotReady))
			g.Expect(condition(got, v1alpha1.ConditionReconciling)).To(Equal("True/" + v1alpha1.ReasonAccountNotReady))
		}).WithTimeout(20 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
	}

	It("verifies a TwilioAccount and records the account SID Twilio returns", func() {
		a := &v1alpha1.TwilioAccount{ObjectMeta: ctrlObjectMeta(accountName, t.ns)}
		Eventually(func() string { return accountReady(a) }).WithTimeout(20 * time.Second).
			Should(HavePrefix("True/" + v1alpha1.ReasonVerified))
		Expect(a.Status.AccountSid).To(Equal(testAccount))
	})

	It("denies a namespace its conditions do not match, converges once labelled, and stops writing once unlabelled", func() {
		const label = "team.example.com/twilio"
		ca := clusterAccount(v1alpha1.AccountCondition{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{label: "yes"}}})
		o := t.object("team-b", func(o *v1alpha1.ConversationWebhook) {
			o.Spec.AccountRef = &v1alpha1.AccountReference{Kind: v1alpha1.AccountKindCluster, Name: ca.Name}
		})
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		got := waitStalled(o, v1alpha1.ReasonAccountNotAllowed)
		Expect(stalledMessage(got)).To(SatisfyAll(ContainSubstring(ca.Name), ContainSubstring(t.ns)))
		Expect(countInConversation(t.convs[0], "")).To(BeZero())

		setNamespaceLabel(t.ns, label, "yes")
		sid := waitReady(o).Status.Sid

		setNamespaceLabel(t.ns, label, "")
		waitStalled(o, v1alpha1.ReasonAccountNotAllowed)
		patchSpec(o, func(o *v1alpha1.ConversationWebhook) { o.Spec.URL = "https://hooks.example.com/not-allowed" })
		Consistently(func() int {
			return countInConversation(t.convs[0], twiliofake.OpUpdate) + countInConversation(t.convs[0], twiliofake.OpDelete)
		}).WithTimeout(2 * syncPeriod).WithPolling(200 * time.Millisecond).Should(BeZero())
		_, exists := fake.Webhook(sid)
		Expect(exists).To(BeTrue(), "losing access never deletes the webhook")
	})

	It("allows namespaces listed by name; no conditions allow nothing", func() {
		none := clusterAccount()
		byName := clusterAccount(v1alpha1.AccountCondition{Namespaces: []string{t.ns}})
		denied := t.object("denied", func(o *v1alpha1.ConversationWebhook) {
			o.Spec.AccountRef = &v1alpha1.AccountReference{Kind: v1alpha1.AccountKindCluster, Name: none.Name}
		})
		allowed := t.object("allowed", func(o *v1alpha1.ConversationWebhook) {
			o.Spec.AccountRef = &v1alpha1.AccountReference{Kind: v1alpha1.AccountKindCluster, Name: byName.Name}
		})
		Expect(k8sClient.Create(ctx, denied)).To(Succeed())
		Expect(k8sClient.Create(ctx, allowed)).To(Succeed())
		waitStalled(denied, v1alpha1.ReasonAccountNotAllowed)
		waitReady(allowed)
	})

	It("never lets another namespace use a TwilioAccount", func() {
		other := newTenant(1)
		o := t.object("cross", func(o *v1alpha1.ConversationWebhook) {
			o.Spec.AccountRef = &v1alpha1.AccountReference{Name: "only-elsewhere"}
		})
		Expect(k8sClient.Create(ctx, twilioAccount(other.ns, "only-elsewhere", secretName))).To(Succeed())
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		got := waitStalled(o, v1alpha1.ReasonAccountNotFound)
		Expect(stalledMessage(got)).To(ContainSubstring(t.ns + "/only-elsewhere"))
		Expect(countInConversation(t.convs[0], "")).To(BeZero())
	})

	It("makes an object wait, without calling Twilio, while its account is not verified yet", func() {
		// Twilio cannot verify the account for now: no Ready condition yet.
		fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultServerError, Operation: twiliofake.OpConfiguration, Sticky: true})
		DeferCleanup(fake.ClearFaults)
		Expect(k8sClient.Create(ctx, credentialsSecret(t.ns, "unverified", testKeySecret))).To(Succeed())
		a := twilioAccount(t.ns, "unverified", "unverified")
		Expect(k8sClient.Create(ctx, a)).To(Succeed())
		o := t.object("unverified", func(o *v1alpha1.ConversationWebhook) {
			o.Spec.AccountRef = &v1alpha1.AccountReference{Name: "unverified"}
		})
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		waitWaiting(o)
		Expect(accountReady(a)).To(BeEmpty(), "not verified, and not rejected either")
		Expect(countInConversation(t.convs[0], "")).To(BeZero())
		fake.ClearFaults()
		waitReady(o)
	})

	It("marks wrong credentials CredentialsInvalid; its objects stall without calling Twilio, then converge when fixed", func() {
		const wrong = "wrongSECRETvalue0000000000000009"
		Expect(k8sClient.Create(ctx, credentialsSecret(t.ns, "bad", wrong))).To(Succeed())
		a := twilioAccount(t.ns, "bad", "bad")
		Expect(k8sClient.Create(ctx, a)).To(Succeed())
		o := t.object("invalid", func(o *v1alpha1.ConversationWebhook) { o.Spec.AccountRef = &v1alpha1.AccountReference{Name: "bad"} })
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		Eventually(func() string { return accountReady(a) }).WithTimeout(20 * time.Second).
			Should(SatisfyAll(HavePrefix("False/"+v1alpha1.ReasonCredentialsInvalid), ContainSubstring("20003")))
		// Only a person can fix the Secret: Stalled, with the account's reason
		// and Twilio's code (kstatus: Failed, so a GitOps wait fails at once).
		got := waitStalled(o, v1alpha1.ReasonCredentialsInvalid)
		Expect(stalledMessage(got)).To(SatisfyAll(ContainSubstring(t.ns+"/bad"), ContainSubstring("20003")))
		Consistently(func() int { return countInConversation(t.convs[0], "") }).WithTimeout(2 * syncPeriod).
			WithPolling(200 * time.Millisecond).Should(BeZero())
		for _, text := range append(eventNotes(o), append(conditionMessages(get(o)), accountReady(a))...) {
			Expect(text).NotTo(ContainSubstring(wrong))
			Expect(text).NotTo(ContainSubstring(testKeySecret))
		}
		secret := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: t.ns, Name: "bad"}, secret)).To(Succeed())
		secret.Data["apiKeySecret"] = []byte(testKeySecret)
		Expect(k8sClient.Update(ctx, secret)).To(Succeed())
		waitReady(o)
	})

	It("names a missing key with CredentialsMissing, and a missing Secret", func() {
		s := credentialsSecret(t.ns, "partial", testKeySecret)
		delete(s.StringData, "apiKeySecret")
		Expect(k8sClient.Create(ctx, s)).To(Succeed())
		partial := twilioAccount(t.ns, "partial", "partial")
		missing := twilioAccount(t.ns, "missing", "later")
		Expect(k8sClient.Create(ctx, partial)).To(Succeed())
		Expect(k8sClient.Create(ctx, missing)).To(Succeed())
		Eventually(func() string { return accountReady(partial) }).WithTimeout(20 * time.Second).
			Should(SatisfyAll(HavePrefix("False/"+v1alpha1.ReasonCredentialsMissing), ContainSubstring("apiKeySecret")))
		Eventually(func() string { return accountReady(missing) }).WithTimeout(20 * time.Second).
			Should(SatisfyAll(HavePrefix("False/"+v1alpha1.ReasonCredentialsMissing), ContainSubstring(t.ns+"/later")))
		o := t.object("partial", func(o *v1alpha1.ConversationWebhook) { o.Spec.AccountRef = &v1alpha1.AccountReference{Name: "partial"} })
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		Expect(stalledMessage(waitStalled(o, v1alpha1.ReasonCredentialsMissing))).To(ContainSubstring("apiKeySecret"))
		Expect(countInConversation(t.convs[0], "")).To(BeZero())
		Expect(k8sClient.Create(ctx, credentialsSecret(t.ns, "later", testKeySecret))).To(Succeed())
		Eventually(func() string { return accountReady(missing) }).WithTimeout(20 * time.Second).
			Should(HavePrefix("True/" + v1alpha1.ReasonVerified))
	})

	It("trims credentials written with a trailing newline (files made with echo)", func() {
		s := &corev1.Secret{ObjectMeta: ctrlObjectMeta("echoed", t.ns), Data: map[string][]byte{
			"accountSid": []byte(testAccount + "\n"), "apiKeySid": []byte(" " + testKeySid + "\n"), "apiKeySecret": []byte(testKeySecret + "\r\n"),
		}}
		Expect(k8sClient.Create(ctx, s)).To(Succeed())
		Expect(k8sClient.Create(ctx, twilioAccount(t.ns, "echoed", "echoed"))).To(Succeed())
		o := t.object("echoed", func(o *v1alpha1.ConversationWebhook) { o.Spec.AccountRef = &v1alpha1.AccountReference{Name: "echoed"} })
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		waitReady(o)
	})

	It("stalls with AccountChanged when the account resolves to another Twilio account, and leaves the old webhook", func() {
		o := t.object("switch")
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		sid := waitReady(o).Status.Sid
		s := &corev1.Secret{ObjectMeta: ctrlObjectMeta("other", t.ns),
			StringData: map[string]string{"accountSid": otherAccount, "apiKeySid": otherKeySid, "apiKeySecret": otherKeySecret}}
		Expect(k8sClient.Create(ctx, s)).To(Succeed())
		Expect(k8sClient.Create(ctx, twilioAccount(t.ns, "other", "other"))).To(Succeed())
		patchSpec(o, func(o *v1alpha1.ConversationWebhook) { o.Spec.AccountRef = &v1alpha1.AccountReference{Name: "other"} })
		got := waitStalled(o, v1alpha1.ReasonAccountChanged)
		Expect(stalledMessage(got)).To(SatisfyAll(ContainSubstring(testAccount), ContainSubstring(otherAccount)))
		nonFetch := func() int {
			return countInConversation(t.convs[0], "") - countInConversation(t.convs[0], twiliofake.OpFetch)
		}
		before := nonFetch()
		Consistently(nonFetch).WithTimeout(2*syncPeriod).WithPolling(200*time.Millisecond).Should(Equal(before), "nothing but fetches")
		_, exists := fake.Webhook(sid)
		Expect(exists).To(BeTrue())
		patchSpec(o, func(o *v1alpha1.ConversationWebhook) {
			o.Spec.AccountRef = &v1alpha1.AccountReference{Name: accountName}
		})
		Expect(waitReady(o).Status.Sid).To(Equal(sid))
	})

	It("acts for the account SID Twilio verified, not the one the Secret claims", func() {
		// An API key of the second account, in a Secret that claims the first.
		s := &corev1.Secret{ObjectMeta: ctrlObjectMeta("liar", t.ns),
			StringData: map[string]string{"accountSid": testAccount, "apiKeySid": otherKeySid, "apiKeySecret": otherKeySecret}}
		Expect(k8sClient.Create(ctx, s)).To(Succeed())
		a := twilioAccount(t.ns, "liar", "liar")
		Expect(k8sClient.Create(ctx, a)).To(Succeed())
		Eventually(func() string { return accountReady(a) }).WithTimeout(20 * time.Second).Should(HavePrefix("True/"))
		Expect(a.Status.AccountSid).To(Equal(otherAccount))
	})

	It("shares one limiter between two account objects of one Twilio account, with the smaller of their limits", func() {
		const secondKeySid, secondKeySecret = "SK33333333333333333333333333333333", "secondKEYsecretVALUE000000000003"
		fake.AddAPIKey(otherAccount, secondKeySid, secondKeySecret)
		conv := twiliofake.NewSid("CH")
		fake.AddConversation(otherAccount, conv)
		for i, key := range [][2]string{{otherKeySid, otherKeySecret}, {secondKeySid, secondKeySecret}} {
			name := []string{"first", "second"}[i]
			Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: ctrlObjectMeta(name, t.ns),
				StringData: map[string]string{"accountSid": otherAccount, "apiKeySid": key[0], "apiKeySecret": key[1]}})).To(Succeed())
			a := twilioAccount(t.ns, name, name)
			if name == "second" {
				a.Spec.Limits = &v1alpha1.AccountLimits{MaxInFlight: ptr.To[int32](4)}
			}
			Expect(k8sClient.Create(ctx, a)).To(Succeed())
			o := t.object("via-"+name, func(o *v1alpha1.ConversationWebhook) {
				o.Spec.ConversationSid, o.Spec.AccountRef = conv, &v1alpha1.AccountReference{Name: name}
			})
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
			waitReady(o)
		}
		families, err := metricsReg.Gather()
		Expect(err).NotTo(HaveOccurred())
		series := map[string][]float64{}
		for _, f := range families {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "account" && l.GetValue() == otherAccount {
						series[f.GetName()] = append(series[f.GetName()], m.GetGauge().GetValue()+m.GetCounter().GetValue())
					}
				}
			}
		}
		Expect(series["twilio_account_inflight_limit"]).To(Equal([]float64{4}),
			"one series for the Twilio account, at the smaller limit of its two account objects")
		Expect(series["twilio_account_inflight"]).To(HaveLen(1))
		for _, f := range families {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					Expect(l.GetValue()).NotTo(SatisfyAny(ContainSubstring(otherKeySecret), ContainSubstring(secondKeySecret),
						Equal(otherKeySid), Equal(secondKeySid)), "no key in a metric label")
				}
			}
		}
	})

	It("keeps no annotation of a Secret in the manager's cache (kubectl apply's last-applied copy holds the data)", func() {
		s := credentialsSecret(t.ns, "applied", testKeySecret)
		s.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"stringData":{"apiKeySecret":"` + testKeySecret + `"}}`}
		Expect(k8sClient.Create(ctx, s)).To(Succeed())
		m := SecretMetadata()
		Eventually(func() error { return managerCache.Get(ctx, client.ObjectKey{Namespace: t.ns, Name: "applied"}, m) }).
			WithTimeout(10 * time.Second).Should(Succeed())
		Expect(m.Annotations).To(BeEmpty())
		Expect(m.ManagedFields).To(BeEmpty())
		Expect(m.ResourceVersion).NotTo(BeEmpty())
	})
})

var _ = Describe("Account validation", func() {
	DescribeTable("rejects a bad ClusterTwilioAccount at admission, naming the field",
		func(field, message string, mod func(*v1alpha1.ClusterTwilioAccount)) {
			a := &v1alpha1.ClusterTwilioAccount{ObjectMeta: ctrlObjectMeta("v-"+utilrand.String(6), ""),
				Spec: v1alpha1.ClusterTwilioAccountSpec{CredentialsSecretRef: v1alpha1.NamespacedSecretReference{Namespace: "ns", Name: "s"}}}
			mod(a)
			err := k8sClient.Create(ctx, a)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(SatisfyAll(ContainSubstring(field), ContainSubstring(message)))
		},
		Entry("secret without a name", "spec.credentialsSecretRef.name", "at least 1 chars long",
			func(a *v1alpha1.ClusterTwilioAccount) { a.Spec.CredentialsSecretRef.Name = "" }),
		Entry("secret without a namespace", "spec.credentialsSecretRef.namespace", "at least 1 chars long",
			func(a *v1alpha1.ClusterTwilioAccount) { a.Spec.CredentialsSecretRef.Namespace = "" }),
		Entry("an empty condition", "spec.conditions[0]", "a condition needs namespaceSelector or namespaces",
			func(a *v1alpha1.ClusterTwilioAccount) { a.Spec.Conditions = []v1alpha1.AccountCondition{{}} }),
		Entry("an empty namespace name", "spec.conditions[0].namespaces[0]", "at least 1 chars long",
			func(a *v1alpha1.ClusterTwilioAccount) {
				a.Spec.Conditions = []v1alpha1.AccountCondition{{Namespaces: []string{""}}}
			}),
		Entry("maxInFlight 0", "spec.limits.maxInFlight", "greater than or equal to 1",
			func(a *v1alpha1.ClusterTwilioAccount) {
				a.Spec.Limits = &v1alpha1.AccountLimits{MaxInFlight: ptr.To[int32](0)}
			}),
		Entry("requestsPerSecond 0", "spec.limits.requestsPerSecond", "greater than or equal to 1",
			func(a *v1alpha1.ClusterTwilioAccount) {
				a.Spec.Limits = &v1alpha1.AccountLimits{RequestsPerSecond: ptr.To[int32](0)}
			}),
	)
	DescribeTable("rejects a bad TwilioAccount at admission, naming the field",
		func(field, message string, mod func(*v1alpha1.TwilioAccount)) {
			a := twilioAccount("default", "v-"+utilrand.String(6), "s")
			mod(a)
			err := k8sClient.Create(ctx, a)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(SatisfyAll(ContainSubstring(field), ContainSubstring(message)))
		},
		Entry("secret without a name", "spec.credentialsSecretRef.name", "at least 1 chars long",
			func(a *v1alpha1.TwilioAccount) { a.Spec.CredentialsSecretRef.Name = "" }),
		Entry("secret name too long", "spec.credentialsSecretRef.name", "Too long",
			func(a *v1alpha1.TwilioAccount) { a.Spec.CredentialsSecretRef.Name = strings.Repeat("s", 254) }),
		Entry("maxInFlight over 1000", "spec.limits.maxInFlight", "less than or equal to 1000",
			func(a *v1alpha1.TwilioAccount) {
				a.Spec.Limits = &v1alpha1.AccountLimits{MaxInFlight: ptr.To[int32](1001)}
			}),
	)
})
