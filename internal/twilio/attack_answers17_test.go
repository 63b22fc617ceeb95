package twilio_test

// Attack review 17: what the server (Twilio, or a proxy or impostor answering
// for it) sends back. Each test states the answer, what the client does with
// it today, and why that matters; each fails on the code as reviewed.

import (
	"compress/gzip"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unicode"

	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

const (
	a17OtherConv    = "CH00000000000000000000000000000002"
	a17OtherAccount = "AC00000000000000000000000000000002"
	a17Service      = "IS00000000000000000000000000000001"
	a17OtherService = "IS00000000000000000000000000000002"
)

// a17Webhook is a webhook answer for goodSid with the given top-level fields
// (JSON fragments, "key":value), the rest as Twilio's spec shows it.
func a17Webhook(fields ...string) string {
	base := map[string]string{
		"sid":              `"` + goodSid + `"`,
		"account_sid":      `"` + account + `"`,
		"conversation_sid": `"` + conv + `"`,
		"target":           `"webhook"`,
		"url":              `"https://conversations.twilio.com/v1/Conversations/` + conv + `/Webhooks/` + goodSid + `"`,
		"configuration":    `{"url":"https://e.com","method":"post","filters":["onMessageAdded"]}`,
		"date_created":     `"2026-01-01T00:00:00Z"`,
		"date_updated":     `"2026-01-01T00:00:00Z"`,
	}
	order := []string{"sid", "account_sid", "conversation_sid", "target", "url", "configuration", "date_created", "date_updated"}
	for _, f := range fields {
		k, v, _ := strings.Cut(f, ":")
		k = strings.Trim(k, `"`)
		if _, ok := base[k]; !ok {
			order = append(order, k)
		}
		base[k] = v
	}
	parts := make([]string, 0, len(order))
	for _, k := range order {
		parts = append(parts, `"`+k+`":`+base[k])
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// TestAttack17FetchAnswerMustBeTheWebhookAsked checks that a fetch or update
// answer that names another conversation, service or account than the one the
// request was made in and for is refused (retryable), as one naming another
// webhook SID is (TestFetchAndUpdateCheckTheAnsweredSid).
//
// Before the fix, only "sid" is compared with the request; conversation_sid,
// chat_service_sid and account_sid are taken as answered, and Twilio's spec
// pattern for them (^CH…$, ^AC…$) is not checked either. The controller copies
// them into status (recordWebhook) and reads its record back from there:
//   - conversation_sid: the next fetch and the deletion go to
//     /v1/Conversations/<answered>/Webhooks/<sid>; Twilio answers 404 there, so
//     the operator recreates (a duplicate; the real webhook is orphaned), and a
//     deletion counts the 404 as done (the finalizer goes, the webhook stays,
//     and an event says "Deleted webhook …").
//   - account_sid: the next reconcile stalls with AccountChanged (never polled
//     again), and a deletion orphans the webhook (accountChanged is terminal,
//     and deleteExternal leaves webhooks on terminal errors).
//   - a value not of the SID's shape: InvalidStatus on the next reconcile, and
//     a deletion that orphans.
//
// See internal/controller/attack_answers17_test.go for the controller side.
func TestAttack17FetchAnswerMustBeTheWebhookAsked(t *testing.T) {
	cases := []struct {
		name  string
		scope twilio.Scope
		body  string
	}{
		{"another conversation", twilio.Scope{ConversationSid: conv}, a17Webhook(`"conversation_sid":"` + a17OtherConv + `"`)},
		{"conversation_sid not a CH sid", twilio.Scope{ConversationSid: conv}, a17Webhook(`"conversation_sid":"CH0/../../Services/IS1"`)},
		{"another account", twilio.Scope{ConversationSid: conv}, a17Webhook(`"account_sid":"` + a17OtherAccount + `"`)},
		{"account_sid not an AC sid", twilio.Scope{ConversationSid: conv}, a17Webhook(`"account_sid":"nope"`)},
		{"another service", twilio.Scope{ServiceSid: a17Service, ConversationSid: conv},
			a17Webhook(`"chat_service_sid":"` + a17OtherService + `"`)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := serveBody(t, http.StatusOK, tc.body)
			fetched, fetchErr := c.FetchWebhook(t.Context(), tc.scope, goodSid)
			updated, updateErr := c.UpdateWebhook(t.Context(), tc.scope, goodSid, twilio.Configuration{URL: "https://e.com"})
			for op, r := range map[string]struct {
				wh  *twilio.Webhook
				err error
			}{"fetch": {fetched, fetchErr}, "update": {updated, updateErr}} {
				if r.err == nil {
					t.Errorf("%s of %s/%s accepted an answer for account %q, conversation %q, service %q: "+
						"the controller records these and acts on them next time", op, tc.scope, goodSid,
						r.wh.AccountSid, r.wh.ConversationSid, r.wh.ServiceSid)
					continue
				}
				if !twilio.IsRetryable(r.err) || twilio.IsNotFound(r.err) || twilio.IsTerminal(r.err) {
					t.Errorf("%s: %v: want a retryable error, never not-found or terminal", op, r.err)
				}
			}
		})
	}
}

// TestAttack17ListStaysInTheConversation: a list of one conversation must
// return webhooks of that conversation only.
//
// Before the fix, ListWebhooks follows meta.next_page_url wherever its path points (only
// the host is pinned to the API URL, which is good: no credential goes to
// another host) and keeps listed webhooks whatever conversation_sid they
// carry. findCreated then takes such a webhook as a lost create's result when
// its configuration matches (fillScope keeps an answered conversation_sid),
// records it with the other conversation, and the next reconcile replaces it:
// a new webhook is created and the "superseded" one is deleted in the other
// conversation, a webhook nothing in the cluster owns (or, if the answer lied,
// Twilio answers 404 and the real one is left behind).
func TestAttack17ListStaysInTheConversation(t *testing.T) {
	mine := "/v1/Conversations/" + conv + "/Webhooks"
	theirs := "/v1/Conversations/" + a17OtherConv + "/Webhooks"
	otherSid := "WH00000000000000000000000000000002"
	page := func(items, next string) string {
		return `{"webhooks":[` + items + `],"meta":{"page":0,"page_size":5,"key":"webhooks","next_page_url":` + next + `}}`
	}
	t.Run("next_page_url into another conversation", func(t *testing.T) {
		var mu sync.Mutex
		var paths []string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			paths = append(paths, r.URL.Path)
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			switch r.URL.Path {
			case mine:
				_, _ = io.WriteString(w, page(a17Webhook(),
					`"https://conversations.twilio.com`+theirs+`?PageSize=5&Page=1&PageToken=PT1"`))
			default:
				_, _ = io.WriteString(w, page(a17Webhook(`"sid":"`+otherSid+`"`, `"conversation_sid":"`+a17OtherConv+`"`), "null"))
			}
		}))
		t.Cleanup(srv.Close)
		f, err := twilio.NewFactory(twilio.Options{BaseURL: srv.URL, MaxAttempts: 2})
		if err != nil {
			t.Fatal(err)
		}
		c, _ := f.For(twilio.Credentials{AccountSid: account, AuthToken: authToken})
		list, err := c.ListWebhooks(t.Context(), twilio.Scope{ConversationSid: conv})
		mu.Lock()
		defer mu.Unlock()
		for _, p := range paths {
			if p != mine {
				t.Errorf("listing %s requested %s: next_page_url left the conversation's list", conv, p)
			}
		}
		if err == nil {
			for _, wh := range list {
				if wh.ConversationSid != "" && wh.ConversationSid != conv {
					t.Errorf("listing %s returned %s of %s", conv, wh.Sid, wh.ConversationSid)
				}
			}
		}
	})
	t.Run("a listed webhook of another conversation", func(t *testing.T) {
		c, _ := serveBody(t, http.StatusOK, page(a17Webhook(`"conversation_sid":"`+a17OtherConv+`"`), "null"))
		list, err := c.ListWebhooks(t.Context(), twilio.Scope{ConversationSid: conv})
		if err == nil {
			t.Errorf("listing %s returned %+v without error: a webhook of %s is no candidate for this conversation's lost create",
				conv, list, a17OtherConv)
		}
	})
}

