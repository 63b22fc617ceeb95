package twiliofake_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

const (
	account = "AC00000000000000000000000000000001"
	token   = "token0000000000000000000000000001"
	keySid  = "SK00000000000000000000000000000001"
	secret  = "keysecret000000000000000000000001"
	conv    = "CH00000000000000000000000000000001"
	flow    = "FW00000000000000000000000000000001"
)

type env struct {
	fake   *twiliofake.Server
	srv    *httptest.Server
	defSvc string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	f := twiliofake.New()
	svc := f.AddAccount(account, token)
	f.AddAPIKey(account, keySid, secret)
	f.AddConversation(account, conv)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return &env{fake: f, srv: srv, defSvc: svc}
}

type answer struct {
	Status int
	Code   int                    `json:"code"`
	Body   map[string]interface{} `json:"-"`
}

func (e *env) do(t *testing.T, method, path string, form url.Values, user, pass string) answer {
	t.Helper()
	var body *strings.Reader
	target := e.srv.URL + path
	if method == http.MethodGet || method == http.MethodDelete {
		if len(form) > 0 {
			target += "?" + form.Encode()
		}
		body = strings.NewReader("")
	} else {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(t.Context(), method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{Status: resp.StatusCode}
	if resp.StatusCode != http.StatusNoContent {
		var m map[string]interface{}
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatalf("%s %s: body is not JSON: %v", method, path, err)
		}
		a.Body = m
		if c, ok := m["code"].(float64); ok {
			a.Code = int(c)
		}
	}
	return a
}

func webhookForm(mods ...func(url.Values)) url.Values {
	f := url.Values{
		"Target":                {"webhook"},
		"Configuration.Url":     {"https://example.com/hook"},
		"Configuration.Method":  {"POST"},
		"Configuration.Filters": {"onMessageAdded", "onParticipantAdded"},
	}
	for _, m := range mods {
		m(f)
	}
	return f
}

func set(k string, v ...string) func(url.Values) { return func(f url.Values) { f[k] = v } }
func del(k string) func(url.Values)              { return func(f url.Values) { f.Del(k) } }

func TestCreateValidation(t *testing.T) {
	path := "/v1/Conversations/" + conv + "/Webhooks"
	long := "https://example.com/" + strings.Repeat("a", 512)
	cases := []struct {
		name       string
		path       string
		form       url.Values
		user, pass string
		status     int
		code       int
	}{
		{"valid webhook", path, webhookForm(), account, token, 201, 0},
		{"valid with API key", path, webhookForm(), keySid, secret, 201, 0},
		{"method in lower case", path, webhookForm(set("Configuration.Method", "get")), account, token, 201, 0},
		{"valid trigger", path, url.Values{"Target": {"trigger"}, "Configuration.Url": {"https://e.com"}, "Configuration.Triggers": {"help", "stop"}}, account, token, 201, 0},
		{"valid studio", path, url.Values{"Target": {"studio"}, "Configuration.FlowSid": {flow}}, account, token, 201, 0},
		{"wrong auth token", path, webhookForm(), account, "nope", 401, 20003},
		{"unknown API key", path, webhookForm(), "SK00000000000000000000000000000009", secret, 401, 20003},
		{"no credentials", path, webhookForm(), "", "", 401, 20003},
		{"unknown conversation", "/v1/Conversations/CH0000000000000000000000000000000f/Webhooks", webhookForm(), account, token, 404, 50350},
		{"conversation under another service", "/v1/Services/IS0000000000000000000000000000000f/Conversations/" + conv + "/Webhooks", webhookForm(), account, token, 404, 50350},
		{"no target", path, webhookForm(del("Target")), account, token, 400, 50368},
		{"bad target", path, webhookForm(set("Target", "email")), account, token, 400, 50364},
		{"no url", path, webhookForm(del("Configuration.Url")), account, token, 400, 50369},
		{"url too long", path, webhookForm(set("Configuration.Url", long)), account, token, 400, 50372},
		{"bad filter", path, webhookForm(set("Configuration.Filters", "onMessageSent")), account, token, 400, 50365},
		{"no filters", path, webhookForm(del("Configuration.Filters")), account, token, 400, 50370},
		{"bad method", path, webhookForm(set("Configuration.Method", "PUT")), account, token, 400, 20422},
		{"trigger without triggers", path, url.Values{"Target": {"trigger"}, "Configuration.Url": {"https://e.com"}}, account, token, 400, 50371},
		{"six triggers", path, url.Values{"Target": {"trigger"}, "Configuration.Url": {"https://e.com"}, "Configuration.Triggers": {"a", "b", "c", "d", "e", "f"}}, account, token, 400, 50362},
		{"empty trigger", path, url.Values{"Target": {"trigger"}, "Configuration.Url": {"https://e.com"}, "Configuration.Triggers": {""}}, account, token, 400, 50366},
		{"trigger of 249 characters", path, url.Values{"Target": {"trigger"}, "Configuration.Url": {"https://e.com"}, "Configuration.Triggers": {strings.Repeat("k", 249)}}, account, token, 400, 50366},
		{"studio without flow", path, url.Values{"Target": {"studio"}}, account, token, 400, 50367},
		{"studio with bad flow", path, url.Values{"Target": {"studio"}, "Configuration.FlowSid": {"FW123"}}, account, token, 400, 50367},
		{"bad replay after", path, webhookForm(set("Configuration.ReplayAfter", "x")), account, token, 400, 20422},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			got := e.do(t, http.MethodPost, tc.path, tc.form, tc.user, tc.pass)
			if got.Status != tc.status || got.Code != tc.code {
				t.Fatalf("got %d/%d, want %d/%d (%v)", got.Status, got.Code, tc.status, tc.code, got.Body)
			}
			stored := len(e.fake.Webhooks())
			if (tc.status == 201) != (stored == 1) {
				t.Fatalf("stored %d webhooks after a %d", stored, got.Status)
			}
			if tc.status == 201 {
				if sid, _ := got.Body["sid"].(string); !strings.HasPrefix(sid, "WH") || len(sid) != 34 {
					t.Fatalf("sid %q is not WH + 32 hex", sid)
				}
			} else if got.Body["more_info"] == nil || got.Body["status"] == nil || got.Body["message"] == nil {
				t.Fatalf("error body lacks Twilio's fields: %v", got.Body)
			}
		})
	}
}

