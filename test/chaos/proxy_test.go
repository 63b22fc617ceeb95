//go:build chaos

package chaos

import (
	"bufio"
	"bytes"
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
// (the fake's own latency is one fixed value) and follows creates, so a kill
// can be timed to land while one is in flight or answered but not yet recorded.
type front struct {
	next http.Handler

	mu       sync.Mutex
	rng      *rand.Rand
	inFlight int       // create requests being served
	answered []created // create answers, newest last
}

// created is a create the fake answered with a SID.
type created struct {
	at  time.Time
	sid string
}

func newFront(next http.Handler, seed uint64) *front {
	return &front{next: next, rng: rand.New(rand.NewPCG(seed, seed^0x5eed))} //nolint:gosec // reproducible latency
}

func isCreate(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasSuffix(strings.TrimSuffix(r.URL.Path, "/"), "/Webhooks")
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_fake/") {
		f.next.ServeHTTP(w, r)
		return
	}
	create := isCreate(r)
	f.mu.Lock()
	delay := time.Duration(50+f.rng.IntN(151)) * time.Millisecond
	if create {
		f.inFlight++
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
		f.inFlight--
		if rec.status == http.StatusCreated && body.Sid != "" {
			f.answered = append(f.answered, created{at: time.Now(), sid: body.Sid})
		}
	}()
	f.next.ServeHTTP(rec, r)
}

// creating reports the creates in flight and the SIDs answered within window.
func (f *front) creating(window time.Duration) (int, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var recent []string
	for i := len(f.answered) - 1; i >= 0 && time.Since(f.answered[i].at) < window; i-- {
		recent = append(recent, f.answered[i].sid)
	}
	if len(f.answered) > 1000 {
		f.answered = append([]created(nil), f.answered[len(f.answered)-100:]...)
	}
	return f.inFlight, recent
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
