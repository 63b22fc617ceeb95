package controller

import (
	"errors"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	fakeclient "sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// Attacks on the lost-create look of 6f79392 (findCreated, findMatching,
// elsewhere): what another object's annotation or status makes a look do.

const (
	lostConv  = "CH0123456789abcdef0123456789abcdef"
	lostConv2 = "CHfedcba9876543210fedcba9876543210"
	lostSid   = "WH0123456789abcdef0123456789abcdef"
)

var lostNow = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

// lostFixture is a reconciler on a fake API server holding others; self is the
// looking object (its spec in lostConv), not stored.
func lostFixture(t *testing.T, others ...*v1alpha1.ConversationWebhook) (*ConversationWebhookReconciler, *v1alpha1.ConversationWebhook) {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	objs := make([]client.Object, 0, len(others))
	for _, o := range others {
		objs = append(objs, o)
	}
	c := fakeclient.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).
		WithStatusSubresource(&v1alpha1.ConversationWebhook{}).
		WithIndex(&v1alpha1.ConversationWebhook{}, sidIndex, func(o client.Object) []string {
			return SidsOf(o.(*v1alpha1.ConversationWebhook))
		}).Build()
	r := &ConversationWebhookReconciler{Client: c, Recorder: events.NewFakeRecorder(100),
		Clock: clocktesting.NewFakePassiveClock(lostNow), PendingGrace: 15 * time.Second}
	self := lostObject("self", "team-a", lostConv)
	self.UID = "self"
	self.CreationTimestamp = metav1.NewTime(lostNow.Add(-time.Hour))
	return r, self
}

func lostObject(name, ns, conv string) *v1alpha1.ConversationWebhook {
	return &v1alpha1.ConversationWebhook{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.ConversationWebhookSpec{ConversationSid: conv, Target: v1alpha1.TargetWebhook,
			URL: "https://hooks.example.com/same", Method: v1alpha1.MethodPOST,
			Filters: []v1alpha1.Filter{"onMessageAdded"}},
	}
}

// lostWebhook is what the looking object's lost create made: listed in its
// conversation, matching what that create sent.
func lostWebhook(want desired, created time.Time) twilio.Webhook {
	return twilio.Webhook{Sid: lostSid, ConversationSid: lostConv, Target: want.target,
		Configuration: twilio.Configuration{URL: want.cfg.URL, Method: "post", Filters: want.cfg.Filters}, DateCreated: created}
}

// A webhook-sid annotation alone, on any other object (created after the
// looking one, in another namespace, paused, its spec in another conversation
// so it can never take the webhook), makes the look leave the lost create's
// webhook: the object creates another (or its deletion ends) and no warning
// names the first. The claimer later finds nothing in its own conversation
// and makes its own: the first webhook is left in Twilio, known to nobody —
// a leak caused by an annotation a namespace editor wrote. Before 6f79392 a
// newer object's claim did not stop the look (conflictLive, claimedFirst).
func TestAttackLostLookAnnotationAloneLeaksSilently(t *testing.T) {
	claimer := lostObject("claimer", "team-b", lostConv2)
	claimer.CreationTimestamp = metav1.NewTime(lostNow) // newer than self
	claimer.Annotations = map[string]string{
		v1alpha1.AnnotationWebhookSid: lostSid,
		v1alpha1.AnnotationPaused:     "true",
	}
	r, self := lostFixture(t, claimer)
	want := desiredOf(&self.Spec)
	p := &pendingRecord{since: lostNow.Add(-time.Minute), scope: want.scope,
		fingerprint: fingerprint(want.target, want.cfg), recorded: true}
	api := &webhookAPIFns{t: t, list: func(twilio.Scope) ([]twilio.Webhook, error) {
		return []twilio.Webhook{lostWebhook(want, p.since)}, nil
	}}
	wh, unknown, err := r.findCreated(t.Context(), self, api, p, want, nil)
	if err != nil {
		t.Fatal(err)
	}
	if wh == nil && !slices.Contains(unknown, lostSid) {
		t.Errorf("the lost create's webhook %s is neither recovered nor named in a PossibleOrphan warning: "+
			"an annotation on %s/%s (newer, paused, in another conversation) makes the object create another "+
			"(or its deletion end) and leave it in Twilio unnamed", lostSid, claimer.Namespace, claimer.Name)
	}
}

