// Package twiliofake is an in-memory Twilio Conversations API for conversation-scoped
// webhooks: an http.Handler for httptest and for the standalone fake server of
// make demo and make bench. It enforces what Twilio enforces (authentication,
// conversation existence, configuration rules, five webhooks per conversation,
// page sizes) with Twilio's status codes and error codes, and it can inject
// latency, rate limits and failures. The manager binary never imports it.
package twiliofake

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/url"
	"slices"
	"sort"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultPublicURL is the address the fake writes into url and next_page_url
// fields, as Twilio does; clients reach the fake through their base-URL rewrite.
const DefaultPublicURL = "https://conversations.twilio.com"

// Operations, as counted in the request log.
const (
	OpCreate  = "create"
	OpFetch   = "fetch"
	OpUpdate  = "update"
	OpDelete  = "delete"
	OpList    = "list"
	OpUnknown = "unknown"
)

// CodeTooManyWebhooks is Twilio's code for a sixth webhook in a conversation.
const CodeTooManyWebhooks = 50361

// Webhook is a stored conversation-scoped webhook.
type Webhook struct {
	Sid             string    `json:"sid"`
	AccountSid      string    `json:"account_sid"`
	ServiceSid      string    `json:"chat_service_sid"`
	ConversationSid string    `json:"conversation_sid"`
	Target          string    `json:"target"`
	URL             string    `json:"url"`
	Method          string    `json:"method,omitempty"`
	Filters         []string  `json:"filters,omitempty"`
	Triggers        []string  `json:"triggers,omitempty"`
	FlowSid         string    `json:"flow_sid,omitempty"`
	ReplayAfter     *int      `json:"replay_after,omitempty"`
	DateCreated     time.Time `json:"date_created"`
	DateUpdated     time.Time `json:"date_updated"`
	seq             uint64
}

// Request is one entry of the request log.
type Request struct {
	Time      time.Time
	Method    string
	Path      string
	Operation string
	Account   string
	Form      url.Values
	RawBody   string
	Status    int
	Code      int
	Fault     FaultKind
	// WebhookSid is the webhook a create made or a fetch or update answered
	// (even when SetNullFields answers its sid null).
	WebhookSid string
}

type account struct {
	authToken      string
	defaultService string
	limiter        *rate.Limiter
}

type conversation struct {
	account string
	service string
}

// Server is the fake. Its zero value is not usable: call New.
type Server struct {
	mu            sync.Mutex
	publicURL     string
	now           func() time.Time
	rng           *rand.Rand
	seq           uint64
	accounts      map[string]*account
	apiKeys       map[string][2]string // key SID → {account SID, secret}
	conversations map[string]*conversation
	webhooks      map[string]*Webhook
	anyConv       bool

	latency     time.Duration
	maxInFlight int
	// inFlight counts requests in flight per account (by the SID their
	// credentials name; "" for none), as Twilio limits each account.
	inFlight      map[string]int
	rps           float64
	burst         int
	retryAfter429 time.Duration
	script        []Fault
	requireScoped bool
	random        *randomFaults
	injected      map[FaultKind]int
	counts        map[string]int
	// arrived counts requests by conversation and operation on arrival,
	// before latency, limits and faults (the log records them answered).
	arrived map[arrival]int
	// refused counts, by operation, the requests the account's limits
	// refused with a 429 (in flight or rate) before serving them.
	refused        map[string]int
	log            []Request
	recordRequests bool
	maxPerConv     int

	keywordsInFilters bool
	nullFields        []string
}

// New returns an empty fake with no accounts.
func New() *Server {
	return &Server{
		publicURL:      DefaultPublicURL,
		now:            func() time.Time { return time.Now().UTC() },
		rng:            rand.New(rand.NewPCG(1, 2)), //nolint:gosec // SIDs of a fake
		accounts:       map[string]*account{},
		apiKeys:        map[string][2]string{},
		conversations:  map[string]*conversation{},
		webhooks:       map[string]*Webhook{},
		injected:       map[FaultKind]int{},
		counts:         map[string]int{},
		arrived:        map[arrival]int{},
		refused:        map[string]int{},
		inFlight:       map[string]int{},
		recordRequests: true,
		maxPerConv:     5,
	}
}

// NewSid returns a random SID of the given two-letter prefix.
func NewSid(prefix string) string {
	return fmt.Sprintf("%s%016x%016x", prefix, rand.Uint64(), rand.Uint64()) //nolint:gosec // test SIDs
}

func (s *Server) newSidLocked(prefix string) string {
	return fmt.Sprintf("%s%016x%016x", prefix, s.rng.Uint64(), s.rng.Uint64())
}

// AddAccount registers an account with its auth token and returns the SID of its
// default Conversation Service.
func (s *Server) AddAccount(accountSid, authToken string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[accountSid]
	if !ok {
		a = &account{defaultService: s.newSidLocked("IS")}
		s.accounts[accountSid] = a
	}
	a.authToken = authToken
	s.applyRateLocked()
	return a.defaultService
}

