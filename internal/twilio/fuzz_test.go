package twilio

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// FuzzDecodeConfiguration feeds arbitrary JSON to the configuration decoder: it
// must never panic, and what it returns must survive a round trip through
// Twilio's own answer shape unchanged.
func FuzzDecodeConfiguration(f *testing.F) {
	for _, seed := range []string{
		`{"url":"https://e.com","method":"get","filters":["onMessageAdded"]}`,
		`{"url":"https://e.com","method":"POST","triggers":["a","b"]}`,
		`{"flow_sid":"FW00000000000000000000000000000001","replay_after":0}`,
		`{"flowSid":"FW1","replayAfter":"12"}`,
		`{"replay_after":1e300}`, `{"replay_after":-0}`, `{"filters":[null,1,"x"]}`,
		`[]`, `null`, `"configuration"`, `{}`,
		`{"url":"https://e.com","method":"POST","filters":["keyword1","keyword2"]}`,
		`{"filters":["onMessageAdded","help"],"triggers":null}`, `{"filters":null,"triggers":[]}`,
		`{"url":null,"method":null,"flow_sid":null,"replay_after":null}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		var raw interface{}
		if json.Unmarshal([]byte(doc), &raw) != nil {
			return
		}
		cfg := DecodeConfiguration(&raw)
		if cfg.ReplayAfter != nil && *cfg.ReplayAfter < 0 {
			t.Fatalf("negative replayAfter %d from %s", *cfg.ReplayAfter, doc)
		}
		again := map[string]interface{}{"url": cfg.URL, "method": cfg.Method, "flow_sid": cfg.FlowSid}
		if cfg.Filters != nil {
			again["filters"] = toAny(cfg.Filters)
		}
		if cfg.Triggers != nil {
			again["triggers"] = toAny(cfg.Triggers)
		}
		if cfg.ReplayAfter != nil {
			again["replay_after"] = float64(*cfg.ReplayAfter)
		}
		var round interface{} = again
		got := DecodeConfiguration(&round)
		a, _ := json.Marshal(cfg)
		b, _ := json.Marshal(got)
		if string(a) != string(b) {
			t.Fatalf("round trip changed %s into %s", a, b)
		}
		checkTriggerShape(t, doc, &raw)
	})
}

// checkTriggerShape decodes doc as a trigger webhook's configuration: keywords
// read from filters are never event names, filters kept are always event names,
// and nothing is lost or invented.
func checkTriggerShape(t *testing.T, doc string, raw *interface{}) {
	t.Helper()
	plain, plainAbsent := decodeConfiguration("", raw)
	trig, trigAbsent := decodeConfiguration("trigger", raw)
	if plainAbsent&fieldBits[FieldTriggers] == 0 || plainAbsent&fieldBits[FieldFilters] != 0 {
		// triggers present, or filters absent: both decodings agree.
		a, _ := json.Marshal(plain)
		b, _ := json.Marshal(trig)
		if string(a) != string(b) || plainAbsent != trigAbsent {
			t.Fatalf("%s: trigger decoding %s differs from %s", doc, b, a)
		}
		return
	}
	if trigAbsent&fieldBits[FieldTriggers] != 0 || len(trig.Filters)+len(trig.Triggers) != len(plain.Filters) {
		t.Fatalf("%s: split %v + %v of %v", doc, trig.Filters, trig.Triggers, plain.Filters)
	}
	for _, f := range trig.Filters {
		if !IsEventName(f) {
			t.Fatalf("%s: keyword %q kept as a filter", doc, f)
		}
	}
	for _, k := range trig.Triggers {
		if IsEventName(k) {
			t.Fatalf("%s: event %q read as a keyword", doc, k)
		}
	}
}

func toAny(s []string) []interface{} {
	out := make([]interface{}, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// FuzzWebhookAnswer serves arbitrary bodies and statuses as Twilio's answer to a
// fetch: the client must never panic, and must either return a webhook (2xx with
// a JSON object) or an *APIError whose class is consistent with the status.
//
// The answer comes from an in-memory RoundTripper under the client's own
// transports (base URL rewrite, answer capture, twilio-go's decoding): a
// loopback server per input would leave a socket in TIME_WAIT for each of the
// thousands of inputs a second, and exhaust the machine's ephemeral ports for
// whatever runs next (envtest picks its ports from the same range).
func FuzzWebhookAnswer(f *testing.F) {
	f.Add(200, `{"sid":"WH1","account_sid":"AC1","target":"webhook","configuration":{"url":"https://e.com"},"date_created":"2016-03-24T21:05:50Z"}`)
	f.Add(404, `{"code":20404,"message":"Not Found","more_info":"https://www.twilio.com/docs/errors/20404","status":404}`)
	f.Add(429, `{"code":20429,"message":"Too Many Requests","status":429}`)
	f.Add(400, `{"code":50365,"message":"Invalid conversation webhook filter","status":400}`)
	f.Add(502, `<html>bad gateway</html>`)
	f.Add(200, `not json`)
	f.Add(200, `{"date_created":"yesterday"}`)
	f.Add(401, ``)
	f.Add(404, `<html>404 Not Found</html>`)
	f.Add(404, `{"message":"no code"}`)
	f.Add(404, `{"Code":1}0`) // twilio-go reads the first JSON value and any key case
	f.Add(404, `{"code":20404}{"code":20404}`)
	f.Add(404, `{"code":1,"Code":20404}`) // the code is "code"'s, not twilio-go's last match in any case
	f.Add(404, `{"code":50360,"message":"Webhook not found","status":404}`)
	f.Add(201, `{"sid":null,"target":"webhook"}`)
	f.Add(200, `{"sid":"WH1","conversation_sid":null,"target":null,"configuration":null}`)
	f.Add(200, `{"sid":"WH00000000000000000000000000000001","target":"trigger","configuration":{"filters":["a","onMessageAdded"]}}`)
	f.Fuzz(func(t *testing.T, status int, body string) {
		if status < 200 || status > 599 || (status >= 300 && status < 400) {
			return
		}
		answer := roundTripperFunc(func(req *http.Request) (*http.Response, error) {
			rec := httptest.NewRecorder()
			rec.Header().Set("Content-Type", "application/json")
			rec.WriteHeader(status)
			_, _ = rec.WriteString(body)
			resp := rec.Result()
			resp.Request = req
			return resp, nil
		})
		fac, err := NewFactory(Options{BaseURL: "http://twilio.invalid", MaxAttempts: 1, Timeout: 2 * time.Second, Transport: answer, RequestsPerSecond: 1e6, Burst: 10})
		if err != nil {
			t.Fatal(err)
		}
		c, _ := fac.For(Credentials{AccountSid: "AC00000000000000000000000000000001", AuthToken: "tokenSECRET"})
		// Twilio's error JSON: one object, its "code" key (in that case) a
		// non-zero integer, nothing after it.
		var fields map[string]json.RawMessage
		var code int
		twilioCode := json.Unmarshal([]byte(body), &fields) == nil &&
			json.Unmarshal(fields["code"], &code) == nil && code != 0
		created, createErr := c.CreateWebhook(t.Context(), Scope{ConversationSid: "CH1"}, CreateWebhookInput{Target: "webhook"})
		if msg := checkCreateAnswer(status, twilioCode, created, createErr); msg != "" {
			t.Fatalf("create answered %d %q: %s", status, body, msg)
		}
		wh, err := c.FetchWebhook(t.Context(), Scope{ConversationSid: "CH1"}, fuzzSid)
		if e := AsAPIError(err); twilioCode && status >= 400 && e != nil && e.Code != code {
			t.Fatalf("fetch answered %d %q: code %d, the body's \"code\" is %d", status, body, e.Code, code)
		}
		if msg := checkFetchAnswer(status, twilioCode, wh, err); msg != "" {
			t.Fatalf("fetch answered %d %q: %s", status, body, msg)
		}
	})
}

const fuzzSid = "WH00000000000000000000000000000001"

// checkCreateAnswer says what is wrong with a create's outcome, or "".
func checkCreateAnswer(status int, twilioCode bool, created *Webhook, err error) string {
	switch {
	case err == nil && (created == nil || !IsWebhookSid(created.Sid)):
		return fmt.Sprintf("accepted without a webhook SID: %+v", created)
	case err != nil && status < 300 && (!IsIncompleteCreate(err) || IsTerminal(err)):
		return fmt.Sprintf("%v is not an incomplete create", err)
	case err != nil && IsNotFound(err) && !twilioCode:
		return "not found without Twilio's code"
	}
	return ""
}

// checkFetchAnswer says what is wrong with a fetch's outcome, or "".
func checkFetchAnswer(status int, twilioCode bool, wh *Webhook, err error) string {
	if err == nil {
		if status >= 300 || wh == nil || wh.Sid != fuzzSid {
			return fmt.Sprintf("no error, webhook %+v", wh)
		}
		return ""
	}
	switch {
	case AsAPIError(err) == nil:
		return fmt.Sprintf("error %T is not an *APIError", err)
	case strings.Contains(err.Error(), "tokenSECRET"):
		return fmt.Sprintf("secret in error %q", err)
	case IsNotFound(err) && (status != 404 || !twilioCode):
		return "not found without Twilio's 404 JSON"
	case !twilioCode && status >= 400 && (!IsNotTwilioAnswer(err) || !IsRetryable(err) || IsUnauthorized(err)):
		return fmt.Sprintf("%v: want a transient answer that is not Twilio's", err)
	case status >= 500 && !IsRetryable(err):
		return fmt.Sprintf("not retryable: %v", err)
	case status == 429 && !IsRateLimited(err):
		return fmt.Sprintf("not rate limited: %v", err)
	}
	return ""
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
