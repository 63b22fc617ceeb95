package controller

import (
	"context"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// A reconcile whose status write at the end fails (a conflict with a newer
// view) returns the error and no RequeueAfter beside it: controller-runtime
// requeues it with the object's backoff either way, and logs a warning for
// every result that carries both (81 in one conflict storm of the bench).
func TestFailedStatusWriteReturnsNoRequeueAfter(t *testing.T) {
	wh := attack20bReadyObject()
	c := attackClient(t, attackAccount("acc", 0), wh)
	hooked := interceptor.NewClient(c, interceptor.Funcs{
		SubResourcePatch: func(context.Context, client.Client, string, client.Object, client.Patch, ...client.SubResourcePatchOption) error {
			return apierrors.NewConflict(schema.GroupResource{Group: "conversations.twilio-operator.io", Resource: "conversationwebhooks"},
				wh.Name, nil)
		},
	})
	api := &webhookAPIFns{t: t, fetch: func(twilio.Scope, string) (*twilio.Webhook, error) { return attack20bWebhook(), nil }}
	r := &ConversationWebhookReconciler{Client: hooked, APIReader: c, Twilio: attack20bClients{api: api},
		Recorder: events.NewFakeRecorder(100), SyncPeriod: 10 * time.Minute,
		Clock: clocktesting.NewFakePassiveClock(time.Now())}
	res, err := r.Reconcile(t.Context(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(wh)})
	if !apierrors.IsConflict(err) {
		t.Fatalf("err = %v, want the status write's conflict", err)
	}
	if res.RequeueAfter != 0 {
		t.Fatalf("RequeueAfter = %v beside the error", res.RequeueAfter)
	}
}
