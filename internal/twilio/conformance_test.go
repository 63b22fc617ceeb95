package twilio_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

// The operations of Twilio's Conversations v1 OpenAPI document
// (twilio_conversations_v1.yaml) for conversation-scoped webhooks, written down as
// the facts the document states: path templates, methods, parameters, enums,
// patterns and answer properties. The document itself is not part of the project.
var (
	sidSegment = `([A-Za-z0-9]+)`
	specOps    = []struct {
		id     string
		method string
		path   *regexp.Regexp
		params []string // form (POST) or query (GET, DELETE) parameters
		status int      // success status
	}{
		{"ListConversationScopedWebhook", http.MethodGet, regexp.MustCompile(`^/v1/Conversations/` + sidSegment + `/Webhooks$`), []string{"PageSize", "Page", "PageToken"}, 200},
		{"CreateConversationScopedWebhook", http.MethodPost, regexp.MustCompile(`^/v1/Conversations/` + sidSegment + `/Webhooks$`), createParams, 201},
		{"FetchConversationScopedWebhook", http.MethodGet, regexp.MustCompile(`^/v1/Conversations/` + sidSegment + `/Webhooks/` + sidSegment + `$`), nil, 200},
		{"UpdateConversationScopedWebhook", http.MethodPost, regexp.MustCompile(`^/v1/Conversations/` + sidSegment + `/Webhooks/` + sidSegment + `$`), updateParams, 200},
		{"DeleteConversationScopedWebhook", http.MethodDelete, regexp.MustCompile(`^/v1/Conversations/` + sidSegment + `/Webhooks/` + sidSegment + `$`), nil, 204},
		{"ListServiceConversationScopedWebhook", http.MethodGet, regexp.MustCompile(`^/v1/Services/` + sidSegment + `/Conversations/` + sidSegment + `/Webhooks$`), []string{"PageSize", "Page", "PageToken"}, 200},
		{"CreateServiceConversationScopedWebhook", http.MethodPost, regexp.MustCompile(`^/v1/Services/` + sidSegment + `/Conversations/` + sidSegment + `/Webhooks$`), createParams, 201},
		{"FetchServiceConversationScopedWebhook", http.MethodGet, regexp.MustCompile(`^/v1/Services/` + sidSegment + `/Conversations/` + sidSegment + `/Webhooks/` + sidSegment + `$`), nil, 200},
		{"UpdateServiceConversationScopedWebhook", http.MethodPost, regexp.MustCompile(`^/v1/Services/` + sidSegment + `/Conversations/` + sidSegment + `/Webhooks/` + sidSegment + `$`), updateParams, 200},
		{"DeleteServiceConversationScopedWebhook", http.MethodDelete, regexp.MustCompile(`^/v1/Services/` + sidSegment + `/Conversations/` + sidSegment + `/Webhooks/` + sidSegment + `$`), nil, 204},
	}
	createParams = []string{"Target", "Configuration.Url", "Configuration.Method", "Configuration.Filters",
		"Configuration.Triggers", "Configuration.FlowSid", "Configuration.ReplayAfter"}
	updateParams = []string{"Configuration.Url", "Configuration.Method", "Configuration.Filters",
		"Configuration.Triggers", "Configuration.FlowSid"}
	// Properties of conversations.v1.conversation.conversation_scoped_webhook;
	// the service-scoped one adds chat_service_sid. All are nullable.
	webhookProps        = []string{"sid", "account_sid", "conversation_sid", "target", "url", "configuration", "date_created", "date_updated"}
	serviceWebhookProps = append(slices.Clone(webhookProps), "chat_service_sid")
	metaProps           = []string{"first_page_url", "key", "next_page_url", "page", "page_size", "previous_page_url", "url"}
	specFlowSidPattern  = regexp.MustCompile(`^FW[0-9a-fA-F]{32}$`)
)

// exchange is one request and the fake's answer to it.
type exchange struct {
	method, path, contentType string
	params                    url.Values
	status                    int
	answer                    []byte
	answerType                string
}

