package controller

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
)

var _ = Describe("Two managers without leader election on the same objects", func() {
	BeforeEach(func() {
		resetFake()
		DeferCleanup(resetFake)
	})

	// Manager B may see A's pending create while A's create is still in
	// flight: it must wait for it (PendingGrace), never list too early, find
	// nothing and create a second webhook.
	It("make one webhook and one create per object for 20 objects", func() {
		// Both managers see every object at once; a little latency widens each
		// window between a create-pending marker, the create and its record.
		fake.SetLatency(50 * time.Millisecond)
		stopSuiteManager()
		startSpecManager(withName("twin-a"))
		startSpecManager(withName("twin-b"))
		t := newTenant(5) // after the managers: its account is verified by one of them
		var objs []*v1alpha1.ConversationWebhook
		for i := range 20 {
			o := t.object(fmt.Sprintf("twin-%02d", i), func(o *v1alpha1.ConversationWebhook) { o.Spec.ConversationSid = t.convs[i%5] })
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
			objs = append(objs, o)
		}
		owner := map[string]string{}
		for _, o := range objs {
			got := waitReady(o)
			Expect(owner).NotTo(HaveKey(got.Status.Sid), "two objects share a webhook")
			owner[got.Status.Sid] = o.Name
		}
		Consistently(func(g Gomega) {
			for _, conv := range t.convs {
				hooks := fakeHooks(conv)
				g.Expect(hooks).To(HaveLen(4), "webhooks in %s", conv)
				for _, w := range hooks {
					g.Expect(owner).To(HaveKey(w.Sid), "webhook %s in %s belongs to no object", w.Sid, conv)
				}
			}
			for _, o := range objs {
				g.Expect(createsFor(o, false)).To(Equal(1), "create requests for %s", o.Name)
			}
		}).WithTimeout(quietPeriod).WithPolling(waitPoll).Should(Succeed())
	})
})
