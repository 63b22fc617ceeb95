package controller

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

// writes counts the fake's write requests (create, update, delete) under a conversation.
func writes(conv string) int {
	return countInConversation(conv, twiliofake.OpCreate) + countInConversation(conv, twiliofake.OpUpdate) +
		countInConversation(conv, twiliofake.OpDelete)
}

// Issue 14: managementPolicy Observe.
var _ = Describe("managementPolicy Observe", func() {
	var t *tenant
	BeforeEach(func() {
		t = newTenant(2)
		resetFake()
		DeferCleanup(resetFake)
	})

	observed := func(name, sid string, mods ...func(*v1alpha1.ConversationWebhook)) *v1alpha1.ConversationWebhook {
		return t.object(name, append([]func(*v1alpha1.ConversationWebhook){func(o *v1alpha1.ConversationWebhook) {
			o.Spec.ManagementPolicy = v1alpha1.ManagementPolicyObserve
			if sid != "" {
				o.Annotations = map[string]string{v1alpha1.AnnotationWebhookSid: sid}
			}
		}}, mods...)...)
	}
	syncedOf := func(o *v1alpha1.ConversationWebhook) (string, string) {
		c := meta.FindStatusCondition(get(o).Status.Conditions, v1alpha1.ConditionSynced)
		if c == nil {
			return "", ""
		}
		return string(c.Status) + "/" + c.Reason, c.Message
	}

	It("reports drift in url and filters without writing, then applies the spec with one update when switched to Full", func() {
		sid := fake.CreateWebhook(twiliofake.Webhook{ConversationSid: t.convs[0], Target: "webhook",
			URL: "https://by-hand.example.com/x", Method: "post", Filters: []string{"onMessageRemoved"}})
		o := observed("drifted", sid)
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		Eventually(func(g Gomega) {
			got := get(o)
			g.Expect(condition(got, v1alpha1.ConditionReady)).To(Equal("True/" + v1alpha1.ReasonObserving))
			g.Expect(got.Status.Sid).To(Equal(sid))
			g.Expect(got.Status.Configuration.URL).To(Equal("https://by-hand.example.com/x"), "status records what Twilio holds")
			state, msg := syncedOf(o)
			g.Expect(state).To(Equal("False/" + v1alpha1.ReasonDriftDetected))
			g.Expect(msg).To(SatisfyAll(ContainSubstring("url: "+o.Spec.URL+" → https://by-hand.example.com/x"),
				ContainSubstring("filters: [onMessageAdded onParticipantAdded] → [onMessageRemoved]")))
		}).WithTimeout(20 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
		Expect(kstatus(get(o))).To(Equal(status.CurrentStatus), "drift under Observe is healthy: the object does what it was told")
		Consistently(func() int { return writes(t.convs[0]) }).WithTimeout(3*syncPeriod).WithPolling(200*time.Millisecond).
			Should(BeZero(), "Observe never writes to Twilio")
		Expect(countFor(sid, twiliofake.OpFetch)).To(BeNumerically(">=", 2), "it keeps observing every period")

		patchSpec(o, func(o *v1alpha1.ConversationWebhook) { o.Spec.ManagementPolicy = v1alpha1.ManagementPolicyFull })
		got := waitReady(o)
		Expect(got.Status.Sid).To(Equal(sid))
		Expect(meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionSynced)).To(BeNil())
		w, _ := fake.Webhook(sid)
		Expect(w.URL).To(Equal(o.Spec.URL))
		Expect(w.Filters).To(ConsistOf("onMessageAdded", "onParticipantAdded"))
		Consistently(func() int { return countInConversation(t.convs[0], twiliofake.OpUpdate) }).
			WithTimeout(2 * syncPeriod).WithPolling(200 * time.Millisecond).Should(Equal(1))
		Expect(countInConversation(t.convs[0], twiliofake.OpCreate)).To(BeZero())
	})

	It("finds a matching webhook for a new object without webhook-sid, reports Synced=True, and deleting the object leaves it", func() {
		o := observed("matching", "")
		sid := fake.CreateWebhook(twiliofake.Webhook{ConversationSid: t.convs[0], Target: "webhook",
			URL: o.Spec.URL, Method: "post", Filters: []string{"onParticipantAdded", "onMessageAdded"}})
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		Eventually(func(g Gomega) {
			got := get(o)
			g.Expect(got.Status.Sid).To(Equal(sid))
			g.Expect(got.Annotations).To(HaveKeyWithValue(v1alpha1.AnnotationWebhookSid, sid))
			state, _ := syncedOf(o)
			g.Expect(state).To(Equal("True/" + v1alpha1.ReasonInSync))
		}).WithTimeout(20 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
		Eventually(func() []string { return eventNotes(o) }).WithTimeout(10*time.Second).WithPolling(waitPoll).Should(
			ContainElement(SatisfyAll(ContainSubstring(sid), ContainSubstring("matches the spec"), Not(ContainSubstring("annotation")))),
			"the event says how the webhook was found: no annotation named it")
		Expect(k8sClient.Delete(ctx, o)).To(Succeed())
		waitGone(o)
		_, exists := fake.Webhook(sid)
		Expect(exists).To(BeTrue(), "deleting an Observe object never deletes the webhook")
		Expect(writes(t.convs[0])).To(BeZero())
		waitEventGone := func() []string { return eventReasons(o) }
		Eventually(waitEventGone).WithTimeout(10 * time.Second).Should(ContainElement(EventOrphaned))
	})

	It("reports NotFound and creates nothing when the observed webhook is deleted outside", func() {
		sid := fake.CreateWebhook(twiliofake.Webhook{ConversationSid: t.convs[0], Target: "webhook",
			URL: "https://hooks.example.com/gone", Method: "post", Filters: []string{"onMessageAdded"}})
		o := observed("gone", sid)
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		Eventually(func() string { return condition(get(o), v1alpha1.ConditionReady) }).
			WithTimeout(20 * time.Second).WithPolling(100 * time.Millisecond).Should(Equal("True/" + v1alpha1.ReasonObserving))
		Expect(fake.DeleteWebhook(sid)).To(BeTrue())
		Eventually(func() string { return condition(get(o), v1alpha1.ConditionReady) }).
			WithTimeout(20 * time.Second).WithPolling(100 * time.Millisecond).Should(Equal("False/" + v1alpha1.ReasonNotFound))
		Consistently(func() int { return writes(t.convs[0]) }).WithTimeout(2 * syncPeriod).WithPolling(200 * time.Millisecond).Should(BeZero())
		Expect(fakeHooks(t.convs[0])).To(BeEmpty())
	})

	It("creates nothing for a new object when no webhook matches", func() {
		o := observed("nothing", "")
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		Eventually(func() string { return condition(get(o), v1alpha1.ConditionStalled) }).
			WithTimeout(20 * time.Second).WithPolling(100 * time.Millisecond).Should(Equal("True/" + v1alpha1.ReasonNotFound))
		Consistently(func() int { return writes(t.convs[0]) }).WithTimeout(2 * syncPeriod).WithPolling(200 * time.Millisecond).Should(BeZero())
	})
})
