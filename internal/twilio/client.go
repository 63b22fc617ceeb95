// Package twilio is the operator's only way to Twilio's Conversations API: a small,
// typed client for conversation-scoped webhooks built on the official twilio-go
// library, with one shared transport, a per-account rate limiter, bounded retries
// and Prometheus metrics. It knows no Kubernetes types.
package twilio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	twclient "github.com/twilio/twilio-go/client"
	conversations "github.com/twilio/twilio-go/rest/conversations/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// DefaultBaseURL is Twilio's Conversations API.
const DefaultBaseURL = "https://conversations.twilio.com"

// Operation names, used in errors, logs and metric labels.
const (
	OpCreate = "create"
	OpFetch  = "fetch"
	OpUpdate = "update"
	OpDelete = "delete"
	OpList   = "list"
)

// Options configure a Factory.
type Options struct {
	// BaseURL replaces scheme, host and path prefix of every Twilio request
	// (regional hosts, local fakes). Default DefaultBaseURL.
	BaseURL string
	// RequestsPerSecond per Twilio account, shared by every caller. Default 25.
	RequestsPerSecond float64
	// Burst of the per-account token bucket. Default 1.
	Burst int
	// MaxInFlight is the most requests in flight per Twilio account, the
	// ceiling of its adaptive limit (see SetLimits). Default 10.
	MaxInFlight int
	// Now is the limiters' clock. Default time.Now.
	Now func() time.Time
	// BeforeWrite, when set, is asked right before each create, update or
	// delete is sent (after any wait for a slot): an error sends nothing. The
	// manager uses it to send no write once its leader-election lease may
	// have passed to another manager.
	BeforeWrite func() error
	// Timeout of one HTTP request. Default 10s.
	Timeout time.Duration
	// MaxAttempts of one operation, the first included. Default 4.
	MaxAttempts int
	// BackoffBase is the first retry's wait before jitter; it doubles per attempt. Default 250ms.
	BackoffBase time.Duration
	// BackoffMax caps a wait between attempts, Retry-After included: a longer
	// Retry-After ends the retries and is reported on the error. Default 10s.
	BackoffMax time.Duration
	// Transport is the base RoundTripper. Default: a tuned *http.Transport.
	Transport http.RoundTripper
	// Metrics records every request. Optional.
	Metrics *Metrics
}

func (o *Options) setDefaults() {
	if o.BaseURL == "" {
		o.BaseURL = DefaultBaseURL
	}
	if o.RequestsPerSecond <= 0 {
		o.RequestsPerSecond = 25
	}
	if o.Burst <= 0 {
		o.Burst = 1
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 10
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 4
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = 250 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 10 * time.Second
	}
	if o.Transport == nil {
		o.Transport = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			MaxIdleConnsPerHost:   100,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: o.Timeout,
		}
	}
}

// Factory hands out one client per Twilio account, cached and rebuilt when the
// account's credentials change. All clients share one transport; clients of the
// same account share one rate limiter.
type Factory struct {
	opts      Options
	transport http.RoundTripper

	mu       sync.Mutex
	clients  map[string]*Client
	limiters map[string]*accountLimiter
	// limits are the limits each source (an account object) set per account SID.
	limits map[string]map[string]Limits
	// sources names, per source, the object (UID) whose limits are set and,
	// once ForgetLimits dropped them, the object that is gone.
	sources map[string]limitsSource
}

// limitsSource is the account object behind a source's limits.
type limitsSource struct {
	uid  string
	gone bool
}

// Timeout is the timeout of one HTTP request, after defaults.
func (f *Factory) Timeout() time.Duration { return f.opts.Timeout }

// NewFactory checks the options and builds the shared transport.
func NewFactory(opts Options) (*Factory, error) {
	opts.setDefaults()
	base, err := url.Parse(opts.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("twilio API URL %q must be an absolute http or https URL", opts.BaseURL)
	}
	if base.User != nil {
		return nil, errors.New("twilio API URL must not carry credentials")
	}
	return &Factory{
		opts:      opts,
		transport: &rewriteTransport{base: base, next: opts.Transport},
		clients:   map[string]*Client{},
		limiters:  map[string]*accountLimiter{},
		limits:    map[string]map[string]Limits{},
		sources:   map[string]limitsSource{},
	}, nil
}