func TestLowerCaseMethodStored(t *testing.T) {
	e := newEnv(t)
	got := e.do(t, http.MethodPost, "/v1/Conversations/"+conv+"/Webhooks", webhookForm(set("Configuration.Method", "GET")), account, token)
	cfg := got.Body["configuration"].(map[string]interface{})
	if cfg["method"] != "get" {
		t.Fatalf("method %v, want get", cfg["method"])
	}
}

func TestFiveWebhooksPerConversation(t *testing.T) {
	e := newEnv(t)
	path := "/v1/Conversations/" + conv + "/Webhooks"
	for i := range 5 {
		if got := e.do(t, http.MethodPost, path, webhookForm(), account, token); got.Status != 201 {
			t.Fatalf("create %d: %d", i, got.Status)
		}
	}
	got := e.do(t, http.MethodPost, path, webhookForm(), account, token)
	if got.Status != 400 || got.Code != 50361 {
		t.Fatalf("sixth create: %d/%d, want 400/50361", got.Status, got.Code)
	}
	if n := len(e.fake.Webhooks()); n != 5 {
		t.Fatalf("%d stored, want 5", n)
	}
}

func TestFetchUpdateDeleteAndNotFound(t *testing.T) {
	e := newEnv(t)
	base := "/v1/Services/" + e.defSvc + "/Conversations/" + conv + "/Webhooks"
	created := e.do(t, http.MethodPost, base, webhookForm(), account, token)
	sid := created.Body["sid"].(string)
	if created.Body["chat_service_sid"] != e.defSvc {
		t.Fatalf("service path answer lacks chat_service_sid: %v", created.Body)
	}
	if got := e.do(t, http.MethodGet, base+"/"+sid, nil, account, token); got.Status != 200 || got.Body["sid"] != sid {
		t.Fatalf("fetch: %d %v", got.Status, got.Body)
	}
	got := e.do(t, http.MethodPost, base+"/"+sid, url.Values{"Configuration.Url": {"https://example.com/new"}}, account, token)
	if got.Status != 200 || got.Body["configuration"].(map[string]interface{})["url"] != "https://example.com/new" {
		t.Fatalf("update: %d %v", got.Status, got.Body)
	}
	if got := e.do(t, http.MethodPost, base+"/"+sid, url.Values{"Configuration.Filters": {"bogus"}}, account, token); got.Code != 50365 {
		t.Fatalf("bad update: %v", got)
	}
	if got := e.do(t, http.MethodDelete, base+"/"+sid, nil, account, token); got.Status != 204 {
		t.Fatalf("delete: %d", got.Status)
	}
	for _, m := range []string{http.MethodGet, http.MethodDelete} {
		if got := e.do(t, m, base+"/"+sid, nil, account, token); got.Status != 404 || got.Code != 20404 {
			t.Fatalf("%s after delete: %d/%d", m, got.Status, got.Code)
		}
	}
}

