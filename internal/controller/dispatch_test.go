package controller

import (
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

// Creates are sent off the workers (createDispatcher): these specs change or
// delete an object while its create is in flight, and fill an account's slots.
var _ = Describe("Creates sent off the workers", func() {
	var t *tenant
	BeforeEach(func() {
		resetFake()
		DeferCleanup(resetFake)
		t = newTenant(2)
	})

	// inFlight creates o with a slow Twilio and returns once its create is
	// recorded as pending and has reached Twilio, unanswered. (Recorded as
	// pending is not yet sent: the record is written before the dispatcher
	// sends, and an object deleted in between is never created at all.)
	inFlight := func(o *v1alpha1.ConversationWebhook) {
		GinkgoHelper()
		fake.SetLatency(600 * time.Millisecond) // under the suite's 1 s Twilio timeout
		creates := fake.Arrived(o.Spec.ConversationSid, twiliofake.OpCreate)
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		Eventually(func() int { return fake.Arrived(o.Spec.ConversationSid, twiliofake.OpCreate) }).
			WithTimeout(10*time.Second).WithPolling(5*time.Millisecond).Should(BeNumerically(">", creates), "the create reached Twilio")
		Expect(fakeHooks(o.Spec.ConversationSid)).To(BeEmpty(), "the create is still in flight")
		Expect(get(o).Status.PendingCreate).NotTo(BeNil(), "a create is recorded as pending before it is sent")
	}

	It("deleting an object whose create is in flight deletes the webhook the create made, without listing", func() {
		o := t.object("gone-mid-create")
		inFlight(o)
		Expect(k8sClient.Delete(ctx, o)).To(Succeed())
		waitGone(o)
		Expect(fakeHooks(t.convs[0])).To(BeEmpty(), "nothing left in Twilio")
		Expect(countInConversation(t.convs[0], twiliofake.OpCreate)).To(Equal(1))
		Expect(countInConversation(t.convs[0], twiliofake.OpDelete)).To(Equal(1))
		Expect(countInConversation(t.convs[0], twiliofake.OpList)).To(BeZero(), "the answer was applied, not looked for")
	})

	It("deleting an object with a malformed annotation while its create is in flight leaves nothing in Twilio", func() {
		o := t.object("malformed-mid-create")
		inFlight(o)
		// After the operator's own create-pending write, or that write would replace the value.
		Eventually(func() map[string]string { return get(o).Annotations }).WithTimeout(5 * time.Second).
			WithPolling(10 * time.Millisecond).Should(HaveKey(v1alpha1.AnnotationCreatePending))
		setAnnotations(o, map[string]string{v1alpha1.AnnotationCreatePending: "not-a-time"})
		Expect(get(o).Annotations).To(HaveKeyWithValue(v1alpha1.AnnotationCreatePending, "not-a-time"))
		Expect(k8sClient.Delete(ctx, o)).To(Succeed())
		waitGone(o)
		Consistently(func() []twiliofake.Webhook { return fakeHooks(t.convs[0]) }).
			WithTimeout(time.Second).WithPolling(100*time.Millisecond).Should(BeEmpty(), "no orphan once the create has landed")
		Expect(countInConversation(t.convs[0], twiliofake.OpCreate)).To(Equal(1))
		Expect(countInConversation(t.convs[0], twiliofake.OpList)).To(BeZero(),
			"the answer was applied from status, not looked for (a list can run before a queued create lands)")
	})

	It("a spec changed while the create is in flight ends with one webhook, updated to the new spec", func() {
		o := t.object("edited-mid-create")
		inFlight(o)
		Eventually(func() error { // the operator may be writing the pending record's annotation
			u := get(o)
			u.Spec.URL = "https://hooks.example.com/edited"
			return k8sClient.Update(ctx, u)
		}).WithTimeout(5 * time.Second).WithPolling(20 * time.Millisecond).Should(Succeed())
		got := waitReady(o)
		Expect(got.Generation).To(Equal(int64(2)))
		hooks := fakeHooks(t.convs[0])
		Expect(hooks).To(HaveLen(1))
		Expect(hooks[0].URL).To(Equal("https://hooks.example.com/edited"))
		Expect(got.Status.Sid).To(Equal(hooks[0].Sid))
		Expect(got.Annotations).To(HaveKeyWithValue(v1alpha1.AnnotationWebhookSid, hooks[0].Sid))
		Expect(countInConversation(t.convs[0], twiliofake.OpCreate)).To(Equal(1))
	})

	It("a create the client gave up on after 429s is recorded as if it were sent inline: pending dropped, made again, nothing listed", func() {
		// The client retries a 429 itself (four attempts in all): four make it give up.
		for range 4 {
			fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultRateLimited, Operation: twiliofake.OpCreate, Conversations: t.convs[:1]})
		}
		o := t.object("throttled-create")
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		got := waitReady(o)
		Expect(got.Status.PendingCreate).To(BeNil())
		Expect(fakeHooks(t.convs[0])).To(HaveLen(1))
		Expect(countInConversation(t.convs[0], twiliofake.OpCreate)).To(Equal(5), "four refused, then one that made the webhook")
		Expect(countInConversation(t.convs[0], twiliofake.OpList)).To(BeZero(), "a 429 created nothing: nothing to look for")
	})

	It("objects parked for a full queue are woken as places free, even when the first woken no longer need one", func() {
		const acct, key, secret = "AC44444444444444444444444444444444", "SK66666666666666666666666666666666", "parkKEYsecretVALUE00000000000006"
		// One slot, so four places in its queue; one conversation for each of
		// the four that fill the queue, one for the parked.
		convs := t.ownAccount("parking", acct, key, secret, 1, 5)
		// Long enough that the first create is not answered (its place freed)
		// before the four's pending records are seen, on a loaded machine too.
		fake.SetLatency(2 * time.Second)
		obj := func(name string, conv int) *v1alpha1.ConversationWebhook {
			return t.object(name, func(o *v1alpha1.ConversationWebhook) {
				o.Spec.ConversationSid, o.Spec.AccountRef = convs[conv], &v1alpha1.AccountReference{Name: "parking"}
				// Only a wake can bring it in time: its safety net is ten minutes away.
				o.Annotations = map[string]string{v1alpha1.AnnotationPollInterval: "10m"}
			})
		}
		var fill []*v1alpha1.ConversationWebhook
		for i := range 4 {
			o := obj(fmt.Sprintf("park-fill-%d", i), i)
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
			fill = append(fill, o)
		}
		for _, o := range fill {
			Eventually(func() bool { return get(o).Status.PendingCreate != nil }).WithTimeout(5 * time.Second).
				WithPolling(20 * time.Millisecond).Should(BeTrue())
		}
		Expect(managerFactory.Reservable(acct)).To(BeZero(), "the four fill the account's queue: the next ones park")
		gone1, gone2, last := obj("park-gone-1", 4), obj("park-gone-2", 4), obj("park-last", 4)
		for _, o := range []*v1alpha1.ConversationWebhook{gone1, gone2, last} {
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
		}
		// The first two parked go before they get a place: their wakes are spent.
		Expect(k8sClient.Delete(ctx, gone1)).To(Succeed())
		Expect(k8sClient.Delete(ctx, gone2)).To(Succeed())
		fake.SetLatency(0)
		for _, o := range append(fill, last) {
			waitReady(o)
		}
	})

	It("an account with one slot gets its objects' creates one at a time, each sent once, with no 429", func() {
		const slotAccount, slotKey, slotSecret = "AC33333333333333333333333333333333", "SK55555555555555555555555555555555", "slotKEYsecretVALUE00000000000005"
		convs := t.ownAccount("one-slot", slotAccount, slotKey, slotSecret, 1, 2)
		fake.ResetLog()
		fake.SetMaxInFlight(1)
		fake.SetLatency(100 * time.Millisecond)
		var objs []*v1alpha1.ConversationWebhook
		for i, name := range []string{"one", "two", "three", "four", "five", "six"} {
			o := t.object("slot-"+name, func(o *v1alpha1.ConversationWebhook) {
				o.Spec.ConversationSid, o.Spec.AccountRef = convs[i%2], &v1alpha1.AccountReference{Name: "one-slot"}
			})
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
			objs = append(objs, o)
		}
		for _, o := range objs {
			waitReady(o)
		}
		Expect(fakeHooks(convs[0])).To(HaveLen(3))
		Expect(fakeHooks(convs[1])).To(HaveLen(3))
		Expect(countInConversation(convs[0], twiliofake.OpCreate) + countInConversation(convs[1], twiliofake.OpCreate)).To(Equal(6))
		refused := 0
		for _, r := range fake.Requests() {
			if r.Fault == twiliofake.FaultConcurrencyLimit &&
				(strings.Contains(r.Path, "/Conversations/"+convs[0]+"/") || strings.Contains(r.Path, "/Conversations/"+convs[1]+"/")) {
				refused++
			}
		}
		Expect(refused).To(BeZero(), "never more of the account's requests in flight than its slot")
	})
})
