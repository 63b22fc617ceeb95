package twilio_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

const (
	account   = "AC00000000000000000000000000000001"
	authToken = "tokenSECRET00000000000000000001"
	keySid    = "SK00000000000000000000000000000001"
	keySecret = "keySECRET0000000000000000000001"
	conv      = "CH00000000000000000000000000000001"
	flow      = "FW00000000000000000000000000000001"
)

type env struct {
	fake    *twiliofake.Server
	srv     *httptest.Server
	service string
	factory *twilio.Factory
	client  twilio.WebhookAPI
	reg     *prometheus.Registry
}

func newEnv(t *testing.T, tweak ...func(*twilio.Options)) *env {
	t.Helper()
	f := twiliofake.New()
	svc := f.AddAccount(account, authToken)
	f.AddAPIKey(account, keySid, keySecret)
	f.AddConversation(account, conv)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	reg := prometheus.NewRegistry()
	opts := twilio.Options{
		BaseURL: srv.URL, RequestsPerSecond: 1000, Burst: 100, Timeout: 2 * time.Second,
		BackoffBase: 5 * time.Millisecond, BackoffMax: 2 * time.Second, Metrics: twilio.NewMetrics(reg),
	}
	for _, tw := range tweak {
		tw(&opts)
	}
	factory, err := twilio.NewFactory(opts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := factory.For(twilio.Credentials{AccountSid: account, APIKeySid: keySid, APIKeySecret: keySecret})
	if err != nil {
		t.Fatal(err)
	}
	return &env{fake: f, srv: srv, service: svc, factory: factory, client: c, reg: reg}
}

func webhookInput() twilio.CreateWebhookInput {
	return twilio.CreateWebhookInput{Target: "webhook", Configuration: twilio.Configuration{
		URL: "https://example.com/hook", Method: "POST", Filters: []string{"onMessageAdded", "onParticipantAdded"},
	}}
}

func TestOperationsOnBothPathFamilies(t *testing.T) {
	for _, withService := range []bool{false, true} {
		t.Run(map[bool]string{false: "conversation path", true: "service path"}[withService], func(t *testing.T) {
			e := newEnv(t)
			scope := twilio.Scope{ConversationSid: conv}
			wantPrefix := "/v1/Conversations/"
			if withService {
				scope.ServiceSid = e.service
				wantPrefix = "/v1/Services/" + e.service + "/Conversations/"
			}
			ctx := t.Context()
			replay := int32(0)
			in := webhookInput()
			in.Configuration.ReplayAfter = &replay
			created, err := e.client.CreateWebhook(ctx, scope, in)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(created.Sid, "WH") || created.AccountSid != account || created.ConversationSid != conv ||
				created.Target != "webhook" || created.DateCreated.IsZero() || created.Configuration.Method != "post" ||
				created.Configuration.ReplayAfter == nil || *created.Configuration.ReplayAfter != 0 {
				t.Fatalf("created %+v", created)
			}
			if withService && created.ServiceSid != e.service {
				t.Fatalf("service SID %q, want %q", created.ServiceSid, e.service)
			}
			if !strings.HasPrefix(created.URL, twiliofake.DefaultPublicURL+wantPrefix) {
				t.Fatalf("resource url %q", created.URL)
			}
			fetched, err := e.client.FetchWebhook(ctx, scope, created.Sid)
			if err != nil || fetched.Sid != created.Sid || !slices.Equal(fetched.Configuration.Filters, in.Configuration.Filters) {
				t.Fatalf("fetch: %v %+v", err, fetched)
			}
			updated, err := e.client.UpdateWebhook(ctx, scope, created.Sid, twilio.Configuration{URL: "https://example.com/v2", Method: "GET", Filters: []string{"onMessageRemoved"}})
			if err != nil || updated.Configuration.URL != "https://example.com/v2" || updated.Configuration.Method != "get" {
				t.Fatalf("update: %v %+v", err, updated)
			}
			list, err := e.client.ListWebhooks(ctx, scope)
			if err != nil || len(list) != 1 || list[0].Sid != created.Sid {
				t.Fatalf("list: %v %+v", err, list)
			}
			if err := e.client.DeleteWebhook(ctx, scope, created.Sid); err != nil {
				t.Fatal(err)
			}
			if err := e.client.DeleteWebhook(ctx, scope, created.Sid); !twilio.IsNotFound(err) {
				t.Fatalf("second delete: %v, want not found", err)
			}
			for _, r := range e.fake.Requests() {
				if !strings.HasPrefix(r.Path, wantPrefix) {
					t.Fatalf("request to %s, want prefix %s", r.Path, wantPrefix)
				}
			}
		})
	}
}

func TestFormEncoding(t *testing.T) {
	e := newEnv(t)
	trig := twilio.CreateWebhookInput{Target: "trigger", Configuration: twilio.Configuration{
		URL: "https://example.com/t", Method: "GET", Triggers: []string{"help", "stop"},
	}}
	if _, err := e.client.CreateWebhook(t.Context(), twilio.Scope{ConversationSid: conv}, trig); err != nil {
		t.Fatal(err)
	}
	studio := twilio.CreateWebhookInput{Target: "studio", Configuration: twilio.Configuration{FlowSid: flow}}
	if _, err := e.client.CreateWebhook(t.Context(), twilio.Scope{ConversationSid: conv}, studio); err != nil {
		t.Fatal(err)
	}
	reqs := e.fake.Requests()
	body := reqs[0].RawBody
	for _, want := range []string{"Configuration.Triggers=help&Configuration.Triggers=stop", "Configuration.Method=get", "Target=trigger"} {
		if !strings.Contains(body, want) {
			t.Fatalf("body %q lacks %q", body, want)
		}
	}
	// Fields left unset are never sent as empty values.
	for _, absent := range []string{"Configuration.FlowSid", "Configuration.ReplayAfter", "Configuration.Filters"} {
		if strings.Contains(body, absent) {
			t.Fatalf("body %q sends unset %s", body, absent)
		}
	}
	if got := reqs[1].RawBody; strings.Contains(got, "Configuration.Url") || strings.Contains(got, "Configuration.Method") || !strings.Contains(got, "Configuration.FlowSid="+flow) {
		t.Fatalf("studio body %q", got)
	}
}

func TestListFollowsPages(t *testing.T) {
	e := newEnv(t)
	var want []string
	for range 12 {
		want = append(want, e.fake.CreateWebhook(twiliofake.Webhook{ConversationSid: conv, Target: "studio", FlowSid: flow}))
	}
	got, err := e.client.ListWebhooks(t.Context(), twilio.Scope{ConversationSid: conv})
	if err != nil {
		t.Fatal(err)
	}
	var sids []string
	for _, w := range got {
		sids = append(sids, w.Sid)
	}
	if !slices.Equal(sids, want) {
		t.Fatalf("listed %v, want %v", sids, want)
	}
	reqs := e.fake.Requests()
	if len(reqs) != 3 {
		t.Fatalf("%d list requests, want 3 pages", len(reqs))
	}
	for _, r := range reqs {
		if r.Form.Get("PageSize") != "5" {
			t.Fatalf("page request without PageSize=5: %v", r.Form)
		}
	}
}

func TestErrorClasses(t *testing.T) {
	scope := twilio.Scope{ConversationSid: conv}
	cases := []struct {
		name   string
		setup  func(e *env) (twilio.WebhookAPI, func() error)
		status int
		code   int
		check  func(error) bool
		calls  int
	}{
		{"webhook not found", func(e *env) (twilio.WebhookAPI, func() error) {
			return e.client, func() error {
				_, err := e.client.FetchWebhook(context.Background(), scope, "WH0000000000000000000000000000000f")
				return err
			}
		}, 404, 20404, twilio.IsNotFound, 1},
		{"conversation not found", func(e *env) (twilio.WebhookAPI, func() error) {
			return e.client, func() error {
				_, err := e.client.CreateWebhook(context.Background(), twilio.Scope{ConversationSid: "CH0000000000000000000000000000000f"}, webhookInput())
				return err
			}
		}, 404, 50350, twilio.IsConversationNotFound, 1},
		{"unauthorized", func(e *env) (twilio.WebhookAPI, func() error) {
			c, _ := e.factory.For(twilio.Credentials{AccountSid: account, AuthToken: "wrongSECRET"})
			return c, func() error { _, err := c.ListWebhooks(context.Background(), scope); return err }
		}, 401, 20003, twilio.IsUnauthorized, 1},
		{"terminal 4xx", func(e *env) (twilio.WebhookAPI, func() error) {
			return e.client, func() error {
				in := webhookInput()
				in.Configuration.Filters = []string{"onNothing"}
				_, err := e.client.CreateWebhook(context.Background(), scope, in)
				return err
			}
		}, 400, 50365, twilio.IsTerminal, 1},
		{"limit reached", func(e *env) (twilio.WebhookAPI, func() error) {
			for range 5 {
				e.fake.CreateWebhook(twiliofake.Webhook{ConversationSid: conv, Target: "studio", FlowSid: flow})
			}
			return e.client, func() error {
				_, err := e.client.CreateWebhook(context.Background(), scope, webhookInput())
				return err
			}
		}, 400, 50361, func(err error) bool { return twilio.IsLimitReached(err) && twilio.IsTerminal(err) }, 1},
		{"rate limited past the attempts", func(e *env) (twilio.WebhookAPI, func() error) {
			for range 4 {
				e.fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultRateLimited})
			}
			return e.client, func() error { _, err := e.client.ListWebhooks(context.Background(), scope); return err }
		}, 429, 20429, func(err error) bool { return twilio.IsRateLimited(err) && twilio.IsRetryable(err) }, 4},
		{"5xx on fetch is retried", func(e *env) (twilio.WebhookAPI, func() error) {
			for range 4 {
				e.fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultServerError})
			}
			return e.client, func() error {
				_, err := e.client.FetchWebhook(context.Background(), scope, "WH0000000000000000000000000000000f")
				return err
			}
		}, 500, 20500, twilio.IsRetryable, 4},
		{"5xx on create is not retried", func(e *env) (twilio.WebhookAPI, func() error) {
			e.fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultServerError})
			return e.client, func() error {
				_, err := e.client.CreateWebhook(context.Background(), scope, webhookInput())
				return err
			}
		}, 500, 20500, twilio.IsRetryable, 1},
		{"lost create response is not retried", func(e *env) (twilio.WebhookAPI, func() error) {
			e.fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultLoseResponse})
			return e.client, func() error {
				_, err := e.client.CreateWebhook(context.Background(), scope, webhookInput())
				return err
			}
		}, 0, 0, func(err error) bool { return twilio.IsRetryable(err) && !twilio.IsTerminal(err) }, 1},
		{"timeout on delete is retried", func(e *env) (twilio.WebhookAPI, func() error) {
			e.fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultTimeout}, twiliofake.Fault{Kind: twiliofake.FaultTimeout})
			return e.client, func() error {
				return e.client.DeleteWebhook(context.Background(), scope, "WH0000000000000000000000000000000f")
			}
		}, 404, 20404, twilio.IsNotFound, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *twilio.Options) { o.Timeout = 300 * time.Millisecond })
			_, call := tc.setup(e)
			e.fake.ResetLog()
			err := call()
			apiErr := twilio.AsAPIError(err)
			if apiErr == nil {
				t.Fatalf("error %v is not an *APIError", err)
			}
			if apiErr.Status != tc.status || apiErr.Code != tc.code || !tc.check(err) {
				t.Fatalf("got status %d code %d (%v), want %d/%d", apiErr.Status, apiErr.Code, err, tc.status, tc.code)
			}
			if tc.status != 0 && apiErr.MoreInfo == "" {
				t.Fatalf("more_info lost: %+v", apiErr)
			}
			if n := len(e.fake.Requests()); n != tc.calls {
				t.Fatalf("%d requests reached the fake, want %d", n, tc.calls)
			}
		})
	}
}

