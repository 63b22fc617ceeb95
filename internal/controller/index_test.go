package controller

import (
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
)

// The manager's indexes of ConversationWebhooks (indexClusterWide): a List
// across namespaces finds every object with a value, and each value has one
// key in the informer's index, not a second one per namespace.
var _ = Describe("ClusterWideIndexes", func() {
	It("find objects of two namespaces by SID and by account, with one index key per value", func() {
		a, b := newTenant(1), newTenant(1)
		sid := "WH" + strings.Repeat("c0", 16)
		claim := func(claimed string) func(*v1alpha1.ConversationWebhook) {
			return func(o *v1alpha1.ConversationWebhook) {
				// Paused: nothing reconciles the claim away while it is read.
				o.Annotations = map[string]string{v1alpha1.AnnotationPaused: "true", v1alpha1.AnnotationWebhookSid: claimed}
			}
		}
		oa := a.object("index-a", claim(sid))
		ob := b.object("index-b", claim("WH"+strings.ToUpper(sid[2:])))
		Expect(k8sClient.Create(ctx, oa)).To(Succeed())
		Expect(k8sClient.Create(ctx, ob)).To(Succeed())

		names := func(opts ...client.ListOption) []string {
			var list v1alpha1.ConversationWebhookList
			Expect(managerCache.List(ctx, &list, opts...)).To(Succeed())
			var out []string
			for _, o := range list.Items {
				out = append(out, o.Namespace+"/"+o.Name)
			}
			return out
		}
		Eventually(func() []string { return names(client.MatchingFields{sidIndex: sid}) }).
			WithTimeout(waitTimeout).WithPolling(waitPoll).
			Should(ConsistOf(a.ns+"/index-a", b.ns+"/index-b"), "one SID, claimed in two namespaces (in two cases)")
		Expect(names(client.MatchingFields{accountIndex: accountKeyOf(a.ns, accountName)})).To(ConsistOf(a.ns + "/index-a"))
		Expect(names(client.MatchingFields{accountIndex: accountKeyOf(b.ns, accountName)})).To(ConsistOf(b.ns + "/index-b"))

		informer, err := managerCache.GetInformer(ctx, &v1alpha1.ConversationWebhook{})
		Expect(err).NotTo(HaveOccurred())
		indexer := informer.(toolscache.SharedIndexInformer).GetIndexer()
		for _, field := range []string{sidIndex, accountIndex} {
			for _, key := range indexer.ListIndexFuncValues(fieldIndexPrefix + field) {
				Expect(key).To(HavePrefix(allNamespacesPrefix), "a namespaced key in the %s index", field)
			}
		}
		Expect(indexer.ListIndexFuncValues(fieldIndexPrefix + sidIndex)).To(ContainElement(allNamespacesPrefix + sid))
	})
})
