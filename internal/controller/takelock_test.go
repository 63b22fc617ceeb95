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

// heldRecord holds the manager's first write that records a webhook for one
// object after Twilio's answer — the webhook-sid annotation (meta), which goes
// first, or status — until released, or until the write's context ends. Every
// other write goes through.
type heldRecord struct {
	obj      client.ObjectKey
	meta     bool
	once     sync.Once
	tripped  chan struct{}
	released chan struct{}
	release  func()
}

func newHeldRecord(obj client.ObjectKey, meta bool) *heldRecord {
	h := &heldRecord{obj: obj, meta: meta, tripped: make(chan struct{}), released: make(chan struct{})}
	var once sync.Once
	h.release = func() { once.Do(func() { close(h.released) }) }
	return h
}

// hold holds the write if it is the first one held.
func (h *heldRecord) hold(ctx context.Context) error {
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
	return nil
}

func (h *heldRecord) funcs() interceptor.Funcs {
	ours := func(obj client.Object) (*v1alpha1.ConversationWebhook, bool) {
		o, ok := obj.(*v1alpha1.ConversationWebhook)
		return o, ok && client.ObjectKeyFromObject(o) == h.obj
	}
	return interceptor.Funcs{
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			if o, ok := ours(obj); ok && h.meta && o.Annotations[v1alpha1.AnnotationWebhookSid] != "" {
				if err := h.hold(ctx); err != nil {
					return err
				}
			}
			return c.Patch(ctx, obj, patch, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch,
			opts ...client.SubResourcePatchOption) error {
			if o, ok := ours(obj); ok && !h.meta && sub == "status" && o.Status.Sid != "" {
				if err := h.hold(ctx); err != nil {
					return err
				}
			}
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	}
}

// lookPair is the two objects of a look race: b, in tenant other, looks in a's
// conversation for its own lost create's webhook while a's new webhook is on
// its way to a's status. b is created first (in another namespace, so that a
// claim alone — the webhook-sid annotation, written before status — would not
// stop it) and paused: nothing looks until look.
type lookPair struct {
	a, b     *v1alpha1.ConversationWebhook
	conv     string
	deleting bool
}

// twoTenants returns two tenants, other's namespace sorting first: its object
// wins a tie of creation times.
func twoTenants() (owner, other *tenant) {
	GinkgoHelper()
	owner, other = newTenant(1), newTenant(1)
	if other.ns > owner.ns {
		owner, other = other, owner
	}
	return owner, other
}

// newLookPair stops the suite's manager (nothing reconciles the objects until
// the spec starts its own) and creates b, then a, with one spec in owner's
// conversation (b's service: service). deleting: b is deleted with what a
// manager that stopped after recording a pending create leaves behind (its
// answer lost).
func newLookPair(owner, other *tenant, service string, deleting bool) *lookPair {
	GinkgoHelper()
	l := &lookPair{conv: owner.convs[0], deleting: deleting}
	stopSuiteManager()
	l.b = other.object("copy", func(o *v1alpha1.ConversationWebhook) {
		o.Spec.ConversationSid = l.conv
		o.Spec.ServiceSid = service
		o.Spec.URL = "https://hooks.example.com/same"
		o.Annotations = map[string]string{v1alpha1.AnnotationPaused: "true"}
		if deleting {
			o.Finalizers = []string{v1alpha1.Finalizer}
		}
	})
	Expect(k8sClient.Create(ctx, l.b)).To(Succeed())
	if deleting {
		want := desiredOf(&l.b.Spec)
		cur := get(l.b)
		cur.Status.PendingCreate = &v1alpha1.PendingCreate{Since: metav1.Now(), ServiceSid: service,
			ConversationSid: l.conv, Fingerprint: fingerprint(want.target, want.cfg)}
		Expect(k8sClient.Status().Update(ctx, cur)).To(Succeed())
		Expect(k8sClient.Delete(ctx, l.b)).To(Succeed())
	}
	l.a = owner.object("orig", func(o *v1alpha1.ConversationWebhook) { o.Spec.URL = l.b.Spec.URL })
	Expect(k8sClient.Create(ctx, l.a)).To(Succeed())
	return l
}

// madeOne waits until tripped closes (a's create has made its webhook) and
// returns that webhook, the conversation's only one.
func (l *lookPair) madeOne(tripped chan struct{}) string {
	GinkgoHelper()
	Eventually(tripped).WithTimeout(waitTimeout).Should(BeClosed())
	hooks := fakeHooks(l.conv)
	Expect(hooks).To(HaveLen(1))
	return hooks[0].Sid
}

// look lets b look: unpaused, and a copy gets the create-pending annotation now.
func (l *lookPair) look() {
	GinkgoHelper()
	Eventually(func() error {
		cur := get(l.b)
		delete(cur.Annotations, v1alpha1.AnnotationPaused)
		if !l.deleting {
			cur.Annotations[v1alpha1.AnnotationCreatePending] = time.Now().UTC().Format(time.RFC3339)
		}
		return k8sClient.Update(ctx, cur)
	}).WithTimeout(waitTimeout).WithPolling(waitPoll).Should(Succeed())
}

// neverTaken checks, for a while, that b neither records nor deletes sid.
func (l *lookPair) neverTaken(sid string, d time.Duration) {
	GinkgoHelper()
	Consistently(func(g Gomega) {
		g.Expect(countFor(sid, twiliofake.OpDelete)).To(BeZero(), "a's new webhook was deleted by b")
		cur := &v1alpha1.ConversationWebhook{}
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(l.b), cur); err == nil {
			g.Expect(cur.Status.Sid).NotTo(Equal(sid), "b took a's new webhook")
		}
	}).WithTimeout(d).WithPolling(50 * time.Millisecond).Should(Succeed())
}