// For returns the client of the credentials' account, building it on first use or
// when the credentials differ from the cached client's. Every value is trimmed of
// surrounding whitespace first (Secrets made from files written by echo end in a
// newline). A value of the wrong shape is a plain error naming the Secret key; a
// value twilio-go would refuse before sending anything (it accepts only letters
// and digits in Basic auth) is an *APIError for which IsUnauthorized is true,
// naming the Secret key, never the value.
func (f *Factory) For(creds Credentials) (WebhookAPI, error) {
	creds = creds.Trimmed()
	if err := creds.Validate(); err != nil {
		return nil, err
	}
	if err := creds.checkSendable(); err != nil {
		return nil, err
	}
	fp := creds.fingerprint()
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.clients[creds.AccountSid]; ok && c.fingerprint == fp {
		return c, nil
	}
	c := &Client{factory: f, creds: creds, fingerprint: fp, limiter: f.limiterLocked(creds.AccountSid)}
	f.clients[creds.AccountSid] = c
	return c, nil
}

// Client calls Twilio for one account. It is safe for concurrent use.
type Client struct {
	factory     *Factory
	creds       Credentials
	fingerprint string
	limiter     *accountLimiter
}

// AccountSid is the account this client acts for.
func (c *Client) AccountSid() string { return c.creds.AccountSid }

