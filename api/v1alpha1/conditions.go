package v1alpha1

// Condition types (kstatus-compatible: Flux and Argo CD judge health by them).
const (
	// ConditionReady is True when the webhook exists in Twilio and matches the spec.
	ConditionReady = "Ready"
	// ConditionReconciling is True while the operator converges or retries a transient failure.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when progress needs a person.
	ConditionStalled = "Stalled"
)

// Condition reasons.
const (
	// ReasonAvailable: the webhook exists in Twilio and matches the spec.
	ReasonAvailable = "Available"
	// ReasonCreating: the webhook is being created.
	ReasonCreating = "Creating"
	// ReasonUpdating: the webhook is being updated in place.
	ReasonUpdating = "Updating"
	// ReasonReplacing: a new webhook replaces the old one.
	ReasonReplacing = "Replacing"
	// ReasonDeleting: the webhook is being deleted.
	ReasonDeleting = "Deleting"
	// ReasonPaused: the paused annotation stops all calls to Twilio.
	ReasonPaused = "Paused"
	// ReasonError: the last attempt failed; see Reconciling or Stalled.
	ReasonError = "Error"
	// ReasonTransientError: Twilio or the network failed in a way a retry may fix.
	ReasonTransientError = "TransientError"
	// ReasonCredentialsMissing: no credentials Secret, or one without the needed keys.
	ReasonCredentialsMissing = "CredentialsMissing"
	// ReasonCredentialsInvalid: Twilio rejected the credentials.
	ReasonCredentialsInvalid = "CredentialsInvalid"
	// ReasonConversationNotFound: the conversation (or service) does not exist.
	ReasonConversationNotFound = "ConversationNotFound"
	// ReasonWebhookLimitReached: the conversation already has five webhooks.
	ReasonWebhookLimitReached = "WebhookLimitReached"
	// ReasonCreateIncomplete: a create's outcome cannot be determined.
	ReasonCreateIncomplete = "CreateIncomplete"
	// ReasonConfigurationRejected: Twilio rejected the configuration (a 4xx).
	ReasonConfigurationRejected = "ConfigurationRejected"
	// ReasonSidConflict: another object already manages the webhook SID.
	ReasonSidConflict = "SidConflict"
)

// Annotations (prefix conversations.twilio-operator.io/).
const (
	// AnnotationWebhookSid holds the managed WH… SID; set by a user it adopts that webhook.
	AnnotationWebhookSid = "conversations.twilio-operator.io/webhook-sid"
	// AnnotationCreatePending holds the RFC 3339 time a create was started and not yet recorded.
	AnnotationCreatePending = "conversations.twilio-operator.io/create-pending"
	// AnnotationCreatePendingSpec records where a pending create was sent and a
	// fingerprint of what it sent ("[IS…/]CH…:<fingerprint>"), so its webhook is
	// found and recognised even if the spec changed since.
	AnnotationCreatePendingSpec = "conversations.twilio-operator.io/create-pending-spec"
	// AnnotationPaused set to "true" stops all calls to Twilio.
	AnnotationPaused = "conversations.twilio-operator.io/paused"
	// AnnotationPollInterval overrides --sync-period for this object (Go duration, floor 30s).
	AnnotationPollInterval = "conversations.twilio-operator.io/poll-interval"
	// AnnotationReplacedWebhook holds the webhook a replacement superseded
	// ("[IS…/]CH…/WH…") until it is deleted.
	AnnotationReplacedWebhook = "conversations.twilio-operator.io/replaced-webhook"
)

// Finalizer guards deletion of the Twilio webhook.
const Finalizer = "conversations.twilio-operator.io/finalizer"
