package twilio_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

const (
	goodSid = "WH0123456789abcdef0123456789ABCDEF"
	// canonicalSid is goodSid as the client reports it: hex digits in lower case.
	canonicalSid = "WH0123456789abcdef0123456789abcdef"
)

// serveBody answers every request with status and a JSON body.
func serveBody(t *testing.T, status int, body string) (twilio.WebhookAPI, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	f, err := twilio.NewFactory(twilio.Options{BaseURL: srv.URL, MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.For(twilio.Credentials{AccountSid: account, AuthToken: authToken})
	if err != nil {
		t.Fatal(err)
	}
	return c, &calls
}

func TestCreateWithoutUsableSidIsIncomplete(t *testing.T) {
	rest := `"account_sid":"` + account + `","conversation_sid":"` + conv + `","target":"webhook","configuration":{"url":"https://e.com","method":"post","filters":["onMessageAdded"]}`
	cases := map[string]string{
		"sid absent":        `{` + rest + `}`,
		"sid null":          `{"sid":null,` + rest + `}`,
		"sid empty":         `{"sid":"",` + rest + `}`,
		"sid not a WH":      `{"sid":"CH0123456789abcdef0123456789abcdef",` + rest + `}`,
		"sid too short":     `{"sid":"WH123",` + rest + `}`,
		"sid of wrong type": `{"sid":5,` + rest + `}`,
		"body not JSON":     `<html>created?</html>`,
		"body empty":        ``,
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			c, calls := serveBody(t, http.StatusCreated, body)
			wh, err := c.CreateWebhook(t.Context(), twilio.Scope{ConversationSid: conv}, webhookInput())
			if wh != nil || !twilio.IsIncompleteCreate(err) || !twilio.IsRetryable(err) || twilio.IsTerminal(err) ||
				twilio.IsNotFound(err) || twilio.IsUnauthorized(err) {
				t.Fatalf("webhook %+v, error %v: want an incomplete create, retryable, not terminal", wh, err)
			}
			if calls.Load() != 1 {
				t.Fatalf("%d requests: a create must not be repeated", calls.Load())
			}
		})
	}
	t.Run("good sid", func(t *testing.T) {
		c, _ := serveBody(t, http.StatusCreated, `{"sid":"`+goodSid+`",`+rest+`}`)
		wh, err := c.CreateWebhook(t.Context(), twilio.Scope{ConversationSid: conv}, webhookInput())
		if err != nil || wh.Sid != canonicalSid || !wh.Has(twilio.FieldSid) {
			t.Fatalf("%v %+v", err, wh)
		}
	})
}

func TestFetchAndUpdateCheckTheAnsweredSid(t *testing.T) {
	cases := []struct {
		name    string
		body    string
		ok      bool
		wantSid string
	}{
		{"same sid", `{"sid":"` + goodSid + `","target":"webhook"}`, true, canonicalSid},
		{"same sid, hex digits in other case", `{"sid":"WH` + strings.ToUpper(goodSid[2:]) + `","target":"webhook"}`, true, canonicalSid},
		{"same sid, prefix in other case", `{"sid":"` + strings.ToLower(goodSid[:2]) + goodSid[2:] + `","target":"webhook"}`, false, ""},
		{"sid null: the requested one", `{"sid":null,"target":"webhook"}`, true, canonicalSid},
		{"sid absent: the requested one", `{"target":"webhook"}`, true, canonicalSid},
		{"another webhook", `{"sid":"WH00000000000000000000000000000001","target":"webhook"}`, false, ""},
		{"malformed sid", `{"sid":"WHnope","target":"webhook"}`, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, calls := serveBody(t, http.StatusOK, tc.body)
			scope := twilio.Scope{ConversationSid: conv}
			fetched, fetchErr := c.FetchWebhook(t.Context(), scope, goodSid)
			updated, updateErr := c.UpdateWebhook(t.Context(), scope, goodSid, twilio.Configuration{URL: "https://e.com"})
			for op, r := range map[string]struct {
				wh  *twilio.Webhook
				err error
			}{"fetch": {fetched, fetchErr}, "update": {updated, updateErr}} {
				if tc.ok {
					if r.err != nil || r.wh.Sid != tc.wantSid {
						t.Fatalf("%s: %v %+v", op, r.err, r.wh)
					}
					continue
				}
				if r.err == nil || !twilio.IsRetryable(r.err) || twilio.IsTerminal(r.err) || twilio.IsNotFound(r.err) || twilio.IsIncompleteCreate(r.err) {
					t.Fatalf("%s: %v: want a retryable error", op, r.err)
				}
			}
			if !tc.ok && calls.Load() < 3 {
				t.Fatalf("%d requests: an unusable fetch or update answer is retried", calls.Load())
			}
		})
	}
}