// TestAttack17EmptyFetchAnswerIsNoWebhook: a fetch (or update) answered 200
// with {} or null carries nothing of the webhook. Before the fix it was the requested
// webhook (an absent sid is taken to be the one asked for) with every field
// absent, which the plan reads as "unknown, never different": Ready=True,
// "Webhook WH… matches the spec", and status loses target and configuration
// (recordWebhook). A proxy or stub answering {} to every GET keeps every object
// Ready and hides all drift, while the same {} to a list is refused as not
// Twilio's (decodePage).
func TestAttack17EmptyFetchAnswerIsNoWebhook(t *testing.T) {
	for name, body := range map[string]string{"{}": `{}`, "null": `null`, "all null": `{"sid":null,"account_sid":null,` +
		`"conversation_sid":null,"target":null,"url":null,"configuration":null,"date_created":null,"date_updated":null}`} {
		t.Run(name, func(t *testing.T) {
			c, _ := serveBody(t, http.StatusOK, body)
			wh, err := c.FetchWebhook(t.Context(), twilio.Scope{ConversationSid: conv}, goodSid)
			if err == nil {
				t.Fatalf("fetch answered %s accepted as webhook %s (absent: %v)", body, wh.Sid, wh.Absent())
			}
			if !twilio.IsRetryable(err) || twilio.IsNotFound(err) {
				t.Fatalf("%v: want a retryable error", err)
			}
		})
	}
}

