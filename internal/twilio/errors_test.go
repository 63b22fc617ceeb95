package twilio_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

// class is what the helpers say about one error.
type class struct {
	notFound, convNotFound, unauthorized, rateLimited, limit, retryable, terminal, notTwilio bool
}

func classOf(err error) class {
	return class{
		notFound: twilio.IsNotFound(err), convNotFound: twilio.IsConversationNotFound(err),
		unauthorized: twilio.IsUnauthorized(err), rateLimited: twilio.IsRateLimited(err),
		limit: twilio.IsLimitReached(err), retryable: twilio.IsRetryable(err),
		terminal: twilio.IsTerminal(err), notTwilio: twilio.IsNotTwilioAnswer(err),
	}
}

func twilioJSON(status, code int) string {
	return fmt.Sprintf(`{"code":%d,"message":"m","more_info":"https://www.twilio.com/docs/errors/%d","status":%d}`, code, code, status)
}

// answerShapes are the shapes of error answers, served by httptest to a fetch and a
// delete: classification must depend on whether Twilio said it, not on the status.
var answerShapes = []struct {
	name        string
	status      int
	contentType string
	body        string
	want        class
	wantCode    int
}{
	{"HTML 404 from a proxy", 404, "text/html", "<html><body>404 Not Found</body></html>",
		class{retryable: true, notTwilio: true}, 0},
	{"empty 404", 404, "", "", class{retryable: true, notTwilio: true}, 0},
	{"JSON 404 without code", 404, "application/json", `{"message":"not here","status":404}`,
		class{retryable: true, notTwilio: true}, 0},
	{"JSON 404 with code 0", 404, "application/json", `{"code":0,"message":"x"}`,
		class{retryable: true, notTwilio: true}, 0},
	{"Twilio 404/20404", 404, "application/json", twilioJSON(404, 20404), class{notFound: true, terminal: true}, 20404},
	// Twilio's JSON and nothing else: twilio-go alone reads the first JSON value,
	// keys in any case, and ignores what follows (found by FuzzWebhookAnswer).
	{"JSON 404/20404 with bytes after it", 404, "application/json", twilioJSON(404, 20404) + "0",
		class{retryable: true, notTwilio: true}, 0},
	{"two JSON 404/20404 objects", 404, "application/json", twilioJSON(404, 20404) + twilioJSON(404, 20404),
		class{retryable: true, notTwilio: true}, 0},
	{"JSON 404 with Code, not code", 404, "application/json", `{"Code":20404,"message":"Not Found","status":404}`,
		class{retryable: true, notTwilio: true}, 0},
	{"JSON 404 with a string code", 404, "application/json", `{"code":"20404","message":"Not Found","status":404}`,
		class{retryable: true, notTwilio: true}, 0},
	{"JSON 404/20404 longer than an error answer", 404, "application/json",
		`{"code":20404,"message":"` + strings.Repeat("x", 70<<10) + `","status":404}`,
		class{retryable: true, notTwilio: true}, 0},
	// The code is read from "code" alone, never from another case of it
	// (twilio-go takes the last key matching in any case).
	{"Twilio 404/1 with a Code of 20404", 404, "application/json", `{"code":1,"Code":20404,"message":"m","status":404}`,
		class{terminal: true}, 1},
	{"Twilio 404/1 with a CODE of 50360", 404, "application/json", `{"code":1,"CODE":50360,"message":"m","status":404}`,
		class{terminal: true}, 1},
	{"Twilio 404/20404 with white space around it", 404, "application/json", "\n " + twilioJSON(404, 20404) + "\n",
		class{notFound: true, terminal: true}, 20404},
	{"Twilio 404/50360", 404, "application/json", twilioJSON(404, 50360), class{notFound: true, terminal: true}, 50360},
	{"Twilio 404/50350", 404, "application/json", twilioJSON(404, 50350), class{convNotFound: true, terminal: true}, 50350},
	// A conversation gone is a client error; a 5xx carrying the code is not
	// Twilio saying so (a deletion would count it done).
	{"Twilio 503/50350", 503, "application/json", twilioJSON(503, 50350), class{retryable: true}, 50350},
	{"Twilio 401/20003", 401, "application/json", twilioJSON(401, 20003), class{unauthorized: true, terminal: true}, 20003},
	{"Twilio 403/20003", 403, "application/json", twilioJSON(403, 20003), class{unauthorized: true, terminal: true}, 20003},
	{"HTML 401 from a proxy", 401, "text/html", "<html>login</html>", class{retryable: true, notTwilio: true}, 0},
	{"Twilio 429/20429", 429, "application/json", twilioJSON(429, 20429), class{rateLimited: true, retryable: true}, 20429},
	{"HTML 429 from a proxy", 429, "text/html", "<html>slow down</html>", class{rateLimited: true, retryable: true, notTwilio: true}, 0},
	{"Twilio 400/50361", 400, "application/json", twilioJSON(400, 50361), class{limit: true, terminal: true}, 50361},
	{"JSON 400 without code", 400, "application/json", `{"error":"bad"}`, class{retryable: true, notTwilio: true}, 0},
	{"Twilio 500/20500", 500, "application/json", twilioJSON(500, 20500), class{retryable: true}, 20500},
	{"Twilio 503/20503", 503, "application/json", twilioJSON(503, 20503), class{retryable: true}, 20503},
	{"HTML 502", 502, "text/html", "<html>bad gateway</html>", class{retryable: true, notTwilio: true}, 0},
	{"HTML 200 from a web server", 200, "text/html", "<html>welcome</html>", class{retryable: true, notTwilio: true}, 0},
	{"redirect", 301, "text/html", "<html>moved</html>", class{retryable: true, notTwilio: true}, 0},
}

