package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Target is where Twilio delivers a conversation-scoped webhook's events.
// +kubebuilder:validation:Enum=webhook;trigger;studio
type Target string

// The three webhook targets Twilio supports.
const (
	// TargetWebhook posts the selected events (filters) to url.
	TargetWebhook Target = "webhook"
	// TargetTrigger posts to url when a message contains one of the trigger keywords.
	TargetTrigger Target = "trigger"
	// TargetStudio hands the conversation's events to a Studio flow.
	TargetStudio Target = "studio"
)

// HTTPMethod is the method Twilio uses to call a webhook url.
// +kubebuilder:validation:Enum=GET;POST
type HTTPMethod string

// HTTP methods Twilio can use for a webhook.
const (
	// MethodGET makes Twilio call the url with GET.
	MethodGET HTTPMethod = "GET"
	// MethodPOST makes Twilio call the url with POST.
	MethodPOST HTTPMethod = "POST"
)

// Filter is a conversation event that fires a webhook.
// +kubebuilder:validation:Enum=onMessageAdded;onMessageUpdated;onMessageRemoved;onConversationUpdated;onConversationStateUpdated;onConversationRemoved;onParticipantAdded;onParticipantUpdated;onParticipantRemoved;onDeliveryUpdated
type Filter string

// DeletionPolicy says what happens to the Twilio webhook when the object is deleted.
// +kubebuilder:validation:Enum=Delete;Orphan
type DeletionPolicy string

// Deletion policies.
const (
	// DeletionPolicyDelete deletes the Twilio webhook with the object.
	DeletionPolicyDelete DeletionPolicy = "Delete"
	// DeletionPolicyOrphan leaves the Twilio webhook in place when the object is deleted.
	DeletionPolicyOrphan DeletionPolicy = "Orphan"
)

// ManagementPolicy says whether the operator may write to Twilio.
// +kubebuilder:validation:Enum=Full;Observe
type ManagementPolicy string

// Management policies.
const (
	// ManagementPolicyFull creates, updates, replaces and deletes the webhook.
	ManagementPolicyFull ManagementPolicy = "Full"
	// ManagementPolicyObserve only reads: it records what Twilio holds and
	// reports drift in the Synced condition, and never writes to Twilio.
	ManagementPolicyObserve ManagementPolicy = "Observe"
)