// TestAttack17DeleteAnsweredByAPageIsNotDone: Twilio answers a delete 204
// with no body (its spec shows no other success). A 200 text/html page (a
// captive portal, a static host's catch-all, a wrong --twilio-api-url) is
// taken today as a successful delete: twilio-go's Delete returns nil for any
// 2xx and never reads the body. The deletion then removes the finalizer and
// reports "Deleted webhook …" while the webhook stays in Twilio (an orphan),
// although the same page to a fetch is "not Twilio's answer" (transient).
func TestAttack17DeleteAnsweredByAPageIsNotDone(t *testing.T) {
	scope := twilio.Scope{ConversationSid: conv}
	t.Run("Twilio's 204 is done (control)", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
		t.Cleanup(srv.Close)
		f, _ := twilio.NewFactory(twilio.Options{BaseURL: srv.URL})
		c, _ := f.For(twilio.Credentials{AccountSid: account, AuthToken: authToken})
		if err := c.DeleteWebhook(t.Context(), scope, goodSid); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("an HTML 200 is not", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, "<!doctype html><html><body>Welcome</body></html>")
		}))
		t.Cleanup(srv.Close)
		f, _ := twilio.NewFactory(twilio.Options{BaseURL: srv.URL, MaxAttempts: 1})
		c, _ := f.For(twilio.Credentials{AccountSid: account, AuthToken: authToken})
		err := c.DeleteWebhook(t.Context(), scope, goodSid)
		if err == nil {
			t.Fatal("a delete answered 200 text/html counted as done: the finalizer would go and the webhook stay")
		}
		if !twilio.IsNotTwilioAnswer(err) || !twilio.IsRetryable(err) || twilio.IsNotFound(err) {
			t.Fatalf("%v: want a transient answer that is not Twilio's", err)
		}
	})
}

// a17Counting counts the (decompressed) answer bytes the client reads.
type a17Counting struct {
	next http.RoundTripper
	read atomic.Int64
}

type a17CountingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b a17CountingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (c *a17Counting) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	if err == nil {
		resp.Body = a17CountingBody{ReadCloser: resp.Body, n: &c.read}
	}
	return resp, err
}

// TestAttack17AnswerSizeIsBounded: a webhook answer is well under 10 KiB, a
// page of five a few tens of KiB. Only error bodies are bounded today
// (maxErrorBody, for the check; twilio-go then decodes the whole body anyway);
// success bodies are decoded whole by twilio-go, and the default transport
// asks for gzip and inflates transparently. Here 8 MiB of JSON white space,
// about 8 KiB on the wire, is read and accepted; at the server's line rate the
// 10 s attempt timeout lets an impostor or broken proxy push gigabytes into
// the operator's memory (all workers at once), and a huge configuration.url
// accepted this way is copied into status (the etcd object limit is 1.5 MiB).
func TestAttack17AnswerSizeIsBounded(t *testing.T) {
	const inflated = 8 << 20
	var wire atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Encoding", "gzip")
		cw := &a17WireCount{w: w, n: &wire}
		gz := gzip.NewWriter(cw)
		_, _ = io.WriteString(gz, `{"sid":"`+goodSid+`",`)
		_, _ = io.WriteString(gz, strings.Repeat(" ", inflated))
		_, _ = io.WriteString(gz, `"target":"webhook","configuration":{"url":"https://e.com","method":"post","filters":["onMessageAdded"]}}`)
		_ = gz.Close()
	}))
	t.Cleanup(srv.Close)
	counter := &a17Counting{next: &http.Transport{}}
	f, err := twilio.NewFactory(twilio.Options{BaseURL: srv.URL, MaxAttempts: 1, Transport: counter})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := f.For(twilio.Credentials{AccountSid: account, AuthToken: authToken})
	_, err = c.FetchWebhook(t.Context(), twilio.Scope{ConversationSid: conv}, goodSid)
	if read := counter.read.Load(); read > 1<<20 {
		t.Fatalf("the client read %d bytes of one answer (%d on the wire), err %v: an answer is not bounded", read, wire.Load(), err)
	}
}

type a17WireCount struct {
	w io.Writer
	n *atomic.Int64
}

