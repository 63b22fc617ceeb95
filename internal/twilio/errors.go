package twilio

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Twilio error codes the operator treats specially.
const (
	CodePermissionDenied         = 20003
	CodeNotFound                 = 20404
	CodeTooManyRequests          = 20429
	CodeConversationNotFound     = 50350
	CodeWebhookNotFound          = 50360
	CodeTooManyConversationHooks = 50361
	// CodeInvalidUsername is twilio-go's local refusal (made before anything is
	// sent) of a Basic-auth user name that is not only letters and digits.
	CodeInvalidUsername = 21222
	// CodeInvalidPassword is twilio-go's local refusal (made before anything is
	// sent) of a Basic-auth password that is not only letters and digits.
	CodeInvalidPassword = 21224
	codeUnknown         = 0
	retryAfterHeader    = "Retry-After"
)

// OpCredentials is the operation named by an error about the credentials
// themselves, found before any request was sent.
const OpCredentials = "credentials"

// Classes of failures that carry no Twilio error code, kept in APIError.Err.
var (
	// errNotTwilio: the answer did not come from Twilio's API (not its JSON, or
	// JSON without a Twilio error code, or a redirect).
	errNotTwilio = errors.New("the answer is not from Twilio's API")
	// errIncompleteCreate: a create was answered 2xx without a usable webhook SID.
	errIncompleteCreate = errors.New("create answered without a usable webhook SID")
	// errMalformedAnswer: a 2xx answer whose webhook SID is missing or malformed.
	errMalformedAnswer = errors.New("answer without a usable webhook SID")
	// errNetwork: no answer arrived.
	errNetwork = errors.New("network")
)

// notTwilioHint names the usual causes of an answer that is not Twilio's.
const notTwilioHint = "check --twilio-api-url (scheme, host and path prefix), or a proxy or load balancer in front of Twilio"

// APIError is a failed Twilio request: an HTTP error answer, or no usable answer at all.
// It never carries credentials: only the operation, Twilio's code and message, and
// the HTTP status.
type APIError struct {
	// Operation is the client operation: create, fetch, update, delete, list, or
	// credentials (OpCredentials) when the credentials were refused before sending.
	Operation string
	// Status is the HTTP status, or 0 when no answer arrived (network error,
	// timeout, credentials refused before sending).
	Status int
	// Code is Twilio's error code, or 0 when the answer had none.
	Code int
	// Message is Twilio's error message, or a description of the failure.
	Message string
	// MoreInfo is Twilio's link to the error's documentation.
	MoreInfo string
	// ContentType is the answer's Content-Type header, when an answer arrived.
	ContentType string
	// RetryAfter is the wait the Retry-After header asked for, or 0.
	RetryAfter time.Duration
	// Err is the underlying error for network failures and unusable answers.
	Err error
}

// Error describes the failure with Twilio's code and message. An answer that is
// not Twilio's names its likely cause: the --twilio-api-url flag or a proxy.
func (e *APIError) Error() string {
	switch {
	case e.Operation == OpCredentials:
		return fmt.Sprintf("twilio credentials: error %d: %s", e.Code, e.Message)
	case e.Status == 0:
		return fmt.Sprintf("twilio %s: request failed: %s", e.Operation, e.Message)
	case errors.Is(e.Err, errNotTwilio) || (e.Code == codeUnknown && e.Status >= 400 && e.Err == nil):
		ct := e.ContentType
		if ct == "" {
			ct = "no content type"
		}
		return fmt.Sprintf("twilio %s: HTTP %d (%s): %s: the answer is not from Twilio's API; %s",
			e.Operation, e.Status, ct, e.Message, notTwilioHint)
	case e.Code == codeUnknown:
		return fmt.Sprintf("twilio %s: HTTP %d: %s", e.Operation, e.Status, e.Message)
	default:
		return fmt.Sprintf("twilio %s: HTTP %d, error %d: %s", e.Operation, e.Status, e.Code, e.Message)
	}
}

// Unwrap returns the underlying error, if any.
func (e *APIError) Unwrap() error { return e.Err }

// AsAPIError returns the *APIError in err's chain, or nil.
func AsAPIError(err error) *APIError {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr
	}
	return nil
}

// IsNotTwilioAnswer reports whether the answer did not come from Twilio's API:
// an error status whose body is not JSON or carries no Twilio error code (an HTML
// page from a proxy, a wrong --twilio-api-url path), a redirect, or a success
// status whose body is not JSON. Such an answer says nothing about the webhook:
// it is transient, never "not found" and never "unauthorized".
func IsNotTwilioAnswer(err error) bool {
	e := AsAPIError(err)
	return e != nil && (errors.Is(e.Err, errNotTwilio) ||
		(e.Status >= 400 && e.Code == codeUnknown && e.Err == nil))
}

