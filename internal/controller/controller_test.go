package controller

import (
	"context"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

var ctx = context.Background()

func fakeHooks(conv string) []twiliofake.Webhook { return fake.ConversationWebhooks(conv) }

func kstatus(o *v1alpha1.ConversationWebhook) status.Status {
	GinkgoHelper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
	Expect(err).NotTo(HaveOccurred())
	res, err := status.Compute(&unstructured.Unstructured{Object: m})
	Expect(err).NotTo(HaveOccurred())
	return res.Status
}

var _ = Describe("ConversationWebhook reconciler", func() {
	var t *tenant
	BeforeEach(func() {
		resetFake()
		DeferCleanup(resetFake)
		t = newTenant(2)
	})

	Describe("create", func() {
		It("creates a webhook target and records SID, dates and configuration", func() {
			o := t.object("hook")
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
			got := waitReady(o)
			hooks := fakeHooks(t.convs[0])
			Expect(hooks).To(HaveLen(1))
			wh := hooks[0]
			Expect(wh.Target).To(Equal("webhook"))
			Expect(wh.URL).To(Equal(o.Spec.URL))
			Expect(wh.Method).To(Equal("post"))
			Expect(wh.Filters).To(ConsistOf("onMessageAdded", "onParticipantAdded"))
			Expect(wh.ReplayAfter).To(BeNil(), "an unset replayAfter is not sent")

			Expect(got.Status.Sid).To(Equal(wh.Sid))
			Expect(got.Annotations).To(HaveKeyWithValue(v1alpha1.AnnotationWebhookSid, wh.Sid))
			Expect(got.Annotations).NotTo(HaveKey(v1alpha1.AnnotationCreatePending))
			Expect(got.Finalizers).To(ContainElement(v1alpha1.Finalizer))
			Expect(got.Status.AccountSid).To(Equal(testAccount))
			Expect(got.Status.ConversationSid).To(Equal(t.convs[0]))
			Expect(got.Status.Target).To(Equal("webhook"))
			Expect(got.Status.ResourceURL).To(Equal(twiliofake.DefaultPublicURL + "/v1/Conversations/" + t.convs[0] + "/Webhooks/" + wh.Sid))
			Expect(got.Status.Configuration.URL).To(Equal(o.Spec.URL))
			Expect(got.Status.Configuration.Method).To(Equal("post"))
			Expect(got.Status.DateCreated.Time.Equal(wh.DateCreated)).To(BeTrue(), "dateCreated %v, Twilio %v", got.Status.DateCreated, wh.DateCreated)
			Expect(got.Status.DateUpdated).NotTo(BeNil())
			Expect(got.Status.LastSyncTime).NotTo(BeNil())
			Expect(condition(got, v1alpha1.ConditionReconciling)).To(BeEmpty())
			Expect(condition(got, v1alpha1.ConditionStalled)).To(BeEmpty())
			for _, c := range got.Status.Conditions {
				Expect(c.ObservedGeneration).To(Equal(got.Generation))
			}
			waitEvent(o, EventCreated)
			Expect(kstatus(got)).To(Equal(status.CurrentStatus))
			Expect(authLog.usersFor(t.convs[0])).To(ConsistOf(testKeySid), "the object's own Secret's key, not the default one")
		})

		It("creates trigger and studio webhooks, replayAfter 0 included", func() {
			trig := t.object("trig", func(o *v1alpha1.ConversationWebhook) {
				o.Spec.Target, o.Spec.Filters = v1alpha1.TargetTrigger, nil
				o.Spec.Triggers, o.Spec.Method = []string{"help", "stop"}, v1alpha1.MethodGET
			})
			studio := t.object("studio", func(o *v1alpha1.ConversationWebhook) {
				o.Spec.Target, o.Spec.URL, o.Spec.Filters, o.Spec.FlowSid = v1alpha1.TargetStudio, "", nil, testFlow
				o.Spec.ReplayAfter = ptr.To[int32](0)
			})
			Expect(k8sClient.Create(ctx, trig)).To(Succeed())
			Expect(k8sClient.Create(ctx, studio)).To(Succeed())
			gotTrig, gotStudio := waitReady(trig), waitReady(studio)
			w1, ok := fake.Webhook(gotTrig.Status.Sid)
			Expect(ok).To(BeTrue())
			Expect(w1.Triggers).To(ConsistOf("help", "stop"))
			Expect(w1.Method).To(Equal("get"))
			w2, ok := fake.Webhook(gotStudio.Status.Sid)
			Expect(ok).To(BeTrue())
			Expect(w2.FlowSid).To(Equal(testFlow))
			Expect(w2.URL).To(BeEmpty())
			Expect(w2.Method).To(BeEmpty(), "method is not sent for studio")
			Expect(w2.ReplayAfter).To(Equal(ptr.To(0)), "replayAfter 0 is a value and is sent")
			Expect(gotStudio.Status.Configuration.ReplayAfter).To(Equal(ptr.To[int32](0)))
		})

		It("uses the service-scoped path when serviceSid is set", func() {
			service := twiliofake.NewSid("IS")
			conv := twiliofake.NewSid("CH")
			fake.AddServiceConversation(testAccount, service, conv)
			o := t.object("svc", func(o *v1alpha1.ConversationWebhook) { o.Spec.ServiceSid, o.Spec.ConversationSid = service, conv })
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
			got := waitReady(o)
			Expect(got.Status.ServiceSid).To(Equal(service))
			Expect(got.Status.ResourceURL).To(ContainSubstring("/v1/Services/" + service + "/Conversations/" + conv))
			Expect(fakeHooks(conv)).To(HaveLen(1))
		})

		It("uses the operator's default account when no account is named", func() {
			o := t.object("default-creds", func(o *v1alpha1.ConversationWebhook) { o.Spec.AccountRef = nil })
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
			waitReady(o)
			Expect(fakeHooks(t.convs[0])).To(HaveLen(1))
			Expect(authLog.usersFor(t.convs[0])).To(ConsistOf(testDefaultKeySid),
				"the default Secret's key, not the tenant's Secret of the same namespace")
		})
	})

	Describe("drift", func() {
		It("restores a webhook edited behind the operator's back", func() {
			o := t.object("drift")
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
			sid := waitReady(o).Status.Sid
			before := testutil.ToFloat64(testMetrics.driftCorrections.WithLabelValues(DriftUpdate))
			Expect(fake.EditWebhook(sid, func(w *twiliofake.Webhook) {
				w.URL, w.Method, w.Filters = "https://attacker.example.com", "get", []string{"onMessageRemoved"}
			})).To(BeTrue())
			Eventually(func(g Gomega) {
				w, _ := fake.Webhook(sid)
				g.Expect(w.URL).To(Equal(o.Spec.URL))
				g.Expect(w.Method).To(Equal("post"))
				g.Expect(w.Filters).To(ConsistOf("onMessageAdded", "onParticipantAdded"))
			}).WithTimeout(15 * time.Second).WithPolling(waitPoll).Should(Succeed())
			Expect(fakeHooks(t.convs[0])).To(HaveLen(1))
			waitEvent(o, EventDriftCorrected)
			Expect(testutil.ToFloat64(testMetrics.driftCorrections.WithLabelValues(DriftUpdate))).To(Equal(before+1), "one correction, counted once")
		})

		It("does not update a webhook whose method differs only in case and filters only in order", func() {
			o := t.object("same")
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
			sid := waitReady(o).Status.Sid
			fake.EditWebhook(sid, func(w *twiliofake.Webhook) {
				w.Method, w.Filters = "POST", []string{"onParticipantAdded", "onMessageAdded"}
			})
			fake.ResetLog()
			Consistently(func() int { return countFor(sid, twiliofake.OpUpdate) }).WithTimeout(3 * syncPeriod).WithPolling(waitPoll).Should(BeZero())
			Expect(countFor(sid, twiliofake.OpFetch)).To(BeNumerically(">=", 1), "the drift check ran")
		})

		It("recreates a webhook deleted behind the operator's back", func() {
			o := t.object("gone")
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
			old := waitReady(o).Status.Sid
			before := testutil.ToFloat64(testMetrics.driftCorrections.WithLabelValues(DriftRecreate))
			Expect(fake.DeleteWebhook(old)).To(BeTrue())
			Eventually(func(g Gomega) {
				got := get(o)
				g.Expect(got.Status.Sid).NotTo(Equal(old))
				g.Expect(got.Annotations[v1alpha1.AnnotationWebhookSid]).To(Equal(got.Status.Sid))
				hooks := fakeHooks(t.convs[0])
				g.Expect(hooks).To(HaveLen(1))
				g.Expect(hooks[0].Sid).To(Equal(got.Status.Sid))
			}).WithTimeout(15 * time.Second).WithPolling(waitPoll).Should(Succeed())
			waitEvent(o, EventRecreated)
			Expect(testutil.ToFloat64(testMetrics.driftCorrections.WithLabelValues(DriftRecreate))).To(Equal(before+1), "one recreate, counted once")
		})

		It("recreates a webhook deleted between its fetch and its update, instead of stalling on the 404", func() {
			o := t.object("gone-midway")
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
			old := waitReady(o).Status.Sid
			fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultDeletedFirst, Operation: twiliofake.OpUpdate, Conversations: t.convs})
			DeferCleanup(fake.ClearFaults)
			patchSpec(o, func(o *v1alpha1.ConversationWebhook) { o.Spec.URL = "https://hooks.example.com/moved" })
			got := waitReady(o)
			Expect(got.Status.Sid).NotTo(Equal(old))
			Expect(countFor(old, twiliofake.OpUpdate)).To(Equal(1), "the update met the 404")
			Expect(fakeHooks(t.convs[0])).To(ConsistOf(SatisfyAll(
				HaveField("Sid", got.Status.Sid), HaveField("URL", "https://hooks.example.com/moved"))))
			waitEvent(o, EventRecreated)
		})

		It("costs one fetch and no write per sync period once converged", func() {
			o := t.object("cost")
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
			sid := waitReady(o).Status.Sid
			time.Sleep(syncPeriod) // let the post-create reconciles settle
			fake.ResetLog()
			time.Sleep(3 * syncPeriod)
			fetches := countFor(sid, twiliofake.OpFetch)
			Expect(fetches).To(BeNumerically(">=", 2))
			Expect(fetches).To(BeNumerically("<=", 4), "at most one fetch per jittered period")
			for _, op := range []string{twiliofake.OpCreate, twiliofake.OpUpdate, twiliofake.OpDelete, twiliofake.OpList} {
				Expect(countInConversation(t.convs[0], op)).To(BeZero(), op)
			}
		})

		It("honours the poll-interval annotation's 30s floor", func() {
			o := t.object("slow", func(o *v1alpha1.ConversationWebhook) {
				o.Annotations = map[string]string{v1alpha1.AnnotationPollInterval: "1s"}
			})
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
			sid := waitReady(o).Status.Sid
			time.Sleep(time.Second)
			fake.ResetLog()
			Consistently(func() int { return countFor(sid, twiliofake.OpFetch) }).WithTimeout(3 * syncPeriod).WithPolling(waitPoll).Should(BeZero())
		})
	})

	Describe("spec changes", func() {
		It("updates url, method and filters in place", func() {
			o := t.object("edit")
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
			sid := waitReady(o).Status.Sid
			patchSpec(o, func(o *v1alpha1.ConversationWebhook) {
				o.Spec.URL, o.Spec.Method = "https://hooks.example.com/v2", v1alpha1.MethodGET
				o.Spec.Filters = []v1alpha1.Filter{"onConversationRemoved"}
			})
			Eventually(func(g Gomega) {
				got := get(o)
				g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
				g.Expect(got.Status.Configuration.URL).To(Equal("https://hooks.example.com/v2"))
			}).WithTimeout(15 * time.Second).WithPolling(waitPoll).Should(Succeed())
			hooks := fakeHooks(t.convs[0])
			Expect(hooks).To(HaveLen(1))
			Expect(hooks[0].Sid).To(Equal(sid))
			Expect(hooks[0].Method).To(Equal("get"))
			Expect(hooks[0].Filters).To(ConsistOf("onConversationRemoved"))
			waitEvent(o, EventUpdated)
			Expect(eventReasons(o)).NotTo(ContainElement(EventDriftCorrected))
		})

		DescribeTable("replaces the webhook when a create-only field changes",
			func(change func(*tenant, *v1alpha1.ConversationWebhook), newConv func(*tenant) string) {
				o := t.object("replace")
				Expect(k8sClient.Create(ctx, o)).To(Succeed())
				old := waitReady(o).Status.Sid
				patchSpec(o, func(o *v1alpha1.ConversationWebhook) { change(t, o) })
				var got *v1alpha1.ConversationWebhook
				Eventually(func(g Gomega) {
					got = get(o)
					g.Expect(got.Status.Sid).NotTo(Equal(old))
					g.Expect(condition(got, v1alpha1.ConditionReady)).To(Equal("True/Available"))
					g.Expect(got.Status.SupersededWebhook).To(BeNil())
				}).WithTimeout(15 * time.Second).WithPolling(waitPoll).Should(Succeed())
				_, oldExists := fake.Webhook(old)
				Expect(oldExists).To(BeFalse(), "the old webhook is deleted")
				conv := newConv(t)
				hooks := fakeHooks(conv)
				Expect(hooks).To(HaveLen(1))
				Expect(hooks[0].Sid).To(Equal(got.Status.Sid))
				Expect(fake.ConversationWebhooks(t.convs[0])).To(HaveLen(map[bool]int{true: 1, false: 0}[conv == t.convs[0]]))
				waitEvent(o, EventReplaced)
			},
			Entry("conversationSid", func(t *tenant, o *v1alpha1.ConversationWebhook) { o.Spec.ConversationSid = t.convs[1] },
				func(t *tenant) string { return t.convs[1] }),
			Entry("target", func(_ *tenant, o *v1alpha1.ConversationWebhook) {
				o.Spec.Target, o.Spec.Filters, o.Spec.Triggers = v1alpha1.TargetTrigger, nil, []string{"go"}
			}, func(t *tenant) string { return t.convs[0] }),
			Entry("replayAfter", func(_ *tenant, o *v1alpha1.ConversationWebhook) { o.Spec.ReplayAfter = ptr.To[int32](4) },
				func(t *tenant) string { return t.convs[0] }),
		)
	})

	Describe("adoption", func() {
		It("adopts a webhook named by the webhook-sid annotation and makes it match", func() {
			sid := fake.CreateWebhook(twiliofake.Webhook{ConversationSid: t.convs[0], Target: "webhook",
				URL: "https://legacy.example.com", Method: "get", Filters: []string{"onMessageAdded"}})
			o := t.object("adopt", func(o *v1alpha1.ConversationWebhook) {
				o.Annotations = map[string]string{v1alpha1.AnnotationWebhookSid: sid}
			})
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
			got := waitReady(o)
			Expect(got.Status.Sid).To(Equal(sid))
			hooks := fakeHooks(t.convs[0])
			Expect(hooks).To(HaveLen(1))
			Expect(hooks[0].URL).To(Equal(o.Spec.URL))
			Expect(countInConversation(t.convs[0], twiliofake.OpCreate)).To(BeZero())
			waitEvent(o, EventAdopted)
		})

		It("never lets two objects manage one SID", func() {
			first := t.object("first")
			Expect(k8sClient.Create(ctx, first)).To(Succeed())
			sid := waitReady(first).Status.Sid
			second := t.object("second", func(o *v1alpha1.ConversationWebhook) {
				o.Annotations = map[string]string{v1alpha1.AnnotationWebhookSid: sid}
				o.Spec.URL = "https://hooks.example.com/other"
			})
			Expect(k8sClient.Create(ctx, second)).To(Succeed())
			got := waitStalled(second, v1alpha1.ReasonSidConflict)
			msg := stalledMessage(got)
			Expect(msg).To(ContainSubstring(t.ns + "/first"))
			w, _ := fake.Webhook(sid)
			Expect(w.URL).To(Equal(first.Spec.URL), "the second object changed nothing")
			Expect(kstatus(got)).To(Equal(status.FailedStatus))
		})
	})

	Describe("deletion", func() {
		It("deletes the webhook with deletionPolicy Delete", func() {
			o := t.object("del")
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
			waitReady(o)
			Expect(k8sClient.Delete(ctx, o)).To(Succeed())
			waitGone(o)
			Expect(fakeHooks(t.convs[0])).To(BeEmpty())
		})

		It("counts a webhook already gone as deleted", func() {
			o := t.object("del404")
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
			sid := waitReady(o).Status.Sid
			pause(o, true)
			fake.DeleteWebhook(sid)
			Expect(k8sClient.Delete(ctx, o)).To(Succeed())
			pause(o, false)
			waitGone(o)
		})

		It("leaves the webhook with deletionPolicy Orphan", func() {
			o := t.object("orphan", func(o *v1alpha1.ConversationWebhook) { o.Spec.DeletionPolicy = v1alpha1.DeletionPolicyOrphan })
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
			sid := waitReady(o).Status.Sid
			Expect(k8sClient.Delete(ctx, o)).To(Succeed())
			waitGone(o)
			_, ok := fake.Webhook(sid)
			Expect(ok).To(BeTrue())
			Expect(countFor(sid, twiliofake.OpDelete)).To(BeZero())
			waitEvent(o, EventOrphaned)
		})

		It("does not hang when the credentials Secret is gone, and names the webhook left behind", func() {
			o := t.object("nocreds")
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
			sid := waitReady(o).Status.Sid
			Expect(k8sClient.Delete(ctx, &corev1.Secret{ObjectMeta: ctrlObjectMeta(secretName, t.ns)})).To(Succeed())
			Expect(k8sClient.Delete(ctx, o)).To(Succeed())
			waitGone(o)
			_, ok := fake.Webhook(sid)
			Expect(ok).To(BeTrue(), "Twilio could not be reached, so the webhook is still there")
			Eventually(func() []string { return eventNotes(o) }).WithTimeout(10 * time.Second).WithPolling(waitPoll).
				Should(ContainElement(ContainSubstring(sid)))
			waitEvent(o, EventOrphaned)
		})

		It("names the conversation of an unconfirmed create when deletion cannot reach Twilio", func() {
			o := pendingCreate(t, "pending-nocreds")
			Expect(k8sClient.Delete(ctx, &corev1.Secret{ObjectMeta: ctrlObjectMeta(secretName, t.ns)})).To(Succeed())
			Expect(k8sClient.Delete(ctx, o)).To(Succeed())
			waitGone(o)
			Expect(fakeHooks(t.convs[0])).To(HaveLen(1), "Twilio could not be reached")
			Eventually(func() []string { return eventNotes(o) }).WithTimeout(10 * time.Second).WithPolling(waitPoll).Should(ContainElement(SatisfyAll(
				ContainSubstring("Deletion cannot reach Twilio"), ContainSubstring("answer was lost made in "+t.convs[0]))))
		})

		It("deletes the result of a create whose answer was lost, even after a spec edit", func() {
			o := pendingCreate(t, "pending")
			patchSpec(o, func(o *v1alpha1.ConversationWebhook) { o.Spec.URL = "https://hooks.example.com/edited" })
			Eventually(func() int64 { return get(o).Status.ObservedGeneration }).WithTimeout(waitTimeout).WithPolling(waitPoll).Should(Equal(get(o).Generation))
			Expect(k8sClient.Delete(ctx, o)).To(Succeed())
			Eventually(func() string { return condition(get(o), v1alpha1.ConditionReady) }).WithTimeout(10*time.Second).WithPolling(waitPoll).
				Should(Equal("False/Deleting"), "deletion waits while Twilio cannot be listed")
			fake.ClearFaults()
			waitGone(o)
			Expect(fakeHooks(t.convs[0])).To(BeEmpty())
		})
	})

	Describe("paused", func() {
		It("makes no Twilio call while paused and resumes when unpaused", func() {
			o := t.object("paused", func(o *v1alpha1.ConversationWebhook) {
				o.Annotations = map[string]string{v1alpha1.AnnotationPaused: "true"}
			})
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
			Eventually(func() string { return condition(get(o), v1alpha1.ConditionReady) }).
				WithTimeout(10 * time.Second).WithPolling(waitPoll).Should(Equal("False/Paused"))
			Consistently(func() int { return countInConversation(t.convs[0], "") }).WithTimeout(quietPeriod).WithPolling(waitPoll).Should(BeZero())
			pause(o, false)
			waitReady(o)
			Expect(fakeHooks(t.convs[0])).To(HaveLen(1))
		})
	})

	Describe("failures", func() {
		It("keeps Reconciling while Twilio fails transiently, then converges", func() {
			// Every request under the spec's conversations, not every object's.
			fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultServerError, Sticky: true, Conversations: t.convs})
			o := t.object("flaky")
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
			Eventually(func(g Gomega) {
				got := get(o)
				g.Expect(condition(got, v1alpha1.ConditionReconciling)).To(Equal("True/Creating"))
				g.Expect(condition(got, v1alpha1.ConditionReady)).To(Equal("False/Creating"))
				g.Expect(kstatus(got)).To(Equal(status.InProgressStatus))
			}).WithTimeout(10 * time.Second).WithPolling(waitPoll).Should(Succeed())
			fake.ClearFaults()
			got := waitReady(o)
			Expect(kstatus(got)).To(Equal(status.CurrentStatus))
			Expect(fakeHooks(t.convs[0])).To(HaveLen(1))
		})

		It("stalls with ConversationNotFound and leaves nothing behind", func() {
			o := t.object("noconv", func(o *v1alpha1.ConversationWebhook) { o.Spec.ConversationSid = twiliofake.NewSid("CH") })
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
			got := waitStalled(o, v1alpha1.ReasonConversationNotFound)
			Expect(stalledMessage(got)).To(ContainSubstring("50350"))
			Expect(got.Annotations).NotTo(HaveKey(v1alpha1.AnnotationCreatePending))
			expectNoRetry(o.Spec.ConversationSid)
		})

		It("stalls with WebhookLimitReached on a conversation that has five webhooks", func() {
			for range 5 {
				fake.CreateWebhook(twiliofake.Webhook{ConversationSid: t.convs[1], Target: "studio", FlowSid: testFlow})
			}
			o := t.object("sixth", func(o *v1alpha1.ConversationWebhook) { o.Spec.ConversationSid = t.convs[1] })
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
			got := waitStalled(o, v1alpha1.ReasonWebhookLimitReached)
			Expect(stalledMessage(got)).To(ContainSubstring("50361"))
			expectNoRetry(t.convs[1])
			Expect(fakeHooks(t.convs[1])).To(HaveLen(5))
		})

		DescribeTable("maps each Twilio 4xx answer to Stalled with its code, leaving no webhook",
			func(code int, reason string) {
				fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultError, Operation: twiliofake.OpCreate, Status: 400, Code: code, Sticky: true, Conversations: t.convs})
				o := t.object(fmt.Sprintf("code-%d", code))
				Expect(k8sClient.Create(ctx, o)).To(Succeed())
				got := waitStalled(o, reason)
				Expect(stalledMessage(got)).To(ContainSubstring(fmt.Sprint(code)))
				Expect(got.Annotations).NotTo(HaveKey(v1alpha1.AnnotationCreatePending))
				Expect(kstatus(got)).To(Equal(status.FailedStatus))
				if reason == v1alpha1.ReasonCredentialsInvalid {
					// Retried once a poll period (a rotated key leaves its verified
					// account's status unchanged), never in a hot loop.
					before := countInConversation(t.convs[0], "")
					Consistently(func() int { return countInConversation(t.convs[0], "") - before }).
						WithTimeout(quietPeriod).WithPolling(waitPoll).Should(BeNumerically("<=", 3))
				} else {
					expectNoRetry(t.convs[0])
				}
				Expect(fakeHooks(t.convs[0])).To(BeEmpty())
			},
			Entry("20422 invalid parameter", 20422, v1alpha1.ReasonConfigurationRejected),
			Entry("50362 too many triggers", 50362, v1alpha1.ReasonConfigurationRejected),
			Entry("50364 invalid target", 50364, v1alpha1.ReasonConfigurationRejected),
			Entry("50365 invalid filter", 50365, v1alpha1.ReasonConfigurationRejected),
			Entry("50366 invalid trigger", 50366, v1alpha1.ReasonConfigurationRejected),
			Entry("50367 invalid flow SID", 50367, v1alpha1.ReasonConfigurationRejected),
			Entry("50368 target missing", 50368, v1alpha1.ReasonConfigurationRejected),
			Entry("50369 url missing", 50369, v1alpha1.ReasonConfigurationRejected),
			Entry("50370 filters missing", 50370, v1alpha1.ReasonConfigurationRejected),
			Entry("50371 triggers missing", 50371, v1alpha1.ReasonConfigurationRejected),
			Entry("50372 url too long", 50372, v1alpha1.ReasonConfigurationRejected),
			Entry("50361 limit", 50361, v1alpha1.ReasonWebhookLimitReached),
			Entry("50350 conversation", 50350, v1alpha1.ReasonConversationNotFound),
			Entry("20003 permission", 20003, v1alpha1.ReasonCredentialsInvalid),
		)

		It("leaves the Stalled state when the spec changes", func() {
			fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultError, Operation: twiliofake.OpCreate, Status: 400, Code: 50365, Conversations: t.convs})
			o := t.object("fixme")
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
			waitStalled(o, v1alpha1.ReasonConfigurationRejected)
			patchSpec(o, func(o *v1alpha1.ConversationWebhook) { o.Spec.Filters = []v1alpha1.Filter{"onMessageUpdated"} })
			waitReady(o)
		})
	})

	Describe("crash safety", func() {
		It("converges with exactly one webhook when a create's answer is lost", func() {
			fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultLoseResponse, Operation: twiliofake.OpCreate, Conversations: t.convs})
			o := t.object("lost")
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
			got := waitReady(o)
			hooks := fakeHooks(t.convs[0])
			Expect(hooks).To(HaveLen(1))
			Expect(got.Status.Sid).To(Equal(hooks[0].Sid))
			Expect(got.Annotations[v1alpha1.AnnotationWebhookSid]).To(Equal(hooks[0].Sid))
			Expect(countInConversation(t.convs[0], twiliofake.OpCreate)).To(Equal(1))
			waitEvent(o, EventAdopted)
		})

		It("recovers a lost create's webhook after the spec changed, and updates it instead of creating another", func() {
			o := pendingCreate(t, "edited-while-pending")
			patchSpec(o, func(o *v1alpha1.ConversationWebhook) {
				o.Spec.URL = "https://hooks.example.com/edited"
				o.Spec.Filters = []v1alpha1.Filter{"onMessageRemoved"}
			})
			// The operator has seen the edit (and still cannot list) before Twilio recovers.
			Eventually(func(g Gomega) {
				got := get(o)
				g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
				g.Expect(condition(got, v1alpha1.ConditionReconciling)).To(Equal("True/Creating"))
			}).WithTimeout(10 * time.Second).WithPolling(waitPoll).Should(Succeed())
			fake.ClearFaults()
			var got *v1alpha1.ConversationWebhook
			Eventually(func(g Gomega) {
				got = get(o)
				g.Expect(condition(got, v1alpha1.ConditionReady)).To(Equal("True/Available"))
				g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
			}).WithTimeout(20 * time.Second).WithPolling(waitPoll).Should(Succeed())
			hooks := fakeHooks(t.convs[0])
			Expect(hooks).To(HaveLen(1), "the webhook of the lost create is reused, not orphaned")
			Expect(hooks[0].Sid).To(Equal(got.Status.Sid))
			Expect(hooks[0].URL).To(Equal("https://hooks.example.com/edited"))
			Expect(hooks[0].Filters).To(ConsistOf("onMessageRemoved"))
			Expect(countInConversation(t.convs[0], twiliofake.OpCreate)).To(Equal(1))
			Expect(got.Annotations).NotTo(HaveKey(v1alpha1.AnnotationCreatePending))
			Expect(got.Status.PendingCreate).To(BeNil())
		})

		It("never adopts on a guess: a lost create's webhook changed outside the operator is left and named in a warning", func() {
			// Beside it: an unmanaged webhook made an hour earlier, and another object's.
			older := fake.CreateWebhook(twiliofake.Webhook{ConversationSid: t.convs[0], Target: "webhook",
				URL: "https://older.example.com", Filters: []string{"onMessageAdded"}})
			fake.EditWebhook(older, func(w *twiliofake.Webhook) { w.DateCreated = w.DateCreated.Add(-time.Hour) })
			other := t.object("other")
			Expect(k8sClient.Create(ctx, other)).To(Succeed())
			otherSid := waitReady(other).Status.Sid

			o := pendingCreate(t, "tampered-while-pending")
			var lost string
			for _, w := range fakeHooks(t.convs[0]) {
				if w.Sid != older && w.Sid != otherSid {
					lost = w.Sid
				}
			}
			Expect(fake.EditWebhook(lost, func(w *twiliofake.Webhook) { w.URL = "https://someone-else.example.com" })).To(BeTrue())
			fake.ClearFaults()
			got := waitReady(o)
			Expect(got.Status.Sid).NotTo(BeElementOf(lost, older, otherSid))
			Expect(fakeHooks(t.convs[0])).To(HaveLen(4), "nothing is adopted on a guess, nothing deleted")
			Expect(countFor(lost, twiliofake.OpUpdate)).To(BeZero(), "the unknown webhook is not touched")
			waitEvent(o, EventPossibleOrphan)
			var warning string
			for _, e := range objectEvents(o) {
				if e.Reason == EventPossibleOrphan {
					warning = e.Note
				}
			}
			Expect(warning).To(SatisfyAll(ContainSubstring(lost), ContainSubstring("delete it by hand"),
				Not(ContainSubstring(older)), Not(ContainSubstring(otherSid))))
		})

		It("finds a lost create's webhook in the conversation it was sent to after conversationSid changed, and replaces it", func() {
			o := pendingCreate(t, "moved-while-pending")
			lost := fakeHooks(t.convs[0])[0].Sid
			Expect(get(o).Status.PendingCreate.ConversationSid).To(Equal(t.convs[0]))
			patchSpec(o, func(o *v1alpha1.ConversationWebhook) { o.Spec.ConversationSid = t.convs[1] })
			Eventually(func() int64 { return get(o).Status.ObservedGeneration }).WithTimeout(waitTimeout).WithPolling(waitPoll).Should(Equal(get(o).Generation))
			fake.ClearFaults()
			got := waitReady(o)
			Expect(got.Status.ConversationSid).To(Equal(t.convs[1]))
			Expect(fakeHooks(t.convs[1])).To(ConsistOf(HaveField("Sid", got.Status.Sid)))
			Eventually(func() []twiliofake.Webhook { return fakeHooks(t.convs[0]) }).WithTimeout(waitTimeout).WithPolling(waitPoll).Should(BeEmpty(), "the lost create's webhook is not orphaned")
			Expect(countFor(lost, twiliofake.OpDelete)).To(Equal(1))
			Expect(countInConversation(t.convs[1], twiliofake.OpCreate)).To(Equal(1))
			waitEvent(o, EventReplaced)
		})

		It("deletes a lost create's webhook from the conversation it was sent to after conversationSid changed", func() {
			o := pendingCreate(t, "moved-then-deleted")
			patchSpec(o, func(o *v1alpha1.ConversationWebhook) { o.Spec.ConversationSid = t.convs[1] })
			Eventually(func() int64 { return get(o).Status.ObservedGeneration }).WithTimeout(waitTimeout).WithPolling(waitPoll).Should(Equal(get(o).Generation))
			Expect(k8sClient.Delete(ctx, o)).To(Succeed())
			fake.ClearFaults()
			waitGone(o)
			Expect(fakeHooks(t.convs[0])).To(BeEmpty())
			Expect(fakeHooks(t.convs[1])).To(BeEmpty())
		})
	})

	It("converges 50 objects across 10 conversations with one webhook each, and deleting them empties Twilio", func() {
		scale := newTenant(10)
		var objs []*v1alpha1.ConversationWebhook
		for i := range 50 {
			o := scale.object(fmt.Sprintf("w%02d", i), func(o *v1alpha1.ConversationWebhook) { o.Spec.ConversationSid = scale.convs[i%10] })
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
			objs = append(objs, o)
		}
		sids := map[string]string{}
		for _, o := range objs {
			got := waitReady(o)
			Expect(sids).NotTo(HaveKey(got.Status.Sid))
			sids[got.Status.Sid] = o.Name
		}
		for _, conv := range scale.convs {
			Expect(fakeHooks(conv)).To(HaveLen(5))
			for _, w := range fakeHooks(conv) {
				Expect(sids).To(HaveKey(w.Sid))
			}
		}
		Expect(k8sClient.DeleteAllOf(ctx, &v1alpha1.ConversationWebhook{}, client.InNamespace(scale.ns))).To(Succeed())
		for _, o := range objs {
			waitGone(o)
		}
		for _, conv := range scale.convs {
			Expect(fakeHooks(conv)).To(BeEmpty())
		}
	})
})