func TestNonJSONAndConnectionErrorsAreTransient(t *testing.T) {
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("<html>bad gateway</html>"))
	}))
	defer html.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	for name, base := range map[string]string{"non-JSON 502": html.URL, "connection refused": closed.URL} {
		t.Run(name, func(t *testing.T) {
			f, err := twilio.NewFactory(twilio.Options{BaseURL: base, MaxAttempts: 2, BackoffBase: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			c, _ := f.For(twilio.Credentials{AccountSid: account, AuthToken: authToken})
			_, err = c.FetchWebhook(t.Context(), twilio.Scope{ConversationSid: conv}, "WH0000000000000000000000000000000f")
			if !twilio.IsRetryable(err) || twilio.IsTerminal(err) || twilio.IsNotFound(err) {
				t.Fatalf("%v: want transient", err)
			}
		})
	}
}

// countingBodies answers every request with status and body, and keeps each
// answer's body to check that it was closed.
type countingBodies struct {
	status int
	body   string
	mu     sync.Mutex
	bodies []*countedBody
}

type countedBody struct {
	*strings.Reader
	closed atomic.Bool
}

func (b *countedBody) Close() error { b.closed.Store(true); return nil }

func (c *countingBodies) RoundTrip(req *http.Request) (*http.Response, error) {
	b := &countedBody{Reader: strings.NewReader(c.body)}
	c.mu.Lock()
	c.bodies = append(c.bodies, b)
	c.mu.Unlock()
	return &http.Response{
		StatusCode: c.status, Header: http.Header{"Content-Type": {"application/json"}},
		Body: b, Request: req,
	}, nil
}

// Every answer's body is closed once its attempt is over: twilio-go closes a
// success's but not an error's, and a transport that ignores the attempt's
// context would otherwise keep the connection.
func TestEveryAnswerBodyIsClosed(t *testing.T) {
	for name, tr := range map[string]*countingBodies{
		"Twilio's 404":  {status: 404, body: `{"code":20404,"message":"Not Found","status":404}`},
		"a proxy's 502": {status: 502, body: "<html>bad gateway</html>"},
		"a fetched 200": {status: 200, body: `{"sid":"WH0000000000000000000000000000000f","target":"webhook","configuration":{"url":"https://e.com"}}`},
	} {
		t.Run(name, func(t *testing.T) {
			f, err := twilio.NewFactory(twilio.Options{BaseURL: "https://conversations.twilio.com", MaxAttempts: 1, Transport: tr})
			if err != nil {
				t.Fatal(err)
			}
			c, _ := f.For(twilio.Credentials{AccountSid: account, AuthToken: authToken})
			scope := twilio.Scope{ConversationSid: conv}
			_, _ = c.FetchWebhook(t.Context(), scope, "WH0000000000000000000000000000000f")
			_ = c.DeleteWebhook(t.Context(), scope, "WH0000000000000000000000000000000f")
			tr.mu.Lock()
			defer tr.mu.Unlock()
			if len(tr.bodies) != 2 {
				t.Fatalf("%d answers, want one fetch and one delete", len(tr.bodies))
			}
			for i, b := range tr.bodies {
				if !b.closed.Load() {
					t.Errorf("answer %d of 2: body not closed", i+1)
				}
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Run("honoured between attempts", func(t *testing.T) {
		e := newEnv(t)
		e.fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultRateLimited, RetryAfter: time.Second})
		if _, err := e.client.ListWebhooks(t.Context(), twilio.Scope{ConversationSid: conv}); err != nil {
			t.Fatal(err)
		}
		reqs := e.fake.Requests()
		if len(reqs) != 2 || reqs[0].Status != 429 || reqs[1].Status != 200 {
			t.Fatalf("requests %+v", reqs)
		}
		if gap := reqs[1].Time.Sub(reqs[0].Time); gap < time.Second {
			t.Fatalf("retried after %v, Retry-After asked for 1s", gap)
		}
	})
	t.Run("without the header the backoff applies", func(t *testing.T) {
		e := newEnv(t)
		e.fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultRateLimited}, twiliofake.Fault{Kind: twiliofake.FaultRateLimited})
		if _, err := e.client.CreateWebhook(t.Context(), twilio.Scope{ConversationSid: conv}, webhookInput()); err != nil {
			t.Fatal(err)
		}
		if n, hooks := len(e.fake.Requests()), len(e.fake.Webhooks()); n != 3 || hooks != 1 {
			t.Fatalf("%d requests, %d webhooks: want a create retried twice after 429 and one webhook", n, hooks)
		}
	})
	t.Run("longer than the backoff cap is returned to the caller", func(t *testing.T) {
		e := newEnv(t)
		e.fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultRateLimited, RetryAfter: 30 * time.Second})
		_, err := e.client.ListWebhooks(t.Context(), twilio.Scope{ConversationSid: conv})
		if twilio.RetryAfter(err) != 30*time.Second || len(e.fake.Requests()) != 1 {
			t.Fatalf("err %v RetryAfter %v after %d requests", err, twilio.RetryAfter(err), len(e.fake.Requests()))
		}
	})
}

