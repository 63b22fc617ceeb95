package twilio

import (
	"context"
	"net/http"

	conversations "github.com/twilio/twilio-go/rest/conversations/v1"
)

// OpVerify is the operation that checks credentials (GET /v1/Configuration).
const OpVerify = "verify"

// VerifyAccount checks credentials with Twilio: it fetches the account's
// Conversations configuration (GET /v1/Configuration) and returns the account
// SID Twilio answers with — the account every request made with these
// credentials acts for, whatever the credentials claim. A rejected credential
// is an *APIError for which IsUnauthorized is true.
func (f *Factory) VerifyAccount(ctx context.Context, creds Credentials) (string, error) {
	creds = creds.Trimmed()
	if err := creds.Validate(); err != nil {
		return "", err
	}
	if err := creds.checkSendable(); err != nil {
		return "", err
	}
	// Its own limiter: a Secret that claims another account's SID must not
	// spend that account's budget before Twilio says which account it is.
	c := &Client{factory: f, creds: creds, fingerprint: creds.fingerprint(),
		limiter: newAccountLimiter(Limits{MaxInFlight: 1, RequestsPerSecond: 1}, 1, f.opts.Now, nil)}
	var sid string
	err := c.do(ctx, OpVerify, func(svc *conversations.ApiService) error {
		r, err := svc.FetchConfiguration()
		if err == nil && r != nil {
			sid = deref(r.AccountSid)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	if !accountSidPattern.MatchString(sid) {
		return "", &APIError{Operation: OpVerify, Status: http.StatusBadGateway,
			Message: "Twilio's answer to GET /v1/Configuration has no usable account_sid"}
	}
	return sid, nil
}
