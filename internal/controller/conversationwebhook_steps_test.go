package controller

import (
	"context"
	"errors"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	fakeclient "sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// webhookAPIFns is an in-process twilio.WebhookAPI built from function fields
// (crossplane's ExternalClientFns): each test sets only what its step calls; a
// call to anything else fails the test.
type webhookAPIFns struct {
	t      *testing.T
	create func(twilio.Scope, twilio.CreateWebhookInput) (*twilio.Webhook, error)
	fetch  func(twilio.Scope, string) (*twilio.Webhook, error)
	update func(twilio.Scope, string, twilio.Configuration) (*twilio.Webhook, error)
	del    func(twilio.Scope, string) error
	list   func(twilio.Scope) ([]twilio.Webhook, error)
}

var _ twilio.WebhookAPI = (*webhookAPIFns)(nil)

func (f *webhookAPIFns) AccountSid() string { return "AC00000000000000000000000000000001" }

func (f *webhookAPIFns) CreateWebhook(_ context.Context, s twilio.Scope, in twilio.CreateWebhookInput) (*twilio.Webhook, error) {
	if f.create == nil {
		f.t.Fatal("unexpected create")
	}
	return f.create(s, in)
}

func (f *webhookAPIFns) FetchWebhook(_ context.Context, s twilio.Scope, sid string) (*twilio.Webhook, error) {
	if f.fetch == nil {
		f.t.Fatal("unexpected fetch")
	}
	return f.fetch(s, sid)
}

func (f *webhookAPIFns) UpdateWebhook(_ context.Context, s twilio.Scope, sid string, c twilio.Configuration) (*twilio.Webhook, error) {
	if f.update == nil {
		f.t.Fatal("unexpected update")
	}
	return f.update(s, sid, c)
}

func (f *webhookAPIFns) DeleteWebhook(_ context.Context, s twilio.Scope, sid string) error {
	if f.del == nil {
		f.t.Fatal("unexpected delete")
	}
	return f.del(s, sid)
}

func (f *webhookAPIFns) ListWebhooks(_ context.Context, s twilio.Scope) ([]twilio.Webhook, error) {
	if f.list == nil {
		f.t.Fatal("unexpected list")
	}
	return f.list(s)
}

// stepFixture is a reconciler on a fake API server (a narrow use: the steps'
// own writes) holding one object that manages planOwned.
func stepFixture(t *testing.T) (*ConversationWebhookReconciler, *reconcileState, desired, ledger) {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	obj := &v1alpha1.ConversationWebhook{}
	obj.Name, obj.Namespace = "o", "ns"
	obj.Spec = v1alpha1.ConversationWebhookSpec{ConversationSid: planConv, Target: v1alpha1.TargetWebhook,
		URL: "https://e.com/a", Filters: []v1alpha1.Filter{"onMessageAdded"}}
	obj.Annotations = map[string]string{v1alpha1.AnnotationWebhookSid: planOwned}
	obj.Finalizers = []string{v1alpha1.Finalizer}
	obj.Status.Sid, obj.Status.ConversationSid = planOwned, planConv
	c := fakeclient.NewClientBuilder().WithScheme(scheme).WithObjects(obj).WithStatusSubresource(obj).
		WithIndex(&v1alpha1.ConversationWebhook{}, sidIndex, func(o client.Object) []string {
			return SidsOf(o.(*v1alpha1.ConversationWebhook))
		}).Build()
	stored := &v1alpha1.ConversationWebhook{}
	if err := c.Get(t.Context(), client.ObjectKeyFromObject(obj), stored); err != nil {
		t.Fatal(err)
	}
	r := &ConversationWebhookReconciler{Client: c, Recorder: events.NewFakeRecorder(100),
		Clock: clocktesting.NewFakePassiveClock(time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC))}
	want := desiredOf(&stored.Spec)
	led, err := readLedger(stored, want)
	if err != nil {
		t.Fatal(err)
	}
	return r, &reconcileState{obj: stored, base: stored.DeepCopy()}, want, led
}