// AddAPIKey registers an API key of an account.
func (s *Server) AddAPIKey(accountSid, keySid, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apiKeys[keySid] = [2]string{accountSid, secret}
}

// AddConversation registers a conversation in the account's default service.
func (s *Server) AddConversation(accountSid, conversationSid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[accountSid]
	if a == nil {
		panic("twiliofake: AddConversation for unknown account " + accountSid)
	}
	s.conversations[conversationSid] = &conversation{account: accountSid, service: a.defaultService}
}

// AddServiceConversation registers a conversation in a named service of the account.
func (s *Server) AddServiceConversation(accountSid, serviceSid, conversationSid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conversations[conversationSid] = &conversation{account: accountSid, service: serviceSid}
}

// RemoveConversation deletes a conversation and its webhooks.
func (s *Server) RemoveConversation(conversationSid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conversations, conversationSid)
	for sid, w := range s.webhooks {
		if w.ConversationSid == conversationSid {
			delete(s.webhooks, sid)
		}
	}
}

// SetAnyConversation makes every well-formed CH SID an existing conversation of
// the requesting account's default service (for benchmarks with many conversations).
func (s *Server) SetAnyConversation(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.anyConv = on
}

// SetPublicURL sets the address written into url and next_page_url fields.
func (s *Server) SetPublicURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.publicURL = u
}

// SetRecordRequests turns the request log on or off (counts are always kept).
func (s *Server) SetRecordRequests(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recordRequests = on
}

// Webhooks returns copies of all stored webhooks, oldest first.
func (s *Server) Webhooks() []Webhook {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sortedLocked(func(*Webhook) bool { return true })
}

// ConversationWebhooks returns copies of a conversation's webhooks, oldest first.
func (s *Server) ConversationWebhooks(conversationSid string) []Webhook {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sortedLocked(func(w *Webhook) bool { return w.ConversationSid == conversationSid })
}

// Webhook returns a copy of one webhook.
func (s *Server) Webhook(sid string) (Webhook, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.webhooks[sid]
	if !ok {
		return Webhook{}, false
	}
	return copyWebhook(w), true
}

// EditWebhook changes a webhook behind the operator's back.
func (s *Server) EditWebhook(sid string, edit func(*Webhook)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.webhooks[sid]
	if ok {
		edit(w)
		w.DateUpdated = s.now().Truncate(time.Second)
	}
	return ok
}

// DeleteWebhook deletes a webhook behind the operator's back.
func (s *Server) DeleteWebhook(sid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.webhooks[sid]
	delete(s.webhooks, sid)
	return ok
}

// CreateWebhook stores a webhook directly, as if made outside the operator; it
// returns the new SID.
func (s *Server) CreateWebhook(w Webhook) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := copyWebhook(&w)
	c.Sid = s.newSidLocked("WH")
	if conv := s.conversations[c.ConversationSid]; conv != nil {
		c.AccountSid, c.ServiceSid = conv.account, conv.service
	}
	c.DateCreated = s.now().Truncate(time.Second)
	c.DateUpdated = c.DateCreated
	s.seq++
	c.seq = s.seq
	s.webhooks[c.Sid] = &c
	return c.Sid
}

// Requests returns a copy of the request log.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// Counts returns the request counts by operation.
func (s *Server) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.counts)
}

// arrival keys Server.arrived.
type arrival struct{ conversation, op string }

// Arrived returns how many requests of operation op on conversationSid's
// scoped webhooks have reached the fake, counted on arrival: a request still
// waiting out SetLatency is counted, where Requests lists it once answered.
func (s *Server) Arrived(conversationSid, op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.arrived[arrival{conversationSid, op}]
}

// RefusedCounts returns, by operation, how many requests the account limits
// (SetMaxInFlight, SetAccountRate) refused with a 429: a refused create made no
// webhook.
func (s *Server) RefusedCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.refused)
}

// ResetLog clears the request log, the counts and the fault counts.
func (s *Server) ResetLog() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = nil
	s.counts = map[string]int{}
	s.arrived = map[arrival]int{}
	s.refused = map[string]int{}
	s.injected = map[FaultKind]int{}
}

func (s *Server) sortedLocked(keep func(*Webhook) bool) []Webhook {
	var out []*Webhook
	for _, w := range s.webhooks {
		if keep(w) {
			out = append(out, w)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	res := make([]Webhook, 0, len(out))
	for _, w := range out {
		res = append(res, copyWebhook(w))
	}
	return res
}

func copyWebhook(w *Webhook) Webhook {
	c := *w
	c.Filters = slices.Clone(w.Filters)
	c.Triggers = slices.Clone(w.Triggers)
	if w.ReplayAfter != nil {
		v := *w.ReplayAfter
		c.ReplayAfter = &v
	}
	return c
}