// A webhook one object has just recorded in memory (its create answered) is not
// another object's to take, or to delete, while that record is being written:
// an object looking for its own lost create's webhook in the same conversation
// (a copy re-applied from Git with the create-pending annotation; a deletion
// whose create's answer was lost) leaves it (the answer stays among the
// dispatcher's unapplied ones until status records it).
var _ = Describe("TakeLock", func() {
	var owner, other *tenant
	BeforeEach(func() {
		owner, other = twoTenants()
		resetFake()
		DeferCleanup(resetFake)
	})

	DescribeTable("another object looking for its lost create's webhook while an object's new webhook is being recorded",
		func(deleting, meta bool) {
			l := newLookPair(owner, other, "", deleting)
			hold := newHeldRecord(client.ObjectKeyFromObject(l.a), meta)
			DeferCleanup(hold.release)
			startSpecManager(withInterceptor(hold.funcs()))
			sid := l.madeOne(hold.tripped)

			l.look() // while a's record is held
			l.neverTaken(sid, 2*time.Second)
			hold.release()

			Expect(waitReady(l.a).Status.Sid).To(Equal(sid))
			if deleting {
				waitGone(l.b)
				Expect(countFor(sid, twiliofake.OpDelete)).To(BeZero())
				Expect(fakeHooks(l.conv)).To(ConsistOf(HaveField("Sid", sid)))
				return
			}
			own := waitReady(l.b).Status.Sid
			Expect(own).NotTo(Equal(sid))
			Expect(fakeHooks(l.conv)).To(ConsistOf(HaveField("Sid", sid), HaveField("Sid", own)))
			Expect(condition(get(l.a), v1alpha1.ConditionStalled)).NotTo(HavePrefix("True"))
		},
		Entry("a copy re-applied with the create-pending annotation does not take it (status write held)", false, false),
		Entry("a deletion whose create's answer was lost does not delete it (status write held)", true, false),
		Entry("a copy does not take it before the webhook-sid annotation is written", false, true),
		Entry("a deletion does not delete it before the webhook-sid annotation is written", true, true),
	)
})