func stored(t *testing.T, r *ConversationWebhookReconciler, rs *reconcileState) *v1alpha1.ConversationWebhook {
	t.Helper()
	out := &v1alpha1.ConversationWebhook{}
	if err := r.Get(t.Context(), client.ObjectKeyFromObject(rs.obj), out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestStepCreate(t *testing.T) {
	created := &twilio.Webhook{Sid: planOther, Target: "webhook",
		Configuration: twilio.Configuration{URL: "https://e.com/a", Method: "post", Filters: []string{"onMessageAdded"}}}
	cases := []struct {
		name string
		err  error
		// pending: the stored object still records the create as pending.
		pending, recorded bool
	}{
		{"created: recorded, the old one superseded", nil, false, true},
		{"rate limited: Twilio created nothing, pending dropped", &twilio.APIError{Operation: "create", Status: 429, Code: 20429}, false, false},
		{"rejected: pending dropped", &twilio.APIError{Operation: "create", Status: 400, Code: 21610}, false, false},
		{"server error: may exist, pending kept", &twilio.APIError{Operation: "create", Status: 500, Code: 20500}, true, false},
		{"no answer: may exist, pending kept", &twilio.APIError{Operation: "create", Message: "timeout"}, true, false},
		{"not sent (its window to start passed): pending dropped", &twilio.APIError{Operation: "create", Message: "not sent", Err: twilio.ErrNotSent}, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, rs, want, led := stepFixture(t)
			var sentTo twilio.Scope
			api := &webhookAPIFns{t: t, create: func(s twilio.Scope, _ twilio.CreateWebhookInput) (*twilio.Webhook, error) {
				sentTo = s
				// The pending record is stored before the create is sent.
				if got := stored(t, r, rs); got.Status.PendingCreate == nil || got.Annotations[v1alpha1.AnnotationCreatePending] == "" {
					t.Fatalf("create sent before the pending record was stored: %+v", got.Status.PendingCreate)
				}
				if tc.err != nil {
					return nil, tc.err
				}
				w := *created
				return &w, nil
			}}
			obs, err := r.create(t.Context(), rs, api, want, &led, observation{}, step{kind: stepCreate, why: whyReplace, supersede: true})
			if (err == nil) != (tc.err == nil) || !errors.Is(err, tc.err) && tc.err != nil {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			// A record is written before the next Twilio write or at the end
			// of the reconcile, as here.
			if err := r.flushRecord(t.Context(), rs); err != nil {
				t.Fatal(err)
			}
			got := stored(t, r, rs)
			if (got.Status.PendingCreate != nil) != tc.pending {
				t.Fatalf("pendingCreate = %+v, want pending %v", got.Status.PendingCreate, tc.pending)
			}
			if _, ann := got.Annotations[v1alpha1.AnnotationCreatePending]; ann != tc.pending {
				t.Fatalf("create-pending annotation present %v, want %v", ann, tc.pending)
			}
			if sentTo != want.scope {
				t.Fatalf("sent to %v", sentTo)
			}
			if !tc.recorded {
				return
			}
			if got.Status.Sid != planOther || got.Annotations[v1alpha1.AnnotationWebhookSid] != planOther ||
				got.Status.ConversationSid != planConv || obs.current == nil || obs.answer != answerCreate {
				t.Fatalf("not recorded: status %+v annotations %v", got.Status, got.Annotations)
			}
			if s := got.Status.SupersededWebhook; s == nil || s.Sid != planOwned {
				t.Fatalf("superseded = %+v, want %s", s, planOwned)
			}
		})
	}
}

func TestStepUpdateAndDeleteSuperseded(t *testing.T) {
	notFound := &twilio.APIError{Operation: "update", Status: 404, Code: 20404}
	t.Run("update answered 404: the next step recreates", func(t *testing.T) {
		r, rs, want, led := stepFixture(t)
		api := &webhookAPIFns{t: t, update: func(twilio.Scope, string, twilio.Configuration) (*twilio.Webhook, error) { return nil, notFound }}
		obs, err := r.update(t.Context(), rs, api, want, &led, observation{current: &twilio.Webhook{Sid: planOwned}})
		if err != nil || !obs.currentGone {
			t.Fatalf("obs %+v err %v", obs, err)
		}
		if st := plan(want, &obs, &led, true); st.kind != stepCreate || st.why != whyRecreate {
			t.Fatalf("next step %s/%s", st.kind, st.why)
		}
	})
	t.Run("superseded webhook already gone counts as deleted", func(t *testing.T) {
		r, rs, _, led := stepFixture(t)
		led.superseded = &ref{sid: planOld, scope: twilio.Scope{ConversationSid: planConv2}}
		var deleted []string
		api := &webhookAPIFns{t: t, del: func(s twilio.Scope, sid string) error {
			deleted = append(deleted, s.ConversationSid+"/"+sid)
			return &twilio.APIError{Operation: "delete", Status: 404, Code: 20404}
		}}
		if err := r.deleteSuperseded(t.Context(), rs, api, &led); err != nil {
			t.Fatal(err)
		}
		if len(deleted) != 1 || deleted[0] != planConv2+"/"+planOld || led.superseded != nil || stored(t, r, rs).Status.SupersededWebhook != nil {
			t.Fatalf("deleted %v, superseded %+v", deleted, led.superseded)
		}
	})
	t.Run("a superseded webhook that cannot be deleted stays recorded", func(t *testing.T) {
		r, rs, _, led := stepFixture(t)
		led.superseded = &ref{sid: planOld, scope: twilio.Scope{ConversationSid: planConv}}
		writeRecord(&rs.obj.Status, &led)
		api := &webhookAPIFns{t: t, del: func(twilio.Scope, string) error {
			return &twilio.APIError{Operation: "delete", Status: 503, Code: 20503}
		}}
		if err := r.deleteSuperseded(t.Context(), rs, api, &led); err == nil || led.superseded == nil {
			t.Fatalf("err %v superseded %+v", err, led.superseded)
		}
	})
}

// TestStalledPolledAgain: a Stalled object is reconciled again at its poll
// period only when what fixes it may reach it through no watch (an annotation
// the predicate ignores, a rotated key, a Secret deleted and re-created while
// its account's status stays the same); the others wait for a change.
func TestStalledPolledAgain(t *testing.T) {
	cases := map[string]bool{
		v1alpha1.ReasonSidConflict:           true,
		v1alpha1.ReasonInvalidAnnotation:     true,
		v1alpha1.ReasonCredentialsInvalid:    true,
		v1alpha1.ReasonCredentialsMissing:    true,
		v1alpha1.ReasonConfigurationRejected: false,
		v1alpha1.ReasonInvalidStatus:         false,
		v1alpha1.ReasonAccountNotFound:       false,
	}
	for reason, polled := range cases {
		t.Run(reason, func(t *testing.T) {
			r := &ConversationWebhookReconciler{SyncPeriod: time.Hour, Recorder: events.NewFakeRecorder(10)}
			obj := &v1alpha1.ConversationWebhook{}
			res, err := r.failed(t.Context(), obj, v1alpha1.ReasonCreating, stalled(reason, errors.New("broken")))
			if err != nil {
				t.Fatalf("failed returned %v; a Stalled object is not retried with backoff", err)
			}
			if got := res.RequeueAfter > 0; got != polled {
				t.Fatalf("RequeueAfter %v; polled again: want %v", res.RequeueAfter, polled)
			}
			if c := condition(obj, v1alpha1.ConditionStalled); c != "True/"+reason {
				t.Fatalf("Stalled condition %q", c)
			}
		})
	}
}

// TestRetryAfterNeverOutwaitsThePoll: a transient failure with a Retry-After is
// retried after it, but never later than the object's poll period (a proxy
// asking for a day must not stop drift checks for a day).
func TestRetryAfterNeverOutwaitsThePoll(t *testing.T) {
	cases := map[string]struct {
		retryAfter time.Duration
		atMost     time.Duration
		atLeast    time.Duration
	}{
		"a short wait is honoured": {retryAfter: 5 * time.Second, atLeast: 5 * time.Second, atMost: 5 * time.Second},
		"a day is cut to the poll": {retryAfter: 24 * time.Hour, atLeast: 54 * time.Second, atMost: 66 * time.Second},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := &ConversationWebhookReconciler{SyncPeriod: time.Minute, Recorder: events.NewFakeRecorder(10)}
			obj := &v1alpha1.ConversationWebhook{}
			answer := &twilio.APIError{Operation: twilio.OpFetch, Status: 503, Code: 20503, Message: "busy", RetryAfter: tc.retryAfter}
			res, err := r.failed(t.Context(), obj, v1alpha1.ReasonCreating, answer)
			if err != nil {
				t.Fatalf("failed returned %v; a Retry-After is a requeue, not a backoff", err)
			}
			if res.RequeueAfter < tc.atLeast || res.RequeueAfter > tc.atMost {
				t.Fatalf("RequeueAfter %v, want between %v and %v", res.RequeueAfter, tc.atLeast, tc.atMost)
			}
			if c := condition(obj, v1alpha1.ConditionReconciling); c != "True/"+v1alpha1.ReasonCreating {
				t.Fatalf("Reconciling condition %q", c)
			}
		})
	}
}
