//go:build live

package live

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// targetCase is one target's create and update.
type targetCase struct {
	target string
	create twilio.Configuration
	update twilio.Configuration
	// keep is an update that sends no filters and no triggers: what it keeps.
	keep twilio.Configuration
}

func targetCases() []targetCase {
	zero := int32(0)
	cases := []targetCase{
		{
			target: "webhook",
			create: twilio.Configuration{URL: "https://example.com/cwh-live/webhook", Method: "GET",
				Filters: []string{"onMessageAdded", "onParticipantAdded"}, ReplayAfter: &zero},
			update: twilio.Configuration{URL: "https://example.com/cwh-live/webhook/v2", Method: "POST", Filters: []string{"onMessageRemoved"}},
			keep:   twilio.Configuration{URL: "https://example.com/cwh-live/webhook/v3"},
		},
		{
			target: "trigger",
			create: twilio.Configuration{URL: "https://example.com/cwh-live/trigger", Method: "POST", Triggers: []string{"cwhliveone", "cwhlivetwo"}},
			update: twilio.Configuration{URL: "https://example.com/cwh-live/trigger/v2", Method: "GET", Triggers: []string{"cwhlivethree"}},
			keep:   twilio.Configuration{URL: "https://example.com/cwh-live/trigger/v3"},
		},
	}
	if env.flowSid == "" {
		fmt.Println("SKIP studio: TWILIO_FLOW_SID (an FW… Studio Flow SID) is not set")
		return cases
	}
	return append(cases, targetCase{
		target: "studio",
		create: twilio.Configuration{FlowSid: env.flowSid},
		update: twilio.Configuration{FlowSid: env.flowSid},
	})
}

// TestWebhookContract creates, fetches, lists, updates and deletes a webhook of
// each target in a throwaway conversation and checks every answer.
func TestWebhookContract(t *testing.T) {
	for _, tc := range targetCases() {
		t.Run(tc.target, func(t *testing.T) {
			s := newSuite(t)
			scope := s.conversation()
			s.lifecycle(scope, tc)
		})
	}
}

func (s *suite) lifecycle(scope twilio.Scope, tc targetCase) {
	ctx, name := s.t.Context(), tc.target
	created, err := s.api.CreateWebhook(ctx, scope, twilio.CreateWebhookInput{Target: tc.target, Configuration: tc.create})
	s.assume(name+"/create-succeeds", err == nil, true, "%v", errOrStatus(err, s.rec.last()))
	if err != nil {
		if twilio.IsIncompleteCreate(err) {
			s.t.Logf("the create may have made a webhook: the conversation's deletion removes it")
		}
		s.t.FailNow()
	}
	rawSid, _ := rawWebhook(s.rec.last(), "")["sid"].(string)
	s.created(scope, created.Sid)
	s.assume(name+"/create-answers-sid", twilio.IsWebhookSid(created.Sid), true, "sid %q", created.Sid)
	// An absent or null field is tolerated (Webhook.Has); a present one must be right.
	s.assume(name+"/create-answers-target", !created.Has(twilio.FieldTarget) || created.Target == tc.target, true,
		"target %q (answered: %v)", created.Target, created.Has(twilio.FieldTarget))
	// Read from the raw answer: the client refuses one naming another
	// conversation (and fills an absent one), so the decoded value is always the request's.
	rawConv, answered := rawWebhook(s.rec.last(), "")["conversation_sid"].(string)
	s.assume(name+"/create-answers-conversation-sid", !answered || strings.EqualFold(rawConv, scope.ConversationSid), true,
		"conversation_sid %q (answered: %v)", rawConv, answered)
	s.checkAnswer(name+"/create", scope, s.rec.last(), created, tc.target, tc.create)
	// The operator compares SIDs in canonical form (hex digits in lower case)
	// and sends that form in paths: fetch-succeeds below relies on it reaching
	// the webhook. These two say why it does (Twilio writes lower case, or its
	// paths ignore case).
	s.assume(name+"/sid-in-lower-case", rawSid == twilio.CanonicalSid(rawSid), false, "sid %q", rawSid)
	upper := created.Sid[:2] + strings.ToUpper(created.Sid[2:])
	_, err = s.api.FetchWebhook(ctx, scope, upper)
	s.assume(name+"/sid-path-ignores-case", err == nil, false, "fetch of %s: %v", upper, errOrStatus(err, s.rec.last()))

	fetched, err := s.api.FetchWebhook(ctx, scope, created.Sid)
	s.assume(name+"/fetch-succeeds", err == nil, true, "%v", errOrStatus(err, s.rec.last()))
	if err == nil {
		s.checkAnswer(name+"/fetch", scope, s.rec.last(), fetched, tc.target, tc.create)
	}

	list, err := s.api.ListWebhooks(ctx, scope)
	var listed *twilio.Webhook
	for i := range list {
		if list[i].Sid == created.Sid {
			listed = &list[i]
		}
	}
	s.assume(name+"/list-contains-it", err == nil && listed != nil, true, "%d webhooks, %v", len(list), errOrStatus(err, s.rec.last()))
	if listed != nil {
		s.checkAnswer(name+"/list", scope, s.rec.last(), listed, tc.target, tc.create)
	}

	updated, err := s.api.UpdateWebhook(ctx, scope, created.Sid, tc.update)
	s.assume(name+"/update-succeeds", err == nil, true, "%v", errOrStatus(err, s.rec.last()))
	if err == nil {
		s.checkAnswer(name+"/update", scope, s.rec.last(), updated, tc.target, tc.update)
		if again, err := s.api.FetchWebhook(ctx, scope, created.Sid); err == nil {
			s.checkAnswer(name+"/fetch-after-update", scope, s.rec.last(), again, tc.target, tc.update)
		}
	}
	if tc.keep.URL != "" {
		s.updateKeeps(scope, created.Sid, tc)
	}
	s.deleted(scope, created.Sid, name)
}

