package controller

import (
	"errors"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// phaseError carries the phase a failure happened in (the Ready reason).
type phaseError struct {
	phase string
	err   error
}

func (e *phaseError) Error() string { return e.err.Error() }
func (e *phaseError) Unwrap() error { return e.err }

func inPhase(phase string, err error) error {
	if err == nil {
		return nil
	}
	var pe *phaseError
	if errors.As(err, &pe) {
		return err
	}
	return &phaseError{phase: phase, err: err}
}

// phaseOf names the phase of a failure: the one it carries, else Creating for an
// object without a webhook and Updating for one with a webhook.
func phaseOf(obj *v1alpha1.ConversationWebhook, err error) string {
	var pe *phaseError
	if errors.As(err, &pe) {
		return pe.phase
	}
	if obj.Status.Sid == "" {
		return v1alpha1.ReasonCreating
	}
	return v1alpha1.ReasonUpdating
}

// stalledError is a failure only a person can fix, with its condition reason.
type stalledError struct {
	reason string
	err    error
}

func (e *stalledError) Error() string { return e.err.Error() }
func (e *stalledError) Unwrap() error { return e.err }

func stalled(reason string, err error) error { return &stalledError{reason: reason, err: err} }

// classify maps a failure to its condition: terminal failures get a Stalled
// reason; everything else is transient and retried.
func classify(err error) (reason string, terminal bool) {
	var se *stalledError
	switch {
	case errors.As(err, &se):
		return se.reason, true
	case twilio.IsUnauthorized(err):
		return v1alpha1.ReasonCredentialsInvalid, true
	case twilio.IsConversationNotFound(err):
		return v1alpha1.ReasonConversationNotFound, true
	case twilio.IsLimitReached(err):
		return v1alpha1.ReasonWebhookLimitReached, true
	case twilio.IsTerminal(err):
		return v1alpha1.ReasonConfigurationRejected, true
	default:
		return "", false
	}
}