// recorder keeps every exchange with the handler it wraps.
type recorder struct {
	next http.Handler
	mu   sync.Mutex
	log  []exchange
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	params, _ := url.ParseQuery(string(body))
	if req.Method != http.MethodPost {
		params = req.URL.Query()
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	r.next.ServeHTTP(rec, req)
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, exchange{
		method: req.Method, path: req.URL.Path, contentType: req.Header.Get("Content-Type"), params: params,
		status: rec.Code, answer: rec.Body.Bytes(), answerType: rec.Header().Get("Content-Type"),
	})
}

// checkRequest reports how a request departs from the document.
func checkRequest(x exchange) error {
	for _, op := range specOps {
		if op.method != x.method || !op.path.MatchString(x.path) {
			continue
		}
		for k, vs := range x.params {
			if !slices.Contains(op.params, k) {
				return fmt.Errorf("%s: parameter %s is not in the document", op.id, k)
			}
			for _, v := range vs {
				if v == "" {
					return fmt.Errorf("%s: %s sent empty", op.id, k)
				}
			}
		}
		if x.method == http.MethodPost {
			if mt, _, _ := mime.ParseMediaType(x.contentType); mt != "application/x-www-form-urlencoded" {
				return fmt.Errorf("%s: content type %q", op.id, x.contentType)
			}
		}
		if strings.HasPrefix(op.id, "Create") && x.params.Get("Target") == "" {
			return fmt.Errorf("%s: Target is required", op.id)
		}
		if t := x.params.Get("Target"); t != "" && !slices.Contains([]string{"webhook", "trigger", "studio"}, t) {
			return fmt.Errorf("%s: Target %q not in the enum", op.id, t)
		}
		if m, ok := x.params["Configuration.Method"]; ok && !slices.Contains([]string{"get", "post"}, m[0]) {
			return fmt.Errorf("%s: Configuration.Method %q not in the enum", op.id, m[0])
		}
		if f, ok := x.params["Configuration.FlowSid"]; ok && !specFlowSidPattern.MatchString(f[0]) {
			return fmt.Errorf("%s: Configuration.FlowSid %q does not match its pattern", op.id, f[0])
		}
		if s := x.params.Get("PageSize"); s != "" && (s < "1" || s > "5" || len(s) != 1) {
			return fmt.Errorf("%s: PageSize %s outside 1..5", op.id, s)
		}
		return nil
	}
	return fmt.Errorf("%s %s matches no operation of the document", x.method, x.path)
}

// checkAnswer reports how a success answer departs from the document's schemas.
func checkAnswer(x exchange) error {
	if x.status >= 300 || x.status == http.StatusNoContent {
		return nil
	}
	if mt, _, _ := mime.ParseMediaType(x.answerType); mt != "application/json" {
		return fmt.Errorf("answer content type %q", x.answerType)
	}
	props := webhookProps
	if strings.HasPrefix(x.path, "/v1/Services/") {
		props = serviceWebhookProps
	}
	var body map[string]interface{}
	if err := json.Unmarshal(x.answer, &body); err != nil {
		return fmt.Errorf("answer is not a JSON object: %w", err)
	}
	items := []interface{}{body}
	if strings.HasSuffix(x.path, "/Webhooks") && x.method == http.MethodGet {
		if err := onlyProps(body, []string{"webhooks", "meta"}); err != nil {
			return err
		}
		meta, _ := body["meta"].(map[string]interface{})
		if err := onlyProps(meta, metaProps); err != nil {
			return fmt.Errorf("meta: %w", err)
		}
		items, _ = body["webhooks"].([]interface{})
	}
	for _, it := range items {
		wh, ok := it.(map[string]interface{})
		if !ok {
			return fmt.Errorf("webhook %v is not an object", it)
		}
		if err := onlyProps(wh, props); err != nil {
			return err
		}
		for _, k := range []string{"sid", "account_sid", "conversation_sid", "chat_service_sid", "target", "url", "date_created", "date_updated"} {
			if v, ok := wh[k]; ok && v != nil {
				if _, isString := v.(string); !isString {
					return fmt.Errorf("%s is %T, want a string or null", k, v)
				}
			}
		}
		if c, ok := wh["configuration"]; ok && c != nil {
			if _, isObject := c.(map[string]interface{}); !isObject {
				return fmt.Errorf("configuration is %T, want an object or null", c)
			}
		}
	}
	return nil
}