// service builds twilio-go's API service for one attempt. twilio-go creates its
// requests without a context and drops response headers on errors, so each attempt
// gets a small http.Client value whose RoundTripper attaches the attempt's context
// (which carries the timeout) and records the answer. Connections are pooled in
// the one shared transport.
func (c *Client) service(ctx context.Context, op string, info *answer) *conversations.ApiService {
	hc := &http.Client{
		Transport: &callTransport{ctx: ctx, op: op, info: info, next: c.factory.transport, metrics: c.factory.opts.Metrics},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	user, pass := c.creds.basicAuth()
	tc := &twclient.Client{Credentials: twclient.NewCredentials(user, pass), HTTPClient: hc}
	tc.SetAccountSid(c.creds.AccountSid)
	return conversations.NewApiServiceWithClient(tc)
}

// do runs one operation: it waits for the account's rate limiter before every
// attempt and retries what is safe to retry. A 429 is retried for every operation
// (Twilio never processed it); 5xx, network errors, answers that are not
// Twilio's (IsNotTwilioAnswer) and 2xx answers without a usable SID are retried
// for every operation but create, whose outcome is then unknown. Nothing retries
// Twilio's other 4xx. A redirect is an answer that is not Twilio's.
func (c *Client) do(ctx context.Context, op string, call func(*conversations.ApiService) error) error {
	logger := log.FromContext(ctx).WithValues("operation", op, "account", c.creds.AccountSid)
	opts := c.factory.opts
	for attempt := 1; ; attempt++ {
		if err := c.limiter.acquire(ctx); err != nil {
			if errors.Is(err, ErrNotSent) {
				return notSent(op)
			}
			return &APIError{Operation: op, Message: "waiting for a request slot of the account: " + err.Error(), Err: err}
		}
		if refused := c.holdBack(ctx, op); refused != nil {
			c.limiter.release(false, false)
			return refused
		}
		info, err := c.send(ctx, op, call)
		if err == nil {
			err = unlikeTwilio(op, info)
		}
		if err == nil {
			c.limiter.release(true, false)
			return nil
		}
		apiErr := toAPIError(op, err, info)
		c.scrub(apiErr)
		c.limiter.release(false, IsRateLimited(apiErr))
		retry := IsRateLimited(apiErr) || (op != OpCreate && IsRetryable(apiErr))
		if !retry || attempt >= opts.MaxAttempts || ctx.Err() != nil {
			logger.V(1).Info("Twilio request failed", "status", apiErr.Status, "code", apiErr.Code, "error", apiErr.Error(), "attempts", attempt)
			return apiErr
		}
		wait := backoff(opts.BackoffBase, opts.BackoffMax, attempt)
		if apiErr.RetryAfter > 0 {
			if apiErr.RetryAfter > opts.BackoffMax {
				return apiErr
			}
			wait = apiErr.RetryAfter
		}
		logger.V(1).Info("Retrying Twilio request", "status", apiErr.Status, "code", apiErr.Code, "attempt", attempt, "wait", wait.String())
		select {
		case <-ctx.Done():
			return &APIError{Operation: op, Message: ctx.Err().Error(), Err: ctx.Err()}
		case <-time.After(wait):
		}
	}
}

// holdBack returns why a request whose slot is held must not be sent: the
// write gate (BeforeWrite) refused a write, or the caller asked that nothing be
// sent. Nil means send it.
func (c *Client) holdBack(ctx context.Context, op string) *APIError {
	if gate := c.factory.opts.BeforeWrite; gate != nil && (op == OpCreate || op == OpUpdate || op == OpDelete) {
		if err := gate(); err != nil {
			return &APIError{Operation: op, Message: "not sent: " + err.Error(), Err: err}
		}
	}
	if by, ok := sendByOf(ctx); ok && time.Now().After(by) {
		return notSent(op)
	}
	return nil
}

// notSent is the error of a request not sent because its time to start passed.
func notSent(op string) *APIError {
	return &APIError{Operation: op, Message: ErrNotSent.Error(), Err: ErrNotSent}
}

// send makes one attempt and returns twilio-go's error (or the client's own: a
// redirect is an answer that is not Twilio's) with what the transport recorded.
// twilio-go reads the body inside call (and closes a success's), so the body is
// closed and the attempt's context ends as soon as call returns. The slot is
// held for the request alone, never while the caller writes to the API server.
func (c *Client) send(ctx context.Context, op string, call func(*conversations.ApiService) error) (*answer, error) {
	info := &answer{}
	attemptCtx, cancel := context.WithTimeout(ctx, c.factory.opts.Timeout)
	defer cancel()
	err := call(c.service(attemptCtx, op, info))
	if info.body != nil {
		_ = info.body.Close()
	}
	if err == nil && info.status >= 300 && info.status < 400 {
		err = fmt.Errorf("%w: redirected (HTTP %d)", errNotTwilio, info.status)
	}
	return info, err
}

// backoff is the jittered exponential wait before attempt+1: base·2^(attempt-1),
// capped, then drawn uniformly from [wait/2, wait].
func backoff(base, maxWait time.Duration, attempt int) time.Duration {
	wait := base << min(attempt-1, 20)
	if wait > maxWait || wait <= 0 {
		wait = maxWait
	}
	half := wait / 2
	return half + rand.N(half+1) //nolint:gosec // jitter, not security
}

// maxServerText bounds each piece of an error the server wrote (its message,
// content type, documentation link): an error ends in a condition (32 KiB at
// most), an event (1 KiB) and a log line; Twilio's are a few hundred bytes.
const maxServerText = 512

// scrub keeps the text of an error fit for status, events and logs: each
// field the server may have written is cut to maxServerText bytes (at a
// character boundary), control characters are shown escaped (no terminal
// escapes or forged lines), and the client's own secret, should an echoing
// proxy send it back, is redacted.
func (c *Client) scrub(e *APIError) {
	_, secret := c.creds.basicAuth()
	for _, field := range []*string{&e.Message, &e.ContentType, &e.MoreInfo} {
		*field = serverText(*field, secret)
	}
}

// serverText is v with secret redacted, control characters escaped, and cut
// to maxServerText bytes.
func serverText(v, secret string) string {
	if secret != "" {
		v = strings.ReplaceAll(v, secret, "[redacted]")
	}
	var b strings.Builder
	for _, r := range v {
		piece := string(r)
		if r == utf8.RuneError || unicode.IsControl(r) {
			piece = strings.Trim(strconv.QuoteRune(r), "'")
		}
		if b.Len()+len(piece) > maxServerText {
			b.WriteString("…")
			break
		}
		b.WriteString(piece)
	}
	return b.String()
}

// unlikeTwilio refuses a success twilio-go accepted but Twilio never gives:
// Twilio answers a delete 204 No Content, and twilio-go takes any 2xx (a proxy's
// or a captive portal's 200 page) as the webhook deleted.
func unlikeTwilio(op string, info *answer) error {
	if op == OpDelete && info.status != http.StatusNoContent {
		return &APIError{Operation: op, Err: errNotTwilio,
			Message: fmt.Sprintf("a delete answered %d, not Twilio's 204 No Content", info.status)}
	}
	return nil
}

// toAPIError turns twilio-go's error (or one of the client's own checks) and the
// recorded answer into an *APIError. Only an error status whose body is Twilio's
// error JSON with a code is Twilio's answer; everything else that arrived is
// marked errNotTwilio, and a create answered 2xx without a usable body is marked
// errIncompleteCreate.
func toAPIError(op string, err error, info *answer) *APIError {
	if own := AsAPIError(err); own != nil {
		if own.Status == 0 {
			own.Status, own.ContentType, own.RetryAfter = info.status, info.contentType, info.retryAfter
		}
		return own
	}
	base := APIError{Operation: op, Status: info.status, ContentType: info.contentType, RetryAfter: info.retryAfter}
	var restErr *twclient.TwilioRestError
	isRest := errors.As(err, &restErr)
	switch {
	case isRest && info.status == 0:
		// twilio-go refused the request before sending it (21222, 21224).
		base.Code, base.MoreInfo = restErr.Code, restErr.MoreInfo
		base.Message = "the Twilio library refused the request before sending it: " + restErr.Message
		return &base
	case info.twilio != nil:
		// The code is the one the strict reading found, never twilio-go's
		// (which takes the last key matching "code" in any case).
		base.Code, base.Message, base.MoreInfo = info.twilio.Code, info.twilio.Message, info.twilio.MoreInfo
		return &base
	case info.status >= 400:
		// An error status whose body is not Twilio's error JSON: a proxy, a load
		// balancer or a wrong API URL answered.
		what := "not JSON"
		if isRest {
			what = "JSON that is not Twilio's error (one object with a non-zero \"code\")"
		}
		base.Message = fmt.Sprintf("%s, body %s", http.StatusText(info.status), what)
		base.Err = fmt.Errorf("%w: %s", errNotTwilio, what)
		return &base
	case errors.Is(err, errNotTwilio):
		base.Message = err.Error()
		base.Err = err
		return &base
	case info.status != 0:
		// A success status whose body could not be decoded.
		base.Message = "undecodable answer: " + err.Error()
		base.Err = fmt.Errorf("%w: %w", errNotTwilio, err)
		if op == OpCreate && info.status < 300 {
			base.Message = "create answered with an undecodable body, the webhook may exist: " + err.Error()
			base.Err = fmt.Errorf("%w: %w: %w", errIncompleteCreate, errNotTwilio, err)
		}
		return &base
	default:
		base.Message = describeNetworkError(err)
		base.Err = fmt.Errorf("%w: %w", errNetwork, err)
		return &base
	}
}

// describeNetworkError keeps the cause of a failed request without its URL's query.
func describeNetworkError(err error) string {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		msg := urlErr.Err.Error()
		if urlErr.Timeout() {
			msg = "timeout: " + msg
		}
		return msg
	}
	return err.Error()
}

