//go:build live

package live

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// env is the suite's configuration, read once by TestMain.
var env struct {
	apiURL  string
	creds   twilio.Credentials
	flowSid string
}

func TestMain(m *testing.M) {
	get := func(k string) string { return strings.TrimSpace(os.Getenv(k)) }
	env.creds = twilio.Credentials{
		AccountSid: get("TWILIO_ACCOUNT_SID"), AuthToken: get("TWILIO_AUTH_TOKEN"),
		APIKeySid: get("TWILIO_API_KEY"), APIKeySecret: get("TWILIO_API_SECRET"),
	}
	hasKey := env.creds.APIKeySid != "" && env.creds.APIKeySecret != ""
	if env.creds.AccountSid == "" || (!hasKey && env.creds.AuthToken == "") {
		fmt.Println("SKIP: no Twilio credentials")
		os.Exit(0)
	}
	if hasKey {
		env.creds.AuthToken = "" // the API key is preferred, as in the operator
	} else {
		env.creds.APIKeySid, env.creds.APIKeySecret = "", ""
	}
	env.apiURL = get("TWILIO_API_URL")
	if env.apiURL == "" {
		env.apiURL = twilio.DefaultBaseURL
	}
	env.flowSid = get("TWILIO_FLOW_SID")
	fmt.Printf("live contract suite: %s, %s\n", env.apiURL, env.creds)
	os.Exit(m.Run())
}