func onlyProps(m map[string]interface{}, allowed []string) error {
	if m == nil {
		return fmt.Errorf("missing object")
	}
	for k := range m {
		if !slices.Contains(allowed, k) {
			return fmt.Errorf("property %s is not in the document's schema", k)
		}
	}
	return nil
}

// TestConformanceWithTwilioOpenAPI drives every client operation, in every
// answer shape of the fake, and checks each request the client sent and each
// success answer the fake gave against Twilio's OpenAPI document.
func TestConformanceWithTwilioOpenAPI(t *testing.T) {
	shapes := []struct {
		name       string
		keywordsIn string
		nulls      []string
	}{
		{"keywords under triggers", twiliofake.KeywordsInTriggers, nil},
		{"keywords under filters", twiliofake.KeywordsInFilters, nil},
		{"null fields", twiliofake.KeywordsInTriggers, []string{"conversation_sid", "chat_service_sid", "target", "url", "configuration.method", "configuration.replay_after", "date_updated"}},
		{"null configuration", twiliofake.KeywordsInFilters, []string{"configuration"}},
	}
	for _, shape := range shapes {
		t.Run(shape.name, func(t *testing.T) {
			fake := twiliofake.New()
			svc := fake.AddAccount(account, authToken)
			fake.AddAPIKey(account, keySid, keySecret)
			fake.AddConversation(account, conv)
			if err := fake.SetTriggerKeywordsIn(shape.keywordsIn); err != nil {
				t.Fatal(err)
			}
			if err := fake.SetNullFields(shape.nulls...); err != nil {
				t.Fatal(err)
			}
			rec := &recorder{next: fake}
			srv := httptest.NewServer(rec)
			t.Cleanup(srv.Close)
			f, err := twilio.NewFactory(twilio.Options{BaseURL: srv.URL, RequestsPerSecond: 1000, Burst: 100, Timeout: 2 * time.Second, MaxAttempts: 1})
			if err != nil {
				t.Fatal(err)
			}
			c, err := f.For(twilio.Credentials{AccountSid: account, APIKeySid: keySid, APIKeySecret: keySecret})
			if err != nil {
				t.Fatal(err)
			}
			replay := int32(0)
			inputs := []twilio.CreateWebhookInput{
				{Target: "webhook", Configuration: twilio.Configuration{URL: "https://example.com/h", Method: "GET", Filters: []string{"onMessageAdded"}, ReplayAfter: &replay}},
				{Target: "trigger", Configuration: twilio.Configuration{URL: "https://example.com/t", Method: "POST", Triggers: []string{"help", "stop"}}},
				{Target: "studio", Configuration: twilio.Configuration{FlowSid: flow}},
			}
			for _, scope := range []twilio.Scope{{ConversationSid: conv}, {ServiceSid: svc, ConversationSid: conv}} {
				var sids []string
				for _, in := range inputs {
					wh, err := c.CreateWebhook(t.Context(), scope, in)
					if err != nil {
						t.Fatalf("create %s: %v", in.Target, err)
					}
					sids = append(sids, wh.Sid)
					if _, err := c.FetchWebhook(t.Context(), scope, wh.Sid); err != nil {
						t.Fatalf("fetch: %v", err)
					}
				}
				for i, in := range inputs {
					cfg := in.Configuration
					cfg.ReplayAfter = nil
					cfg.URL = strings.Replace(cfg.URL, "example.com", "example.org", 1)
					if _, err := c.UpdateWebhook(t.Context(), scope, sids[i], cfg); err != nil {
						t.Fatalf("update %s: %v", in.Target, err)
					}
				}
				for range 4 { // past one page of five
					fake.CreateWebhook(twiliofake.Webhook{ConversationSid: conv, Target: "studio", FlowSid: flow})
				}
				if list, err := c.ListWebhooks(t.Context(), scope); err != nil || len(list) < 7 {
					t.Fatalf("list: %v (%d)", err, len(list))
				}
				for _, w := range fake.ConversationWebhooks(conv) {
					if err := c.DeleteWebhook(t.Context(), scope, w.Sid); err != nil {
						t.Fatalf("delete: %v", err)
					}
				}
			}
			if len(rec.log) < 20 {
				t.Fatalf("only %d exchanges recorded: the checks below would prove little", len(rec.log))
			}
			for _, x := range rec.log {
				if err := checkRequest(x); err != nil {
					t.Errorf("request %s %s %v: %v", x.method, x.path, x.params, err)
				}
				if err := checkAnswer(x); err != nil {
					t.Errorf("answer to %s %s: %v\n%s", x.method, x.path, err, x.answer)
				}
			}
		})
	}
}

