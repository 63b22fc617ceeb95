package controller

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	fakeclient "sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// forgotten records the sources whose limits were forgotten.
type forgotten []string

func (f *forgotten) ForgetLimits(source string)                                { *f = append(*f, source) }
func (f *forgotten) SetLimits(accountSid, source, uid string, l twilio.Limits) {}

// A deleted account object's limits are forgotten, under the key its objects'
// limits were set with, for both kinds.
func TestDeletedAccountForgetsItsLimits(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fakeclient.NewClientBuilder().WithScheme(scheme).Build()
	for _, tc := range []struct {
		cluster bool
		req     types.NamespacedName
		want    string
	}{
		{false, types.NamespacedName{Namespace: "team-a", Name: "twilio"}, "TwilioAccount/team-a/twilio"},
		{true, types.NamespacedName{Name: "shared"}, "ClusterTwilioAccount/shared"},
	} {
		var got forgotten
		r := &AccountReconciler{Client: c, Cluster: tc.cluster, Limits: &got}
		if _, err := r.Reconcile(t.Context(), ctrl.Request{NamespacedName: tc.req}); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0] != tc.want {
			t.Errorf("forgotten %v, want [%s]", got, tc.want)
		}
		obj := &v1alpha1.ConversationWebhook{Spec: v1alpha1.ConversationWebhookSpec{
			AccountRef: &v1alpha1.AccountReference{Kind: v1alpha1.AccountKindNamespaced, Name: tc.req.Name}}}
		obj.Namespace = tc.req.Namespace
		if tc.cluster {
			obj.Spec.AccountRef.Kind = v1alpha1.AccountKindCluster
		}
		if key := (&ConversationWebhookReconciler{}).accountKey(obj); key != tc.want {
			t.Errorf("an object's account key %q, the forgotten one %q: they must agree", key, tc.want)
		}
	}
}
