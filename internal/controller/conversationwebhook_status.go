package controller

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// setReady records a converged object: Ready=True/Available, Reconciling and
// Stalled removed, lastSyncTime now.
func setReady(st *v1alpha1.ConversationWebhookStatus, generation int64, now metav1.Time) {
	st.ObservedGeneration = generation
	st.LastSyncTime = &now
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonAvailable,
		Message: fmt.Sprintf("Webhook %s matches the spec", st.Sid), ObservedGeneration: generation,
	})
	meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionReconciling)
	meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionStalled)
	meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionSynced)
}

// setObserved records an observed webhook (managementPolicy Observe): it
// exists, so Ready=True/Observing; drift is reported in Synced, not here, since
// the object is doing what it was told (kstatus: Current).
func setObserved(st *v1alpha1.ConversationWebhookStatus, generation int64, now metav1.Time) {
	st.ObservedGeneration = generation
	st.LastSyncTime = &now
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonObserving,
		Message:            fmt.Sprintf("Webhook %s exists; managementPolicy Observe: read only, see the Synced condition", st.Sid),
		ObservedGeneration: generation,
	})
	meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionReconciling)
	meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionStalled)
}

// setObservedNotFound records that an observed webhook does not exist
// (managementPolicy Observe creates nothing): Ready=False and Stalled=True
// with reason NotFound, Synced False.
func setObservedNotFound(st *v1alpha1.ConversationWebhookStatus, generation int64) {
	msg := "No webhook found in Twilio (by the webhook-sid annotation, or matching the spec); managementPolicy Observe creates nothing"
	setStalled(st, generation, v1alpha1.ReasonNotFound, msg)
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionSynced, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonNotFound,
		Message: msg, ObservedGeneration: generation,
	})
}

// setSynced records how the observed webhook differs from the spec
// (managementPolicy Observe): Synced=True/InSync, or False/DriftDetected
// naming each field as "field: spec → Twilio".
func setSynced(st *v1alpha1.ConversationWebhookStatus, generation int64, drift []string) {
	c := metav1.Condition{Type: v1alpha1.ConditionSynced, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonInSync,
		Message: "Twilio matches the spec", ObservedGeneration: generation}
	if len(drift) > 0 {
		c.Status, c.Reason = metav1.ConditionFalse, v1alpha1.ReasonDriftDetected
		c.Message = "Twilio differs from the spec (spec → Twilio): " + strings.Join(drift, "; ")
	}
	meta.SetStatusCondition(&st.Conditions, c)
}

// setProgressing records work still under way or a transient failure that will
// be retried: Ready=False and Reconciling=True with the phase as reason.
func setProgressing(st *v1alpha1.ConversationWebhookStatus, generation int64, phase, message string) {
	st.ObservedGeneration = generation
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: phase,
		Message: message, ObservedGeneration: generation,
	})
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReconciling, Status: metav1.ConditionTrue, Reason: phase,
		Message: message, ObservedGeneration: generation,
	})
	meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionStalled)
}

// setStalled records a failure only a person can fix: Ready=False and
// Stalled=True with the same reason, Reconciling removed.
func setStalled(st *v1alpha1.ConversationWebhookStatus, generation int64, reason, message string) {
	st.ObservedGeneration = generation
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: reason,
		Message: message, ObservedGeneration: generation,
	})
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionStalled, Status: metav1.ConditionTrue, Reason: reason,
		Message: message, ObservedGeneration: generation,
	})
	meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionReconciling)
}

// setPaused records that the paused annotation stops all calls to Twilio.
func setPaused(st *v1alpha1.ConversationWebhookStatus, generation int64) {
	st.ObservedGeneration = generation
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonPaused,
		Message:            "Reconciliation is paused by the " + v1alpha1.AnnotationPaused + " annotation; Twilio is not called",
		ObservedGeneration: generation,
	})
	meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionReconciling)
	meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionStalled)
}

// recordWebhook copies what Twilio returned into status. Twilio may leave
// replay_after out of its answers: then the value the webhook was created with
// (sent, or already recorded for this SID) is kept.
func recordWebhook(st *v1alpha1.ConversationWebhookStatus, wh *twilio.Webhook, sentReplayAfter *int32) {
	replay := wh.Configuration.ReplayAfter
	if replay == nil {
		replay = sentReplayAfter
	}
	if replay == nil && twilio.CanonicalSid(st.Sid) == twilio.CanonicalSid(wh.Sid) && st.Configuration != nil {
		replay = st.Configuration.ReplayAfter
	}
	if wh.AccountSid != "" || twilio.CanonicalSid(st.Sid) != twilio.CanonicalSid(wh.Sid) {
		// An answer without account_sid never erases the account recorded
		// for the same webhook.
		st.AccountSid = wh.AccountSid
	}
	st.Sid = wh.Sid
	st.ConversationSid = wh.ConversationSid
	st.ServiceSid = wh.ServiceSid
	st.Target = wh.Target
	st.ResourceURL = wh.URL
	st.Configuration = &v1alpha1.WebhookConfiguration{
		URL: wh.Configuration.URL, Method: wh.Configuration.Method, Filters: wh.Configuration.Filters,
		Triggers: wh.Configuration.Triggers, FlowSid: wh.Configuration.FlowSid, ReplayAfter: replay,
	}
	st.DateCreated = timeOrNil(wh.DateCreated)
	st.DateUpdated = timeOrNil(wh.DateUpdated)
}

func timeOrNil(t time.Time) *metav1.Time {
	if t.IsZero() {
		return nil
	}
	tt := metav1.NewTime(t.UTC())
	return &tt
}
