package controller

import (
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

// Attacks on comparing SIDs in canonical form (twilio.CanonicalSid): a status
// restored or edited by hand, and a GitOps tool re-applying a SID in upper case.
var _ = Describe("SidCaseAttack", func() {
	var t *tenant
	BeforeEach(func() {
		t = newTenant(1)
		resetFake()
		DeferCleanup(resetFake)
	})

	upperOf := func(sid string) string { return sid[:2] + strings.ToUpper(sid[2:]) }

	// supersedeOwn writes, by hand, a status.supersededWebhook that names the
	// object's own webhook with its hex digits in upper case (a restored or
	// hand-edited status), while the object is paused, then resumes it.
	supersedeOwn := func(o *v1alpha1.ConversationWebhook, sid string) {
		GinkgoHelper()
		pause(o, true)
		Eventually(func() error {
			cur := get(o)
			cur.Status.SupersededWebhook = &v1alpha1.WebhookReference{Sid: upperOf(sid), ConversationSid: t.convs[0]}
			return k8sClient.Status().Update(ctx, cur)
		}).WithTimeout(waitTimeout).WithPolling(waitPoll).Should(Succeed())
		pause(o, false)
	}

	It("a superseded record naming the owned webhook in upper case does not delete the owned webhook", func() {
		o := t.object("self-superseded")
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		sid := waitReady(o).Status.Sid
		supersedeOwn(o, sid)
		Consistently(func(g Gomega) {
			g.Expect(countFor(sid, twiliofake.OpDelete)).To(BeZero(), "the webhook the object manages was deleted as 'superseded'")
			g.Expect(fakeHooks(t.convs[0])).To(ConsistOf(HaveField("Sid", sid)))
		}).WithTimeout(quietPeriod).WithPolling(waitPoll).Should(Succeed())
	})

	It("deletionPolicy Orphan leaves its webhook even when a superseded record names it in upper case", func() {
		o := t.object("orphan-self-superseded", func(o *v1alpha1.ConversationWebhook) {
			o.Spec.DeletionPolicy = v1alpha1.DeletionPolicyOrphan
		})
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		sid := waitReady(o).Status.Sid
		stopSuiteManager() // no reconcile between the edit and the delete
		cur := get(o)
		cur.Status.SupersededWebhook = &v1alpha1.WebhookReference{Sid: upperOf(sid), ConversationSid: t.convs[0]}
		Expect(k8sClient.Status().Update(ctx, cur)).To(Succeed())
		stopManager = startManager()
		Expect(k8sClient.Delete(ctx, o)).To(Succeed())
		waitGone(o)
		Expect(countFor(sid, twiliofake.OpDelete)).To(BeZero(), "Orphan, yet the object's own webhook was deleted")
		Expect(fakeHooks(t.convs[0])).To(ConsistOf(HaveField("Sid", sid)))
	})

	It("a GitOps tool re-applying the owned SID in upper case is not fought with endless rewrites", func() {
		o := t.object("gitops-upper")
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		sid := waitReady(o).Status.Sid
		upper := upperOf(sid)
		for range 3 { // the GitOps tool's self-heal, three times
			setAnnotations(o, map[string]string{v1alpha1.AnnotationWebhookSid: upper})
			Consistently(func() string { return get(o).Annotations[v1alpha1.AnnotationWebhookSid] }).
				WithTimeout(syncPeriod).WithPolling(waitPoll).Should(Equal(upper), "rewritten, so the tool applies it again")
		}
		Expect(get(o).Status.Sid).To(Equal(sid))
		Expect(fakeHooks(t.convs[0])).To(ConsistOf(HaveField("Sid", sid)))
	})
})
