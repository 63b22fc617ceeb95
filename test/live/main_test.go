//go:build live

// Package live is the live contract suite (make test-live): it runs the
// operator's own Twilio client against the real Conversations API and prints,
// one line per assumption, whether each answer field the operator relies on
// looks the way the operator expects:
//
//	ASSUMPTION <name>: HOLDS|FAILS (observed …)
//
// A failing assumption the operator relies on fails the suite; the others are
// observations (which key holds trigger keywords, the case of method, which
// fields come back null) that tell which of the shapes the client reads the real
// API uses.
//
// Without TWILIO_ACCOUNT_SID and either TWILIO_API_KEY + TWILIO_API_SECRET or
// TWILIO_AUTH_TOKEN it prints "SKIP: no Twilio credentials" and exits 0.
// TWILIO_API_URL replaces https://conversations.twilio.com; TWILIO_FLOW_SID (FW…)
// enables the studio target. Everything it creates (a throwaway conversation
// per test and the webhooks in it) is deleted at the end, even when a step fails.
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
