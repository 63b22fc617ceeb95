package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AccountKind names one of the two account kinds.
// +kubebuilder:validation:Enum=TwilioAccount;ClusterTwilioAccount
type AccountKind string

// Account kinds.
const (
	// AccountKindNamespaced is a TwilioAccount in the ConversationWebhook's namespace.
	AccountKindNamespaced AccountKind = "TwilioAccount"
	// AccountKindCluster is a ClusterTwilioAccount, subject to its conditions.
	AccountKindCluster AccountKind = "ClusterTwilioAccount"
)

// AccountReference names the account a ConversationWebhook acts with.
type AccountReference struct {
	// kind is TwilioAccount (default: an account in the same namespace) or
	// ClusterTwilioAccount (usable only from namespaces its conditions allow).
	// +optional
	// +kubebuilder:default=TwilioAccount
	Kind AccountKind `json:"kind,omitempty"`
	// name of the account.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// SecretReference names a Secret in the TwilioAccount's own namespace.
type SecretReference struct {
	// name of a Secret in the same namespace as the TwilioAccount. It holds
	// accountSid and either apiKeySid + apiKeySecret (preferred) or authToken.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// NamespacedSecretReference names a Secret in a given namespace.
type NamespacedSecretReference struct {
	// namespace of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`
	// name of the Secret. It holds accountSid and either apiKeySid + apiKeySecret
	// (preferred) or authToken.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// AccountLimits bound the operator's requests to one Twilio account. Every
// account object that resolves to the same Twilio account SID shares one
// budget: the smallest limits among them apply.
type AccountLimits struct {
	// maxInFlight is the most requests in flight at once (Twilio answers 429,
	// error 20429, past the account's concurrency). Default: the operator's
	// --twilio-max-inflight (10).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	MaxInFlight *int32 `json:"maxInFlight,omitempty"`
	// requestsPerSecond is the most requests per second. Default: the
	// operator's --twilio-rps (25).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	RequestsPerSecond *int32 `json:"requestsPerSecond,omitempty"`
}

// AccountCondition selects namespaces that may use a ClusterTwilioAccount: a
// namespace matches when it is listed in namespaces, or its labels match
// namespaceSelector.
// +kubebuilder:validation:XValidation:rule="has(self.namespaceSelector) || (has(self.namespaces) && size(self.namespaces) > 0)",message="a condition needs namespaceSelector or namespaces"
type AccountCondition struct {
	// namespaceSelector selects namespaces by label.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// namespaces lists namespaces by name.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=63
	Namespaces []string `json:"namespaces,omitempty"`
}

// TwilioAccountSpec is a Twilio account, usable by ConversationWebhooks in its namespace.
type TwilioAccountSpec struct {
	// credentialsSecretRef names a Secret in this namespace holding the credentials.
	// +required
	CredentialsSecretRef SecretReference `json:"credentialsSecretRef"`
	// limits bound the requests to this Twilio account.
	// +optional
	Limits *AccountLimits `json:"limits,omitempty"`
}

// ClusterTwilioAccountSpec is a Twilio account usable from the namespaces its conditions allow.
type ClusterTwilioAccountSpec struct {
	// credentialsSecretRef names the Secret holding the credentials.
	// +required
	CredentialsSecretRef NamespacedSecretReference `json:"credentialsSecretRef"`
	// conditions select the namespaces whose ConversationWebhooks may use this
	// account: a namespace may when any condition matches it. No conditions
	// means no namespace may (deny by default).
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Conditions []AccountCondition `json:"conditions,omitempty"`
	// limits bound the requests to this Twilio account.
	// +optional
	Limits *AccountLimits `json:"limits,omitempty"`
}

// TwilioAccountStatus is what the operator verified of an account.
type TwilioAccountStatus struct {
	// accountSid is the account SID Twilio returned when the credentials were
	// verified (GET /v1/Configuration): the account every request acts for,
	// whatever the Secret claims.
	// +optional
	AccountSid string `json:"accountSid,omitempty"`
	// verifiedSecretVersion is the resourceVersion of the credentials Secret
	// whose credentials Twilio accepted. While the Secret has another (it
	// changed since), no ConversationWebhook acts with it: they wait
	// (AccountNotReady) until Twilio has verified the new credentials.
	// +optional
	VerifiedSecretVersion string `json:"verifiedSecretVersion,omitempty"`
	// observedGeneration is the generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions: Ready (reasons Verified, CredentialsMissing, CredentialsInvalid).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// TwilioAccount is a set of Twilio credentials usable by the ConversationWebhooks
// of its own namespace.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=twa,categories=twilio
// +kubebuilder:printcolumn:name="Account",type=string,JSONPath=`.status.accountSid`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type TwilioAccount struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// spec names the credentials and limits.
	// +required
	Spec TwilioAccountSpec `json:"spec"`
	// status is what the operator verified.
	// +optional
	Status TwilioAccountStatus `json:"status,omitempty"`
}

// TwilioAccountList is a list of TwilioAccount objects.
// +kubebuilder:object:root=true
type TwilioAccountList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the TwilioAccount objects.
	Items []TwilioAccount `json:"items"`
}

// ClusterTwilioAccount is a set of Twilio credentials usable by the
// ConversationWebhooks of the namespaces its conditions allow.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=ctwa,categories=twilio
// +kubebuilder:printcolumn:name="Account",type=string,JSONPath=`.status.accountSid`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterTwilioAccount struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// spec names the credentials, the namespaces that may use them, and limits.
	// +required
	Spec ClusterTwilioAccountSpec `json:"spec"`
	// status is what the operator verified.
	// +optional
	Status TwilioAccountStatus `json:"status,omitempty"`
}

// ClusterTwilioAccountList is a list of ClusterTwilioAccount objects.
// +kubebuilder:object:root=true
type ClusterTwilioAccountList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the ClusterTwilioAccount objects.
	Items []ClusterTwilioAccount `json:"items"`
}