// answer records what the server said to one attempt.
type answer struct {
	status      int
	contentType string
	retryAfter  time.Duration
	// twilio is an error answer's body when it is Twilio's error JSON (see
	// readTwilioError), else nil. twilio-go decodes error bodies leniently (the
	// first JSON value, keys in any case, trailing bytes ignored); this is the
	// strict reading, and the only one that classifies an answer.
	twilio *twilioError
	// body is the answer's body, closed once the attempt is over: twilio-go
	// does not close an error answer's body.
	body io.Closer
}

// twilioError is Twilio's error JSON, read with the keys' exact names.
type twilioError struct {
	Code     int
	Message  string
	MoreInfo string
}

// maxErrorBody bounds how much of an error answer is read to check that it is
// Twilio's error JSON; Twilio's are a few hundred bytes.
const maxErrorBody = 64 << 10

// readTwilioError returns body as Twilio's error JSON, or nil when it is not:
// exactly one JSON object whose "code" key (in that case) is a non-zero
// integer. Its "message" and "more_info" are kept when they are strings.
func readTwilioError(body []byte) *twilioError {
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) != nil {
		return nil
	}
	var e twilioError
	if json.Unmarshal(fields["code"], &e.Code) != nil || e.Code == codeUnknown {
		return nil
	}
	if raw, ok := fields["message"]; ok {
		_ = json.Unmarshal(raw, &e.Message)
	}
	if raw, ok := fields["more_info"]; ok {
		_ = json.Unmarshal(raw, &e.MoreInfo)
	}
	return &e
}