func serveShape(t *testing.T, status int, contentType, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		if status >= 300 && status < 400 {
			w.Header().Set("Location", "https://example.com/elsewhere")
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestAnswerShapesAreClassifiedByTwilioCode(t *testing.T) {
	for _, tc := range answerShapes {
		t.Run(tc.name, func(t *testing.T) {
			base := serveShape(t, tc.status, tc.contentType, tc.body)
			f, err := twilio.NewFactory(twilio.Options{BaseURL: base, MaxAttempts: 1})
			if err != nil {
				t.Fatal(err)
			}
			c, err := f.For(twilio.Credentials{AccountSid: account, AuthToken: authToken})
			if err != nil {
				t.Fatal(err)
			}
			scope := twilio.Scope{ConversationSid: conv}
			_, fetchErr := c.FetchWebhook(t.Context(), scope, "WH0000000000000000000000000000000f")
			deleteErr := c.DeleteWebhook(t.Context(), scope, "WH0000000000000000000000000000000f")
			for op, err := range map[string]error{"fetch": fetchErr, "delete": deleteErr} {
				if tc.status == 200 && op == "delete" {
					continue // a delete reads no body: a 200 is a success
				}
				e := twilio.AsAPIError(err)
				if e == nil {
					t.Fatalf("%s: %v is not an *APIError", op, err)
				}
				if got := classOf(err); got != tc.want {
					t.Fatalf("%s: %v\nclass %+v\nwant  %+v", op, err, got, tc.want)
				}
				if e.Status != tc.status || e.Code != tc.wantCode {
					t.Fatalf("%s: status %d code %d, want %d/%d", op, e.Status, e.Code, tc.status, tc.wantCode)
				}
				if tc.want.notTwilio {
					msg := err.Error()
					if !strings.Contains(msg, "--twilio-api-url") || !strings.Contains(msg, "proxy") {
						t.Fatalf("%s: message %q names neither --twilio-api-url nor a proxy", op, msg)
					}
					if tc.contentType != "" && !strings.Contains(msg, tc.contentType) {
						t.Fatalf("%s: message %q lacks the content type", op, msg)
					}
				}
			}
		})
	}
}

func TestClassificationOfBuiltErrors(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want class
	}{
		{"nil", nil, class{}},
		{"not ours", errors.New("boom"), class{retryable: true}},
		{"network", &twilio.APIError{Operation: "fetch", Message: "refused", Err: errors.New("dial")}, class{retryable: true}},
		{"404 without code", &twilio.APIError{Operation: "fetch", Status: 404}, class{retryable: true, notTwilio: true}},
		{"404/20404", &twilio.APIError{Operation: "fetch", Status: 404, Code: 20404}, class{notFound: true, terminal: true}},
		{"404/50360", &twilio.APIError{Operation: "fetch", Status: 404, Code: 50360}, class{notFound: true, terminal: true}},
		{"400/20404 is not a 404", &twilio.APIError{Operation: "fetch", Status: 400, Code: 20404}, class{terminal: true}},
		{"401 without code", &twilio.APIError{Operation: "fetch", Status: 401}, class{retryable: true, notTwilio: true}},
		{"401/20003", &twilio.APIError{Operation: "fetch", Status: 401, Code: 20003}, class{unauthorized: true, terminal: true}},
		{"refused locally", &twilio.APIError{Operation: twilio.OpCredentials, Code: twilio.CodeInvalidPassword}, class{unauthorized: true, terminal: true}},
		{"21224 before sending", &twilio.APIError{Operation: "fetch", Code: twilio.CodeInvalidPassword}, class{unauthorized: true, terminal: true}},
		{"429 without code", &twilio.APIError{Operation: "list", Status: 429}, class{rateLimited: true, retryable: true, notTwilio: true}},
		{"500 without code", &twilio.APIError{Operation: "list", Status: 500}, class{retryable: true, notTwilio: true}},
		{"wrapped 50361", errors.Join(errors.New("ctx"), &twilio.APIError{Operation: "create", Status: 400, Code: 50361}), class{limit: true, terminal: true}},
	}
	for _, tc := range cases {
		if got := classOf(tc.err); got != tc.want {
			t.Errorf("%s: %v\nclass %+v\nwant  %+v", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestNotTwilio404IsRetriedButNeverNotFound(t *testing.T) {
	e := newEnv(t, func(o *twilio.Options) { o.MaxAttempts = 3; o.Timeout = time.Second })
	created, err := e.client.CreateWebhook(t.Context(), twilio.Scope{ConversationSid: conv}, webhookInput())
	if err != nil {
		t.Fatal(err)
	}
	e.fake.ResetLog()
	e.fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultHTML404}, twiliofake.Fault{Kind: twiliofake.FaultHTML404}, twiliofake.Fault{Kind: twiliofake.FaultHTML404})
	err = e.client.DeleteWebhook(t.Context(), twilio.Scope{ConversationSid: conv}, created.Sid)
	if twilio.IsNotFound(err) || !twilio.IsNotTwilioAnswer(err) || !twilio.IsRetryable(err) {
		t.Fatalf("delete behind a proxy's 404: %v", err)
	}
	if n := len(e.fake.Requests()); n != 3 {
		t.Fatalf("%d requests, want 3 attempts", n)
	}
	if _, ok := e.fake.Webhook(created.Sid); !ok {
		t.Fatal("the webhook is gone")
	}
}
