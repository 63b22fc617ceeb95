package twilio

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Credentials authenticate to one Twilio account: an API key (preferred) or the
// account's auth token. String never shows a secret.
type Credentials struct {
	// AccountSid is the account (AC…) the webhooks belong to.
	AccountSid string
	// AuthToken is the account's auth token; used when no API key is given.
	AuthToken string
	// APIKeySid is an API key (SK…) of the account.
	APIKeySid string
	// APIKeySecret is the API key's secret.
	APIKeySecret string
}

// String names the account and the kind of credential, never a secret.
func (c Credentials) String() string {
	if c.APIKeySid != "" {
		return fmt.Sprintf("account %s, API key %s", c.AccountSid, c.APIKeySid)
	}
	return fmt.Sprintf("account %s, auth token", c.AccountSid)
}

// Validate checks the credentials' shape, as Factory.For uses them: trimmed of
// surrounding whitespace. Its errors name keys, never values.
func (c Credentials) Validate() error {
	c = c.Trimmed()
	switch {
	case c.AccountSid == "":
		return errors.New("accountSid is missing")
	case !accountSidPattern.MatchString(c.AccountSid):
		return errors.New("accountSid is not an AC… SID")
	case c.APIKeySid != "" || c.APIKeySecret != "":
		if !apiKeySidPattern.MatchString(c.APIKeySid) {
			return errors.New("apiKeySid is missing or not an SK… SID")
		}
		if c.APIKeySecret == "" {
			return errors.New("apiKeySecret is missing")
		}
	case c.AuthToken == "":
		return errors.New("neither apiKeySid + apiKeySecret nor authToken is set")
	}
	return nil
}

// Trimmed returns the credentials with surrounding whitespace removed from every value.
func (c Credentials) Trimmed() Credentials {
	return Credentials{
		AccountSid: strings.TrimSpace(c.AccountSid), AuthToken: strings.TrimSpace(c.AuthToken),
		APIKeySid: strings.TrimSpace(c.APIKeySid), APIKeySecret: strings.TrimSpace(c.APIKeySecret),
	}
}

// basicAuthValue is what twilio-go accepts as a Basic-auth user name or password
// (client.validateCredentials in twilio-go v1.31.0): anything else it refuses
// locally, with its errors 21222 and 21224, before sending a request.
var basicAuthValue = regexp.MustCompile(`^[a-zA-Z0-9]*$`)

// checkSendable refuses credentials twilio-go would refuse before sending. The
// error names the Secret key, never the value.
func (c Credentials) checkSendable() error {
	userKey, passKey := "accountSid", "authToken"
	if c.APIKeySid != "" {
		userKey, passKey = "apiKeySid", "apiKeySecret"
	}
	user, pass := c.basicAuth()
	refuse := func(key string, code int) error {
		return &APIError{
			Operation: OpCredentials, Code: code,
			Message: key + " contains characters other than letters and digits (inside the value, after trimming surrounding whitespace): " +
				"the Twilio library refuses it before sending a request",
			MoreInfo: fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code),
		}
	}
	switch {
	case !basicAuthValue.MatchString(user):
		return refuse(userKey, CodeInvalidUsername)
	case !basicAuthValue.MatchString(pass):
		return refuse(passKey, CodeInvalidPassword)
	}
	return nil
}

func (c Credentials) basicAuth() (string, string) {
	if c.APIKeySid != "" {
		return c.APIKeySid, c.APIKeySecret
	}
	return c.AccountSid, c.AuthToken
}

// fingerprint identifies a set of credentials without revealing them.
func (c Credentials) fingerprint() string {
	sum := sha256.Sum256([]byte(c.AccountSid + "\x00" + c.AuthToken + "\x00" + c.APIKeySid + "\x00" + c.APIKeySecret))
	return hex.EncodeToString(sum[:])
}