// pendingCreate creates an object whose create reaches Twilio but whose answer
// is lost, while listing (and so the recovery) fails until fake.ClearFaults:
// Twilio holds one webhook and the object holds the create-pending marker, and
// status.pendingCreate records where it was sent and its fingerprint.
func pendingCreate(t *tenant, name string) *v1alpha1.ConversationWebhook {
	GinkgoHelper()
	// Scoped to the test's conversation: an object of an earlier test still
	// retrying must not take the lost answer.
	fake.InjectFaults(
		twiliofake.Fault{Kind: twiliofake.FaultLoseResponse, Operation: twiliofake.OpCreate, Conversations: t.convs[:1]},
		twiliofake.Fault{Kind: twiliofake.FaultServerError, Operation: twiliofake.OpList, Sticky: true, Conversations: t.convs[:1]},
	)
	DeferCleanup(fake.ClearFaults)
	before := len(fakeHooks(t.convs[0]))
	o := t.object(name)
	Expect(k8sClient.Create(ctx, o)).To(Succeed())
	Eventually(func() []twiliofake.Webhook { return fakeHooks(t.convs[0]) }).WithTimeout(10 * time.Second).WithPolling(waitPoll).Should(HaveLen(before + 1))
	Eventually(func(g Gomega) {
		got := get(o)
		g.Expect(got.Annotations).To(HaveKey(v1alpha1.AnnotationCreatePending))
		g.Expect(got.Status.PendingCreate).NotTo(BeNil())
	}).WithTimeout(waitTimeout).WithPolling(waitPoll).Should(Succeed())
	return o
}