func TestListRefusesAWebhookWithoutSid(t *testing.T) {
	page := func(items ...string) string {
		return `{"webhooks":[` + strings.Join(items, ",") + `],"meta":{"page":0,"page_size":5,"key":"webhooks","next_page_url":null}}`
	}
	good := `{"sid":"` + goodSid + `","target":"studio","configuration":{"flow_sid":"` + flow + `"}}`
	c, _ := serveBody(t, http.StatusOK, page(good))
	list, err := c.ListWebhooks(t.Context(), twilio.Scope{ConversationSid: conv})
	if err != nil || len(list) != 1 || list[0].Sid != canonicalSid {
		t.Fatalf("good page: %v %+v", err, list)
	}
	for name, bad := range map[string]string{
		"null sid": `{"sid":null,"target":"studio"}`, "no sid": `{"target":"studio"}`, "bad sid": `{"sid":"WH1","target":"studio"}`,
	} {
		c, _ := serveBody(t, http.StatusOK, page(good, bad))
		list, err := c.ListWebhooks(t.Context(), twilio.Scope{ConversationSid: conv})
		if list != nil || err == nil || !twilio.IsRetryable(err) || twilio.IsTerminal(err) {
			t.Fatalf("%s: %v %+v: want a retryable error, nothing skipped silently", name, err, list)
		}
	}
}

func TestNullAndAbsentFieldsAreReported(t *testing.T) {
	body := `{"sid":"` + goodSid + `","account_sid":"` + account + `","conversation_sid":null,"target":null,` +
		`"url":"https://conversations.twilio.com/x","configuration":{"url":"","method":null,"filters":[],"replay_after":0}}`
	c, _ := serveBody(t, http.StatusOK, body)
	wh, err := c.FetchWebhook(t.Context(), twilio.Scope{ConversationSid: conv}, goodSid)
	if err != nil {
		t.Fatal(err)
	}
	has := map[string]bool{
		twilio.FieldSid: true, twilio.FieldAccountSid: true, twilio.FieldConversationSid: false, twilio.FieldServiceSid: false,
		twilio.FieldTarget: false, twilio.FieldResourceURL: true, twilio.FieldURL: true, twilio.FieldMethod: false,
		twilio.FieldFilters: true, twilio.FieldTriggers: false, twilio.FieldFlowSid: false, twilio.FieldReplayAfter: true,
		"no such field": false,
	}
	for f, want := range has {
		if got := wh.Has(f); got != want {
			t.Errorf("Has(%s) = %v, want %v", f, got, want)
		}
	}
	if wh.Configuration.Filters == nil || len(wh.Configuration.Filters) != 0 || *wh.Configuration.ReplayAfter != 0 {
		t.Errorf("empty filters or replay_after 0 lost: %+v", wh.Configuration)
	}
	if got := wh.Absent(); !slices.Equal(got, []string{twilio.FieldConversationSid, twilio.FieldServiceSid, twilio.FieldTarget,
		twilio.FieldMethod, twilio.FieldTriggers, twilio.FieldFlowSid}) {
		t.Errorf("Absent() = %v", got)
	}
	built := &twilio.Webhook{Sid: goodSid}
	if !built.Has(twilio.FieldTarget) || !built.Has(twilio.FieldReplayAfter) {
		t.Error("a Webhook built by hand must have every field")
	}
	built.MarkAbsent(twilio.FieldTarget)
	if built.Has(twilio.FieldTarget) || !built.Has(twilio.FieldSid) {
		t.Error("MarkAbsent")
	}
	var none *twilio.Webhook
	if none.Has(twilio.FieldSid) {
		t.Error("nil webhook has a sid")
	}
}