func TestListPaging(t *testing.T) {
	e := newEnv(t)
	for range 7 { // more than the per-conversation limit, made outside the API
		e.fake.CreateWebhook(twiliofake.Webhook{ConversationSid: conv, Target: "studio", FlowSid: flow})
	}
	path := "/v1/Conversations/" + conv + "/Webhooks"
	first := e.do(t, http.MethodGet, path, url.Values{"PageSize": {"5"}}, account, token)
	meta := first.Body["meta"].(map[string]interface{})
	if n := len(first.Body["webhooks"].([]interface{})); n != 5 || meta["next_page_url"] == nil || meta["key"] != "webhooks" {
		t.Fatalf("first page: %d items, meta %v", n, meta)
	}
	next, _ := url.Parse(meta["next_page_url"].(string))
	second := e.do(t, http.MethodGet, next.Path, next.Query(), account, token)
	if n := len(second.Body["webhooks"].([]interface{})); n != 2 || second.Body["meta"].(map[string]interface{})["next_page_url"] != nil {
		t.Fatalf("second page: %d items, %v", n, second.Body["meta"])
	}
	if got := e.do(t, http.MethodGet, path, url.Values{"PageSize": {"6"}}, account, token); got.Status != 400 || got.Code != 20422 {
		t.Fatalf("PageSize 6: %d/%d", got.Status, got.Code)
	}
}