// ConversationWebhookSpec is the webhook as it should exist in Twilio.
// +kubebuilder:validation:XValidation:rule="self.target == 'studio' || has(self.url)",message="url is required when target is webhook or trigger",fieldPath=".url",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="self.target != 'studio' || !has(self.url)",message="url must not be set when target is studio",fieldPath=".url",reason=FieldValueForbidden
// +kubebuilder:validation:XValidation:rule="self.target != 'studio' || !has(self.method) || self.method == 'POST'",message="method must not be set when target is studio",fieldPath=".method",reason=FieldValueForbidden
// +kubebuilder:validation:XValidation:rule="self.target != 'webhook' || (has(self.filters) && size(self.filters) > 0)",message="filters must name at least one event when target is webhook",fieldPath=".filters",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="self.target != 'trigger' || has(self.triggers)",message="triggers is required when target is trigger",fieldPath=".triggers",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="self.target == 'trigger' || !has(self.triggers)",message="triggers may only be set when target is trigger",fieldPath=".triggers",reason=FieldValueForbidden
// +kubebuilder:validation:XValidation:rule="self.target != 'studio' || has(self.flowSid)",message="flowSid is required when target is studio",fieldPath=".flowSid",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="self.target == 'studio' || !has(self.flowSid)",message="flowSid may only be set when target is studio",fieldPath=".flowSid",reason=FieldValueForbidden
type ConversationWebhookSpec struct {
	// conversationSid is the Conversation (CH…) the webhook is scoped to.
	// Changing it replaces the webhook.
	// +required
	// +kubebuilder:validation:Pattern=`^CH[0-9a-fA-F]{32}$`
	ConversationSid string `json:"conversationSid"`

	// serviceSid is the Conversation Service (IS…) holding the conversation. When set,
	// the service-scoped API path is used; when unset, the account's default service.
	// Changing it replaces the webhook.
	// +optional
	// +kubebuilder:validation:Pattern=`^IS[0-9a-fA-F]{32}$`
	ServiceSid string `json:"serviceSid,omitempty"`

	// target is where Twilio sends events: webhook (filters to url), trigger
	// (keywords to url) or studio (a Studio flow). Changing it replaces the webhook.
	// +required
	Target Target `json:"target"`

	// url is the absolute http or https URL Twilio calls, at most 512 characters.
	// Required for webhook and trigger, forbidden for studio.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ''",message="url must be an absolute http or https URL"
	URL string `json:"url,omitempty"`

	// method is the HTTP method Twilio uses to call url: GET or POST (default).
	// Must not be GET for studio, where it does not apply and is not sent.
	// +optional
	// +kubebuilder:default=POST
	Method HTTPMethod `json:"method,omitempty"`

	// filters are the conversation events that fire the webhook. At least one is
	// required for target webhook.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=10
	Filters []Filter `json:"filters,omitempty"`

	// triggers are 1 to 5 keywords, each 1 to 248 characters, that fire a trigger
	// webhook. Required for target trigger, forbidden otherwise.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=5
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=248
	Triggers []string `json:"triggers,omitempty"`

	// flowSid is the Studio flow (FW…) that receives events. Required for target
	// studio, forbidden otherwise.
	// +optional
	// +kubebuilder:validation:Pattern=`^FW[0-9a-fA-F]{32}$`
	FlowSid string `json:"flowSid,omitempty"`

	// replayAfter is the message index after which Twilio replays existing messages
	// to the new webhook. Sent on create only (0 is sent); changing it replaces the webhook.
	// +optional
	// +kubebuilder:validation:Minimum=0
	ReplayAfter *int32 `json:"replayAfter,omitempty"`

	// accountRef names the account (and so the credentials) the webhook is
	// managed with: a TwilioAccount in this namespace (kind TwilioAccount, the
	// default) or a ClusterTwilioAccount whose conditions allow this namespace.
	// When unset, the operator's --default-account ClusterTwilioAccount is used,
	// subject to its conditions. Replaces credentialsSecretRef.
	// +optional
	AccountRef *AccountReference `json:"accountRef,omitempty"`

	// deletionPolicy says what happens to the Twilio webhook when this object is
	// deleted: Delete (default) removes it, Orphan leaves it in Twilio.
	// +optional
	// +kubebuilder:default=Delete
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// managementPolicy says whether the operator may write to Twilio: Full
	// (default) keeps the webhook matching this spec; Observe never writes to
	// Twilio (no create, update, replace or delete, not even on deletion of
	// this object): it finds the webhook (by the webhook-sid annotation, or by
	// listing the conversation for one that matches the spec), records it in
	// status, and reports in the Synced condition how it differs from the spec.
	// Switching to Full applies the spec.
	// +optional
	// +kubebuilder:default=Full
	ManagementPolicy ManagementPolicy `json:"managementPolicy,omitempty"`
}

// WebhookConfiguration is a webhook's configuration as Twilio returned it.
type WebhookConfiguration struct {
	// url Twilio calls.
	// +optional
	URL string `json:"url,omitempty"`
	// method Twilio uses, as Twilio returned it.
	// +optional
	Method string `json:"method,omitempty"`
	// filters that fire the webhook.
	// +optional
	Filters []string `json:"filters,omitempty"`
	// triggers that fire the webhook.
	// +optional
	Triggers []string `json:"triggers,omitempty"`
	// flowSid of the Studio flow.
	// +optional
	FlowSid string `json:"flowSid,omitempty"`
	// replayAfter the webhook was created with.
	// +optional
	ReplayAfter *int32 `json:"replayAfter,omitempty"`
}

// WebhookReference locates one Twilio webhook.
type WebhookReference struct {
	// sid is the webhook's WH… SID.
	// +required
	Sid string `json:"sid"`
	// conversationSid is the conversation (CH…) the webhook belongs to.
	// +required
	ConversationSid string `json:"conversationSid"`
	// serviceSid is the Conversation Service (IS…), when the service-scoped path is used.
	// +optional
	ServiceSid string `json:"serviceSid,omitempty"`
}

