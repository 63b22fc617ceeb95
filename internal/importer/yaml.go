package importer

import (
	"sigs.k8s.io/yaml"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
)

// manifest is the part of an object worth committing: no status, no
// creationTimestamp, no server-side fields.
type manifest struct {
	APIVersion string                           `json:"apiVersion"`
	Kind       string                           `json:"kind"`
	Metadata   manifestMeta                     `json:"metadata"`
	Spec       v1alpha1.ConversationWebhookSpec `json:"spec"`
}

type manifestMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// YAML renders an object as a manifest to commit and apply: apiVersion, kind,
// metadata (name, namespace, labels, annotations) and spec; never status.
func YAML(obj *v1alpha1.ConversationWebhook) ([]byte, error) {
	return yaml.Marshal(manifest{
		APIVersion: v1alpha1.GroupVersion.String(),
		Kind:       "ConversationWebhook",
		Metadata: manifestMeta{
			Name: obj.Name, Namespace: obj.Namespace, Labels: obj.Labels, Annotations: obj.Annotations,
		},
		Spec: obj.Spec,
	})
}