func TestConcurrencyLimitAnswers429(t *testing.T) {
	e := newEnv(t)
	e.fake.SetLatency(200 * time.Millisecond)
	e.fake.SetMaxInFlight(2)
	var wg sync.WaitGroup
	statuses := make(chan int, 6)
	for range 6 {
		wg.Go(func() {
			statuses <- e.do(t, http.MethodGet, "/v1/Conversations/"+conv+"/Webhooks", nil, account, token).Status
		})
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[200] > 2 || count[429] < 4 {
		t.Fatalf("statuses %v: want at most 2 served and the rest 429", count)
	}
	if e.fake.FaultCounts()[twiliofake.FaultConcurrencyLimit] != count[429] {
		t.Fatalf("fault counts %v", e.fake.FaultCounts())
	}
	if got := e.fake.RefusedCounts(); got[twiliofake.OpList] != count[429] || len(got) != 1 {
		t.Fatalf("refused counts %v, want %d lists", got, count[429])
	}
}

// Arrived counts a request, by conversation and operation, as soon as it
// reaches the fake: while it waits out the latency, before the log has it.
func TestArrivedCountsRequestsBeforeTheyAreAnswered(t *testing.T) {
	e := newEnv(t)
	other := "CH00000000000000000000000000000002"
	e.fake.AddConversation(account, other)
	e.fake.SetLatency(time.Second)
	done := make(chan answer)
	go func() {
		done <- e.do(t, http.MethodPost, "/v1/Conversations/"+conv+"/Webhooks", webhookForm(), account, token)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for e.fake.Arrived(conv, twiliofake.OpCreate) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the create never counted as arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := len(e.fake.Requests()); n != 0 {
		t.Fatalf("the log has %d requests while the create is unanswered", n)
	}
	if n := e.fake.Arrived(other, twiliofake.OpCreate) + e.fake.Arrived(conv, twiliofake.OpList); n != 0 {
		t.Fatalf("%d arrivals counted for another conversation or operation", n)
	}
	if a := <-done; a.Status != http.StatusCreated {
		t.Fatalf("create: %d", a.Status)
	}
	if e.fake.ResetLog(); e.fake.Arrived(conv, twiliofake.OpCreate) != 0 {
		t.Fatal("ResetLog kept the arrivals")
	}
}

func TestAccountRateAnswers429WithCode(t *testing.T) {
	e := newEnv(t)
	e.fake.SetAccountRate(1, 2, 3*time.Second)
	var got []answer
	for range 4 {
		got = append(got, e.do(t, http.MethodGet, "/v1/Conversations/"+conv+"/Webhooks", nil, account, token))
	}
	if got[0].Status != 200 || got[1].Status != 200 || got[2].Status != 429 || got[2].Code != 20429 {
		t.Fatalf("statuses %+v", got)
	}
	// A create refused by the rate made no webhook, and is counted as refused.
	if a := e.do(t, http.MethodPost, "/v1/Conversations/"+conv+"/Webhooks", webhookForm(), account, token); a.Status != 429 {
		t.Fatalf("create past the rate: %d", a.Status)
	}
	refused := e.fake.RefusedCounts()
	if refused[twiliofake.OpCreate] != 1 || refused[twiliofake.OpList] != 2 || len(e.fake.Webhooks()) != 0 {
		t.Fatalf("refused %v, %d webhooks; want 1 create and 2 lists refused, no webhook", refused, len(e.fake.Webhooks()))
	}
	if e.fake.ResetLog(); len(e.fake.RefusedCounts()) != 0 {
		t.Fatal("ResetLog kept the refused counts")
	}
}

func TestLostResponseStoresTheWebhook(t *testing.T) {
	e := newEnv(t)
	e.fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultLoseResponse, Operation: twiliofake.OpCreate})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, e.srv.URL+"/v1/Conversations/"+conv+"/Webhooks", strings.NewReader(webhookForm().Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(account, token)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got an answer (%d), want a dropped connection", resp.StatusCode)
	}
	if n := len(e.fake.Webhooks()); n != 1 {
		t.Fatalf("%d webhooks stored, want 1", n)
	}
}

func TestDeletedFirstAnswers404(t *testing.T) {
	e := newEnv(t)
	base := "/v1/Conversations/" + conv + "/Webhooks"
	sid := e.do(t, http.MethodPost, base, webhookForm(), account, token).Body["sid"].(string)
	e.fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultDeletedFirst, Operation: twiliofake.OpUpdate})
	got := e.do(t, http.MethodPost, base+"/"+sid, url.Values{"Configuration.Url": {"https://example.com/new"}}, account, token)
	if got.Status != 404 || got.Code != 20404 {
		t.Fatalf("update of a webhook deleted first: %d/%d, want 404/20404", got.Status, got.Code)
	}
	if _, ok := e.fake.Webhook(sid); ok {
		t.Fatal("the webhook is still stored")
	}
}