func patchSpec(o *v1alpha1.ConversationWebhook, change func(*v1alpha1.ConversationWebhook)) {
	GinkgoHelper()
	Eventually(func() error {
		cur := get(o)
		change(cur)
		return k8sClient.Update(ctx, cur)
	}).WithTimeout(waitTimeout).WithPolling(waitPoll).Should(Succeed())
}

func pause(o *v1alpha1.ConversationWebhook, on bool) {
	GinkgoHelper()
	Eventually(func() error {
		cur := get(o)
		if cur.Annotations == nil {
			cur.Annotations = map[string]string{}
		}
		if on {
			cur.Annotations[v1alpha1.AnnotationPaused] = "true"
		} else {
			delete(cur.Annotations, v1alpha1.AnnotationPaused)
		}
		return k8sClient.Update(ctx, cur)
	}).WithTimeout(waitTimeout).WithPolling(waitPoll).Should(Succeed())
	if on {
		Eventually(func() string { return condition(get(o), v1alpha1.ConditionReady) }).WithTimeout(waitTimeout).WithPolling(waitPoll).Should(Equal("False/Paused"))
	}
}

func stalledMessage(o *v1alpha1.ConversationWebhook) string {
	for _, c := range o.Status.Conditions {
		if c.Type == v1alpha1.ConditionStalled {
			return c.Message
		}
	}
	return ""
}