func (c *a17WireCount) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// TestAttack17ServerTextIsBoundedAndPrintable: the text of an answer reaches
// APIError.Error(), which the controller puts, as it is, into the Ready and
// Stalled/Reconciling condition messages (setStalled, setProgressing), into a
// Warning event's note (failed), and, for a TwilioAccount whose credentials are
// refused, into its Ready message (setAccountReady, unlike the transient branch
// there, which cuts with echo). The API server refuses a condition message over
// 32768 bytes (the CRD's maxLength) and an event note over 1024 bytes: the
// status write then fails on every reconcile, so an object that was Ready
// stays Ready=True "matches the spec" while Twilio refuses it, and no event is
// recorded. Twilio's error JSON is read up to 64 KiB, and a Content-Type header
// is echoed whatever its length. Control characters (ANSI escapes, newlines)
// pass into messages, events and logs unchanged.
func TestAttack17ServerTextIsBoundedAndPrintable(t *testing.T) {
	scope := twilio.Scope{ConversationSid: conv}
	long := strings.Repeat("x", 40000)
	t.Run("Twilio's message", func(t *testing.T) {
		c, _ := serveBody(t, http.StatusBadRequest, `{"code":50366,"message":"`+long+`","more_info":"https://www.twilio.com/docs/errors/50366","status":400}`)
		_, err := c.FetchWebhook(t.Context(), scope, goodSid)
		if n := len(err.Error()); n > 1024 {
			t.Fatalf("error text of %d bytes from a 40000-byte message: over an event note's 1024 and near or over a condition's 32768", n)
		}
	})
	t.Run("a proxy's Content-Type", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html; x="+long)
			w.WriteHeader(http.StatusBadGateway)
		}))
		t.Cleanup(srv.Close)
		f, _ := twilio.NewFactory(twilio.Options{BaseURL: srv.URL, MaxAttempts: 1})
		c, _ := f.For(twilio.Credentials{AccountSid: account, AuthToken: authToken})
		_, err := c.FetchWebhook(t.Context(), scope, goodSid)
		if n := len(err.Error()); n > 1024 {
			t.Fatalf("error text of %d bytes from a long Content-Type header", n)
		}
	})
	t.Run("a malformed status line", func(t *testing.T) {
		ln, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ln.Close() })
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer func() { _ = conn.Close() }()
					buf := make([]byte, 4096)
					_, _ = conn.Read(buf)
					_, _ = io.WriteString(conn, long+"\r\n\r\n")
				}()
			}
		}()
		f, _ := twilio.NewFactory(twilio.Options{BaseURL: "http://" + ln.Addr().String(), MaxAttempts: 1})
		c, _ := f.For(twilio.Credentials{AccountSid: account, AuthToken: authToken})
		_, err = c.FetchWebhook(t.Context(), scope, goodSid)
		if err == nil {
			t.Fatal("a malformed answer succeeded")
		}
		if n := len(err.Error()); n > 1024 {
			t.Fatalf("error text of %d bytes from a malformed status line", n)
		}
	})
	t.Run("control characters", func(t *testing.T) {
		c, _ := serveBody(t, http.StatusBadRequest, `{"code":50366,"message":"bad\u001b[2J\u001b[31m filter\nReady: True\r","status":400}`)
		_, err := c.FetchWebhook(t.Context(), scope, goodSid)
		for _, r := range err.Error() {
			if unicode.IsControl(r) {
				t.Fatalf("control character %U in %q", r, err.Error())
			}
		}
	})
}

// TestAttack17NoSecretEchoedFromAnAnswer: the client never puts a secret into
// an error itself (TestNoSecretInErrorsOrLogs), but it repeats the server's
// message verbatim. A server or proxy that echoes the request back (debug
// proxies and some gateways print the Authorization they refused; an impostor
// at a wrong --twilio-api-url may) makes the auth token part of err.Error(),
// which the controller writes into the object's status and a Warning event:
// readable by anyone who may read ConversationWebhooks, not only those who may
// read the Secret. The client knows its credentials and could cut them out.
func TestAttack17NoSecretEchoedFromAnAnswer(t *testing.T) {
	c, _ := serveBody(t, http.StatusUnauthorized,
		`{"code":20003,"message":"Authenticate: rejected `+account+`:`+authToken+`","status":401}`)
	_, err := c.FetchWebhook(t.Context(), twilio.Scope{ConversationSid: conv}, goodSid)
	if err == nil || !twilio.IsUnauthorized(err) {
		t.Fatalf("%v: want the 401", err)
	}
	if strings.Contains(err.Error(), authToken) {
		t.Fatalf("the auth token is in the error text: %q", err.Error())
	}
}