func TestControlAPI(t *testing.T) {
	e := newEnv(t)
	other := "CH0000000000000000000000000000000a"
	body := strings.NewReader(`{"accountSid":"` + account + `","conversationSid":"` + other + `"}`)
	resp, err := http.Post(e.srv.URL+"/_fake/conversations", "application/json", body) //nolint:noctx // test
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("register conversation: %v %v", err, resp)
	}
	resp.Body.Close()
	if got := e.do(t, http.MethodPost, "/v1/Conversations/"+other+"/Webhooks", webhookForm(), account, token); got.Status != 201 {
		t.Fatalf("create in registered conversation: %d", got.Status)
	}
	r, err := http.Get(e.srv.URL + "/_fake/webhooks") //nolint:noctx // test
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var hooks []twiliofake.Webhook
	if err := json.NewDecoder(r.Body).Decode(&hooks); err != nil || len(hooks) != 1 || hooks[0].ConversationSid != other {
		t.Fatalf("webhooks: %v %v", err, hooks)
	}
}

func TestStickyFaultsLastUntilCleared(t *testing.T) {
	e := newEnv(t)
	e.fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultServerError, Operation: twiliofake.OpList, Sticky: true})
	path := "/v1/Conversations/" + conv + "/Webhooks"
	for range 3 {
		if got := e.do(t, http.MethodGet, path, nil, account, token); got.Status != 500 {
			t.Fatalf("list answered %d while a sticky 500 is set", got.Status)
		}
	}
	if got := e.do(t, http.MethodPost, path, webhookForm(), account, token); got.Status != 201 {
		t.Fatalf("create answered %d: the sticky fault is for list only", got.Status)
	}
	e.fake.ClearFaults()
	if got := e.do(t, http.MethodGet, path, nil, account, token); got.Status != 200 {
		t.Fatalf("list answered %d after ClearFaults", got.Status)
	}
}

func TestFaultScopedToConversations(t *testing.T) {
	e := newEnv(t)
	other, third := "CH0000000000000000000000000000000b", "CH0000000000000000000000000000000c"
	e.fake.AddConversation(account, other)
	e.fake.AddConversation(account, third)
	list := func(c string) int {
		return e.do(t, http.MethodGet, "/v1/Conversations/"+c+"/Webhooks", nil, account, token).Status
	}
	e.fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultServerError, Operation: twiliofake.OpList, Conversations: []string{conv}})
	if got := list(other); got != 200 {
		t.Fatalf("list of another conversation answered %d: the fault is for %s only", got, conv)
	}
	if got := list(conv); got != 500 {
		t.Fatalf("list of the fault's conversation answered %d, want 500", got)
	}
	if got := list(conv); got != 200 {
		t.Fatalf("a second list answered %d: the fault applies once", got)
	}
	e.fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultServerError, Operation: twiliofake.OpList, Conversations: []string{conv, other}})
	if got := list(third); got != 200 {
		t.Fatalf("list of a conversation the fault does not name answered %d", got)
	}
	if got := list(other); got != 500 {
		t.Fatalf("list of the fault's second conversation answered %d, want 500", got)
	}
}

