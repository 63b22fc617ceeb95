package controller

import (
	"context"
	"errors"
	"strings"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

// errProcessDied is what a write gets once the crash window has closed on it.
var errProcessDied = errors.New("injected: the process died between Twilio's 201 and recording the SID")

// crashWindow makes a manager "die" between Twilio's 201 for an object's create
// and the write that records the SID: from the moment the fake's request log
// holds that 201, every write to the object (Update, Patch, status Update or
// Patch) hangs until the manager stops (hang) or fails at once (otherwise).
// Reads and writes to other objects go through.
type crashWindow struct {
	obj     *v1alpha1.ConversationWebhook
	hang    bool
	once    sync.Once
	tripped chan struct{}
}

func newCrashWindow(obj *v1alpha1.ConversationWebhook, hang bool) *crashWindow {
	return &crashWindow{obj: obj, hang: hang, tripped: make(chan struct{})}
}

// isTripped says whether a write has met the closed window.
func (w *crashWindow) isTripped() bool {
	select {
	case <-w.tripped:
		return true
	default:
		return false
	}
}

// write decides the fate of one write.
func (w *crashWindow) write(ctx context.Context, obj client.Object, do func() error) error {
	if _, ok := obj.(*v1alpha1.ConversationWebhook); !ok || obj.GetNamespace() != w.obj.Namespace ||
		obj.GetName() != w.obj.Name || createsFor(w.obj, true) == 0 {
		return do()
	}
	first := false
	w.once.Do(func() {
		first = true
		close(w.tripped)
	})
	if first && w.hang {
		<-ctx.Done() // the manager is stopping: the process is gone
		return errors.Join(errProcessDied, ctx.Err())
	}
	return errProcessDied
}

func (w *crashWindow) funcs() interceptor.Funcs {
	return interceptor.Funcs{
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			return w.write(ctx, obj, func() error { return c.Update(ctx, obj, opts...) })
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			return w.write(ctx, obj, func() error { return c.Patch(ctx, obj, patch, opts...) })
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			return w.write(ctx, obj, func() error { return c.SubResource(sub).Update(ctx, obj, opts...) })
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch,
			opts ...client.SubResourcePatchOption) error {
			return w.write(ctx, obj, func() error { return c.SubResource(sub).Patch(ctx, obj, patch, opts...) })
		},
	}
}

// createsFor counts the create requests the fake received for an object: those
// sent to its conversation with its URL (with answered201, only those Twilio
// answered with 201 Created).
func createsFor(o *v1alpha1.ConversationWebhook, answered201 bool) int {
	n := 0
	for _, r := range fake.Requests() {
		if r.Operation == twiliofake.OpCreate && strings.Contains(r.Path, "/Conversations/"+o.Spec.ConversationSid+"/") &&
			r.Form.Get("Configuration.Url") == o.Spec.URL && (!answered201 || r.Status == 201) {
			n++
		}
	}
	return n
}

var _ = Describe("A crash between Twilio's 201 and recording the SID", func() {
	BeforeEach(func() {
		resetFake()
		DeferCleanup(resetFake)
	})

	DescribeTable("leaves one webhook and one create once a new manager has taken over",
		func(hang bool) {
			t := newTenant(1)
			o := t.object("crash")
			stopSuiteManager()
			window := newCrashWindow(o, hang)
			stopCrashing := startSpecManager(withName("crashing"), withInterceptor(window.funcs()))
			Expect(k8sClient.Create(ctx, o)).To(Succeed())
			Eventually(window.isTripped).WithTimeout(waitTimeout).WithPolling(waitPoll).Should(BeTrue(),
				"a write to the object after Twilio's 201")
			if !hang {
				// The dying manager keeps retrying against a Twilio that holds its webhook.
				Consistently(func() int { return createsFor(o, false) }).WithTimeout(quietPeriod).WithPolling(waitPoll).
					Should(Equal(1), "no second create while the SID cannot be recorded")
			}
			stopCrashing()

			cur := get(o)
			Expect(cur.Status.Sid).To(BeEmpty(), "the SID was never recorded")
			Expect(cur.Annotations).NotTo(HaveKey(v1alpha1.AnnotationWebhookSid))
			hooks := fakeHooks(t.convs[0])
			Expect(hooks).To(HaveLen(1), "Twilio holds the webhook the dead manager created")
			created := hooks[0].Sid

			startSpecManager(withName("restarted"))
			got := waitReady(o)
			Expect(got.Status.Sid).To(Equal(created))
			Expect(got.Annotations).To(HaveKeyWithValue(v1alpha1.AnnotationWebhookSid, created))
			Consistently(func(g Gomega) {
				g.Expect(fakeHooks(t.convs[0])).To(ConsistOf(HaveField("Sid", created)))
				g.Expect(createsFor(o, false)).To(Equal(1), "one create request for the object, ever")
				g.Expect(condition(get(o), v1alpha1.ConditionReady)).To(Equal("True/Available"))
			}).WithTimeout(quietPeriod).WithPolling(waitPoll).Should(Succeed())
		},
		Entry("the write hangs until the manager stops", true),
		Entry("every write fails, and is retried, until the manager stops", false),
	)
})
