package controller

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

var _ = Describe("AttackHeld", func() {
	var t *tenant
	BeforeEach(func() {
		t = newTenant(2)
		resetFake()
		DeferCleanup(resetFake)
		DeferCleanup(fake.ClearFaults)
	})
	all := func(t *tenant) []string {
		var out []string
		for _, c := range t.convs {
			for _, w := range fakeHooks(c) {
				out = append(out, w.Sid)
			}
		}
		return out
	}
	settle := func(o *v1alpha1.ConversationWebhook, t *tenant) {
		GinkgoHelper()
		got := waitReady(o)
		Eventually(func() []string { return all(t) }).WithTimeout(20 * time.Second).WithPolling(200 * time.Millisecond).
			Should(ConsistOf(got.Status.Sid))
		Consistently(func() []string { return all(t) }).WithTimeout(2 * syncPeriod).WithPolling(200 * time.Millisecond).
			Should(ConsistOf(get(o).Status.Sid))
	}

	DescribeTable("AttackHeld: replacement interrupted, then a spec change",
		func(f twiliofake.Fault, back bool) {
			o := t.object("interrupt")
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
			waitReady(o)
			f.Conversations = t.convs
			fake.InjectFaults(f)
			patchSpec(o, func(o *v1alpha1.ConversationWebhook) { o.Spec.ConversationSid = t.convs[1] })
			time.Sleep(300 * time.Millisecond)
			patchSpec(o, func(o *v1alpha1.ConversationWebhook) {
				o.Spec.URL = "https://hooks.example.com/changed"
				if back {
					o.Spec.ConversationSid = t.convs[0]
				}
			})
			settle(o, t)
			Expect(k8sClient.Delete(ctx, o)).To(Succeed())
			waitGone(o)
			Expect(all(t)).To(BeEmpty())
		},
		Entry("lost create", twiliofake.Fault{Kind: twiliofake.FaultLoseResponse, Operation: twiliofake.OpCreate}, false),
		Entry("lost create, back", twiliofake.Fault{Kind: twiliofake.FaultLoseResponse, Operation: twiliofake.OpCreate}, true),
		Entry("timeout create, back", twiliofake.Fault{Kind: twiliofake.FaultTimeout, Operation: twiliofake.OpCreate}, true),
		Entry("500 create, back", twiliofake.Fault{Kind: twiliofake.FaultServerError, Operation: twiliofake.OpCreate}, true),
		Entry("lost delete, back", twiliofake.Fault{Kind: twiliofake.FaultLoseResponse, Operation: twiliofake.OpDelete}, true),
		Entry("timeout delete", twiliofake.Fault{Kind: twiliofake.FaultTimeout, Operation: twiliofake.OpDelete}, false),
		Entry("500 delete, back", twiliofake.Fault{Kind: twiliofake.FaultServerError, Operation: twiliofake.OpDelete}, true),
	)

	It("AttackHeld: deleted mid-replacement (lost create, list failing), spec changed back first", func() {
		o := t.object("midrep")
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		waitReady(o)
		fake.InjectFaults(
			twiliofake.Fault{Kind: twiliofake.FaultLoseResponse, Operation: twiliofake.OpCreate, Conversations: t.convs},
			twiliofake.Fault{Kind: twiliofake.FaultServerError, Operation: twiliofake.OpList, Sticky: true, Conversations: t.convs},
		)
		patchSpec(o, func(o *v1alpha1.ConversationWebhook) { o.Spec.ConversationSid = t.convs[1] })
		Eventually(func() *v1alpha1.PendingCreate { return get(o).Status.PendingCreate }).WithTimeout(10 * time.Second).ShouldNot(BeNil())
		patchSpec(o, func(o *v1alpha1.ConversationWebhook) {
			o.Spec.ConversationSid = t.convs[0]
			o.Spec.URL = "https://hooks.example.com/x"
		})
		Expect(k8sClient.Delete(ctx, o)).To(Succeed())
		time.Sleep(time.Second)
		fake.ClearFaults()
		waitGone(o)
		Eventually(func() []string { return all(t) }).WithTimeout(10 * time.Second).Should(BeEmpty())
	})

	It("AttackHeld: create-pending written by hand (future and past) on a managing object", func() {
		o := t.object("handpending")
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		wh := waitReady(o).Status.Sid
		setAnnotations(o, map[string]string{v1alpha1.AnnotationCreatePending: time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
		Eventually(func() map[string]string { return get(o).Annotations }).WithTimeout(3 * syncPeriod * 2).ShouldNot(HaveKey(v1alpha1.AnnotationCreatePending))
		setAnnotations(o, map[string]string{v1alpha1.AnnotationCreatePending: "2001-01-01T00:00:00Z"})
		Eventually(func() map[string]string { return get(o).Annotations }).WithTimeout(3 * syncPeriod * 2).ShouldNot(HaveKey(v1alpha1.AnnotationCreatePending))
		settle(o, t)
		Expect(get(o).Status.Sid).To(Equal(wh))
	})

	It("AttackHeld: webhook-sid naming an unmanaged webhook in another conversation", func() {
		o := t.object("otherconv")
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		wh := waitReady(o).Status.Sid
		other := fake.CreateWebhook(twiliofake.Webhook{ConversationSid: t.convs[1], Target: "webhook",
			URL: "https://x.example.com", Method: "post", Filters: []string{"onMessageAdded"}})
		setAnnotations(o, map[string]string{v1alpha1.AnnotationWebhookSid: other})
		Eventually(func() string { return get(o).Annotations[v1alpha1.AnnotationWebhookSid] }).WithTimeout(10 * time.Second).Should(Equal(wh))
		Consistently(func() int { return countFor(other, twiliofake.OpDelete) + countFor(other, twiliofake.OpUpdate) }).
			WithTimeout(2 * syncPeriod).Should(BeZero())
		Expect(k8sClient.Delete(ctx, o)).To(Succeed())
		waitGone(o)
		_, ok := fake.Webhook(other)
		Expect(ok).To(BeTrue())
		fake.DeleteWebhook(other)
	})

	It("AttackHeld: adoption back and forth, with a failing delete in between", func() {
		o := t.object("backforth")
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		wh1 := waitReady(o).Status.Sid
		h := fake.CreateWebhook(twiliofake.Webhook{ConversationSid: t.convs[0], Target: "webhook",
			URL: "https://x.example.com", Method: "post", Filters: []string{"onMessageAdded"}})
		fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultServerError, Operation: twiliofake.OpDelete, Sticky: true, Conversations: t.convs})
		setAnnotations(o, map[string]string{v1alpha1.AnnotationWebhookSid: h})
		Eventually(func() string { return get(o).Status.Sid }).WithTimeout(10 * time.Second).Should(Equal(h))
		setAnnotations(o, map[string]string{v1alpha1.AnnotationWebhookSid: wh1})
		time.Sleep(time.Second)
		setAnnotations(o, map[string]string{v1alpha1.AnnotationWebhookSid: h})
		time.Sleep(500 * time.Millisecond)
		setAnnotations(o, map[string]string{v1alpha1.AnnotationWebhookSid: wh1})
		fake.ClearFaults()
		settle(o, t)
	})

	It("AttackHeld: deleting while paused with a pending create", func() {
		o := pendingCreate(t, "pausedpending")
		pause(o, true)
		fake.ClearFaults()
		Expect(k8sClient.Delete(ctx, o)).To(Succeed())
		fake.ResetLog()
		Consistently(func() int { return countInConversation(t.convs[0], "") }).WithTimeout(2 * syncPeriod).Should(BeZero())
		pause(o, false)
		waitGone(o)
		Eventually(func() []string { return all(t) }).WithTimeout(10 * time.Second).Should(BeEmpty())
	})

	It("AttackHeld: spec edits while a create is pending", func() {
		o := pendingCreate(t, "editpending")
		patchSpec(o, func(o *v1alpha1.ConversationWebhook) { o.Spec.URL = "https://hooks.example.com/e1" })
		patchSpec(o, func(o *v1alpha1.ConversationWebhook) { o.Spec.Filters = []v1alpha1.Filter{"onMessageRemoved"} })
		time.Sleep(500 * time.Millisecond)
		fake.ClearFaults()
		settle(o, t)
	})

	It("AttackHeld: two fresh objects claiming one hand-made webhook at once", func() {
		h := fake.CreateWebhook(twiliofake.Webhook{ConversationSid: t.convs[0], Target: "webhook",
			URL: "https://x.example.com", Method: "post", Filters: []string{"onMessageAdded"}})
		a := t.object("race-a", func(o *v1alpha1.ConversationWebhook) {
			o.Annotations = map[string]string{v1alpha1.AnnotationWebhookSid: h}
		})
		b := t.object("race-b", func(o *v1alpha1.ConversationWebhook) {
			o.Annotations = map[string]string{v1alpha1.AnnotationWebhookSid: h}
		})
		Expect(k8sClient.Create(ctx, a)).To(Succeed())
		Expect(k8sClient.Create(ctx, b)).To(Succeed())
		time.Sleep(3 * time.Second)
		ga, gb := get(a), get(b)
		GinkgoWriter.Printf("a=%s %s b=%s %s\n", ga.Status.Sid, condition(ga, "Ready"), gb.Status.Sid, condition(gb, "Ready"))
		Expect(k8sClient.Delete(ctx, b)).To(Succeed())
		waitGone(b)
		Expect(all(t)).To(ConsistOf(get(a).Status.Sid))
	})
})