// rewriteTransport sends every request to the configured base URL.
type rewriteTransport struct {
	base *url.URL
	next http.RoundTripper
}

func (t *rewriteTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.URL.Scheme = t.base.Scheme
	r.URL.Host = t.base.Host
	r.Host = t.base.Host
	if prefix := strings.TrimSuffix(t.base.Path, "/"); prefix != "" {
		r.URL.Path = prefix + r.URL.Path
		r.URL.RawPath = ""
	}
	return t.next.RoundTrip(r)
}

// callTransport attaches a call's context, records the answer and observes metrics.
type callTransport struct {
	ctx     context.Context
	op      string
	info    *answer
	next    http.RoundTripper
	metrics *Metrics
}

func (t *callTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(req.WithContext(t.ctx))
	code := "error"
	if err == nil {
		t.info.status = resp.StatusCode
		t.info.contentType = resp.Header.Get("Content-Type")
		t.info.retryAfter = parseRetryAfter(resp.Header.Get(retryAfterHeader), time.Now())
		code = fmt.Sprint(resp.StatusCode)
		t.info.body = resp.Body
		resp.Body = &boundedBody{Reader: io.LimitReader(resp.Body, maxAnswerBody+1), Closer: resp.Body}
		if resp.StatusCode >= 400 {
			t.info.twilio = readErrorBody(resp)
		}
	}
	t.metrics.observe(t.op, code, time.Since(start))
	return resp, err
}

// maxAnswerBody bounds what is read of any answer (after the transport
// inflates a gzip body): a webhook is under 2 KiB, a page of five a few times
// that; a longer answer is not Twilio's, and reading it whole would let an
// impostor or a broken proxy fill the operator's memory.
const maxAnswerBody = 256 << 10

// boundedBody fails a read past maxAnswerBody.
type boundedBody struct {
	io.Reader
	io.Closer
	read int64
}

func (b *boundedBody) Read(p []byte) (int, error) {
	n, err := b.Reader.Read(p)
	b.read += int64(n)
	if b.read > maxAnswerBody {
		return 0, fmt.Errorf("%w: an answer longer than %d bytes", errNotTwilio, maxAnswerBody)
	}
	return n, err
}

// readErrorBody reads up to maxErrorBody of an error answer, returns it as
// Twilio's error JSON (nil when it is not, or is longer, or could not be read
// whole), and leaves the whole body for twilio-go to read.
func readErrorBody(resp *http.Response) *twilioError {
	head, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody+1))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
	if err != nil || len(head) > maxErrorBody {
		return nil
	}
	return readTwilioError(head)
}

// limiterLocked returns the account's limiter, created with its limits.
func (f *Factory) limiterLocked(accountSid string) *accountLimiter {
	if lim, ok := f.limiters[accountSid]; ok {
		return lim
	}
	var observe func(int, int, bool)
	if m := f.opts.Metrics; m != nil {
		observe = func(inflight, ceiling int, throttled bool) {
			m.observeAccount(accountSid, inflight, ceiling, throttled)
		}
	}
	lim := newAccountLimiter(f.effectiveLocked(accountSid), f.opts.Burst, f.opts.Now, observe)
	f.limiters[accountSid] = lim
	return lim
}

// SetLimits records the limits one source (an account object, named by
// source, with its UID) sets for a Twilio account: the account reconciler's
// word, once it verified the object's credentials. Every source of one account
// SID shares one limiter; the smallest of their limits apply, and a zero field
// means the factory's default. A source sets the limits of one account SID at a
// time: what it set for another (its credentials now name another account) is
// forgotten.
func (f *Factory) SetLimits(accountSid, source, uid string, l Limits) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sources[source] = limitsSource{uid: uid}
	f.setLocked(accountSid, source, l)
}