func TestLimiterHoldsWorkersToTheRate(t *testing.T) {
	const rps, workers, perWorker = 20, 8, 5
	e := newEnv(t, func(o *twilio.Options) { o.RequestsPerSecond = rps; o.Burst = 1 })
	// A second client of the same account (other credentials) shares the limiter.
	other, err := e.factory.For(twilio.Credentials{AccountSid: account, AuthToken: authToken})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range workers {
		c := e.client
		if w%2 == 1 {
			c = other
		}
		wg.Go(func() {
			for range perWorker {
				if _, err := c.ListWebhooks(context.Background(), twilio.Scope{ConversationSid: conv}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	reqs := e.fake.Requests()
	if len(reqs) != workers*perWorker {
		t.Fatalf("%d requests, want %d", len(reqs), workers*perWorker)
	}
	times := make([]time.Time, len(reqs))
	for i, r := range reqs {
		times[i] = r.Time
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	// With a token bucket of burst 1, k+1 requests span at least k/rps. Allow two
	// requests of slack for scheduling between the limiter and the fake's clock
	// (the race detector slows goroutines unevenly); twice the rate still fails.
	const k = rps
	for i := 0; i+k < len(times); i++ {
		if span := times[i+k].Sub(times[i]); span < time.Duration(k-2)*time.Second/rps {
			t.Fatalf("requests %d..%d span %v: more than %d per second", i, i+k, span, rps)
		}
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	e.fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultServerError, Operation: twiliofake.OpList})
	if _, err := e.client.CreateWebhook(t.Context(), twilio.Scope{ConversationSid: conv}, webhookInput()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.ListWebhooks(t.Context(), twilio.Scope{ConversationSid: conv}); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP twilio_api_requests_total Twilio API requests by operation and HTTP status code ("error" when no answer arrived).
# TYPE twilio_api_requests_total counter
twilio_api_requests_total{code="200",operation="list"} 1
twilio_api_requests_total{code="201",operation="create"} 1
twilio_api_requests_total{code="500",operation="list"} 1
`
	if err := testutil.GatherAndCompare(e.reg, strings.NewReader(want), "twilio_api_requests_total"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(e.reg, "twilio_api_request_duration_seconds"); n != 2 {
		t.Fatalf("%d duration series, want 2 (create, list)", n)
	}
}

func TestNoSecretInErrorsOrLogs(t *testing.T) {
	e := newEnv(t, func(o *twilio.Options) { o.Timeout = 200 * time.Millisecond; o.MaxAttempts = 2 })
	var mu sync.Mutex
	var lines []string
	logger := funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, prefix+" "+args)
	}, funcr.Options{Verbosity: 10})
	ctx := log.IntoContext(t.Context(), logger)
	bad, _ := e.factory.For(twilio.Credentials{AccountSid: account, AuthToken: "wrongTOKENsecret123"})
	scope := twilio.Scope{ConversationSid: conv}
	e.fake.InjectFaults(
		twiliofake.Fault{Kind: twiliofake.FaultServerError}, twiliofake.Fault{Kind: twiliofake.FaultServerError},
		twiliofake.Fault{Kind: twiliofake.FaultTimeout, Operation: twiliofake.OpFetch},
		twiliofake.Fault{Kind: twiliofake.FaultTimeout, Operation: twiliofake.OpFetch},
		twiliofake.Fault{Kind: twiliofake.FaultLoseResponse, Operation: twiliofake.OpCreate},
	)
	var errs []error
	_, err := e.client.ListWebhooks(ctx, scope)
	errs = append(errs, err)
	_, err = e.client.FetchWebhook(ctx, scope, "WH0000000000000000000000000000000f")
	errs = append(errs, err)
	_, err = e.client.CreateWebhook(ctx, scope, webhookInput())
	errs = append(errs, err)
	_, err = bad.ListWebhooks(ctx, scope)
	errs = append(errs, err)
	in := webhookInput()
	in.Configuration.URL = ""
	_, err = e.client.CreateWebhook(ctx, scope, in)
	errs = append(errs, err)
	secrets := []string{authToken, keySecret, "wrongTOKENsecret123"}
	var texts []string
	for _, err := range errs {
		if err == nil {
			t.Fatal("a failing request succeeded")
		}
		texts = append(texts, err.Error())
	}
	if len(lines) == 0 {
		t.Fatal("no log lines captured: the check below would prove nothing")
	}
	texts = append(texts, lines...)
	texts = append(texts, twilio.Credentials{AccountSid: account, APIKeySid: keySid, APIKeySecret: keySecret}.String())
	for _, text := range texts {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Fatalf("secret in %q", text)
			}
		}
	}
}

func TestFactoryCachesPerAccountAndRebuildsOnChange(t *testing.T) {
	e := newEnv(t)
	creds := twilio.Credentials{AccountSid: account, APIKeySid: keySid, APIKeySecret: keySecret}
	again, _ := e.factory.For(creds)
	if again != e.client {
		t.Fatal("same credentials built a new client")
	}
	creds.APIKeySecret = "rotatedSECRET"
	rotated, _ := e.factory.For(creds)
	if rotated == e.client {
		t.Fatal("changed credentials reused the old client")
	}
	for _, bad := range []twilio.Credentials{
		{},
		{AccountSid: "AC1"},
		{AccountSid: account},
		{AccountSid: account, APIKeySid: keySid},
		{AccountSid: account, APIKeySid: "XX", APIKeySecret: "s"},
	} {
		if _, err := e.factory.For(bad); err == nil {
			t.Fatalf("credentials %v accepted", bad)
		}
	}
}

func TestNewFactoryRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"ftp://x", "not a url", "https://user:pass@example.com", "/relative"} {
		if _, err := twilio.NewFactory(twilio.Options{BaseURL: u}); err == nil {
			t.Fatalf("%q accepted", u)
		}
	}
}

func TestAsAPIErrorThroughWrapping(t *testing.T) {
	err := &twilio.APIError{Operation: "fetch", Status: 404, Code: 20404}
	wrapped := errors.Join(errors.New("context"), err)
	if !twilio.IsNotFound(wrapped) || twilio.IsRetryable(wrapped) {
		t.Fatal("classification does not see through wrapping")
	}
}

func TestBeforeWriteGatesWritesOnly(t *testing.T) {
	refuse := errors.New("lease lost")
	var gate error
	e := newEnv(t, func(o *twilio.Options) { o.BeforeWrite = func() error { return gate } })
	gate = refuse
	_, err := e.client.CreateWebhook(context.Background(), twilio.Scope{ConversationSid: conv},
		twilio.CreateWebhookInput{Target: "webhook", Configuration: twilio.Configuration{URL: "https://e.com", Filters: []string{"onMessageAdded"}}})
	if !errors.Is(err, refuse) || twilio.IsTerminal(err) || !twilio.IsRetryable(err) {
		t.Fatalf("create with the gate shut: %v, want the gate's retryable error", err)
	}
	if n := len(e.fake.Requests()); n != 0 {
		t.Fatalf("%d requests sent with the gate shut", n)
	}
	if _, err := e.client.ListWebhooks(context.Background(), twilio.Scope{ConversationSid: conv}); err != nil {
		t.Fatalf("a read is gated: %v", err)
	}
	gate = nil
	if _, err := e.client.CreateWebhook(context.Background(), twilio.Scope{ConversationSid: conv},
		twilio.CreateWebhookInput{Target: "webhook", Configuration: twilio.Configuration{URL: "https://e.com", Filters: []string{"onMessageAdded"}}}); err != nil {
		t.Fatal(err)
	}
}

// A create made WithSendBy is sent only while its time to start has not
// passed: checked before the first attempt and before each retry of a 429.
func TestSendBy(t *testing.T) {
	create := func(e *env, ctx context.Context) error {
		_, err := e.client.CreateWebhook(ctx, twilio.Scope{ConversationSid: conv},
			twilio.CreateWebhookInput{Target: "webhook", Configuration: twilio.Configuration{URL: "https://e.com/a", Method: "post",
				Filters: []string{"onMessageAdded"}}})
		return err
	}
	t.Run("passed: nothing is sent", func(t *testing.T) {
		e := newEnv(t)
		err := create(e, twilio.WithSendBy(t.Context(), time.Now().Add(-time.Millisecond)))
		if !twilio.IsNotSent(err) || len(e.fake.Requests()) != 0 {
			t.Fatalf("err %v, %d requests: want not sent, none", err, len(e.fake.Requests()))
		}
	})
	t.Run("ahead: sent", func(t *testing.T) {
		e := newEnv(t)
		if err := create(e, twilio.WithSendBy(t.Context(), time.Now().Add(time.Minute))); err != nil {
			t.Fatal(err)
		}
		if n := len(e.fake.Requests()); n != 1 {
			t.Fatalf("%d requests, want 1", n)
		}
	})
	t.Run("passing during a 429's backoff: the retry is not sent", func(t *testing.T) {
		e := newEnv(t)
		e.fake.InjectFaults(twiliofake.Fault{Kind: twiliofake.FaultRateLimited, RetryAfter: time.Second})
		err := create(e, twilio.WithSendBy(t.Context(), time.Now().Add(500*time.Millisecond)))
		if !twilio.IsNotSent(err) || len(e.fake.Requests()) != 1 {
			t.Fatalf("err %v, %d requests: want not sent after the one 429", err, len(e.fake.Requests()))
		}
	})
}