// PendingCreate is a create sent to Twilio whose answer is not recorded yet.
type PendingCreate struct {
	// since is when the create was started.
	// +required
	Since metav1.Time `json:"since"`
	// conversationSid is the conversation (CH…) the create was sent to.
	// +required
	ConversationSid string `json:"conversationSid"`
	// serviceSid is the Conversation Service (IS…) the create was sent to, if any.
	// +optional
	ServiceSid string `json:"serviceSid,omitempty"`
	// fingerprint identifies the target and configuration the create sent.
	// +optional
	Fingerprint string `json:"fingerprint,omitempty"`
	// accountSid is the Twilio account (AC…) the create was sent for: its
	// webhook, if it was made, is there.
	// +optional
	AccountSid string `json:"accountSid,omitempty"`
}

// ConversationWebhookStatus is the webhook as the operator last saw it in Twilio.
type ConversationWebhookStatus struct {
	// sid is the WH… SID of the managed webhook.
	// +optional
	Sid string `json:"sid,omitempty"`
	// accountSid is the Twilio account that owns the webhook.
	// +optional
	AccountSid string `json:"accountSid,omitempty"`
	// conversationSid is the conversation the webhook belongs to, as Twilio returned it.
	// +optional
	ConversationSid string `json:"conversationSid,omitempty"`
	// serviceSid is the Conversation Service of the webhook, as Twilio returned it.
	// +optional
	ServiceSid string `json:"serviceSid,omitempty"`
	// target of the webhook, as Twilio returned it.
	// +optional
	Target string `json:"target,omitempty"`
	// resourceURL is the API address of the webhook resource in Twilio.
	// +optional
	ResourceURL string `json:"resourceURL,omitempty"`
	// configuration Twilio last returned.
	// +optional
	Configuration *WebhookConfiguration `json:"configuration,omitempty"`
	// dateCreated is when Twilio created the webhook.
	// +optional
	DateCreated *metav1.Time `json:"dateCreated,omitempty"`
	// dateUpdated is when Twilio last changed the webhook.
	// +optional
	DateUpdated *metav1.Time `json:"dateUpdated,omitempty"`
	// lastSyncTime is when the operator last confirmed that Twilio matches the spec.
	// +optional
	LastSyncTime *metav1.Time `json:"lastSyncTime,omitempty"`
	// observedGeneration is the generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// pendingCreate is a create the operator sent to Twilio and whose webhook it
	// has not recorded yet: where it was sent and what it sent. It is written
	// before the create call; on the next reconcile the operator lists that
	// conversation's webhooks to find the result, and never creates blindly.
	// +optional
	PendingCreate *PendingCreate `json:"pendingCreate,omitempty"`
	// supersededWebhook is the webhook this object managed before a replacement
	// (or an adoption of another webhook) took its place; the operator deletes it
	// next. Only the operator writes it, always from the SID it had recorded.
	// +optional
	SupersededWebhook *WebhookReference `json:"supersededWebhook,omitempty"`
	// conditions are Ready, Reconciling and Stalled (kstatus-compatible).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ConversationWebhook is a Twilio Conversations conversation-scoped webhook,
// kept in Twilio as this object describes it.
//
// Annotations (prefix conversations.twilio-operator.io/): webhook-sid holds
// the managed WH… SID (set it on a new object to adopt an existing webhook);
// paused: "true" stops all calls to Twilio; poll-interval overrides the
// operator's drift-check period for this object (a Go duration, at least 30s).
// create-pending is written by the operator while a create is in flight; the
// operator's own record of it is status.pendingCreate. Every annotation is
// validated when read: a malformed value stalls the object (InvalidAnnotation)
// and is never sent to Twilio.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=cwh,categories=twilio
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.target`
// +kubebuilder:printcolumn:name="Conversation",type=string,JSONPath=`.spec.conversationSid`
// +kubebuilder:printcolumn:name="SID",type=string,JSONPath=`.status.sid`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.spec.url`,priority=1
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
type ConversationWebhook struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the webhook as it should exist in Twilio.
	// +required
	Spec ConversationWebhookSpec `json:"spec"`

	// status is the webhook as the operator last saw it in Twilio.
	// +optional
	Status ConversationWebhookStatus `json:"status,omitempty"`
}

// ConversationWebhookList is a list of ConversationWebhook objects.
// +kubebuilder:object:root=true
type ConversationWebhookList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the ConversationWebhook objects.
	Items []ConversationWebhook `json:"items"`
}