// EnsureLimits records a source's limits only if nothing is known of it yet:
// a client used right after a restart, before the account reconciler ran,
// gets them at once. It never overrides SetLimits, and never brings back the
// limits of an object ForgetLimits dropped (a reconcile that read it just
// before its deletion).
func (f *Factory) EnsureLimits(accountSid, source, uid string, l Limits) {
	f.mu.Lock()
	defer f.mu.Unlock()
	// A source forgotten before this manager knew its object (uid "") stays
	// forgotten for every UID until the account reconciler sets it again.
	if s, known := f.sources[source]; known && (!s.gone || s.uid == "" || s.uid == uid) {
		return
	}
	f.sources[source] = limitsSource{uid: uid}
	f.setLocked(accountSid, source, l)
}

func (f *Factory) setLocked(accountSid, source string, l Limits) {
	f.forgetLocked(source, accountSid)
	if f.limits[accountSid] == nil {
		f.limits[accountSid] = map[string]Limits{}
	}
	if f.limits[accountSid][source] == l {
		return
	}
	f.limits[accountSid][source] = l
	if lim, ok := f.limiters[accountSid]; ok {
		lim.setLimits(f.effectiveLocked(accountSid))
	}
}

// ForgetLimits drops the limits a source set (its account object is deleted):
// the account's other sources, or the defaults, apply again.
func (f *Factory) ForgetLimits(source string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sources[source] = limitsSource{uid: f.sources[source].uid, gone: true}
	f.forgetLocked(source, "")
}

// forgetLocked drops source's limits from every account SID but keep.
func (f *Factory) forgetLocked(source, keep string) {
	for accountSid, bySource := range f.limits {
		if _, ok := bySource[source]; !ok || accountSid == keep {
			continue
		}
		delete(bySource, source)
		if len(bySource) == 0 {
			delete(f.limits, accountSid)
		}
		if lim, ok := f.limiters[accountSid]; ok {
			lim.setLimits(f.effectiveLocked(accountSid))
		}
	}
}

// Limits are the limits in force for an account SID: the smallest its sources
// set, defaults filled in.
func (f *Factory) Limits(accountSid string) Limits {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.effectiveLocked(accountSid)
}

// effectiveLocked is the smallest of the limits set for an account, defaults filled in.
func (f *Factory) effectiveLocked(accountSid string) Limits {
	out := Limits{MaxInFlight: f.opts.MaxInFlight, RequestsPerSecond: f.opts.RequestsPerSecond}
	first := true
	for _, l := range f.limits[accountSid] {
		if l.MaxInFlight <= 0 {
			l.MaxInFlight = f.opts.MaxInFlight
		}
		if l.RequestsPerSecond <= 0 {
			l.RequestsPerSecond = f.opts.RequestsPerSecond
		}
		if first {
			out, first = l, false
			continue
		}
		out.MaxInFlight = min(out.MaxInFlight, l.MaxInFlight)
		out.RequestsPerSecond = math.Min(out.RequestsPerSecond, l.RequestsPerSecond)
	}
	return out
}

// AccountInFlight returns the requests in flight and the current adaptive
// ceiling of an account (0, 0 for an account never used).
func (f *Factory) AccountInFlight(accountSid string) (inflight, ceiling int) {
	f.mu.Lock()
	lim, ok := f.limiters[accountSid]
	f.mu.Unlock()
	if !ok {
		return 0, 0
	}
	return lim.snapshot()
}

// Reserve admits one request to an account, to be sent later by a caller that
// will then wait for a slot: at most four times the account's current
// in-flight ceiling are reserved at once, and no more than its rate lets start
// in 2 s (accountLimiter.reservationsLocked), so a reserved request waits for
// its slot about three requests' latency, or 2 s of the rate, at most. It never
// waits: false means come back later.
// The returned function ends the reservation once the request is answered.
func (f *Factory) Reserve(accountSid string) (func(), bool) {
	return f.limiter(accountSid).reserve()
}

// Reservable is how many more requests Reserve would admit for the account now.
func (f *Factory) Reservable(accountSid string) int {
	return f.limiter(accountSid).reservable()
}

// limiter returns the account's limiter, created with its limits if need be.
func (f *Factory) limiter(accountSid string) *accountLimiter {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.limiterLocked(accountSid)
}
