package controller

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

// Attacks on 7c3bc88 (a deletion waits for its own pending create while it
// may still be in flight: inFlightFor, deleteTargets).
//
// A create is in flight for at most PendingGrace after its stamp. elsewhere()
// already treats another object's stamp further ahead than clocks differ
// (unknownSlack) as not credible; the object's own stamp is not checked at
// all. A status.pendingCreate stamped far ahead (written by a former leader
// whose clock ran ahead, or a status restored from a backup taken on such a
// cluster) makes the object's deletion wait until that stamp plus
// PendingGrace: here ten years, i.e. forever. The same wait also holds a sync
// (a create-pending annotation with a far-future value on an object that
// manages nothing leaves it Reconciling/Creating for good).

// TestOwnFutureStampIsNotWaitedFor: how long the object's own
// pending create is taken to be in flight is bounded by PendingGrace plus
// the clock difference the operator allows elsewhere.
func TestOwnFutureStampIsNotWaitedFor(t *testing.T) {
	r := &ConversationWebhookReconciler{Clock: clocktesting.NewFakePassiveClock(lostNow), PendingGrace: 15 * time.Second}
	for _, ahead := range []time.Duration{time.Hour, 10 * 365 * 24 * time.Hour} {
		p := &pendingRecord{since: lostNow.Add(ahead), scope: desiredOf(&lostObject("self", "team-a", lostConv).Spec).scope, recorded: true}
		if wait := r.inFlightFor(p); wait > r.PendingGrace+unknownSlack {
			t.Errorf("a pending create stamped %s ahead is taken to be in flight for %s more; no create is in flight longer than "+
				"PendingGrace (%s) and a stamp further ahead than %s is not credible (elsewhere): a deletion (or a create) waits that long",
				ahead, wait, r.PendingGrace, unknownSlack)
		}
	}
}

var _ = Describe("Attack: future pending stamps", func() {
	var t *tenant
	BeforeEach(func() {
		t = newTenant(1)
		resetFake()
		DeferCleanup(resetFake)
	})

	It("Attack: a deletion whose own pending create is stamped years ahead does not wait for ever", func() {
		stopSuiteManager()
		o := t.object("future", func(o *v1alpha1.ConversationWebhook) { o.Finalizers = []string{v1alpha1.Finalizer} })
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		want := desiredOf(&o.Spec)
		cur := get(o)
		// A former leader's clock ten years ahead, or a restored status.
		cur.Status.PendingCreate = &v1alpha1.PendingCreate{Since: metav1.NewTime(time.Now().AddDate(10, 0, 0).Truncate(time.Second)),
			ConversationSid: t.convs[0], Fingerprint: fingerprint(want.target, want.cfg)}
		Expect(k8sClient.Status().Update(ctx, cur)).To(Succeed())
		Expect(k8sClient.Delete(ctx, o)).To(Succeed())
		startSpecManager()
		// Nothing can be in flight longer than PendingGrace (3 s here) and a
		// stamp more than unknownSlack (1 min) ahead is not credible: the
		// deletion ends within that, plus room for a busy machine.
		Eventually(func() bool {
			err := k8sClient.Get(ctx, client.ObjectKeyFromObject(o), &v1alpha1.ConversationWebhook{})
			return err != nil && client.IgnoreNotFound(err) == nil
		}).WithTimeout(unknownSlack+30*time.Second).WithPolling(500*time.Millisecond).Should(BeTrue(),
			func() string {
				return fmt.Sprintf("the deletion still waits for a create stamped ten years ahead: %v", conditionMessages(get(o)))
			})
		Expect(fakeHooks(t.convs[0])).To(BeEmpty())
		Expect(countInConversation(t.convs[0], twiliofake.OpCreate)).To(BeZero())
	})

	// The same unbounded wait in sync, from a value a user can write: a
	// create-pending annotation stamped years ahead on an object that manages
	// nothing (hand-written, or a manifest generated with a skewed clock) leaves
	// it Reconciling/Creating for good: never created, never Stalled, no event.
	// (Pre-existing since 6f79392; inFlightFor, shared since 7c3bc88.)
	It("Attack: a create-pending annotation stamped years ahead does not hold a new object for ever", func() {
		o := t.object("futureann", func(o *v1alpha1.ConversationWebhook) {
			o.Annotations = map[string]string{v1alpha1.AnnotationCreatePending: time.Now().AddDate(10, 0, 0).UTC().Format(time.RFC3339)}
		})
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		Eventually(func() string {
			got := get(o)
			if c := condition(got, v1alpha1.ConditionStalled); c != "" && c[:4] == "True" {
				return "Stalled"
			}
			return condition(got, v1alpha1.ConditionReady)
		}).WithTimeout(unknownSlack+30*time.Second).WithPolling(500*time.Millisecond).Should(
			Or(Equal("True/"+v1alpha1.ReasonAvailable), Equal("Stalled")),
			func() string {
				return fmt.Sprintf("a create-pending stamped ten years ahead holds the object: %v", conditionMessages(get(o)))
			})
	})
})

// Attack on 6b9dd50 (rejected): the account's Ready message is cut at 512
// bytes, not at a rune boundary. A message whose 512th byte falls inside a
// multi-byte character (the operator's own messages use "…"; Twilio's message
// is free text) leaves invalid UTF-8 in the object's Stalled condition and
// Warning event (JSON encoding turns the stray bytes into U+FFFD, so the status
// read back never equals the one computed: each reconcile sends a status patch).
// Minor; invalidError's maxEcho cut has the same flaw.
func TestRejectedMessageIsCutAtACharacter(t *testing.T) {
	st := &v1alpha1.TwilioAccountStatus{Conditions: []metav1.Condition{{Type: v1alpha1.ConditionReady,
		Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonCredentialsInvalid, ObservedGeneration: 1,
		Message: strings.Repeat("a", maxAccountEcho-1) + "… and more"}}}
	err := rejected("TwilioAccount/ns/acc", st, 1)
	if err == nil {
		t.Fatal("no error for a rejected account")
	}
	if !utf8.ValidString(err.Error()) {
		t.Errorf("the Stalled message repeating the account's is not valid UTF-8 (cut inside a character): %q",
			err.Error()[len(err.Error())-80:])
	}
}

func TestEchoCutsAtACharacter(t *testing.T) {
	cases := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 64, "short"},
		{"abcdef", 3, "abc…"},
		{"ab…cd", 3, "ab…"},  // "…" is 3 bytes: cut before it
		{"ab…cd", 4, "ab…"},  // inside it: back to its start
		{"ab…cd", 5, "ab……"}, // after it
		{"éé", 1, "…"},
	}
	for _, tc := range cases {
		got := echo(tc.in, tc.n)
		if got != tc.want || !utf8.ValidString(got) {
			t.Errorf("echo(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