func TestTriggerKeywordsInEitherShape(t *testing.T) {
	cases := []struct {
		name        string
		target, cfg string
		filters     []string
		triggers    []string
		hasFilters  bool
		hasTriggers bool
	}{
		{"triggers key", "trigger", `{"url":"https://e.com","triggers":["help","stop"]}`, nil, []string{"help", "stop"}, false, true},
		{"keywords under filters (Twilio's examples)", "trigger", `{"url":"https://e.com","filters":["keyword1","keyword2"]}`,
			[]string{}, []string{"keyword1", "keyword2"}, true, true},
		{"filters mixing events and keywords", "trigger", `{"filters":["onMessageAdded","help"],"triggers":null}`,
			[]string{"onMessageAdded"}, []string{"help"}, true, true},
		{"both keys: read as they are", "trigger", `{"filters":["onMessageAdded"],"triggers":["help"]}`,
			[]string{"onMessageAdded"}, []string{"help"}, true, true},
		{"empty triggers wins over filters", "trigger", `{"filters":["help"],"triggers":[]}`, []string{"help"}, []string{}, true, true},
		{"webhook target keeps filters", "webhook", `{"filters":["onMessageAdded","help"]}`, []string{"onMessageAdded", "help"}, nil, true, false},
		{"target in capitals", "TRIGGER", `{"filters":["help"]}`, []string{}, []string{"help"}, true, true},
		{"neither", "trigger", `{"url":"https://e.com"}`, nil, nil, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"sid":"` + goodSid + `","target":"` + tc.target + `","configuration":` + tc.cfg + `}`
			c, _ := serveBody(t, http.StatusOK, body)
			wh, err := c.FetchWebhook(t.Context(), twilio.Scope{ConversationSid: conv}, goodSid)
			if err != nil {
				t.Fatal(err)
			}
			got := wh.Configuration
			if !slices.Equal(got.Filters, tc.filters) || !slices.Equal(got.Triggers, tc.triggers) ||
				(got.Filters == nil) != (tc.filters == nil) || (got.Triggers == nil) != (tc.triggers == nil) {
				t.Fatalf("filters %#v triggers %#v, want %#v %#v", got.Filters, got.Triggers, tc.filters, tc.triggers)
			}
			if wh.Has(twilio.FieldFilters) != tc.hasFilters || wh.Has(twilio.FieldTriggers) != tc.hasTriggers {
				t.Fatalf("Has filters %v triggers %v", wh.Has(twilio.FieldFilters), wh.Has(twilio.FieldTriggers))
			}
		})
	}
}

// TestClientReadsTheFakesShapes runs the client against the fake in each answer
// shape: what the client decodes must not depend on the shape.
func TestClientReadsTheFakesShapes(t *testing.T) {
	for _, where := range []string{twiliofake.KeywordsInTriggers, twiliofake.KeywordsInFilters} {
		for _, withService := range []bool{false, true} {
			t.Run(where+map[bool]string{false: "", true: " service path"}[withService], func(t *testing.T) {
				e := newEnv(t)
				if err := e.fake.SetTriggerKeywordsIn(where); err != nil {
					t.Fatal(err)
				}
				scope := twilio.Scope{ConversationSid: conv}
				if withService {
					scope.ServiceSid = e.service
				}
				in := twilio.CreateWebhookInput{Target: "trigger", Configuration: twilio.Configuration{
					URL: "https://example.com/t", Method: "POST", Filters: []string{"onMessageAdded"}, Triggers: []string{"help", "stop"},
				}}
				created, err := e.client.CreateWebhook(t.Context(), scope, in)
				if err != nil {
					t.Fatal(err)
				}
				fetched, err := e.client.FetchWebhook(t.Context(), scope, created.Sid)
				if err != nil {
					t.Fatal(err)
				}
				listed, err := e.client.ListWebhooks(t.Context(), scope)
				if err != nil || len(listed) != 1 {
					t.Fatalf("list: %v %v", err, listed)
				}
				updated, err := e.client.UpdateWebhook(t.Context(), scope, created.Sid, twilio.Configuration{Triggers: []string{"go"}})
				if err != nil {
					t.Fatal(err)
				}
				for name, wh := range map[string]*twilio.Webhook{"create": created, "fetch": fetched, "list": &listed[0]} {
					if !slices.Equal(wh.Configuration.Filters, []string{"onMessageAdded"}) || !slices.Equal(wh.Configuration.Triggers, []string{"help", "stop"}) ||
						!wh.Has(twilio.FieldTriggers) || !wh.Has(twilio.FieldFilters) {
						t.Fatalf("%s: %+v", name, wh.Configuration)
					}
				}
				if !slices.Equal(updated.Configuration.Triggers, []string{"go"}) || !slices.Equal(updated.Configuration.Filters, []string{"onMessageAdded"}) {
					t.Fatalf("update: %+v", updated.Configuration)
				}
			})
		}
	}
}

func TestClientOverNullFields(t *testing.T) {
	e := newEnv(t)
	scope := twilio.Scope{ConversationSid: conv}
	created, err := e.client.CreateWebhook(t.Context(), scope, webhookInput())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.fake.SetNullFields("conversation_sid", "target", "configuration.filters", "configuration.method"); err != nil {
		t.Fatal(err)
	}
	fetched, err := e.client.FetchWebhook(t.Context(), scope, created.Sid)
	if err != nil {
		t.Fatal(err)
	}
	if got := fetched.Absent(); !slices.Equal(got, []string{twilio.FieldConversationSid, twilio.FieldServiceSid, twilio.FieldTarget,
		twilio.FieldMethod, twilio.FieldFilters, twilio.FieldTriggers, twilio.FieldFlowSid, twilio.FieldReplayAfter}) {
		t.Fatalf("absent %v", got)
	}
	if err := e.fake.SetNullFields("sid"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.CreateWebhook(t.Context(), scope, webhookInput()); !twilio.IsIncompleteCreate(err) {
		t.Fatalf("create answered with a null sid: %v", err)
	}
	if n := len(e.fake.Webhooks()); n != 2 {
		t.Fatalf("%d webhooks: the incomplete create did make one, and only one", n)
	}
	list, err := e.client.ListWebhooks(t.Context(), scope)
	if err == nil || list != nil || !twilio.IsRetryable(err) {
		t.Fatalf("list with null sids: %v %v", err, list)
	}
	fetched, err = e.client.FetchWebhook(t.Context(), scope, created.Sid)
	if err != nil || fetched.Sid != created.Sid || fetched.Has(twilio.FieldSid) {
		t.Fatalf("fetch with a null sid: %v %+v", err, fetched)
	}
}

func TestCreateAnsweredWithNullSidIsFoundByListing(t *testing.T) {
	e := newEnv(t)
	scope := twilio.Scope{ConversationSid: conv}
	e.fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultNullSid, Operation: twiliofake.OpCreate})
	_, err := e.client.CreateWebhook(t.Context(), scope, webhookInput())
	if !twilio.IsIncompleteCreate(err) || twilio.IsTerminal(err) {
		t.Fatalf("create answered with a null sid: %v", err)
	}
	list, err := e.client.ListWebhooks(t.Context(), scope)
	if err != nil || len(list) != 1 || list[0].Sid != e.fake.Webhooks()[0].Sid {
		t.Fatalf("list after an incomplete create: %v %+v", err, list)
	}
	if n := len(e.fake.Requests()); n != 2 {
		t.Fatalf("%d requests: the create must not be repeated", n)
	}
}

// An answer whose account_sid is null or absent (Twilio's spec allows both)
// belongs to the account the request acted for: the caller records that
// account, which is what keeps it from acting on the webhook through another.
func TestAnswerWithoutAccountSidIsTheClientsAccount(t *testing.T) {
	rest := `"conversation_sid":"` + conv + `","target":"webhook","configuration":{"url":"https://e.com","method":"post","filters":["onMessageAdded"]}`
	for name, fields := range map[string]string{
		"null":   `"sid":"` + goodSid + `","account_sid":null,` + rest,
		"absent": `"sid":"` + goodSid + `",` + rest,
	} {
		t.Run(name, func(t *testing.T) {
			c, _ := serveBody(t, http.StatusOK, "{"+fields+"}")
			scope := twilio.Scope{ConversationSid: conv}
			for op, call := range map[string]func() (*twilio.Webhook, error){
				"create": func() (*twilio.Webhook, error) {
					return c.CreateWebhook(t.Context(), scope, twilio.CreateWebhookInput{Target: "webhook"})
				},
				"fetch": func() (*twilio.Webhook, error) { return c.FetchWebhook(t.Context(), scope, goodSid) },
				"update": func() (*twilio.Webhook, error) {
					return c.UpdateWebhook(t.Context(), scope, goodSid, twilio.Configuration{})
				},
			} {
				wh, err := call()
				if err != nil {
					t.Errorf("%s: %v", op, err)
					continue
				}
				if wh.AccountSid != account || wh.Has(twilio.FieldAccountSid) {
					t.Errorf("%s: account %q (answered: %v); want %s, reported absent", op, wh.AccountSid, wh.Has(twilio.FieldAccountSid), account)
				}
			}
			l, _ := serveBody(t, http.StatusOK, `{"webhooks":[{`+fields+`}],"meta":{"next_page_url":null}}`)
			list, err := l.ListWebhooks(t.Context(), scope)
			if err != nil || len(list) != 1 || list[0].AccountSid != account {
				t.Errorf("list: %v %+v", err, list)
			}
		})
	}
}

// A 2xx list answer is Twilio's only with a webhooks array and meta: a proxy's
// {} read as "no webhooks" would make a lost create's webhook look absent.
// An empty array with meta is a conversation without webhooks.
func TestListAnswerWithoutTwilioShapeIsNotTwilios(t *testing.T) {
	for _, scope := range []twilio.Scope{{ConversationSid: conv}, {ServiceSid: "IS00000000000000000000000000000001", ConversationSid: conv}} {
		for body, ok := range map[string]bool{
			`{"webhooks":[],"meta":{"page":0,"page_size":5,"key":"webhooks","next_page_url":null}}`: true,
			`{"webhooks":[],"meta":{}}`:       true,
			`{}`:                              false,
			`{"status":"ok"}`:                 false,
			`{"webhooks":null,"meta":{}}`:     false,
			`{"webhooks":[]}`:                 false,
			`{"meta":{"next_page_url":null}}`: false,
			`[]`:                              false,
		} {
			c, _ := serveBody(t, http.StatusOK, body)
			list, err := c.ListWebhooks(t.Context(), scope)
			if ok && (err != nil || len(list) != 0) {
				t.Errorf("%v %s: %v %v; want an empty conversation", scope, body, err, list)
			}
			if !ok && (err == nil || !twilio.IsNotTwilioAnswer(err) || !twilio.IsRetryable(err)) {
				t.Errorf("%v %s: %v %v; want an answer that is not Twilio's", scope, body, err, list)
			}
		}
	}
}
