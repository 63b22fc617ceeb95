package twilio

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Twilio error codes the operator treats specially.
const (
	CodePermissionDenied          = 20003
	CodeNotFound                  = 20404
	CodeTooManyRequests           = 20429
	CodeConversationNotFound      = 50350
	CodeWebhookNotFound           = 50360
	CodeTooManyConversationHooks  = 50361
	codeUnknown                   = 0
	retryAfterHeader              = "Retry-After"
	errorClassNetwork             = "network"
	errorClassUndecodableResponse = "undecodable"
)

// APIError is a failed Twilio request: an HTTP error answer, or no usable answer at all.
// It never carries credentials: only the operation, Twilio's code and message, and
// the HTTP status.
type APIError struct {
	// Operation is the client operation: create, fetch, update, delete or list.
	Operation string
	// Status is the HTTP status, or 0 when no answer arrived (network error, timeout).
	Status int
	// Code is Twilio's error code, or 0 when the answer had none.
	Code int
	// Message is Twilio's error message, or a description of the failure.
	Message string
	// MoreInfo is Twilio's link to the error's documentation.
	MoreInfo string
	// RetryAfter is the wait the Retry-After header asked for, or 0.
	RetryAfter time.Duration
	// Err is the underlying error for network failures and undecodable answers.
	Err error
}

// Error describes the failure with Twilio's code and message.
func (e *APIError) Error() string {
	switch {
	case e.Status == 0:
		return fmt.Sprintf("twilio %s: request failed: %s", e.Operation, e.Message)
	case e.Code == codeUnknown:
		return fmt.Sprintf("twilio %s: HTTP %d: %s", e.Operation, e.Status, e.Message)
	default:
		return fmt.Sprintf("twilio %s: HTTP %d, error %d: %s", e.Operation, e.Status, e.Code, e.Message)
	}
}

// Unwrap returns the underlying transport error, if any.
func (e *APIError) Unwrap() error { return e.Err }

// AsAPIError returns the *APIError in err's chain, or nil.
func AsAPIError(err error) *APIError {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr
	}
	return nil
}

// IsNotFound reports whether the webhook does not exist (404 with code 20404 or 50360).
// A missing conversation (50350) is not this: see IsConversationNotFound.
func IsNotFound(err error) bool {
	e := AsAPIError(err)
	return e != nil && e.Status == http.StatusNotFound &&
		(e.Code == CodeNotFound || e.Code == CodeWebhookNotFound || e.Code == codeUnknown)
}

// IsConversationNotFound reports whether the conversation or service does not exist (50350).
func IsConversationNotFound(err error) bool {
	e := AsAPIError(err)
	return e != nil && e.Code == CodeConversationNotFound
}

// IsUnauthorized reports whether Twilio rejected the credentials (401, or code 20003).
func IsUnauthorized(err error) bool {
	e := AsAPIError(err)
	return e != nil && (e.Status == http.StatusUnauthorized || e.Code == CodePermissionDenied)
}

// IsRateLimited reports whether Twilio refused the request for its rate (429 or 20429).
// Twilio never processed such a request, so it is always safe to repeat.
func IsRateLimited(err error) bool {
	e := AsAPIError(err)
	return e != nil && (e.Status == http.StatusTooManyRequests || e.Code == CodeTooManyRequests)
}

// IsLimitReached reports whether the conversation already has five webhooks (50361).
func IsLimitReached(err error) bool {
	e := AsAPIError(err)
	return e != nil && e.Code == CodeTooManyConversationHooks
}

// IsRetryable reports whether a later attempt may succeed: rate limiting, 5xx,
// answers that are not Twilio JSON, timeouts and connection errors.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	e := AsAPIError(err)
	if e == nil {
		// Not produced by this client (for example a cancelled context while waiting
		// for the rate limiter): nothing says it is final.
		return true
	}
	return IsRateLimited(e) || e.Status == 0 || e.Status >= http.StatusInternalServerError ||
		(e.Code == codeUnknown && e.Err != nil)
}

// IsTerminal reports whether the request was refused for a reason only a person can
// fix (a 4xx other than 429): repeating it unchanged cannot succeed.
func IsTerminal(err error) bool {
	e := AsAPIError(err)
	return e != nil && !IsRetryable(e) && e.Status >= 400 && e.Status < 500
}

// RetryAfter returns the wait Twilio asked for in a Retry-After header, or 0.
func RetryAfter(err error) time.Duration {
	if e := AsAPIError(err); e != nil {
		return e.RetryAfter
	}
	return 0
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var secs int
	if _, err := fmt.Sscanf(v, "%d", &secs); err == nil && secs >= 0 && fmt.Sprint(secs) == v {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
