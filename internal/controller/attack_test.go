package controller

import (
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

// Attacks on the ownership rules of issue 9 (DESIGN.md, "Trust rules"). Each
// spec states an invariant of the design; a failure is a bug in the operator.
var _ = Describe("Attack", func() {
	var t *tenant
	BeforeEach(func() {
		t = newTenant(2)
		resetFake()
		DeferCleanup(resetFake)
		DeferCleanup(fake.ClearFaults)
	})

	// hookSids lists the SIDs of a conversation's webhooks in the fake.
	hookSids := func(conv string) []string {
		var out []string
		for _, w := range fakeHooks(conv) {
			out = append(out, w.Sid)
		}
		return out
	}
	exists := func(sid string) bool {
		_, ok := fake.Webhook(sid)
		return ok
	}

	// findCreated matches the fingerprint of what the create sent, and the
	// fingerprint leaves replayAfter out: during a replacement for replayAfter the
	// object's own current webhook matches, is "recovered", and the replacement's
	// real result is never looked for again.
	It("Attack: a replayAfter replacement whose create answer is lost leaves no unowned webhook", func() {
		o := t.object("replay", func(o *v1alpha1.ConversationWebhook) { o.Spec.ReplayAfter = ptr.To[int32](5) })
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		wh1 := waitReady(o).Status.Sid
		fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultLoseResponse, Operation: twiliofake.OpCreate, Conversations: t.convs})
		patchSpec(o, func(o *v1alpha1.ConversationWebhook) { o.Spec.ReplayAfter = ptr.To[int32](10) })
		Eventually(func(g Gomega) {
			got := get(o)
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
			g.Expect(condition(got, v1alpha1.ConditionReady)).To(Equal("True/Available"))
			g.Expect(got.Status.Sid).NotTo(Equal(wh1))
		}).WithTimeout(20 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
		Eventually(func() []string { return hookSids(t.convs[0]) }).WithTimeout(10*time.Second).
			WithPolling(200*time.Millisecond).Should(ConsistOf(get(o).Status.Sid),
			"the webhook the lost create made is the object's, or is deleted: nothing is left that no object owns")
	})

	// findCreated takes any webhook that matches the fingerprint, whenever it was
	// made: a create that failed with a 500 (Twilio created nothing) "recovers" a
	// webhook made by hand a day earlier, and the object's deletion deletes it.
	It("Attack: a create that failed with a 500 never takes, nor deletes, a webhook made a day before", func() {
		name := "prior"
		spec := t.object(name)
		handMade := fake.CreateWebhook(twiliofake.Webhook{ConversationSid: t.convs[0], Target: "webhook",
			URL: spec.Spec.URL, Method: "post", Filters: []string{"onMessageAdded", "onParticipantAdded"}})
		Expect(fake.EditWebhook(handMade, func(w *twiliofake.Webhook) {
			w.DateCreated = time.Now().Add(-24 * time.Hour).Truncate(time.Second)
			w.DateUpdated = w.DateCreated
		})).To(BeTrue())
		fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultServerError, Operation: twiliofake.OpCreate, Conversations: t.convs})
		Expect(k8sClient.Create(ctx, spec)).To(Succeed())
		got := waitReady(spec)
		Expect(got.Status.Sid).NotTo(Equal(handMade),
			"a webhook created a day before the create was sent cannot be that create's result")
		Expect(k8sClient.Delete(ctx, spec)).To(Succeed())
		waitGone(spec)
		Expect(exists(handMade)).To(BeTrue(), "the object's deletion deletes only what it created or was told to adopt")
	})

	// The loser of a SidConflict is Stalled without a requeue, and nothing
	// re-reconciles it when the winner goes. docs/gitops.md's move (Orphan, then
	// re-create with webhook-sid) in one Argo CD sync applies the new object before
	// pruning the old one: the webhook is then left owned by nothing.
	It("Attack: a SidConflict loser takes over once the owner is deleted with Orphan (GitOps move/rename)", func() {
		old := t.object("move-old", func(o *v1alpha1.ConversationWebhook) { o.Spec.DeletionPolicy = v1alpha1.DeletionPolicyOrphan })
		Expect(k8sClient.Create(ctx, old)).To(Succeed())
		wh1 := waitReady(old).Status.Sid
		neu := t.object("move-new", func(o *v1alpha1.ConversationWebhook) {
			o.Spec.URL = old.Spec.URL
			o.Annotations = map[string]string{v1alpha1.AnnotationWebhookSid: wh1}
		})
		Expect(k8sClient.Create(ctx, neu)).To(Succeed())
		waitStalled(neu, v1alpha1.ReasonSidConflict)
		Expect(k8sClient.Delete(ctx, old)).To(Succeed())
		waitGone(old)
		Expect(exists(wh1)).To(BeTrue(), "Orphan leaves it")
		Eventually(func(g Gomega) {
			got := get(neu)
			g.Expect(condition(got, v1alpha1.ConditionReady)).To(Equal("True/Available"))
			g.Expect(got.Status.Sid).To(Equal(wh1))
		}).WithTimeout(5*syncPeriod+10*time.Second).WithPolling(200*time.Millisecond).Should(Succeed(),
			"wh1 is left owned by nothing and the new object stays Stalled")
	})

	// The SID index holds status.sid and the webhook-sid annotation, not
	// status.supersededWebhook: another object may adopt a webhook that a
	// replacement is about to delete, and then loses it.
	It("Attack: a webhook another object keeps as superseded is not adopted, or is not deleted from under its adopter", func() {
		a := t.object("replaced")
		Expect(k8sClient.Create(ctx, a)).To(Succeed())
		wh1 := waitReady(a).Status.Sid
		fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultServerError, Operation: twiliofake.OpDelete, Sticky: true, Conversations: t.convs})
		patchSpec(a, func(o *v1alpha1.ConversationWebhook) { o.Spec.ConversationSid = t.convs[1] })
		Eventually(func(g Gomega) {
			got := get(a)
			g.Expect(got.Status.SupersededWebhook).NotTo(BeNil())
			g.Expect(got.Status.SupersededWebhook.Sid).To(Equal(wh1))
		}).WithTimeout(20 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())

		b := t.object("adopter", func(o *v1alpha1.ConversationWebhook) {
			o.Annotations = map[string]string{v1alpha1.AnnotationWebhookSid: wh1}
		})
		Expect(k8sClient.Create(ctx, b)).To(Succeed())
		var adopted bool
		Eventually(func(g Gomega) {
			got := get(b)
			c := condition(got, v1alpha1.ConditionReady)
			g.Expect(c).To(BeElementOf("True/Available", "False/"+v1alpha1.ReasonSidConflict))
			adopted = got.Status.Sid == wh1
		}).WithTimeout(20 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
		fake.ClearFaults()
		Eventually(func() *v1alpha1.WebhookReference { return get(a).Status.SupersededWebhook }).
			WithTimeout(60 * time.Second).WithPolling(200 * time.Millisecond).Should(BeNil())
		if adopted {
			Expect(exists(wh1)).To(BeTrue(), "%s adopted %s and records it; %s deleted it anyway", b.Name, wh1, a.Name)
		}
	})

	// gone() counts Twilio's "conversation not found" (50350) as "the webhook is
	// gone". With credentials that belong to another account every conversation is
	// "not found": the deletion reports Deleted and the webhook stays.
	It("Attack: switching accountRef to another Twilio account, then deleting, does not report a deletion that did not happen", func() {
		const otherAccount = "AC22222222222222222222222222222222"
		const otherToken = "otherTOKENvalue000000000000000002"
		fake.AddAccount(otherAccount, otherToken)
		Expect(k8sClient.Create(ctx, &corev1.Secret{
			ObjectMeta: ctrlObjectMeta("other-account", t.ns),
			StringData: map[string]string{"accountSid": otherAccount, "authToken": otherToken},
		})).To(Succeed())
		Expect(k8sClient.Create(ctx, twilioAccount(t.ns, "other-account", "other-account"))).To(Succeed())
		o := t.object("switch-account")
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		wh1 := waitReady(o).Status.Sid
		patchSpec(o, func(o *v1alpha1.ConversationWebhook) {
			o.Spec.AccountRef = &v1alpha1.AccountReference{Name: "other-account"}
		})
		Eventually(func() string { return condition(get(o), v1alpha1.ConditionReady) }).WithTimeout(20 * time.Second).
			WithPolling(100 * time.Millisecond).ShouldNot(Equal("True/Available"))
		Expect(k8sClient.Delete(ctx, o)).To(Succeed())
		waitGone(o)
		Expect(exists(wh1)).To(BeTrue(), "the other account cannot delete it")
		var deleted, orphaned bool
		for _, e := range objectEvents(o) {
			if e.Reason == EventDeleted && strings.Contains(e.Note, wh1) {
				deleted = true
			}
			if e.Reason == EventOrphaned && e.Type == corev1.EventTypeWarning && strings.Contains(e.Note, wh1) {
				orphaned = true
			}
		}
		Expect(deleted).To(BeFalse(), "a Deleted event for %s, which is still in Twilio", wh1)
		Expect(orphaned).To(BeTrue(), "a Warning names %s, left in Twilio", wh1)
	})

	// readLedger takes a create-pending annotation with no record in status as
	// "a restored object that manages nothing yet", although its webhook-sid
	// annotation names the webhook it managed. A backup taken mid-replacement holds
	// both; after the restore the operator drops webhook-sid without looking at
	// the webhook it names, creates another, and the named one is left to nobody.
	It("Attack: a restored object with webhook-sid and a stale create-pending leaves nothing unowned", func() {
		o := t.object("restored", func(o *v1alpha1.ConversationWebhook) { o.Spec.ReplayAfter = ptr.To[int32](10) })
		// Before the backup the object managed wh1 (replayAfter 5) and had written
		// create-pending to replace it for replayAfter 10.
		wh1 := fake.CreateWebhook(twiliofake.Webhook{ConversationSid: t.convs[0], Target: "webhook",
			URL: o.Spec.URL, Method: "post", Filters: []string{"onMessageAdded", "onParticipantAdded"}, ReplayAfter: ptr.To(5)})
		Expect(fake.EditWebhook(wh1, func(w *twiliofake.Webhook) {
			w.DateCreated = time.Now().Add(-time.Hour).Truncate(time.Second)
			w.DateUpdated = w.DateCreated
		})).To(BeTrue())
		o.Annotations = map[string]string{
			v1alpha1.AnnotationWebhookSid:    wh1,
			v1alpha1.AnnotationCreatePending: time.Now().Add(-2 * time.Minute).UTC().Format(time.RFC3339),
		}
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		got := waitReady(o)
		Eventually(func() []string { return hookSids(t.convs[0]) }).WithTimeout(10*time.Second).
			WithPolling(200*time.Millisecond).Should(ConsistOf(got.Status.Sid),
			"%s, named by webhook-sid, is adopted and replaced, not left owned by nothing", wh1)
	})

	// The CRD accepts managementPolicy: Observe and documents it as "never writes
	// to Twilio (no create, update, replace or delete, not even on deletion of
	// this object)"; the reconciler never reads the field, so an object set to
	// observe a production webhook rewrites it to its spec and deletes it.
	It("Attack: managementPolicy Observe never writes to Twilio, not even on deletion", func() {
		prod := fake.CreateWebhook(twiliofake.Webhook{ConversationSid: t.convs[0], Target: "webhook",
			URL: "https://production.example.com/hook", Method: "post", Filters: []string{"onMessageAdded"}})
		o := t.object("observer", func(o *v1alpha1.ConversationWebhook) {
			o.Spec.ManagementPolicy = v1alpha1.ManagementPolicyObserve
			o.Annotations = map[string]string{v1alpha1.AnnotationWebhookSid: prod}
		})
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(countInConversation(t.convs[0], twiliofake.OpCreate)).To(BeZero())
			g.Expect(countFor(prod, twiliofake.OpUpdate)).To(BeZero(), "the observed webhook was rewritten to the spec")
			g.Expect(countFor(prod, twiliofake.OpDelete)).To(BeZero())
		}).WithTimeout(2 * syncPeriod).WithPolling(200 * time.Millisecond).Should(Succeed())
		Expect(k8sClient.Delete(ctx, o)).To(Succeed())
		waitGone(o)
		Expect(exists(prod)).To(BeTrue(), "deleting an Observe object deletes nothing")
		w, _ := fake.Webhook(prod)
		Expect(w.URL).To(Equal("https://production.example.com/hook"))
	})

	// create-pending is a "bookkeeping" annotation: its changes never trigger a
	// reconcile (userAnnotationsChanged strips it), and a Stalled object is not
	// requeued. A malformed value stalls the object with InvalidAnnotation at its
	// next poll; removing the value, as the message asks, never un-stalls it.
	It("Attack: removing a malformed create-pending un-stalls the object", func() {
		o := t.object("badpending")
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		waitReady(o)
		setAnnotations(o, map[string]string{v1alpha1.AnnotationCreatePending: "yesterday"})
		waitStalled(o, v1alpha1.ReasonInvalidAnnotation)
		Eventually(func() error {
			cur := get(o)
			delete(cur.Annotations, v1alpha1.AnnotationCreatePending)
			return k8sClient.Update(ctx, cur)
		}).WithTimeout(10 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
		Eventually(func() string { return condition(get(o), v1alpha1.ConditionReady) }).
			WithTimeout(5*syncPeriod+10*time.Second).WithPolling(200*time.Millisecond).Should(Equal("True/Available"),
			"the annotation the Stalled message names is gone, but nothing reconciles the object again")
	})

	// deleteExternal applies deletionPolicy Orphan to every target, the webhook a
	// replacement superseded included: that one is already replaced, nothing uses
	// or records it, and once the object is gone nothing ever deletes it.
	It("Attack: deletionPolicy Orphan keeps the managed webhook, not the one a replacement superseded", func() {
		o := t.object("orphan-mid-replacement")
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		wh1 := waitReady(o).Status.Sid
		fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultServerError, Operation: twiliofake.OpDelete, Sticky: true, Conversations: t.convs})
		patchSpec(o, func(o *v1alpha1.ConversationWebhook) {
			o.Spec.ConversationSid = t.convs[1]
			o.Spec.DeletionPolicy = v1alpha1.DeletionPolicyOrphan
		})
		Eventually(func(g Gomega) {
			got := get(o)
			g.Expect(got.Status.SupersededWebhook).NotTo(BeNil())
			g.Expect(got.Status.Sid).NotTo(Equal(wh1))
		}).WithTimeout(20 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
		wh2 := get(o).Status.Sid
		Expect(k8sClient.Delete(ctx, o)).To(Succeed())
		time.Sleep(time.Second)
		fake.ClearFaults()
		waitGone(o)
		Expect(exists(wh2)).To(BeTrue(), "Orphan leaves the managed webhook")
		Eventually(func() bool { return exists(wh1) }).WithTimeout(10*time.Second).WithPolling(200*time.Millisecond).
			Should(BeFalse(), "the superseded webhook %s is left in Twilio, owned by nothing", wh1)
	})

	// twins makes two objects with one spec whose creates' answers are both lost,
	// then lets both recover at the same moment: each lists the conversation,
	// sees two webhooks that match its fingerprint, finds (in the cache) that no
	// object records either, and takes the first.
	twins := func() (a, b *v1alpha1.ConversationWebhook) {
		GinkgoHelper()
		fake.InjectFaults(
			twiliofake.Fault{Kind: twiliofake.FaultLoseResponse, Operation: twiliofake.OpCreate, Conversations: t.convs},
			twiliofake.Fault{Kind: twiliofake.FaultLoseResponse, Operation: twiliofake.OpCreate, Conversations: t.convs},
			twiliofake.Fault{Kind: twiliofake.FaultServerError, Operation: twiliofake.OpList, Sticky: true, Conversations: t.convs},
		)
		same := func(o *v1alpha1.ConversationWebhook) { o.Spec.URL = "https://hooks.example.com/twin" }
		a, b = t.object("twin-a", same), t.object("twin-b", same)
		Expect(k8sClient.Create(ctx, a)).To(Succeed())
		Expect(k8sClient.Create(ctx, b)).To(Succeed())
		for _, o := range []*v1alpha1.ConversationWebhook{a, b} {
			Eventually(func() *v1alpha1.PendingCreate { return get(o).Status.PendingCreate }).
				WithTimeout(10 * time.Second).WithPolling(100 * time.Millisecond).ShouldNot(BeNil())
			pause(o, true)
		}
		// The pending record is written before the create is sent (off the worker).
		Eventually(func() []twiliofake.Webhook { return fakeHooks(t.convs[0]) }).
			WithTimeout(5 * time.Second).WithPolling(20 * time.Millisecond).Should(HaveLen(2))
		fake.ClearFaults()
		fake.SetLatency(300 * time.Millisecond)
		DeferCleanup(func() { fake.SetLatency(0) })
		// Unpause both at once: each reconcile lists (slowly) before either records.
		ua, ub := get(a), get(b)
		ua.Annotations[v1alpha1.AnnotationPaused] = "false"
		ub.Annotations[v1alpha1.AnnotationPaused] = "false"
		done := make(chan error, 2)
		for _, u := range []*v1alpha1.ConversationWebhook{ua, ub} {
			go func() { done <- k8sClient.Update(ctx, u) }()
		}
		Expect(<-done).To(Succeed())
		Expect(<-done).To(Succeed())
		Eventually(func(g Gomega) {
			for _, o := range []*v1alpha1.ConversationWebhook{a, b} {
				got := get(o)
				g.Expect(got.Status.PendingCreate).To(BeNil())
				g.Expect(got.Status.Sid).NotTo(BeEmpty())
			}
		}).WithTimeout(20 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
		fake.SetLatency(0)
		return a, b
	}

	It("Attack: two objects with one spec recovering their lost creates at once take one webhook each", func() {
		a, b := twins()
		Eventually(func(g Gomega) {
			ga, gb := get(a), get(b)
			g.Expect(ga.Status.Sid).NotTo(Equal(gb.Status.Sid), "both record one webhook; the other is owned by nothing")
			g.Expect(condition(ga, v1alpha1.ConditionReady)).To(Equal("True/Available"))
			g.Expect(condition(gb, v1alpha1.ConditionReady)).To(Equal("True/Available"))
		}).WithTimeout(10 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
	})

	// When both record one SID, the younger is Stalled SidConflict yet keeps that
	// SID in status.sid; adopting another webhook by annotation (what the Stalled
	// message suggests) supersedes it, and the superseded webhook is deleted
	// without the ownership check planDeletion makes.
	It("Attack: a SidConflict loser that adopts another webhook never deletes the winner's", func() {
		a, b := twins()
		h := fake.CreateWebhook(twiliofake.Webhook{ConversationSid: t.convs[0], Target: "webhook",
			URL: "https://by-hand.example.com", Method: "post", Filters: []string{"onMessageAdded"}})
		ga, gb := get(a), get(b)
		winner := ga.Status.Sid
		loser := b
		if condition(ga, v1alpha1.ConditionReady) != "True/Available" {
			winner, loser = gb.Status.Sid, a
		}
		setAnnotations(loser, map[string]string{v1alpha1.AnnotationWebhookSid: h})
		Eventually(func() string { return get(loser).Status.Sid }).WithTimeout(20 * time.Second).
			WithPolling(200 * time.Millisecond).Should(Equal(h))
		Consistently(func() bool { return exists(winner) }).WithTimeout(2*syncPeriod).WithPolling(100*time.Millisecond).
			Should(BeTrue(), "the winner's webhook %s was deleted by the loser's adoption", winner)
	})

	// commit adds the finalizer only when a step runs; a converged object makes
	// no step, so a finalizer removed by hand (or by a tool) is never put back
	// and the object's deletion later leaves its webhook in Twilio, with no event.
	It("Attack: a finalizer removed from a converged object is put back before its deletion can leak the webhook", func() {
		o := t.object("no-finalizer")
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		wh := waitReady(o).Status.Sid
		Eventually(func() error {
			cur := get(o)
			cur.Finalizers = nil
			return k8sClient.Update(ctx, cur)
		}).WithTimeout(10 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
		Eventually(func() []string { return get(o).Finalizers }).WithTimeout(3*syncPeriod+5*time.Second).
			WithPolling(200*time.Millisecond).Should(ContainElement(v1alpha1.Finalizer), "the finalizer guards %s", wh)
		Expect(k8sClient.Delete(ctx, o)).To(Succeed())
		waitGone(o)
		Expect(exists(wh)).To(BeFalse())
	})

	// Only SIDs read from the object are checked against ^WH[0-9a-fA-F]{32}$;
	// a SID in Twilio's answer (a list read to find a lost create's webhook) goes
	// into the path of the next request as it is. DESIGN.md: "Every SID the
	// operator puts in a Twilio path is checked against its pattern first".
	It("Attack: a SID from Twilio's answer that is not a well-formed SID never reaches a Twilio path", func() {
		o := pendingCreate(t, "answer-sid")
		made := fakeHooks(t.convs[0])[0].Sid
		Expect(k8sClient.Delete(ctx, o)).To(Succeed())
		Expect(fake.EditWebhook(made, func(w *twiliofake.Webhook) { w.Sid = "../../" + t.convs[1] })).To(BeTrue())
		fake.ResetLog()
		fake.ClearFaults()
		Eventually(func() []twiliofake.Request { return fake.Requests() }).WithTimeout(10 * time.Second).
			WithPolling(100 * time.Millisecond).ShouldNot(BeEmpty())
		Consistently(func(g Gomega) {
			for _, r := range fake.Requests() {
				g.Expect(r.Path).NotTo(ContainSubstring(".."), "%s %s", r.Method, r.Path)
				g.Expect(r.Path).NotTo(HaveSuffix("/Conversations/"+t.convs[1]), "%s %s", r.Method, r.Path)
			}
		}).WithTimeout(2 * syncPeriod).WithPolling(100 * time.Millisecond).Should(Succeed())
	})
})
