package controller

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

// A manager that stops (a leader handing over, a crash) right after it
// recorded a create as pending leaves a create that may still reach Twilio:
// nothing in the next manager's memory names it. Deleting the object then
// must wait for it as a reconcile would, not drop the pending record after
// one list and leave the webhook that lands a moment later.
var _ = Describe("Handover", func() {
	var t *tenant
	BeforeEach(func() {
		t = newTenant(1)
		resetFake()
		DeferCleanup(resetFake)
	})

	DescribeTable("deleting an object whose create another manager may still have in flight",
		func(age time.Duration, lands bool) {
			stopSuiteManager()
			o := t.object("handover", func(o *v1alpha1.ConversationWebhook) { o.Finalizers = []string{v1alpha1.Finalizer} })
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
			want := desiredOf(&o.Spec)
			cur := get(o)
			cur.Status.PendingCreate = &v1alpha1.PendingCreate{Since: metav1.NewTime(time.Now().Add(-age)),
				ConversationSid: t.convs[0], Fingerprint: fingerprint(want.target, want.cfg)}
			Expect(k8sClient.Status().Update(ctx, cur)).To(Succeed())
			Expect(k8sClient.Delete(ctx, o)).To(Succeed())
			// A Twilio timeout of 5 s: the create may be in flight for 10 s
			// after its stamp.
			startSpecManager(withTwilio(fakeServer.URL, 5*time.Second))
			if !lands {
				waitGone(o)
				Expect(fakeHooks(t.convs[0])).To(BeEmpty())
				return
			}
			Eventually(func() string { return condition(get(o), v1alpha1.ConditionReady) }).
				WithTimeout(waitTimeout).WithPolling(waitPoll).Should(Equal("False/"+v1alpha1.ReasonDeleting),
				"the deletion waits for the create")
			Expect(conditionMessages(get(o))).To(ContainElement(ContainSubstring("may still be in flight")))
			// The create lands, as the stopped manager's request reaches Twilio.
			sid := fake.CreateWebhook(twiliofake.Webhook{ConversationSid: t.convs[0], Target: "webhook",
				URL: o.Spec.URL, Method: "POST", Filters: []string{"onMessageAdded", "onParticipantAdded"}})
			waitGone(o)
			Expect(fakeHooks(t.convs[0])).To(BeEmpty(), "the create's webhook was left in Twilio")
			Expect(countFor(sid, twiliofake.OpDelete)).To(Equal(1))
		},
		Entry("stamped now: waited for, and its webhook deleted once it lands", time.Duration(0), true),
		Entry("stamped a minute ago: no longer in flight, nothing to wait for", time.Minute, false),
	)
})