func conditionMessages(o *v1alpha1.ConversationWebhook) []string {
	var out []string
	for _, c := range o.Status.Conditions {
		out = append(out, c.Message)
	}
	return out
}

// expectNoRetry asserts that, from now on and over two sync periods, the operator
// sends nothing to Twilio about the conversation and no webhook appears in it:
// a terminal failure waits for a change of spec, annotations or credentials.
func expectNoRetry(conv string) {
	GinkgoHelper()
	before, hooks := countInConversation(conv, ""), len(fakeHooks(conv))
	Consistently(func(g Gomega) {
		g.Expect(countInConversation(conv, "")).To(Equal(before), "requests to Twilio about %s", conv)
		g.Expect(fakeHooks(conv)).To(HaveLen(hooks), "webhooks in %s", conv)
	}).WithTimeout(quietPeriod).WithPolling(waitPoll).Should(Succeed(), "a terminal failure is not retried until something changes")
}

// countFor counts the fake's requests for one webhook SID and operation.
func countFor(sid, op string) int {
	n := 0
	for _, r := range fake.Requests() {
		if r.Operation == op && strings.HasSuffix(r.Path, "/"+sid) {
			n++
		}
	}
	return n
}

// countInConversation counts the fake's requests under a conversation ("" any op).
func countInConversation(conv, op string) int {
	n := 0
	for _, r := range fake.Requests() {
		if (op == "" || r.Operation == op) && strings.Contains(r.Path, "/Conversations/"+conv+"/") {
			n++
		}
	}
	return n
}