func TestRequireScopedFaults(t *testing.T) {
	e := newEnv(t)
	e.fake.RequireScopedFaults()
	refused := func(f twiliofake.Fault) (panicked bool) {
		defer func() { panicked = recover() != nil }()
		e.fake.InjectFaults(f)
		return false
	}
	cases := []struct {
		name  string
		fault twiliofake.Fault
		want  bool
	}{
		{"create naming no conversation", twiliofake.Fault{Kind: twiliofake.FaultLoseResponse, Operation: twiliofake.OpCreate}, true},
		{"any operation naming no conversation", twiliofake.Fault{Kind: twiliofake.FaultServerError}, true},
		{"create limited to a conversation", twiliofake.Fault{Kind: twiliofake.FaultLoseResponse, Operation: twiliofake.OpCreate, Conversations: []string{conv}}, false},
		{"configuration (no conversation in its path)", twiliofake.Fault{Kind: twiliofake.FaultServerError, Operation: twiliofake.OpConfiguration}, false},
	}
	for _, tc := range cases {
		if got := refused(tc.fault); got != tc.want {
			t.Errorf("%s: refused %v, want %v", tc.name, got, tc.want)
		}
	}
	e.fake.ClearFaults()
	e.fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultServerError, Operation: twiliofake.OpList, Conversations: []string{conv}})
	if got := e.do(t, http.MethodGet, "/v1/Conversations/"+conv+"/Webhooks", nil, account, token).Status; got != 500 {
		t.Fatalf("an accepted fault did not apply: list answered %d", got)
	}
}