// TestConformanceCheckerCatchesDepartures proves the checks can fail.
func TestConformanceCheckerCatchesDepartures(t *testing.T) {
	form := "application/x-www-form-urlencoded"
	for name, x := range map[string]exchange{
		"unknown path":          {method: http.MethodGet, path: "/v1/Webhooks"},
		"unknown parameter":     {method: http.MethodPost, path: "/v1/Conversations/" + conv + "/Webhooks", contentType: form, params: url.Values{"Target": {"webhook"}, "Configuration.Events": {"x"}}},
		"update with target":    {method: http.MethodPost, path: "/v1/Conversations/" + conv + "/Webhooks/" + goodSid, contentType: form, params: url.Values{"Target": {"webhook"}}},
		"method in upper case":  {method: http.MethodPost, path: "/v1/Conversations/" + conv + "/Webhooks", contentType: form, params: url.Values{"Target": {"webhook"}, "Configuration.Method": {"POST"}}},
		"empty value":           {method: http.MethodPost, path: "/v1/Conversations/" + conv + "/Webhooks", contentType: form, params: url.Values{"Target": {"webhook"}, "Configuration.Filters": {""}}},
		"JSON body":             {method: http.MethodPost, path: "/v1/Conversations/" + conv + "/Webhooks", contentType: "application/json", params: url.Values{"Target": {"webhook"}}},
		"create without target": {method: http.MethodPost, path: "/v1/Conversations/" + conv + "/Webhooks", contentType: form, params: url.Values{"Configuration.Url": {"https://e.com"}}},
		"page size 6":           {method: http.MethodGet, path: "/v1/Conversations/" + conv + "/Webhooks", params: url.Values{"PageSize": {"6"}}},
	} {
		if checkRequest(x) == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for name, x := range map[string]exchange{
		"extra property":        {method: http.MethodGet, path: "/v1/Conversations/" + conv + "/Webhooks/" + goodSid, status: 200, answerType: "application/json", answer: []byte(`{"sid":"WH1","triggers":[]}`)},
		"chat_service_sid":      {method: http.MethodGet, path: "/v1/Conversations/" + conv + "/Webhooks/" + goodSid, status: 200, answerType: "application/json", answer: []byte(`{"chat_service_sid":"IS1"}`)},
		"configuration a list":  {method: http.MethodGet, path: "/v1/Conversations/" + conv + "/Webhooks/" + goodSid, status: 200, answerType: "application/json", answer: []byte(`{"configuration":[]}`)},
		"html":                  {method: http.MethodGet, path: "/v1/Conversations/" + conv + "/Webhooks/" + goodSid, status: 200, answerType: "text/html", answer: []byte(`<html>`)},
		"list without meta":     {method: http.MethodGet, path: "/v1/Conversations/" + conv + "/Webhooks", status: 200, answerType: "application/json", answer: []byte(`{"webhooks":[]}`)},
		"sid of the wrong type": {method: http.MethodGet, path: "/v1/Conversations/" + conv + "/Webhooks/" + goodSid, status: 200, answerType: "application/json", answer: []byte(`{"sid":5}`)},
	} {
		if checkAnswer(x) == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
