package controller

import (
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

// Issue 9: annotations and metadata are input; status is the operator's.
var _ = Describe("Trust: what a user can write", func() {
	var t *tenant
	BeforeEach(func() {
		t = newTenant(2)
		resetFake()
		DeferCleanup(resetFake)
	})

	// unowned lists the conversation's webhooks that no object records in status.
	unowned := func(conv string) []string {
		GinkgoHelper()
		var list v1alpha1.ConversationWebhookList
		Expect(k8sClient.List(ctx, &list)).To(Succeed())
		owned := map[string]bool{}
		for _, o := range list.Items {
			owned[o.Status.Sid] = true
		}
		var out []string
		for _, w := range fakeHooks(conv) {
			if !owned[w.Sid] {
				out = append(out, w.Sid)
			}
		}
		return out
	}

	It("deleting an object that lost a SidConflict leaves the owner's webhook in Twilio", func() {
		owner := t.object("owner")
		Expect(k8sClient.Create(ctx, owner)).To(Succeed())
		wh1 := waitReady(owner).Status.Sid
		claimLosesAndGoes(t, wh1)
		Consistently(func(g Gomega) {
			_, exists := fake.Webhook(wh1)
			g.Expect(exists).To(BeTrue(), "the owner's webhook stays in Twilio")
			g.Expect(countFor(wh1, twiliofake.OpDelete)).To(BeZero())
			g.Expect(condition(get(owner), v1alpha1.ConditionReady)).To(Equal("True/Available"))
		}).WithTimeout(2 * syncPeriod).WithPolling(200 * time.Millisecond).Should(Succeed())
	})

	It("a user-written replaced-webhook naming another object's webhook deletes nothing, and is removed with a warning", func() {
		victim := t.object("victim")
		Expect(k8sClient.Create(ctx, victim)).To(Succeed())
		victimSid := waitReady(victim).Status.Sid
		o := t.object("writer")
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		waitReady(o)
		setAnnotations(o, map[string]string{v1alpha1.AnnotationReplacedWebhook: t.convs[0] + "/" + victimSid})
		Eventually(func() map[string]string { return get(o).Annotations }).WithTimeout(10 * time.Second).
			WithPolling(100 * time.Millisecond).ShouldNot(HaveKey(v1alpha1.AnnotationReplacedWebhook))
		waitEvent(o, EventLegacyAnnotation)
		Consistently(func(g Gomega) {
			g.Expect(countFor(victimSid, twiliofake.OpDelete)).To(BeZero())
			_, exists := fake.Webhook(victimSid)
			g.Expect(exists).To(BeTrue())
		}).WithTimeout(2 * syncPeriod).WithPolling(200 * time.Millisecond).Should(Succeed())
		Expect(k8sClient.Delete(ctx, o)).To(Succeed())
		waitGone(o)
		_, exists := fake.Webhook(victimSid)
		Expect(exists).To(BeTrue(), "deleting the object that carried the annotation deletes only its own webhook")
		Expect(condition(get(victim), v1alpha1.ConditionReady)).To(Equal("True/Available"))
	})

	DescribeTable("a malformed webhook-sid never reaches Twilio, not even on deletion",
		func(paused bool, value func(t *tenant) string) {
			o := t.object("malformed", func(o *v1alpha1.ConversationWebhook) {
				o.Annotations = map[string]string{v1alpha1.AnnotationWebhookSid: value(t)}
			})
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
			got := waitStalled(o, v1alpha1.ReasonInvalidAnnotation)
			msg := ""
			for _, c := range got.Status.Conditions {
				if c.Type == v1alpha1.ConditionStalled {
					msg = c.Message
				}
			}
			Expect(msg).To(ContainSubstring(v1alpha1.AnnotationWebhookSid))
			Expect(len(msg)).To(BeNumerically("<", 64+200), "the message echoes at most 64 characters of the value")
			if paused {
				setAnnotations(o, map[string]string{v1alpha1.AnnotationPaused: "true"})
			}
			Expect(k8sClient.Delete(ctx, o)).To(Succeed())
			waitGone(o)
			Consistently(func(g Gomega) {
				for _, conv := range t.convs {
					g.Expect(countInConversation(conv, "")).To(BeZero(), "no request under conversation %s", conv)
				}
				for _, r := range fake.Requests() {
					g.Expect(r.Path).NotTo(ContainSubstring(".."))
				}
			}).WithTimeout(syncPeriod).WithPolling(200 * time.Millisecond).Should(Succeed())
		},
		Entry("path traversal to another conversation", false, func(t *tenant) string { return "../../" + t.convs[1] }),
		Entry("path traversal, paused before deletion", true, func(t *tenant) string { return "../../" + t.convs[1] }),
		Entry("a SID one character short", false, func(*tenant) string { return "WH" + strings.Repeat("a", 31) }),
		Entry("a long value", false, func(*tenant) string { return "WH" + strings.Repeat("b", 300) }),
	)

	// paused and poll-interval are read as they are written: a value the
	// operator does not read ("yes" meant as a pause, "ten minutes") stalls the
	// object, naming the annotation, and nothing goes to Twilio until it is fixed.
	DescribeTable("a paused or poll-interval value the operator cannot read stalls the object before any Twilio call",
		func(key, bad, good string) {
			o := t.object("badvalue", func(o *v1alpha1.ConversationWebhook) {
				o.Annotations = map[string]string{key: bad}
			})
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
			got := waitStalled(o, v1alpha1.ReasonInvalidAnnotation)
			Expect(stalledMessage(got)).To(And(ContainSubstring(key), ContainSubstring(bad)))
			Consistently(func() int { return countInConversation(t.convs[0], "") }).
				WithTimeout(quietPeriod).WithPolling(200*time.Millisecond).Should(BeZero(), "nothing is sent to Twilio")
			setAnnotations(o, map[string]string{key: good})
			waitReady(o)
			Expect(fakeHooks(t.convs[0])).To(HaveLen(1))
		},
		Entry(`paused "yes"`, v1alpha1.AnnotationPaused, "yes", "false"),
		Entry(`paused "True"`, v1alpha1.AnnotationPaused, "True", "false"),
		Entry(`poll-interval "ten minutes"`, v1alpha1.AnnotationPollInterval, "ten minutes", "10m"),
		Entry(`poll-interval "-1m"`, v1alpha1.AnnotationPollInterval, "-1m", "1m"),
	)

	It("a deletion waits, as for a pause, while the paused annotation holds a value that is neither true nor false", func() {
		o := t.object("badpause")
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		sid := waitReady(o).Status.Sid
		setAnnotations(o, map[string]string{v1alpha1.AnnotationPaused: "yes"})
		waitStalled(o, v1alpha1.ReasonInvalidAnnotation)
		Expect(k8sClient.Delete(ctx, o)).To(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(condition(get(o), v1alpha1.ConditionStalled)).To(Equal("True/" + v1alpha1.ReasonInvalidAnnotation))
			g.Expect(countFor(sid, twiliofake.OpDelete)).To(BeZero())
		}).WithTimeout(quietPeriod).WithPolling(200 * time.Millisecond).Should(Succeed())
		setAnnotations(o, map[string]string{v1alpha1.AnnotationPaused: "false"})
		waitGone(o)
		_, exists := fake.Webhook(sid)
		Expect(exists).To(BeFalse(), "deleted once the value is fixed")
	})

	It("GitOps re-applying a stale webhook-sid leaks nothing: three self-heal cycles end with one webhook", func() {
		o := t.object("gitops")
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		wh1 := waitReady(o).Status.Sid // the value a user committed to Git
		for cycle := range 3 {
			current := get(o).Status.Sid
			Expect(fake.DeleteWebhook(current)).To(BeTrue(), "deleted outside the operator (cycle %d)", cycle)
			var next string
			Eventually(func(g Gomega) {
				got := get(o)
				g.Expect(got.Status.Sid).NotTo(BeElementOf(current, wh1))
				g.Expect(condition(got, v1alpha1.ConditionReady)).To(Equal("True/Available"))
				next = got.Status.Sid
			}).WithTimeout(20 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
			// Argo CD's self-heal puts the committed value back.
			setAnnotations(o, map[string]string{v1alpha1.AnnotationWebhookSid: wh1})
			Eventually(func(g Gomega) {
				got := get(o)
				g.Expect(got.Annotations).To(HaveKeyWithValue(v1alpha1.AnnotationWebhookSid, next))
				g.Expect(got.Status.Sid).To(Equal(next))
			}).WithTimeout(20 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
		}
		waitEvent(o, EventStaleWebhookSid)
		Consistently(func() []twiliofake.Webhook { return fakeHooks(t.convs[0]) }).
			WithTimeout(2 * syncPeriod).WithPolling(200 * time.Millisecond).Should(HaveLen(1))
		Expect(fakeHooks(t.convs[0])[0].Sid).To(Equal(get(o).Status.Sid))
	})

	It("pointing webhook-sid at another existing webhook adopts it and deletes the one managed before: nothing is left unowned", func() {
		o := t.object("switch")
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		before := waitReady(o).Status.Sid
		made := fake.CreateWebhook(twiliofake.Webhook{ConversationSid: t.convs[0], Target: "webhook",
			URL: "https://by-hand.example.com", Method: "post", Filters: []string{"onMessageAdded"}})
		setAnnotations(o, map[string]string{v1alpha1.AnnotationWebhookSid: made})
		Eventually(func(g Gomega) {
			got := get(o)
			g.Expect(got.Status.Sid).To(Equal(made))
			g.Expect(got.Status.SupersededWebhook).To(BeNil())
			g.Expect(condition(got, v1alpha1.ConditionReady)).To(Equal("True/Available"))
		}).WithTimeout(20 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
		_, exists := fake.Webhook(before)
		Expect(exists).To(BeFalse(), "the webhook managed before is deleted as a replacement")
		w, _ := fake.Webhook(made)
		Expect(w.URL).To(Equal(o.Spec.URL), "the adopted webhook is brought to the spec")
		Expect(unowned(t.convs[0])).To(BeEmpty())
		waitEvent(o, EventAdopted)
		waitEvent(o, EventReplaced)
	})

	It("a webhook another object records is never adopted by annotation, whoever was created first", func() {
		// The claimer exists first, then points at a younger object's webhook.
		claimer := t.object("older")
		Expect(k8sClient.Create(ctx, claimer)).To(Succeed())
		own := waitReady(claimer).Status.Sid
		owner := t.object("younger", func(o *v1alpha1.ConversationWebhook) { o.Spec.ConversationSid = t.convs[1] })
		Expect(k8sClient.Create(ctx, owner)).To(Succeed())
		theirs := waitReady(owner).Status.Sid
		setAnnotations(claimer, map[string]string{v1alpha1.AnnotationWebhookSid: theirs})
		waitStalled(claimer, v1alpha1.ReasonSidConflict)
		Expect(get(claimer).Status.Sid).To(Equal(own), "the claimer still records its own webhook")
		Expect(condition(get(owner), v1alpha1.ConditionReady)).To(Equal("True/Available"))
		Expect(k8sClient.Delete(ctx, claimer)).To(Succeed())
		waitGone(claimer)
		_, exists := fake.Webhook(theirs)
		Expect(exists).To(BeTrue())
		_, exists = fake.Webhook(own)
		Expect(exists).To(BeFalse(), "the claimer's deletion deletes the webhook it recorded")
	})

	DescribeTable("a SidConflict loser in another namespace looks again when the owner lets go of the webhook, without a change of its own",
		func(letGo func(owner *v1alpha1.ConversationWebhook), adopts bool) {
			owner := t.object("owner")
			Expect(k8sClient.Create(ctx, owner)).To(Succeed())
			sid := waitReady(owner).Status.Sid
			claimer := newTenant(1).object("claimer", func(o *v1alpha1.ConversationWebhook) {
				o.Spec.ConversationSid = t.convs[0] // the same Twilio account, reached from another namespace
				// Its stall is polled again only after an hour: what wakes it
				// sooner is the owner letting go.
				o.Annotations = map[string]string{v1alpha1.AnnotationWebhookSid: sid, v1alpha1.AnnotationPollInterval: "1h"}
			})
			Expect(k8sClient.Create(ctx, claimer)).To(Succeed())
			waitStalled(claimer, v1alpha1.ReasonSidConflict)
			creates := countInConversation(t.convs[0], twiliofake.OpCreate)

			letGo(owner)
			got := waitReady(claimer)
			hooks := fakeHooks(t.convs[0])
			Expect(hooks).To(HaveLen(1), "one webhook in the conversation: the claimer's")
			Expect(hooks[0].Sid).To(Equal(got.Status.Sid))
			Expect(hooks[0].URL).To(Equal(claimer.Spec.URL))
			if adopts {
				Expect(got.Status.Sid).To(Equal(sid), "the webhook the owner left is taken, not a second one made")
				Expect(countInConversation(t.convs[0], twiliofake.OpCreate)).To(Equal(creates))
				waitEvent(claimer, EventAdopted)
			} else {
				Expect(got.Status.Sid).NotTo(Equal(sid))
				Expect(countInConversation(t.convs[0], twiliofake.OpCreate)).To(Equal(creates+1), "the claimer made its own, once")
			}
		},
		Entry("the owner is deleted with deletionPolicy Orphan: the claimer adopts the webhook it left", func(owner *v1alpha1.ConversationWebhook) {
			patchSpec(owner, func(o *v1alpha1.ConversationWebhook) { o.Spec.DeletionPolicy = v1alpha1.DeletionPolicyOrphan })
			Expect(k8sClient.Delete(ctx, owner)).To(Succeed())
			waitGone(owner)
		}, true),
		Entry("the owner replaces its webhook and deletes it: the claimer, finding it gone, makes its own", func(owner *v1alpha1.ConversationWebhook) {
			patchSpec(owner, func(o *v1alpha1.ConversationWebhook) { o.Spec.ConversationSid = t.convs[1] })
			waitEvent(owner, EventReplaced)
		}, false),
	)

	It("only a SidConflict loser is woken when a SID is let go: the owner of that webhook is not (no Twilio call for it)", func() {
		owner := t.object("owner", func(o *v1alpha1.ConversationWebhook) {
			o.Annotations = map[string]string{v1alpha1.AnnotationPollInterval: "1h"}
		})
		Expect(k8sClient.Create(ctx, owner)).To(Succeed())
		sid := waitReady(owner).Status.Sid
		claimer := newTenant(1).object("claimer", func(o *v1alpha1.ConversationWebhook) {
			o.Spec.ConversationSid = t.convs[0]
			o.Annotations = map[string]string{v1alpha1.AnnotationWebhookSid: sid}
		})
		Expect(k8sClient.Create(ctx, claimer)).To(Succeed())
		waitStalled(claimer, v1alpha1.ReasonSidConflict)
		fetches := countFor(sid, twiliofake.OpFetch)

		setAnnotations(claimer, map[string]string{v1alpha1.AnnotationWebhookSid: ""}) // the claimer lets go of the SID
		Expect(waitReady(claimer).Status.Sid).NotTo(Equal(sid))
		Consistently(func() int { return countFor(sid, twiliofake.OpFetch) }).WithTimeout(quietPeriod).WithPolling(waitPoll).
			Should(Equal(fetches), "the owner, Ready with a 1h poll, is not reconciled again")
	})

	It("a SID written with its hex digits in upper case names the same webhook: another namespace's claim is a conflict, an object's own is left as written", func() {
		owner := t.object("owner")
		Expect(k8sClient.Create(ctx, owner)).To(Succeed())
		sid := waitReady(owner).Status.Sid
		upper := sid[:2] + strings.ToUpper(sid[2:])
		Expect(upper).NotTo(Equal(sid), "the fake's SIDs have lower-case hex digits, as Twilio's")

		// A claim from another namespace, for what Twilio may well answer as the
		// same webhook: refused, and its deletion deletes nothing of the owner's.
		claimLosesAndGoes(newTenant(1), upper)
		Expect(countFor(sid, twiliofake.OpDelete) + countFor(upper, twiliofake.OpDelete)).To(BeZero())

		// The owner's own SID in upper case (as a GitOps tool may keep applying
		// it): still its webhook, nothing created or deleted, and the annotation
		// left as written rather than fought over.
		writes := func() int {
			return countInConversation(t.convs[0], twiliofake.OpCreate) + countInConversation(t.convs[0], twiliofake.OpUpdate) +
				countInConversation(t.convs[0], twiliofake.OpDelete)
		}
		before := writes()
		setAnnotations(owner, map[string]string{v1alpha1.AnnotationWebhookSid: upper})
		Consistently(func(g Gomega) {
			got := get(owner)
			g.Expect(got.Annotations).To(HaveKeyWithValue(v1alpha1.AnnotationWebhookSid, upper))
			g.Expect(condition(got, v1alpha1.ConditionReady)).To(Equal("True/Available"))
			g.Expect(got.Status.Sid).To(Equal(sid))
		}).WithTimeout(quietPeriod).WithPolling(waitPoll).Should(Succeed())
		Expect(writes()).To(Equal(before), "nothing created, updated or deleted for the same SID in other case")
		Expect(fakeHooks(t.convs[0])).To(ConsistOf(HaveField("Sid", sid)))
	})

	It("a new object whose webhook-sid names a webhook that is gone recreates it (a restore, a stale value in Git)", func() {
		gone := fake.CreateWebhook(twiliofake.Webhook{ConversationSid: t.convs[0], Target: "webhook",
			URL: "https://hooks.example.com/gone", Method: "post", Filters: []string{"onMessageAdded"}})
		Expect(fake.DeleteWebhook(gone)).To(BeTrue())
		o := t.object("restored", func(o *v1alpha1.ConversationWebhook) {
			o.Annotations = map[string]string{v1alpha1.AnnotationWebhookSid: gone}
		})
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		got := waitReady(o)
		Expect(got.Status.Sid).NotTo(Equal(gone))
		Expect(got.Annotations).To(HaveKeyWithValue(v1alpha1.AnnotationWebhookSid, got.Status.Sid))
		Expect(fakeHooks(t.convs[0])).To(ConsistOf(HaveField("Sid", got.Status.Sid)))
		waitEvent(o, EventRecreated)
	})

	It("a malformed status record stalls with InvalidStatus and sends nothing", func() {
		o := t.object("bad-status", func(o *v1alpha1.ConversationWebhook) {
			o.Annotations = map[string]string{v1alpha1.AnnotationPaused: "true"}
		})
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		Eventually(func() string { return condition(get(o), v1alpha1.ConditionReady) }).
			WithTimeout(10 * time.Second).Should(Equal("False/Paused"))
		cur := get(o)
		cur.Status.Sid = "WH" + strings.Repeat("0", 32) + "/../../x"
		Expect(k8sClient.Status().Update(ctx, cur)).To(Succeed())
		cur = get(o)
		delete(cur.Annotations, v1alpha1.AnnotationPaused)
		Expect(k8sClient.Update(ctx, cur)).To(Succeed())
		waitStalled(o, v1alpha1.ReasonInvalidStatus)
		Expect(countInConversation(t.convs[0], "")).To(BeZero())
		Expect(k8sClient.Delete(ctx, o, client.PropagationPolicy("Background"))).To(Succeed())
		waitGone(o)
		Expect(countInConversation(t.convs[0], "")).To(BeZero())
	})
})

// setAnnotations writes annotations on an object as a user would (an empty
// value removes the annotation), retrying on conflicts with the operator.
// claimLosesAndGoes creates an object of t that claims sid by annotation, sees
// it lose (SidConflict: another object records sid) and deletes it.
func claimLosesAndGoes(t *tenant, sid string) {
	GinkgoHelper()
	claimer := t.object("claimer", func(o *v1alpha1.ConversationWebhook) {
		o.Annotations = map[string]string{v1alpha1.AnnotationWebhookSid: sid}
	})
	Expect(k8sClient.Create(ctx, claimer)).To(Succeed())
	waitStalled(claimer, v1alpha1.ReasonSidConflict)
	Expect(k8sClient.Delete(ctx, claimer)).To(Succeed())
	waitGone(claimer)
}

func setAnnotations(o *v1alpha1.ConversationWebhook, kv map[string]string) {
	GinkgoHelper()
	Eventually(func() error {
		cur := get(o)
		if cur.Annotations == nil {
			cur.Annotations = map[string]string{}
		}
		for k, v := range kv {
			if v == "" {
				delete(cur.Annotations, k)
				continue
			}
			cur.Annotations[k] = v
		}
		return k8sClient.Update(ctx, cur)
	}).WithTimeout(10 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
}