func TestProxyAndAuthFaultsAreNotProcessed(t *testing.T) {
	cases := []struct {
		kind        twiliofake.FaultKind
		status      int
		contentType string
		code        int
	}{
		{twiliofake.FaultUnauthorized, 401, "application/json", 20003},
		{twiliofake.FaultHTML404, 404, "text/html", 0},
		{twiliofake.FaultNonJSON, 502, "text/html", 0},
	}
	for _, tc := range cases {
		for _, random := range []bool{false, true} {
			t.Run(string(tc.kind)+map[bool]string{false: " scripted", true: " random"}[random], func(t *testing.T) {
				e := newEnv(t)
				if random {
					e.fake.SetRandomFaults(1, 7, tc.kind)
				} else {
					e.fake.InjectFaults(twiliofake.Fault{Kind: tc.kind, Operation: twiliofake.OpCreate})
				}
				req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, e.srv.URL+"/v1/Conversations/"+conv+"/Webhooks", strings.NewReader(webhookForm().Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth(account, token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				raw, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != tc.status || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.contentType) {
					t.Fatalf("answer %d %q, want %d %s", resp.StatusCode, resp.Header.Get("Content-Type"), tc.status, tc.contentType)
				}
				var body map[string]interface{}
				jsonErr := json.Unmarshal(raw, &body)
				if tc.code != 0 && (jsonErr != nil || body["code"] != float64(tc.code)) {
					t.Fatalf("body %q, want Twilio code %d", raw, tc.code)
				}
				if tc.code == 0 && jsonErr == nil {
					t.Fatalf("body %q is JSON, want a proxy's HTML page", raw)
				}
				if n := len(e.fake.Webhooks()); n != 0 {
					t.Fatalf("%d webhooks stored: the fault must not be processed", n)
				}
				if got := e.fake.FaultCounts()[tc.kind]; got != 1 {
					t.Fatalf("fault counts %v", e.fake.FaultCounts())
				}
				if reqs := e.fake.Requests(); len(reqs) != 1 || reqs[0].Status != tc.status || reqs[0].Fault != tc.kind {
					t.Fatalf("request log %+v", reqs)
				}
			})
		}
	}
}

func triggerForm() url.Values {
	return url.Values{
		"Target": {"trigger"}, "Configuration.Url": {"https://e.com"}, "Configuration.Method": {"post"},
		"Configuration.Filters": {"onMessageAdded"}, "Configuration.Triggers": {"help", "stop"},
	}
}

func TestTriggerKeywordsInEitherKey(t *testing.T) {
	path := "/v1/Conversations/" + conv + "/Webhooks"
	for _, tc := range []struct {
		where        string
		wantFilters  []interface{}
		wantTriggers interface{}
	}{
		{"", []interface{}{"onMessageAdded"}, []interface{}{"help", "stop"}},
		{twiliofake.KeywordsInTriggers, []interface{}{"onMessageAdded"}, []interface{}{"help", "stop"}},
		{twiliofake.KeywordsInFilters, []interface{}{"onMessageAdded", "help", "stop"}, nil},
	} {
		t.Run("in "+tc.where, func(t *testing.T) {
			e := newEnv(t)
			if err := e.fake.SetTriggerKeywordsIn(tc.where); err != nil {
				t.Fatal(err)
			}
			created := e.do(t, http.MethodPost, path, triggerForm(), account, token)
			sid, _ := created.Body["sid"].(string)
			fetched := e.do(t, http.MethodGet, path+"/"+sid, nil, account, token)
			listed := e.do(t, http.MethodGet, path, nil, account, token).Body["webhooks"].([]interface{})[0].(map[string]interface{})
			for op, body := range map[string]map[string]interface{}{"create": created.Body, "fetch": fetched.Body, "list": listed} {
				cfg := body["configuration"].(map[string]interface{})
				if !jsonEqual(cfg["filters"], tc.wantFilters) || !jsonEqual(cfg["triggers"], tc.wantTriggers) {
					t.Fatalf("%s: configuration %v", op, cfg)
				}
			}
			stored, _ := e.fake.Webhook(sid)
			if len(stored.Filters) != 1 || len(stored.Triggers) != 2 {
				t.Fatalf("stored %+v: the switch changes answers only", stored)
			}
		})
	}
	if err := twiliofake.New().SetTriggerKeywordsIn("keywords"); err == nil {
		t.Fatal("an unknown shape was accepted")
	}
}

func jsonEqual(a, b interface{}) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func TestNullFields(t *testing.T) {
	e := newEnv(t)
	base := "/v1/Services/" + e.defSvc + "/Conversations/" + conv + "/Webhooks"
	if err := e.fake.SetNullFields("sid", "chat_service_sid", "target", "configuration.method", "configuration.replay_after"); err != nil {
		t.Fatal(err)
	}
	created := e.do(t, http.MethodPost, base, webhookForm(), account, token)
	if created.Status != 201 {
		t.Fatalf("create: %d", created.Status)
	}
	for _, k := range []string{"sid", "chat_service_sid", "target"} {
		if v, ok := created.Body[k]; !ok || v != nil {
			t.Fatalf("%s = %v (present %v), want null", k, v, ok)
		}
	}
	cfg := created.Body["configuration"].(map[string]interface{})
	if v, ok := cfg["method"]; !ok || v != nil || cfg["url"] != "https://example.com/hook" {
		t.Fatalf("configuration %v", cfg)
	}
	if v, ok := cfg["replay_after"]; !ok || v != nil {
		t.Fatalf("replay_after %v", cfg)
	}
	reqs := e.fake.Requests()
	sid := reqs[len(reqs)-1].WebhookSid
	if stored, ok := e.fake.Webhook(sid); !ok || stored.Method != "post" || stored.Target != "webhook" {
		t.Fatalf("stored %+v (%v): nulls change answers only; the log keeps the SID", stored, ok)
	}
	// On the conversation path there is no chat_service_sid to null.
	if got := e.do(t, http.MethodGet, "/v1/Conversations/"+conv+"/Webhooks/"+sid, nil, account, token); got.Status != 200 {
		t.Fatalf("fetch: %d", got.Status)
	} else if _, ok := got.Body["chat_service_sid"]; ok {
		t.Fatalf("conversation path answers chat_service_sid: %v", got.Body)
	}
	if err := e.fake.SetNullFields("nope"); err == nil {
		t.Fatal("an unknown field was accepted")
	}
	if err := e.fake.SetNullFields(); err != nil {
		t.Fatal(err)
	}
	if got := e.do(t, http.MethodGet, base+"/"+sid, nil, account, token); got.Body["sid"] != sid {
		t.Fatalf("after SetNullFields(): %v", got.Body)
	}
}

func TestUpdateWithoutFiltersKeepsThem(t *testing.T) {
	e := newEnv(t)
	path := "/v1/Conversations/" + conv + "/Webhooks"
	sid := e.do(t, http.MethodPost, path, triggerForm(), account, token).Body["sid"].(string)
	got := e.do(t, http.MethodPost, path+"/"+sid, url.Values{"Configuration.Url": {"https://e.com/v2"}}, account, token)
	cfg := got.Body["configuration"].(map[string]interface{})
	if got.Status != 200 || !jsonEqual(cfg["filters"], []string{"onMessageAdded"}) || !jsonEqual(cfg["triggers"], []string{"help", "stop"}) {
		t.Fatalf("update without filters or triggers: %d %v: Twilio keeps both", got.Status, cfg)
	}
	if stored, _ := e.fake.Webhook(sid); len(stored.Filters) != 1 || stored.URL != "https://e.com/v2" {
		t.Fatalf("stored %+v", stored)
	}
}

func TestControlSettingsShapes(t *testing.T) {
	e := newEnv(t)
	put := func(body string) int {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, e.srv.URL+"/_fake/settings", strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := put(`{"triggerKeywordsIn":"filters","nullFields":["target"]}`); s != 204 {
		t.Fatalf("PUT settings: %d", s)
	}
	path := "/v1/Conversations/" + conv + "/Webhooks"
	got := e.do(t, http.MethodPost, path, triggerForm(), account, token)
	cfg := got.Body["configuration"].(map[string]interface{})
	if got.Body["target"] != nil || cfg["triggers"] != nil || !jsonEqual(cfg["filters"], []string{"onMessageAdded", "help", "stop"}) {
		t.Fatalf("answer %v", got.Body)
	}
	for _, bad := range []string{`{"triggerKeywordsIn":"keywords"}`, `{"nullFields":["nope"]}`} {
		if s := put(bad); s != 400 {
			t.Fatalf("PUT %s: %d, want 400", bad, s)
		}
	}
	if got := e.do(t, http.MethodGet, path, nil, account, token); got.Body["webhooks"].([]interface{})[0].(map[string]interface{})["target"] != nil {
		t.Fatal("a refused PUT changed the settings")
	}
	if s := put(`{}`); s != 204 {
		t.Fatalf("PUT {}: %d", s)
	}
	listed := e.do(t, http.MethodGet, path, nil, account, token).Body["webhooks"].([]interface{})[0].(map[string]interface{})
	if listed["target"] != "trigger" || listed["configuration"].(map[string]interface{})["triggers"] == nil {
		t.Fatalf("PUT {} did not restore the defaults: %v", listed)
	}
}

func TestNullSidFaultProcessesTheRequest(t *testing.T) {
	e := newEnv(t)
	path := "/v1/Conversations/" + conv + "/Webhooks"
	e.fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultNullSid, Operation: twiliofake.OpCreate})
	got := e.do(t, http.MethodPost, path, webhookForm(), account, token)
	if v, ok := got.Body["sid"]; got.Status != 201 || !ok || v != nil {
		t.Fatalf("create: %d sid %v (present %v), want 201 with a null sid", got.Status, v, ok)
	}
	hooks := e.fake.Webhooks()
	if len(hooks) != 1 {
		t.Fatalf("%d webhooks stored: the create must be processed", len(hooks))
	}
	if reqs := e.fake.Requests(); reqs[0].WebhookSid != hooks[0].Sid || reqs[0].Fault != twiliofake.FaultNullSid {
		t.Fatalf("log %+v", reqs[0])
	}
	if got := e.do(t, http.MethodGet, path+"/"+hooks[0].Sid, nil, account, token); got.Body["sid"] != hooks[0].Sid {
		t.Fatalf("the fault applies once: %v", got.Body)
	}
	e.fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultNullSid, Operation: twiliofake.OpList})
	listed := e.do(t, http.MethodGet, path, nil, account, token).Body["webhooks"].([]interface{})
	if v, ok := listed[0].(map[string]interface{})["sid"]; !ok || v != nil {
		t.Fatalf("listed sid %v", v)
	}
}
