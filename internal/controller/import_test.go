package controller

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/importer"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

// Issue 14: cwh-import's manifests, applied, observe their webhooks with no write.
var _ = Describe("Import round trip", func() {
	var t *tenant
	BeforeEach(func() {
		t = newTenant(1)
		resetFake()
		DeferCleanup(resetFake)
	})

	DescribeTable("import → apply → Synced=True, zero writes",
		func(keywordsIn string) {
			Expect(fake.SetTriggerKeywordsIn(keywordsIn)).To(Succeed())
			conv := t.convs[0]
			made := []string{
				fake.CreateWebhook(twiliofake.Webhook{ConversationSid: conv, Target: "webhook", URL: "https://by-hand.example.com/w",
					Method: "post", Filters: []string{"onMessageAdded", "onParticipantRemoved"}}),
				fake.CreateWebhook(twiliofake.Webhook{ConversationSid: conv, Target: "trigger", URL: "https://by-hand.example.com/t",
					Method: "get", Triggers: []string{"urgent", "agent"}}),
				fake.CreateWebhook(twiliofake.Webhook{ConversationSid: conv, Target: "studio", FlowSid: testFlow}),
			}
			factory, err := twilio.NewFactory(twilio.Options{BaseURL: fakeServer.URL, Timeout: 5 * time.Second})
			Expect(err).NotTo(HaveOccurred())
			api, err := factory.For(twilio.Credentials{AccountSid: testAccount, APIKeySid: testKeySid, APIKeySecret: testKeySecret})
			Expect(err).NotTo(HaveOccurred())
			objs, refusals, err := importer.Manifests(ctx, api, []twilio.Scope{{ConversationSid: conv}}, importer.Options{Namespace: t.ns})
			Expect(err).NotTo(HaveOccurred())
			Expect(refusals).To(BeEmpty())
			Expect(objs).To(HaveLen(3))
			fake.ResetLog()
			for _, o := range objs {
				Expect(o.Spec.ManagementPolicy).To(Equal(v1alpha1.ManagementPolicyObserve))
				Expect(k8sClient.Create(ctx, o)).To(Succeed())
			}
			for _, o := range objs {
				Eventually(func(g Gomega) {
					got := get(o)
					g.Expect(condition(got, v1alpha1.ConditionReady)).To(Equal("True/" + v1alpha1.ReasonObserving))
					c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionSynced)
					g.Expect(c).NotTo(BeNil())
					g.Expect(c.Reason).To(Equal(v1alpha1.ReasonInSync), "message: %s", c.Message)
					g.Expect(got.Status.Sid).To(BeElementOf(made))
				}).WithTimeout(20 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
			}
			Consistently(func() int { return writes(conv) }).WithTimeout(2 * syncPeriod).WithPolling(200 * time.Millisecond).Should(BeZero())
		},
		Entry("keywords answered under triggers", twiliofake.KeywordsInTriggers),
		Entry("keywords answered under filters (Twilio's examples)", twiliofake.KeywordsInFilters),
	)
})
