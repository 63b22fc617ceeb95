package controller

import (
	"context"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
)

var _ = Describe("CRD validation", func() {
	const ns = "validation"
	conv := "CH" + strings.Repeat("a", 32)
	base := func(target v1alpha1.Target) *v1alpha1.ConversationWebhook {
		o := &v1alpha1.ConversationWebhook{ObjectMeta: ctrlObjectMeta("", ns)}
		o.GenerateName = "v-"
		// Paused: these objects only exercise admission, never Twilio.
		o.Annotations = map[string]string{v1alpha1.AnnotationPaused: "true"}
		o.Spec.ConversationSid = conv
		o.Spec.Target = target
		switch target {
		case v1alpha1.TargetWebhook:
			o.Spec.URL = "https://hooks.example.com/w"
			o.Spec.Filters = []v1alpha1.Filter{"onMessageAdded"}
		case v1alpha1.TargetTrigger:
			o.Spec.URL = "https://hooks.example.com/t"
			o.Spec.Triggers = []string{"help"}
		case v1alpha1.TargetStudio:
			o.Spec.FlowSid = testFlow
		}
		return o
	}

	BeforeEach(func() {
		err := k8sClient.Create(context.Background(), &corev1.Namespace{ObjectMeta: ctrlObjectMeta(ns, "")})
		Expect(client.IgnoreAlreadyExists(err)).To(Succeed())
	})

	DescribeTable("rejects a broken rule with a message naming the field",
		func(target v1alpha1.Target, field, message string, tweak func(*v1alpha1.ConversationWebhook)) {
			o := base(target)
			tweak(o)
			err := k8sClient.Create(context.Background(), o)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(field))
			Expect(err.Error()).To(ContainSubstring(message))
		},
		Entry("conversationSid empty", v1alpha1.TargetWebhook, "spec.conversationSid", "should match",
			func(o *v1alpha1.ConversationWebhook) { o.Spec.ConversationSid = "" }),
		Entry("conversationSid not CH + 32 hex", v1alpha1.TargetWebhook, "spec.conversationSid", "should match",
			func(o *v1alpha1.ConversationWebhook) { o.Spec.ConversationSid = "CH123" }),
		Entry("serviceSid not IS + 32 hex", v1alpha1.TargetWebhook, "spec.serviceSid", "should match",
			func(o *v1alpha1.ConversationWebhook) { o.Spec.ServiceSid = "IS" + strings.Repeat("z", 32) }),
		Entry("target missing", v1alpha1.TargetWebhook, "spec.target", "Unsupported value",
			func(o *v1alpha1.ConversationWebhook) { o.Spec.Target = "" }),
		Entry("target unknown", v1alpha1.TargetWebhook, "spec.target", "Unsupported value",
			func(o *v1alpha1.ConversationWebhook) { o.Spec.Target = "email" }),
		Entry("url missing for webhook", v1alpha1.TargetWebhook, "spec.url", "url is required when target is webhook or trigger",
			func(o *v1alpha1.ConversationWebhook) { o.Spec.URL = "" }),
		Entry("url missing for trigger", v1alpha1.TargetTrigger, "spec.url", "url is required when target is webhook or trigger",
			func(o *v1alpha1.ConversationWebhook) { o.Spec.URL = "" }),
		Entry("url set for studio", v1alpha1.TargetStudio, "spec.url", "url must not be set when target is studio",
			func(o *v1alpha1.ConversationWebhook) { o.Spec.URL = "https://hooks.example.com/s" }),
		Entry("url relative", v1alpha1.TargetWebhook, "spec.url", "url must be an absolute http or https URL",
			func(o *v1alpha1.ConversationWebhook) { o.Spec.URL = "/hook" }),
		Entry("url with another scheme", v1alpha1.TargetWebhook, "spec.url", "url must be an absolute http or https URL",
			func(o *v1alpha1.ConversationWebhook) { o.Spec.URL = "ftp://hooks.example.com/w" }),
		Entry("url without host", v1alpha1.TargetWebhook, "spec.url", "url must be an absolute http or https URL",
			func(o *v1alpha1.ConversationWebhook) { o.Spec.URL = "https://" }),
		Entry("url over 512 characters", v1alpha1.TargetWebhook, "spec.url", "Too long",
			func(o *v1alpha1.ConversationWebhook) {
				o.Spec.URL = "https://hooks.example.com/" + strings.Repeat("a", 490)
			}),
		Entry("method unknown", v1alpha1.TargetWebhook, "spec.method", "Unsupported value",
			func(o *v1alpha1.ConversationWebhook) { o.Spec.Method = "PUT" }),
		Entry("method set for studio", v1alpha1.TargetStudio, "spec.method", "method must not be set when target is studio",
			func(o *v1alpha1.ConversationWebhook) { o.Spec.Method = v1alpha1.MethodGET }),
		Entry("filter unknown", v1alpha1.TargetWebhook, "spec.filters[0]", "Unsupported value",
			func(o *v1alpha1.ConversationWebhook) { o.Spec.Filters = []v1alpha1.Filter{"onMessageSent"} }),
		Entry("filters empty for webhook", v1alpha1.TargetWebhook, "spec.filters", "filters must name at least one event when target is webhook",
			func(o *v1alpha1.ConversationWebhook) { o.Spec.Filters = nil }),
		Entry("filters repeated", v1alpha1.TargetWebhook, "spec.filters[1]", "Duplicate value",
			func(o *v1alpha1.ConversationWebhook) {
				o.Spec.Filters = []v1alpha1.Filter{"onMessageAdded", "onMessageAdded"}
			}),
		Entry("triggers missing for trigger", v1alpha1.TargetTrigger, "spec.triggers", "triggers is required when target is trigger",
			func(o *v1alpha1.ConversationWebhook) { o.Spec.Triggers = nil }),
		Entry("triggers set for webhook", v1alpha1.TargetWebhook, "spec.triggers", "triggers may only be set when target is trigger",
			func(o *v1alpha1.ConversationWebhook) { o.Spec.Triggers = []string{"help"} }),
		Entry("six triggers", v1alpha1.TargetTrigger, "spec.triggers", "must have at most 5 items",
			func(o *v1alpha1.ConversationWebhook) { o.Spec.Triggers = []string{"a", "b", "c", "d", "e", "f"} }),
		Entry("empty trigger keyword", v1alpha1.TargetTrigger, "spec.triggers[0]", "at least 1 chars long",
			func(o *v1alpha1.ConversationWebhook) { o.Spec.Triggers = []string{""} }),
		Entry("trigger keyword over 248 characters", v1alpha1.TargetTrigger, "spec.triggers[0]", "Too long",
			func(o *v1alpha1.ConversationWebhook) { o.Spec.Triggers = []string{strings.Repeat("k", 249)} }),
		Entry("triggers repeated", v1alpha1.TargetTrigger, "spec.triggers[1]", "Duplicate value",
			func(o *v1alpha1.ConversationWebhook) { o.Spec.Triggers = []string{"help", "help"} }),
		Entry("flowSid missing for studio", v1alpha1.TargetStudio, "spec.flowSid", "flowSid is required when target is studio",
			func(o *v1alpha1.ConversationWebhook) { o.Spec.FlowSid = "" }),
		Entry("flowSid set for webhook", v1alpha1.TargetWebhook, "spec.flowSid", "flowSid may only be set when target is studio",
			func(o *v1alpha1.ConversationWebhook) { o.Spec.FlowSid = testFlow }),
		Entry("flowSid not FW + 32 hex", v1alpha1.TargetStudio, "spec.flowSid", "should match",
			func(o *v1alpha1.ConversationWebhook) { o.Spec.FlowSid = "FW1" }),
		Entry("replayAfter negative", v1alpha1.TargetWebhook, "spec.replayAfter", "greater than or equal to 0",
			func(o *v1alpha1.ConversationWebhook) { o.Spec.ReplayAfter = ptr.To[int32](-1) }),
		Entry("deletionPolicy unknown", v1alpha1.TargetWebhook, "spec.deletionPolicy", "Unsupported value",
			func(o *v1alpha1.ConversationWebhook) { o.Spec.DeletionPolicy = "Keep" }),
		Entry("accountRef without a name", v1alpha1.TargetWebhook, "spec.accountRef.name", "at least 1 chars long",
			func(o *v1alpha1.ConversationWebhook) { o.Spec.AccountRef = &v1alpha1.AccountReference{} }),
		Entry("accountRef of an unknown kind", v1alpha1.TargetWebhook, "spec.accountRef.kind", "Unsupported value",
			func(o *v1alpha1.ConversationWebhook) {
				o.Spec.AccountRef = &v1alpha1.AccountReference{Kind: "Secret", Name: "x"}
			}),
		Entry("managementPolicy unknown", v1alpha1.TargetWebhook, "spec.managementPolicy", "Unsupported value",
			func(o *v1alpha1.ConversationWebhook) { o.Spec.ManagementPolicy = "ReadOnly" }),
	)

	DescribeTable("accepts each target and applies the defaults",
		func(target v1alpha1.Target) {
			o := base(target)
			Expect(k8sClient.Create(context.Background(), o)).To(Succeed())
			got := get(o)
			Expect(got.Spec.Method).To(Equal(v1alpha1.MethodPOST))
			Expect(got.Spec.DeletionPolicy).To(Equal(v1alpha1.DeletionPolicyDelete))
			Expect(got.Spec.ManagementPolicy).To(Equal(v1alpha1.ManagementPolicyFull))
		},
		Entry("webhook", v1alpha1.TargetWebhook),
		Entry("trigger", v1alpha1.TargetTrigger),
		Entry("studio", v1alpha1.TargetStudio),
	)

	It("accepts replayAfter 0, a service SID and every filter", func() {
		o := base(v1alpha1.TargetWebhook)
		o.Spec.ReplayAfter = ptr.To[int32](0)
		o.Spec.ServiceSid = "IS" + strings.Repeat("0", 32)
		o.Spec.Filters = []v1alpha1.Filter{"onMessageAdded", "onMessageUpdated", "onMessageRemoved", "onConversationUpdated",
			"onConversationStateUpdated", "onConversationRemoved", "onParticipantAdded", "onParticipantUpdated",
			"onParticipantRemoved", "onDeliveryUpdated"}
		Expect(k8sClient.Create(context.Background(), o)).To(Succeed())
		Expect(get(o).Spec.ReplayAfter).To(Equal(ptr.To[int32](0)))
	})
})
