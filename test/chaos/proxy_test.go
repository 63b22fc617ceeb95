//go:build chaos

package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"
)

// front stands before the fake: it delays each request by a random 50–200 ms
// (the fake's own latency is one fixed value), and, serving each manager on its
// own port, knows which manager sent each request: it follows each one's
// creates, so a kill can be timed to land while one is in flight or answered
// but not yet recorded, and its writes, so a woken leader's can be seen.
type front struct {
	next http.Handler

	mu       sync.Mutex
	rng      *rand.Rand
	inFlight map[int]int     // manager → create requests being served
	answered []created       // create answers, newest last
	writes   map[int][]write // manager → its writes (create, update, delete)
	// capacity is the account's concurrency limit, as Twilio applies it: a
	// request arriving while capacity requests are being served (latency
	// included) is answered 429/20429 (0: no limit). refused counts them.
	capacity, active, refused int
}

// tooMany answers a request past the concurrency limit as Twilio does.
func tooMany(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write([]byte(`{"code":20429,"message":"Too Many Requests","more_info":"https://www.twilio.com/docs/errors/20429","status":429}`))
}

// created is a create the fake answered with a SID.
type created struct {
	at      time.Time
	manager int
	sid     string
}

// write is one write request as it arrived.
type write struct {
	at   time.Time
	what string
}

func newFront(next http.Handler, seed uint64) *front {
	return &front{next: next, rng: rand.New(rand.NewPCG(seed, seed^0x5eed)), //nolint:gosec // reproducible latency
		inFlight: map[int]int{}, writes: map[int][]write{}}
}

func isCreate(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasSuffix(strings.TrimSuffix(r.URL.Path, "/"), "/Webhooks")
}

// listen serves the front for one manager on a port of its own; stop closes it.
func (f *front) listen(manager int) (addr string, stop func(), err error) {
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { f.serve(manager, w, r) })}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// ServeHTTP serves requests of no known manager.
func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) { f.serve(0, w, r) }

func (f *front) serve(manager int, w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_fake/") {
		f.next.ServeHTTP(w, r)
		return
	}
	create := isCreate(r)
	f.mu.Lock()
	if f.capacity > 0 && f.active >= f.capacity {
		f.refused++
		f.mu.Unlock()
		tooMany(w)
		return
	}
	f.active++
	defer func() {
		f.mu.Lock()
		f.active--
		f.mu.Unlock()
	}()
	delay := time.Duration(50+f.rng.IntN(151)) * time.Millisecond
	if create {
		f.inFlight[manager]++
	}
	if r.Method != http.MethodGet {
		f.writes[manager] = append(f.writes[manager], write{at: time.Now(), what: r.Method + " " + r.URL.Path})
	}
	f.mu.Unlock()
	select {
	case <-time.After(delay):
	case <-r.Context().Done():
	}
	if !create {
		f.next.ServeHTTP(w, r)
		return
	}
	rec := &recorder{ResponseWriter: w}
	defer func() {
		var body struct {
			Sid string `json:"sid"`
		}
		_ = json.Unmarshal(rec.body.Bytes(), &body)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.inFlight[manager]--
		if rec.status == http.StatusCreated && body.Sid != "" {
			f.answered = append(f.answered, created{at: time.Now(), manager: manager, sid: body.Sid})
		}
	}()
	f.next.ServeHTTP(rec, r)
}

// creating reports a manager's creates in flight and the SIDs answered to it
// within window.
func (f *front) creating(manager int, window time.Duration) (int, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var recent []string
	for i := len(f.answered) - 1; i >= 0 && time.Since(f.answered[i].at) < window; i-- {
		if f.answered[i].manager == manager {
			recent = append(recent, f.answered[i].sid)
		}
	}
	if len(f.answered) > 1000 {
		f.answered = append([]created(nil), f.answered[len(f.answered)-100:]...)
	}
	return f.inFlight[manager], recent
}

// writesSince lists a manager's writes that arrived after t.
func (f *front) writesSince(manager int, t time.Time) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, w := range f.writes[manager] {
		if w.at.After(t) {
			out = append(out, w.at.Format("15:04:05.000")+" "+w.what)
		}
	}
	return out
}

// recorder keeps the status and body of an answer; it can still be hijacked
// (the fake drops the connection for a lost response).
type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.body.Write(p)
	return r.ResponseWriter.Write(p)
}

func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(r.ResponseWriter).Hijack()
}

// wellFormedPath is every path the operator may send: a webhook collection or
// one webhook, conversation- or service-scoped, with well-formed SIDs; and the
// account check.
var wellFormedPath = regexp.MustCompile(
	`^/v1/((Services/IS[0-9a-fA-F]{32}/)?Conversations/CH[0-9a-fA-F]{32}/Webhooks(/WH[0-9a-fA-F]{32})?|Configuration)$`)