// updateKeeps sends an update without filters and triggers: Twilio cannot take an
// empty list as form fields, so the operator assumes it keeps both.
func (s *suite) updateKeeps(scope twilio.Scope, sid string, tc targetCase) {
	kept, err := s.api.UpdateWebhook(s.t.Context(), scope, sid, tc.keep)
	if err != nil {
		s.assume(tc.target+"/update-without-filters-keeps-them", false, true, "%v", err)
		return
	}
	holds := sameSet(kept.Configuration.Filters, tc.update.Filters) && sameSet(kept.Configuration.Triggers, tc.update.Triggers)
	s.assume(tc.target+"/update-without-filters-keeps-them", holds, true,
		"filters %v triggers %v after sending none; before %v / %v", kept.Configuration.Filters, kept.Configuration.Triggers,
		tc.update.Filters, tc.update.Triggers)
}

// deleted deletes the webhook and checks what Twilio says about it afterwards.
func (s *suite) deleted(scope twilio.Scope, sid, name string) {
	ctx := s.t.Context()
	err := s.api.DeleteWebhook(ctx, scope, sid)
	x := s.rec.last()
	// The client takes a delete as done only on 204 No Content (a proxy's 200
	// page is not Twilio's answer), as Twilio's spec shows.
	s.assume(name+"/delete-answers-204-no-content", x.status == http.StatusNoContent, true, "HTTP %d", x.status)
	s.assume(name+"/delete-succeeds", err == nil, true, "HTTP %d %v", x.status, err)
	_, err = s.api.FetchWebhook(ctx, scope, sid)
	x = s.rec.last()
	s.assume(name+"/fetch-of-deleted-is-twilio-not-found", twilio.IsNotFound(err), true,
		"HTTP %d, code %d, content type %q: %v", x.status, codeOf(err), x.contentType, err)
	s.assume(name+"/not-found-is-json", strings.HasPrefix(x.contentType, "application/json"), false, "content type %q", x.contentType)
	err = s.api.DeleteWebhook(ctx, scope, sid)
	x = s.rec.last()
	s.assume(name+"/delete-of-deleted-is-twilio-not-found", twilio.IsNotFound(err), true,
		"HTTP %d, code %d, content type %q", x.status, codeOf(err), x.contentType)
}

