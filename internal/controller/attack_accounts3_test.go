package controller

import (
	"context"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
)

// The wake of 958379b listed, from the cache, the objects that are not Ready.
// An object whose reconcile read the account just before the account
// reconciler's status write (the verification it waits for) was still Ready in
// that list: it was not woken, and its wait (AccountNotReady) lasted its whole
// poll interval (an hour here) although its account was verified. Before the
// filter, every update woke every object (a wake during a reconcile runs it
// again); now the objects whose look at the account is under way or did not
// end with a client (accountWaiters) are woken too. Three ways into the wait:
// a rotated Secret, an upgrade (no verifiedSecretVersion yet), and a limits
// edit (a new generation).
func TestAttackAccounts3WakeMissedWhileWaitInFlight(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(a *v1alpha1.TwilioAccount)
	}{
		{"rotated Secret", func(a *v1alpha1.TwilioAccount) { a.Status.VerifiedSecretVersion = "1" }},
		{"upgrade", func(a *v1alpha1.TwilioAccount) { a.Status.VerifiedSecretVersion = "" }},
		{"limits edited", func(a *v1alpha1.TwilioAccount) {
			a.Generation = 2
			a.Spec.Limits = &v1alpha1.AccountLimits{MaxInFlight: new(int32(3))}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			acct := attackAccount("acc", 0)
			tc.setup(acct)
			wh := attackWebhook("waiting", "acc")
			wh.Annotations = map[string]string{v1alpha1.AnnotationPollInterval: "1h"}
			wh.Status.Sid, wh.Status.AccountSid = "WH00000000000000000000000000000001", attackSidA
			setReady(&wh.Status, 1, metav1.Now())
			c := attackClient(t, acct, wh)
			if tc.name == "limits edited" {
				// A verification that matches the Secret, for generation 1.
				s := &corev1.Secret{}
				if err := c.Get(t.Context(), client.ObjectKey{Namespace: attackNS, Name: "creds"}, s); err != nil {
					t.Fatal(err)
				}
				a := &v1alpha1.TwilioAccount{}
				if err := c.Get(t.Context(), client.ObjectKeyFromObject(acct), a); err != nil {
					t.Fatal(err)
				}
				a.Status.VerifiedSecretVersion = s.ResourceVersion
				if err := c.Status().Update(t.Context(), a); err != nil {
					t.Fatal(err)
				}
			}
			ar := &AccountReconciler{Client: c, APIReader: c, Verifier: &fixedVerifier{attackSidA}}
			q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
			defer q.ShutDown()
			var once sync.Once
			var r *ConversationWebhookReconciler
			// Right after the object's reconcile read the account: the account
			// reconciler verifies, writes status, and the watch delivers it.
			hooked := interceptor.NewClient(c, interceptor.Funcs{
				Get: func(ctx context.Context, cl client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
					err := cl.Get(ctx, key, obj, opts...)
					if _, ok := obj.(*v1alpha1.TwilioAccount); ok && err == nil {
						once.Do(func() {
							before := &v1alpha1.TwilioAccount{}
							if err := c.Get(ctx, key, before); err != nil {
								t.Fatal(err)
							}
							if _, err := ar.Reconcile(ctx, ctrl.Request{NamespacedName: key}); err != nil {
								t.Fatal(err)
							}
							after := &v1alpha1.TwilioAccount{}
							if err := c.Get(ctx, key, after); err != nil {
								t.Fatal(err)
							}
							r.accountHandler().Update(ctx, event.UpdateEvent{ObjectOld: before, ObjectNew: after}, q)
						})
					}
					return err
				},
			})
			r = &ConversationWebhookReconciler{Client: hooked, APIReader: c, Twilio: limitsFactory(t),
				Recorder: events.NewFakeRecorder(100), SyncPeriod: 10 * time.Minute,
				Clock: clocktesting.NewFakePassiveClock(time.Now())}
			res, err := r.Reconcile(t.Context(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(wh)})
			if err != nil {
				t.Fatal(err)
			}
			got := &v1alpha1.ConversationWebhook{}
			if err := c.Get(t.Context(), client.ObjectKeyFromObject(wh), got); err != nil {
				t.Fatal(err)
			}
			ready := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
			if ready == nil || ready.Reason != v1alpha1.ReasonAccountNotReady {
				t.Fatalf("setup: want the object waiting (AccountNotReady), got %+v", ready)
			}
			// The account is verified for what the object would now use.
			if _, _, err := r.twilioFor(t.Context(), got); err != nil {
				t.Fatalf("setup: the account should be usable now: %v", err)
			}
			if q.Len() == 0 && res.RequeueAfter > time.Minute {
				t.Errorf("the account's verification woke nothing (the object was Ready in the cache when the wake listed it): "+
					"the object stays Ready=False/AccountNotReady, its account verified, until its poll in %s", res.RequeueAfter.Round(time.Minute))
			}
		})
	}
}
