//go:build live

package live

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	twclient "github.com/twilio/twilio-go/client"
	conversations "github.com/twilio/twilio-go/rest/conversations/v1"

	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// exchange is one answer the API gave: what the operator's client decoded is
// compared with what was on the wire.
type exchange struct {
	method, path string
	status       int
	contentType  string
	body         []byte
}

// recorder is a RoundTripper that keeps every answer (never a request header, so
// never a credential).
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	log  []exchange
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, exchange{
		method: req.Method, path: req.URL.Path, status: resp.StatusCode,
		contentType: resp.Header.Get("Content-Type"), body: body,
	})
	return resp, nil
}

// last is the latest answer.
func (r *recorder) last() exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.log) == 0 {
		return exchange{}
	}
	return r.log[len(r.log)-1]
}

// rewrite sends twilio-go's own requests (the throwaway conversations) to env.apiURL.
type rewrite struct {
	base *url.URL
	next http.RoundTripper
}

func (t rewrite) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.URL.Scheme, r.URL.Host, r.Host = t.base.Scheme, t.base.Host, t.base.Host
	if prefix := strings.TrimSuffix(t.base.Path, "/"); prefix != "" {
		r.URL.Path = prefix + r.URL.Path
	}
	return t.next.RoundTrip(r)
}

// suite is one test's view of the live API.
type suite struct {
	t   *testing.T
	api twilio.WebhookAPI
	rec *recorder
}

func newSuite(t *testing.T) *suite {
	t.Helper()
	rec := &recorder{next: http.DefaultTransport}
	f, err := twilio.NewFactory(twilio.Options{BaseURL: env.apiURL, Transport: rec, RequestsPerSecond: 5, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s := &suite{t: t, rec: rec}
	// As the account controller does: GET /v1/Configuration names the account
	// the credentials act for, and every client is built for that SID.
	creds := env.creds
	verified, err := f.VerifyAccount(t.Context(), creds)
	s.assume("credentials/verify-succeeds", err == nil, true, "%v", errOrStatus(err, rec.last()))
	if err != nil {
		t.FailNow()
	}
	s.assume("credentials/verified-account-is-the-one-named", verified == creds.AccountSid, false,
		"verified %s, TWILIO_ACCOUNT_SID %s", verified, creds.AccountSid)
	creds.AccountSid = verified
	if s.api, err = f.For(creds); err != nil {
		t.Fatalf("credentials: %v", err)
	}
	return s
}

// conversation creates a throwaway conversation, deleted (with its webhooks) when
// the test ends.
func (s *suite) conversation() twilio.Scope {
	s.t.Helper()
	base, err := url.Parse(env.apiURL)
	if err != nil {
		s.t.Fatal(err)
	}
	user, pass := env.creds.APIKeySid, env.creds.APIKeySecret
	if user == "" {
		user, pass = env.creds.AccountSid, env.creds.AuthToken
	}
	tc := &twclient.Client{
		Credentials: twclient.NewCredentials(user, pass),
		HTTPClient:  &http.Client{Transport: rewrite{base: base, next: http.DefaultTransport}, Timeout: 30 * time.Second},
	}
	tc.SetAccountSid(env.creds.AccountSid)
	convs := conversations.NewApiServiceWithClient(tc)
	name := fmt.Sprintf("cwh-live-%s-%d", s.t.Name(), time.Now().Unix())
	c, err := convs.CreateConversation(&conversations.CreateConversationParams{FriendlyName: &name})
	if err != nil || c.Sid == nil {
		s.t.Fatalf("creating a throwaway conversation: %v", err)
	}
	sid := *c.Sid
	s.t.Logf("throwaway conversation %s", sid)
	s.t.Cleanup(func() {
		if err := convs.DeleteConversation(sid, &conversations.DeleteConversationParams{}); err != nil {
			s.t.Errorf("deleting throwaway conversation %s: %v (delete it by hand)", sid, err)
		}
	})
	return twilio.Scope{ConversationSid: sid}
}

// created registers a webhook for deletion when the test ends, whatever happens.
func (s *suite) created(scope twilio.Scope, sid string) {
	s.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.api.DeleteWebhook(ctx, scope, sid); err != nil && !twilio.IsNotFound(err) {
			s.t.Errorf("deleting webhook %s: %v", sid, err)
		}
	})
}

// assume prints one assumption's verdict; a failing assumption the operator
// relies on fails the test.
func (s *suite) assume(name string, holds, relied bool, observed string, args ...interface{}) {
	s.t.Helper()
	verdict := "HOLDS"
	if !holds {
		verdict = "FAILS"
	}
	fmt.Printf("ASSUMPTION %s: %s (observed %s)\n", name, verdict, fmt.Sprintf(observed, args...))
	if !holds && relied {
		s.t.Errorf("assumption %s fails, and the operator relies on it", name)
	}
}

// rawWebhook finds a webhook's JSON object in an answer (itself, or an item of a list).
func rawWebhook(x exchange, sid string) map[string]interface{} {
	var body map[string]interface{}
	if json.Unmarshal(x.body, &body) != nil {
		return nil
	}
	items, isList := body["webhooks"].([]interface{})
	if !isList {
		return body
	}
	for _, it := range items {
		if m, ok := it.(map[string]interface{}); ok && m["sid"] == sid {
			return m
		}
	}
	return nil
}

// nulls lists the fields of a raw webhook that are JSON null, configuration
// fields prefixed "configuration.".
func nulls(raw map[string]interface{}) []string {
	var out []string
	for k, v := range raw {
		if v == nil {
			out = append(out, k)
		}
	}
	if cfg, ok := raw["configuration"].(map[string]interface{}); ok {
		for k, v := range cfg {
			if v == nil {
				out = append(out, "configuration."+k)
			}
		}
	}
	slices.Sort(out)
	return out
}

func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(slices.Compact(x), slices.Compact(y))
}

func compact(v interface{}) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