// A pending record is taken as in flight for at most PendingGrace from its
// stamp; a stamp in the future (clock skew, written by hand) with a webhook
// listed without date_created (nullable in Twilio's spec) makes every other
// object's look wait until that stamp: here ten years.
func TestAttackLostLookFutureStampWaitsWithoutBound(t *testing.T) {
	other := lostObject("other", "team-b", lostConv)
	other.Status.PendingCreate = &v1alpha1.PendingCreate{Since: metav1.NewTime(lostNow.AddDate(10, 0, 0)),
		ConversationSid: lostConv}
	r, self := lostFixture(t, other)
	want := desiredOf(&self.Spec)
	p := &pendingRecord{since: lostNow.Add(-time.Minute), scope: want.scope,
		fingerprint: fingerprint(want.target, want.cfg), recorded: true}
	api := &webhookAPIFns{t: t, list: func(twilio.Scope) ([]twilio.Webhook, error) {
		return []twilio.Webhook{lostWebhook(want, time.Time{})}, nil
	}}
	_, _, err := r.findCreated(t.Context(), self, api, p, want, nil)
	var wait *waitError
	if errors.As(err, &wait) && wait.after > r.PendingGrace+unknownSlack {
		t.Errorf("the look waits %s for another object's pending create; a create is in flight for at most PendingGrace (%s)",
			wait.after, r.PendingGrace)
	}
}

// managementPolicy Observe: a matching webhook that another (Full) object's
// lost create made, whose pending record is older than PendingGrace (its
// answer lost; the owner has not looked yet: a restart, a backlog), is not
// "in flight", so the Observe object records it. The owner then finds it
// named, creates another, and the first is never deleted by anyone (Observe
// deletes nothing): the owner made two webhooks, one left behind.
func TestAttackLostLookObserveTakesAnotherObjectsLostCreate(t *testing.T) {
	owner := lostObject("owner", "team-b", lostConv)
	wantOwner := desiredOf(&owner.Spec)
	owner.Status.PendingCreate = &v1alpha1.PendingCreate{Since: metav1.NewTime(lostNow.Add(-2 * time.Minute)),
		ConversationSid: lostConv, Fingerprint: fingerprint(wantOwner.target, wantOwner.cfg)}
	r, self := lostFixture(t, owner)
	self.Spec.ManagementPolicy = v1alpha1.ManagementPolicyObserve
	want := desiredOf(&self.Spec)
	api := &webhookAPIFns{t: t, list: func(twilio.Scope) ([]twilio.Webhook, error) {
		return []twilio.Webhook{lostWebhook(wantOwner, lostNow.Add(-2*time.Minute))}, nil
	}}
	wh, err := r.findMatching(t.Context(), self, api, want)
	if err != nil {
		t.Fatal(err)
	}
	if wh != nil {
		t.Errorf("the Observe object takes %s, the result of %s/%s's lost create (its pending record, with the webhook's "+
			"fingerprint, still in status): that object will create another and this one is never deleted", wh.Sid,
			owner.Namespace, owner.Name)
	}
}

// Another object's create in flight is recognised by its fingerprint, compared
// strictly with the listed webhook; the looking object matches the webhook
// leniently (matchesSpec: a field Twilio answered null or left out never
// differs). A webhook listed with target null (nullable in Twilio's spec, and
// an answer shape the operator reads elsewhere) is therefore not anyone's
// create in flight, yet matches the looking object's spec: a copy re-applied
// with create-pending takes another object's webhook whose create's answer is
// still on its way (and a deletion with a restored create-pending deletes it).
func TestAttackLostLookNullFieldHidesCreateInFlight(t *testing.T) {
	other := lostObject("other", "team-b", lostConv)
	wantOther := desiredOf(&other.Spec)
	other.Status.PendingCreate = &v1alpha1.PendingCreate{Since: metav1.NewTime(lostNow.Add(-2 * time.Second)),
		ConversationSid: lostConv, Fingerprint: fingerprint(wantOther.target, wantOther.cfg)}
	r, self := lostFixture(t, other)
	want := desiredOf(&self.Spec)
	// self: a copy re-applied with the create-pending annotation alone (no
	// fingerprint: matched against the spec), stamped a minute ago.
	p := &pendingRecord{since: lostNow.Add(-time.Minute), scope: want.scope}
	for _, field := range []string{twilio.FieldTarget, twilio.FieldFilters} {
		t.Run(field+" answered null", func(t *testing.T) {
			api := &webhookAPIFns{t: t, list: func(twilio.Scope) ([]twilio.Webhook, error) {
				wh := lostWebhook(wantOther, lostNow.Add(-time.Second))
				switch field {
				case twilio.FieldTarget:
					wh.Target = ""
				case twilio.FieldFilters:
					wh.Configuration.Filters = nil
				}
				wh.MarkAbsent(field)
				return []twilio.Webhook{wh}, nil
			}}
			wh, _, err := r.findCreated(t.Context(), self, api, p, want, nil)
			var wait *waitError
			if !errors.As(err, &wait) {
				t.Errorf("took %v (err %v): the webhook of %s/%s's create still in flight (2 s old, PendingGrace %s) "+
					"is not waited for when Twilio answers %s null", whSid(wh), err, other.Namespace, other.Name, r.PendingGrace, field)
			}
		})
	}
}

func whSid(wh *twilio.Webhook) string {
	if wh == nil {
		return "nothing"
	}
	return wh.Sid
}