// checkAnswer checks one answer: the fields the operator compares (relied on),
// and the shape it was in (observations).
func (s *suite) checkAnswer(name string, scope twilio.Scope, x exchange, wh *twilio.Webhook, target string, want twilio.Configuration) {
	got := wh.Configuration
	var diffs, missing []string
	check := func(field string, sent, same bool, value string) {
		switch {
		case !sent:
		case !wh.Has(field):
			missing = append(missing, field)
		case !same:
			diffs = append(diffs, field+" "+value)
		}
	}
	check(twilio.FieldURL, want.URL != "", got.URL == want.URL, got.URL)
	check(twilio.FieldMethod, want.Method != "", strings.EqualFold(got.Method, want.Method), got.Method)
	check(twilio.FieldFilters, want.Filters != nil, sameSet(got.Filters, want.Filters), compact(got.Filters))
	check(twilio.FieldTriggers, want.Triggers != nil, sameSet(got.Triggers, want.Triggers), compact(got.Triggers))
	check(twilio.FieldFlowSid, want.FlowSid != "", strings.EqualFold(got.FlowSid, want.FlowSid), got.FlowSid)
	configuration := compact(rawWebhook(x, wh.Sid)["configuration"])
	// A field answered must read as sent (relied on); one not answered cannot
	// be compared, so the operator never acts on it (an observation).
	s.assume(name+"/configuration-reads-as-sent", len(diffs) == 0, true, "HTTP %d, differs: %v, configuration %s",
		x.status, diffs, configuration)
	s.assume(name+"/configuration-answers-every-field-sent", len(missing) == 0, false, "not answered: %v, configuration %s",
		missing, configuration)

	raw := rawWebhook(x, wh.Sid)
	cfg, _ := raw["configuration"].(map[string]interface{})
	if want.Method != "" {
		m, _ := cfg["method"].(string)
		s.assume(name+"/method-in-lower-case", m == strings.ToLower(m) && m != "", false, "method %q", m)
	}
	if target == "trigger" {
		_, underTriggers := cfg["triggers"]
		s.assume(name+"/keywords-under-triggers", underTriggers && cfg["triggers"] != nil, false,
			"configuration keys %v, filters %s, triggers %s", keys(cfg), compact(cfg["filters"]), compact(cfg["triggers"]))
	}
	if want.ReplayAfter != nil {
		_, returned := cfg["replay_after"]
		s.assume(name+"/replay-after-returned", returned, false, "replay_after %s", compact(cfg["replay_after"]))
	}
	// status.accountSid records it, and AccountChanged compares it with the
	// account SID GET /v1/Configuration verified (which the client acts for):
	// another would stall every object on its next reconcile (relied on). An
	// absent or null one is taken to be the client's (an observation).
	s.assume(name+"/account-sid-answered", wh.Has(twilio.FieldAccountSid), false, "account_sid %s", compact(raw["account_sid"]))
	s.assume(name+"/account-sid-is-the-verified-account", wh.AccountSid == s.api.AccountSid(), true,
		"account_sid %s, verified %s", compact(raw["account_sid"]), s.api.AccountSid())
	n := nulls(raw)
	s.assume(name+"/no-null-fields", len(n) == 0, false, "null %v, absent %v", n, wh.Absent())
	if scope.ServiceSid == "" {
		s.assume(name+"/conversation-sid-answered", wh.Has(twilio.FieldConversationSid), false, "conversation_sid %s", compact(raw["conversation_sid"]))
	}
}

func keys(m map[string]interface{}) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func codeOf(err error) int {
	if e := twilio.AsAPIError(err); e != nil {
		return e.Code
	}
	return 0
}

func errOrStatus(err error, x exchange) string {
	if err != nil {
		return err.Error()
	}
	return "HTTP " + strconv.Itoa(x.status)
}
