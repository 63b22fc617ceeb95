package controller

import (
	"context"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

// heldRecord holds the manager's first status write that records a webhook for
// one object (the write after Twilio's answer) until released, or until the
// write's context ends. Every other write goes through.
type heldRecord struct {
	obj      client.ObjectKey
	once     sync.Once
	tripped  chan struct{}
	released chan struct{}
	release  func()
}

func newHeldRecord(obj client.ObjectKey) *heldRecord {
	h := &heldRecord{obj: obj, tripped: make(chan struct{}), released: make(chan struct{})}
	var once sync.Once
	h.release = func() { once.Do(func() { close(h.released) }) }
	return h
}

func (h *heldRecord) funcs() interceptor.Funcs {
	return interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch,
			opts ...client.SubResourcePatchOption) error {
			o, ok := obj.(*v1alpha1.ConversationWebhook)
			if ok && sub == "status" && client.ObjectKeyFromObject(o) == h.obj && o.Status.Sid != "" {
				first := false
				h.once.Do(func() {
					first = true
					close(h.tripped)
				})
				if first {
					select {
					case <-h.released:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
			}
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	}
}

// A webhook one object has just recorded in memory (its create answered) is not
// another object's to take, or to delete, while that record is being written:
// an object looking for its own lost create's webhook in the same conversation
// (a copy re-applied from Git with the create-pending annotation; a deletion
// whose create's answer was lost) waits for the write, then finds the webhook
// recorded. The other object is in another namespace and was created first, so
// that a claim alone (the webhook-sid annotation, written before status) would
// not stop it.
var _ = Describe("TakeLock", func() {
	var owner, other *tenant
	BeforeEach(func() {
		owner, other = newTenant(1), newTenant(1)
		if other.ns > owner.ns {
			// The other object's key sorts first: it wins a tie of creation times.
			owner, other = other, owner
		}
		resetFake()
		DeferCleanup(resetFake)
	})

	DescribeTable("another object looking for its lost create's webhook while an object's new webhook is being recorded",
		func(deleting bool) {
			conv := owner.convs[0]
			stopSuiteManager() // nothing reconciles the objects until the held manager starts
			b := other.object("copy", func(o *v1alpha1.ConversationWebhook) {
				o.Spec.ConversationSid = conv
				o.Spec.URL = "https://hooks.example.com/same"
				o.Annotations = map[string]string{v1alpha1.AnnotationPaused: "true"}
				if deleting {
					o.Finalizers = []string{v1alpha1.Finalizer}
				}
			})
			Expect(k8sClient.Create(ctx, b)).To(Succeed())
			if deleting {
				// What a manager that stopped after recording a pending create
				// leaves behind; the create's answer is lost.
				want := desiredOf(&b.Spec)
				cur := get(b)
				cur.Status.PendingCreate = &v1alpha1.PendingCreate{
					Since: metav1.Now(), ConversationSid: conv, Fingerprint: fingerprint(want.target, want.cfg)}
				Expect(k8sClient.Status().Update(ctx, cur)).To(Succeed())
				Expect(k8sClient.Delete(ctx, b)).To(Succeed())
			}
			a := owner.object("orig", func(o *v1alpha1.ConversationWebhook) { o.Spec.URL = b.Spec.URL })
			Expect(k8sClient.Create(ctx, a)).To(Succeed())

			hold := newHeldRecord(client.ObjectKeyFromObject(a))
			DeferCleanup(hold.release)
			startSpecManager(withInterceptor(hold.funcs()))
			Eventually(hold.tripped).WithTimeout(waitTimeout).Should(BeClosed())
			hooks := fakeHooks(conv)
			Expect(hooks).To(HaveLen(1))
			sid := hooks[0].Sid

			// b looks for its create's webhook now, while a's record is held.
			Eventually(func() error {
				cur := get(b)
				delete(cur.Annotations, v1alpha1.AnnotationPaused)
				if !deleting {
					cur.Annotations[v1alpha1.AnnotationCreatePending] = time.Now().UTC().Format(time.RFC3339)
				}
				return k8sClient.Update(ctx, cur)
			}).WithTimeout(waitTimeout).WithPolling(waitPoll).Should(Succeed())
			Consistently(func(g Gomega) {
				g.Expect(countFor(sid, twiliofake.OpDelete)).To(BeZero(), "a's new webhook was deleted by b")
				cur := &v1alpha1.ConversationWebhook{}
				if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(b), cur); err == nil {
					g.Expect(cur.Status.Sid).NotTo(Equal(sid), "b took a's new webhook")
				}
			}).WithTimeout(2 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
			hold.release()

			Expect(waitReady(a).Status.Sid).To(Equal(sid))
			if deleting {
				waitGone(b)
				Expect(countFor(sid, twiliofake.OpDelete)).To(BeZero())
				Expect(fakeHooks(conv)).To(ConsistOf(HaveField("Sid", sid)))
				return
			}
			own := waitReady(b).Status.Sid
			Expect(own).NotTo(Equal(sid))
			Expect(fakeHooks(conv)).To(ConsistOf(HaveField("Sid", sid), HaveField("Sid", own)))
			Expect(condition(get(a), v1alpha1.ConditionStalled)).NotTo(HavePrefix("True"))
		},
		Entry("a copy re-applied with the create-pending annotation does not take it", false),
		Entry("a deletion whose create's answer was lost does not delete it", true),
	)
})
