package controller

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// A look does not wait for a slot of a busy account; these specs keep an
// account busy for good and check that an object's looks are not put off for
// as long as that lasts.
var _ = Describe("Looks on an account that stays busy", func() {
	var t *tenant
	BeforeEach(func() {
		resetFake()
		DeferCleanup(resetFake)
		t = newTenant(1)
	})

	It("a spec edit reaches Twilio although the account's one slot never frees", func() {
		const acct, key, secret = "AC55555555555555555555555555555555", "SK77777777777777777777777777777777", "busyKEYsecretVALUE00000000000007"
		conv := t.ownAccount("busy", acct, key, secret, 1, 1)[0]
		o := t.object("busy-look", func(o *v1alpha1.ConversationWebhook) {
			o.Spec.ConversationSid, o.Spec.AccountRef = conv, &v1alpha1.AccountReference{Name: "busy"}
			o.Annotations = map[string]string{v1alpha1.AnnotationPollInterval: "10m"}
		})
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		sid := waitReady(o).Status.Sid

		// Two callers of the account take turns: one request of theirs is in
		// flight and the other waits for the slot, whenever the object looks.
		api, err := managerFactory.For(twilio.Credentials{AccountSid: acct, APIKeySid: key, APIKeySecret: secret})
		Expect(err).NotTo(HaveOccurred())
		fake.SetLatency(100 * time.Millisecond)
		busy, stop := context.WithCancel(ctx)
		var sent atomic.Int64
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				for busy.Err() == nil {
					_, _ = api.FetchWebhook(busy, twilio.Scope{ConversationSid: conv}, sid)
					sent.Add(1)
				}
			})
		}
		DeferCleanup(func() { stop(); wg.Wait() })
		Eventually(func() int { return int(sent.Load()) }).WithTimeout(5 * time.Second).Should(BeNumerically(">=", 4))

		const moved = "https://hooks.example.com/busy-look-moved"
		Eventually(func() error {
			cur := get(o)
			cur.Spec.URL = moved
			return k8sClient.Update(ctx, cur)
		}).WithTimeout(5 * time.Second).Should(Succeed())
		before := sent.Load()
		Eventually(func(g Gomega) {
			hooks := fakeHooks(conv)
			g.Expect(hooks).To(HaveLen(1))
			g.Expect(hooks[0].URL).To(Equal(moved))
		}).WithTimeout(waitTimeout).WithPolling(50*time.Millisecond).Should(Succeed(),
			"the edit waits for the account's slot once its looks were turned away for %s", DefaultLookPatience)
		Expect(sent.Load()).To(BeNumerically(">", before+10), "the account stayed busy meanwhile")
		in, ceiling := managerFactory.AccountInFlight(acct)
		Expect(ceiling).To(Equal(1))
		Expect(in).To(Equal(1), "the account's slot is still taken")
		got := waitReady(o)
		Expect(got.Status.Sid).To(Equal(sid), "updated in place")
	})
})
