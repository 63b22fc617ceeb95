// Package v1alpha1 contains the v1alpha1 API of the conversations.twilio-operator.io group.
// +kubebuilder:object:generate=true
// +groupName=conversations.twilio-operator.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version used to register these objects.
	GroupVersion = schema.GroupVersion{Group: "conversations.twilio-operator.io", Version: "v1alpha1"}

	// SchemeBuilder adds the types of this group and version to a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this group and version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion, &ConversationWebhook{}, &ConversationWebhookList{},
		&TwilioAccount{}, &TwilioAccountList{}, &ClusterTwilioAccount{}, &ClusterTwilioAccountList{})
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}
