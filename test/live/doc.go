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
//
// Run it with make test-live, or go test -tags live ./test/live/ -count=1 -v.
// This file has no build tag so that the package exists for go build ./...;
// every test file needs the live tag.
package live
