package controller

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

// Issue 10: Twilio's answers are input too.
var _ = Describe("Twilio's answers", func() {
	var t *tenant
	BeforeEach(func() {
		t = newTenant(1)
		resetFake()
		DeferCleanup(resetFake)
	})

	trigger := func(name string, mods ...func(*v1alpha1.ConversationWebhook)) *v1alpha1.ConversationWebhook {
		return t.object(name, append([]func(*v1alpha1.ConversationWebhook){func(o *v1alpha1.ConversationWebhook) {
			o.Spec.Target, o.Spec.Filters, o.Spec.Triggers = v1alpha1.TargetTrigger, nil, []string{"help", "agent"}
		}}, mods...)...)
	}
	html404 := func(op string) twiliofake.Fault {
		return twiliofake.Fault{Kind: twiliofake.FaultHTML404, Operation: op, Sticky: true, Conversations: t.convs}
	}

	It("a 404 that is not Twilio's never makes a sync create: transient, with a warning naming --twilio-api-url", func() {
		o := t.object("proxy")
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		sid := waitReady(o).Status.Sid
		fake.InjectFaults(html404(twiliofake.OpFetch))
		Eventually(func() string { return condition(get(o), v1alpha1.ConditionReconciling) }).
			WithTimeout(20 * time.Second).WithPolling(100 * time.Millisecond).Should(HavePrefix("True/"))
		Consistently(func() int { return countInConversation(t.convs[0], twiliofake.OpCreate) }).
			WithTimeout(3 * syncPeriod).WithPolling(200 * time.Millisecond).Should(Equal(1))
		Expect(fakeHooks(t.convs[0])).To(ConsistOf(HaveField("Sid", sid)))
		Expect(eventNotes(o)).To(ContainElement(ContainSubstring("--twilio-api-url")))
		fake.ClearFaults()
		Expect(waitReady(o).Status.Sid).To(Equal(sid))
	})

	It("a 404 that is not Twilio's never finishes a delete: the finalizer stays until Twilio answers", func() {
		o := t.object("proxy-delete")
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		sid := waitReady(o).Status.Sid
		fake.InjectFaults(html404(twiliofake.OpDelete))
		Expect(k8sClient.Delete(ctx, o)).To(Succeed())
		Consistently(func() []string { return get(o).Finalizers }).WithTimeout(2 * syncPeriod).
			WithPolling(200 * time.Millisecond).Should(ContainElement(v1alpha1.Finalizer))
		_, exists := fake.Webhook(sid)
		Expect(exists).To(BeTrue())
		fake.ClearFaults()
		waitGone(o)
		_, exists = fake.Webhook(sid)
		Expect(exists).To(BeFalse(), "deleted once Twilio itself answered")
	})

	It("a 404 that is not Twilio's never drops a pending create: recovery waits, then finds the webhook", func() {
		o := pendingCreate(t, "proxy-pending")
		fake.ClearFaults()
		fake.InjectFaults(html404(twiliofake.OpList))
		Consistently(func(g Gomega) {
			got := get(o)
			g.Expect(got.Status.PendingCreate).NotTo(BeNil())
			g.Expect(got.Annotations).To(HaveKey(v1alpha1.AnnotationCreatePending))
			g.Expect(countInConversation(t.convs[0], twiliofake.OpCreate)).To(Equal(1))
		}).WithTimeout(2 * syncPeriod).WithPolling(200 * time.Millisecond).Should(Succeed())
		fake.ClearFaults()
		got := waitReady(o)
		Expect(fakeHooks(t.convs[0])).To(ConsistOf(HaveField("Sid", got.Status.Sid)))
		Expect(countInConversation(t.convs[0], twiliofake.OpCreate)).To(Equal(1))
	})

	It("reads trigger keywords answered under filters (Twilio's examples): no update across three periods, and a lost create is recognised", func() {
		Expect(fake.SetTriggerKeywordsIn(twiliofake.KeywordsInFilters)).To(Succeed())
		o := trigger("keywords")
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		got := waitReady(o)
		Expect(got.Status.Configuration.Triggers).To(ConsistOf("help", "agent"))
		Consistently(func() int { return countInConversation(t.convs[0], twiliofake.OpUpdate) }).
			WithTimeout(3 * syncPeriod).WithPolling(200 * time.Millisecond).Should(BeZero())

		fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultLoseResponse, Operation: twiliofake.OpCreate, Conversations: t.convs})
		lost := trigger("keywords-lost", func(o *v1alpha1.ConversationWebhook) { o.Spec.URL = "https://hooks.example.com/lost" })
		Expect(k8sClient.Create(ctx, lost)).To(Succeed())
		gotLost := waitReady(lost)
		Expect(fakeHooks(t.convs[0])).To(HaveLen(2), "the lost create's webhook is recognised, not created again")
		Expect(fakeHooks(t.convs[0])).To(ContainElement(HaveField("Sid", gotLost.Status.Sid)))
	})

	It("removing the last filter, which an update cannot send, replaces the webhook rather than report Ready over stale filters", func() {
		o := trigger("unfilter", func(o *v1alpha1.ConversationWebhook) { o.Spec.Filters = []v1alpha1.Filter{"onMessageAdded"} })
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		old := waitReady(o).Status.Sid
		patchSpec(o, func(o *v1alpha1.ConversationWebhook) { o.Spec.Filters = nil })
		var got *v1alpha1.ConversationWebhook
		Eventually(func(g Gomega) {
			got = get(o)
			g.Expect(got.Status.Sid).NotTo(Equal(old))
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
			g.Expect(condition(got, v1alpha1.ConditionReady)).To(Equal("True/Available"))
		}).WithTimeout(20 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
		w, ok := fake.Webhook(got.Status.Sid)
		Expect(ok).To(BeTrue())
		Expect(w.Filters).To(BeEmpty())
		Expect(w.Triggers).To(ConsistOf("help", "agent"))
		Expect(fakeHooks(t.convs[0])).To(HaveLen(1), "the old webhook is deleted")
	})

	It("fields answered as null never cause a replace or an update", func() {
		o := t.object("nulls")
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		sid := waitReady(o).Status.Sid
		Expect(fake.SetNullFields(twilio.FieldConversationSid, twilio.FieldTarget, twilio.FieldServiceSid, twilio.FieldURL)).To(Succeed())
		Consistently(func() int {
			return countInConversation(t.convs[0], twiliofake.OpCreate) + countInConversation(t.convs[0], twiliofake.OpUpdate)
		}).WithTimeout(3 * syncPeriod).WithPolling(200 * time.Millisecond).Should(Equal(1))
		got := get(o)
		Expect(got.Status.Sid).To(Equal(sid))
		Expect(got.Status.ConversationSid).To(Equal(t.convs[0]), "the scope it was read from, not an empty answer")
		Expect(condition(got, v1alpha1.ConditionReady)).To(Equal("True/Available"))
	})

	It("a create answered without a sid is recovered by listing, never created twice", func() {
		fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultNullSid, Operation: twiliofake.OpCreate, Conversations: t.convs})
		o := t.object("nullsid")
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		got := waitReady(o)
		Expect(fakeHooks(t.convs[0])).To(ConsistOf(HaveField("Sid", got.Status.Sid)))
		Expect(countInConversation(t.convs[0], twiliofake.OpCreate)).To(Equal(1))
	})
})