// IsIncompleteCreate reports whether a create was answered 2xx without a usable
// webhook SID (absent, null, not WH + 32 hex digits, or a body that is not JSON).
// The webhook may exist: find it by listing the conversation's webhooks, never by
// creating again. It is retryable, never terminal.
func IsIncompleteCreate(err error) bool {
	e := AsAPIError(err)
	return e != nil && errors.Is(e.Err, errIncompleteCreate)
}

// twilioSaid reports whether the error is Twilio's own answer: an error status
// with Twilio's JSON error body and code.
func twilioSaid(e *APIError) bool {
	return e != nil && e.Status >= 400 && e.Code != codeUnknown && !errors.Is(e.Err, errNotTwilio)
}

// IsNotFound reports whether Twilio says the webhook does not exist: HTTP 404
// whose body is Twilio's error JSON with code 20404 or 50360. Any other 404 (a
// proxy's HTML page, a wrong --twilio-api-url path, JSON without a code) is not
// this: see IsNotTwilioAnswer. A missing conversation (50350) is not this either:
// see IsConversationNotFound.
func IsNotFound(err error) bool {
	e := AsAPIError(err)
	return twilioSaid(e) && e.Status == http.StatusNotFound &&
		(e.Code == CodeNotFound || e.Code == CodeWebhookNotFound)
}

// IsConversationNotFound reports whether Twilio says the conversation or service
// does not exist: its error JSON with code 50350 on a client error (4xx); the
// code on a 5xx says nothing certain.
func IsConversationNotFound(err error) bool {
	e := AsAPIError(err)
	return twilioSaid(e) && e.Code == CodeConversationNotFound && e.Status >= 400 && e.Status < 500
}

// IsUnauthorized reports whether the credentials were rejected: by Twilio (its
// error JSON with code 20003, or a 401 with Twilio's error JSON), or by twilio-go
// before anything was sent (codes 21222 and 21224, Operation OpCredentials). A
// 401 that is not Twilio's JSON (an authenticating proxy) is not this: see
// IsNotTwilioAnswer.
func IsUnauthorized(err error) bool {
	e := AsAPIError(err)
	if e == nil {
		return false
	}
	if e.Operation == OpCredentials || (e.Status == 0 && (e.Code == CodeInvalidUsername || e.Code == CodeInvalidPassword)) {
		return true
	}
	return twilioSaid(e) && (e.Status == http.StatusUnauthorized || e.Code == CodePermissionDenied)
}

// IsRateLimited reports whether the request was refused for its rate (HTTP 429,
// whoever answered it, or Twilio code 20429). Such a request was never
// processed, so it is always safe to repeat.
func IsRateLimited(err error) bool {
	e := AsAPIError(err)
	return e != nil && (e.Status == http.StatusTooManyRequests || (twilioSaid(e) && e.Code == CodeTooManyRequests))
}

// IsLimitReached reports whether Twilio says the conversation already has five
// webhooks (code 50361).
func IsLimitReached(err error) bool {
	e := AsAPIError(err)
	return twilioSaid(e) && e.Code == CodeTooManyConversationHooks
}

// IsRetryable reports whether a later attempt may succeed: rate limiting, 5xx,
// answers that are not Twilio's (IsNotTwilioAnswer), 2xx answers without a usable
// SID (IsIncompleteCreate among them), timeouts and connection errors. Credentials
// refused before sending are not retryable.
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
	switch {
	case IsUnauthorized(e):
		return false
	case IsRateLimited(e), IsNotTwilioAnswer(e), e.Status == 0, e.Status >= http.StatusInternalServerError:
		return true
	default:
		// A 2xx or 3xx that could not be used, or a 4xx without a Twilio code.
		return e.Status < 400 || e.Code == codeUnknown
	}
}

// IsTerminal reports whether the request was refused for a reason only a person can
// fix: Twilio's 4xx other than 429, or credentials refused before sending.
// Repeating it unchanged cannot succeed.
func IsTerminal(err error) bool {
	e := AsAPIError(err)
	if e == nil || IsRetryable(e) {
		return false
	}
	return IsUnauthorized(e) || (e.Status >= 400 && e.Status < 500)
}

// RetryAfter returns the wait Twilio asked for in a Retry-After header, or 0.
func RetryAfter(err error) time.Duration {
	if e := AsAPIError(err); e != nil {
		return e.RetryAfter
	}
	return 0
}

// maxRetryAfter is the longest wait a Retry-After header is read as: a larger
// number of seconds would overflow a time.Duration, and the reconciler waits
// no longer than the object's poll period anyway.
const maxRetryAfter = 24 * time.Hour

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date,
// at most maxRetryAfter.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if strings.Trim(v, "0123456789") == "" {
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil || secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter // past what an int64 holds, or past a day
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), maxRetryAfter)
	}
	return 0
}

// IsNotSent reports whether a call made WithSendBy sent nothing because its
// time to start had passed.
func IsNotSent(err error) bool {
	return errors.Is(err, ErrNotSent)
}

// IsAccountBusy reports whether a call made WithoutWaiting found every request
// slot of the account in use and sent nothing.
func IsAccountBusy(err error) bool {
	return errors.Is(err, ErrAccountBusy)
}
