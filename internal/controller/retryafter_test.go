package controller

import (
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

// createArrivals are the times the fake received the creates under conv.
func createArrivals(conv string) []time.Time {
	var at []time.Time
	for _, r := range fake.Requests() {
		if r.Operation == twiliofake.OpCreate && strings.Contains(r.Path, "/Conversations/"+conv+"/") {
			at = append(at, r.Time)
		}
	}
	return at
}

// refusedCreates sets up an account of the spec's own (named name) whose every
// create in the returned conversation is answered 429, with "Retry-After"
// when retryAfter is positive, creates an object there (polled every minute:
// a wait after a Retry-After is capped by the poll period, and the suite's
// 2 s would cut the waits looked at), and a neighbour in another tenant's
// namespace and account, which becomes Ready meanwhile.
func refusedCreates(name, acct, key, secret string, retryAfter time.Duration) (string, *v1alpha1.ConversationWebhook) {
	GinkgoHelper()
	slow, other := newTenant(1), newTenant(1)
	conv := slow.ownAccount(name, acct, key, secret, 10, 1)[0]
	fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultRateLimited, Operation: twiliofake.OpCreate,
		Conversations: []string{conv}, RetryAfter: retryAfter, Sticky: true})
	o := slow.object(name, func(o *v1alpha1.ConversationWebhook) {
		o.Spec.ConversationSid, o.Spec.AccountRef = conv, &v1alpha1.AccountReference{Name: name}
		o.Annotations = map[string]string{v1alpha1.AnnotationPollInterval: "1m"}
	})
	Expect(k8sClient.Create(ctx, o)).To(Succeed())
	neighbour := other.object(name + "-neighbour")
	Expect(k8sClient.Create(ctx, neighbour)).To(Succeed())
	waitReady(neighbour)
	return conv, o
}

var _ = Describe("A Twilio that refuses every create", func() {
	BeforeEach(func() {
		resetFake()
		DeferCleanup(resetFake)
	})

	It("with Retry-After is asked again after the backoff once that is longer, and holds back no other tenant", func() {
		// 429 with "Retry-After: 1" (a proxy's 503 reads the same way:
		// transient, with the header).
		conv, o := refusedCreates("retry-after", "AC66666666666666666666666666666666", "SK88888888888888888888888888888888",
			"retryKEYsecretVALUE0000000000008", time.Second)

		// The ninth failure in a row is retried after 1.28 s and the tenth
		// after 2.56 s (5 ms doubling, as the workqueue backs off an error),
		// where the header alone asked for a second each time.
		Eventually(func() int { return len(createArrivals(conv)) }).WithTimeout(45 * time.Second).
			WithPolling(50 * time.Millisecond).Should(BeNumerically(">=", 11))
		at := createArrivals(conv)
		Expect(at[10].Sub(at[9])).To(BeNumerically(">=", 2*time.Second),
			"the eleventh create came %s after the tenth", at[10].Sub(at[9]))
		for i := 1; i < 8; i++ {
			Expect(at[i].Sub(at[i-1])).To(BeNumerically(">=", 900*time.Millisecond),
				"create %d came %s after the one before: the header's second is a floor", i+1, at[i].Sub(at[i-1]))
		}
		Expect(fakeHooks(conv)).To(BeEmpty())
		Expect(condition(get(o), v1alpha1.ConditionReconciling)).To(HavePrefix("True/"))
	})

	It("without Retry-After backs off through the rounds of the create", func() {
		// The client retries a 429 (four attempts, 10 ms doubling in this
		// suite), then the reconcile after the sender's round reads the
		// refusal.
		conv, _ := refusedCreates("refused-round", "AC67676767676767676767676767676767", "SK89898989898989898989898989898989",
			"retryKEYsecretVALUE0000000000009", 0)

		// Eleven rounds of at most four attempts: the round after the tenth
		// refusal waits 2.56 s (5 ms doubling through the rounds), where each
		// round started 5 ms after the last when the reconcile that hands the
		// create to the sender reset the backoff.
		Eventually(func() int { return len(createArrivals(conv)) }).WithTimeout(45 * time.Second).
			WithPolling(50 * time.Millisecond).Should(BeNumerically(">=", 44))
		at := createArrivals(conv)
		var longest time.Duration
		for i := 1; i < len(at); i++ {
			longest = max(longest, at[i].Sub(at[i-1]))
		}
		Expect(longest).To(BeNumerically(">=", 2*time.Second), "the longest pause between two of %d creates", len(at))
		Expect(fakeHooks(conv)).To(BeEmpty())
	})
})
