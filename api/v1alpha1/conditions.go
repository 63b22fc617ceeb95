package v1alpha1

// Condition types (kstatus-compatible: Flux and Argo CD judge health by them).
const (
	// ConditionReady is True when the webhook exists in Twilio and matches the spec.
	ConditionReady = "Ready"
	// ConditionReconciling is True while the operator converges or retries a transient failure.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when progress needs a person.
	ConditionStalled = "Stalled"
	// ConditionSynced (managementPolicy Observe) is True when Twilio matches the
	// spec, False with reason DriftDetected naming each differing field.
	ConditionSynced = "Synced"
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
	// ReasonDriftDetected (Synced=False): Twilio differs from the spec; the operator observes only.
	ReasonDriftDetected = "DriftDetected"
	// ReasonInSync (Synced=True): Twilio matches the spec.
	ReasonInSync = "InSync"
	// ReasonNotFound (Observe): the webhook does not exist in Twilio; nothing is created.
	ReasonNotFound = "NotFound"
	// ReasonObserving (Observe, Ready=True): the webhook exists; the operator only reads it.
	ReasonObserving = "Observing"
	// ReasonVerified (account Ready=True): Twilio accepted the credentials.
	ReasonVerified = "Verified"
	// ReasonAccountNotFound: the account the object names (or the default) does not exist.
	ReasonAccountNotFound = "AccountNotFound"
	// ReasonAccountNotAllowed: the ClusterTwilioAccount's conditions do not allow this namespace.
	ReasonAccountNotAllowed = "AccountNotAllowed"
	// ReasonAccountNotReady: the account's credentials are not verified yet; the object waits.
	ReasonAccountNotReady = "AccountNotReady"
	// ReasonAccountChanged: the account resolves to another Twilio account than
	// the one the webhook was recorded in; the operator never recreates it there.
	ReasonAccountChanged = "AccountChanged"
	// ReasonInvalidAnnotation: an annotation's value is malformed; nothing is sent to Twilio.
	ReasonInvalidAnnotation = "InvalidAnnotation"
	// ReasonInvalidStatus: the operator's record in status is malformed (edited
	// by hand); nothing is sent to Twilio.
	ReasonInvalidStatus = "InvalidStatus"
)

// Annotations (prefix conversations.twilio-operator.io/).
const (
	// AnnotationWebhookSid holds the managed WH… SID; set by a user it adopts that webhook.
	AnnotationWebhookSid = "conversations.twilio-operator.io/webhook-sid"
	// AnnotationCreatePending holds the RFC 3339 time a create was started and not yet recorded.
	AnnotationCreatePending = "conversations.twilio-operator.io/create-pending"
	// AnnotationCreatePendingSpec was written by earlier versions next to
	// create-pending. It is no longer obeyed (status.pendingCreate replaced it):
	// the operator reports it in a Warning event and removes it.
	AnnotationCreatePendingSpec = "conversations.twilio-operator.io/create-pending-spec"
	// AnnotationPaused set to "true" stops all calls to Twilio.
	AnnotationPaused = "conversations.twilio-operator.io/paused"
	// AnnotationPollInterval overrides --sync-period for this object (Go duration, floor 30s).
	AnnotationPollInterval = "conversations.twilio-operator.io/poll-interval"
	// AnnotationReplacedWebhook was written by earlier versions for the webhook a
	// replacement superseded. Being user-writable, it is no longer obeyed
	// (status.supersededWebhook replaced it): the operator reports it in a
	// Warning event naming the webhook, and removes it.
	AnnotationReplacedWebhook = "conversations.twilio-operator.io/replaced-webhook"
)

// Finalizer guards deletion of the Twilio webhook.
const Finalizer = "conversations.twilio-operator.io/finalizer"
