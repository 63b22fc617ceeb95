package twiliofake

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

var (
	conversationSidRe = regexp.MustCompile(`^CH[0-9a-fA-F]{32}$`)
	flowSidRe         = regexp.MustCompile(`^FW[0-9a-fA-F]{32}$`)
	validFilters      = map[string]bool{
		"onMessageAdded": true, "onMessageUpdated": true, "onMessageRemoved": true,
		"onConversationUpdated": true, "onConversationStateUpdated": true, "onConversationRemoved": true,
		"onParticipantAdded": true, "onParticipantUpdated": true, "onParticipantRemoved": true,
		"onDeliveryUpdated": true,
	}
)

// errorMessages are Twilio's messages for the codes the fake answers.
var errorMessages = map[int]string{
	20003: "Authenticate", 20404: "Not Found", 20422: "Invalid Parameter", 20429: "Too Many Requests",
	20500: "Internal Server Error", 50350: "Conversation not found", 50361: "Too many conversation webhooks",
	50362: "Too many conversation webhook triggers", 50364: "Invalid conversation webhook type",
	50365: "Invalid conversation webhook filter", 50366: "Invalid conversation webhook trigger",
	50367: "Invalid conversation webhook flow SID", 50368: "Conversation webhook type not provided",
	50369: "Conversation webhook URL not provided", 50370: "Conversation webhook filter not provided",
	50371: "Conversation webhook trigger not provided", 50372: "Conversation webhook URL is too long",
}

// apiError is Twilio's error body.
type apiError struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

func twErr(status, code int, msg string) *apiError {
	return &apiError{Code: code, Message: msg, MoreInfo: fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code), Status: status}
}

// route is a parsed API path.
type route struct {
	service, conversation, webhook string
	op                             string
}

func parseRoute(method, path string) (route, bool) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	var r route
	switch {
	case len(parts) >= 4 && parts[0] == "v1" && parts[1] == "Conversations" && parts[3] == "Webhooks":
		r.conversation = parts[2]
		parts = parts[4:]
	case len(parts) >= 6 && parts[0] == "v1" && parts[1] == "Services" && parts[3] == "Conversations" && parts[5] == "Webhooks":
		r.service, r.conversation = parts[2], parts[4]
		parts = parts[6:]
	default:
		return r, false
	}
	switch {
	case len(parts) == 0 && method == http.MethodGet:
		r.op = OpList
	case len(parts) == 0 && method == http.MethodPost:
		r.op = OpCreate
	case len(parts) == 1 && method == http.MethodGet:
		r.webhook, r.op = parts[0], OpFetch
	case len(parts) == 1 && method == http.MethodPost:
		r.webhook, r.op = parts[0], OpUpdate
	case len(parts) == 1 && method == http.MethodDelete:
		r.webhook, r.op = parts[0], OpDelete
	default:
		return r, false
	}
	return r, true
}

// ServeHTTP serves Twilio's conversation-scoped webhook API and, under /_fake/,
// the fake's control API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_fake/") {
		s.serveControl(w, r)
		return
	}
	if r.URL.Path == "/v1/Configuration" && r.Method == http.MethodGet {
		s.serveConfiguration(w, r)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	form, _ := url.ParseQuery(string(body))
	for k, v := range r.URL.Query() {
		form[k] = append(form[k], v...)
	}
	rt, ok := parseRoute(r.Method, r.URL.Path)
	op := rt.op
	if !ok {
		op = OpUnknown
	}
	entry := Request{Time: time.Now(), Method: r.Method, Path: r.URL.Path, Operation: op, Form: form, RawBody: string(body)}

	if rt.conversation != "" {
		s.mu.Lock()
		s.arrived[arrival{rt.conversation, op}]++
		s.mu.Unlock()
	}
	fault, release := s.admit(r, op, rt.conversation)
	defer release()
	if s.latencyFor() > 0 {
		select {
		case <-time.After(s.latencyFor()):
		case <-r.Context().Done():
		}
	}

	var status int
	var out interface{}
	switch fault.Kind {
	case FaultTimeout:
		s.record(entry, 0, 0, fault.Kind, "")
		select { // hang until the client gives up
		case <-r.Context().Done():
		case <-time.After(2 * time.Minute):
		}
		return
	case FaultRateLimited, FaultConcurrencyLimit, FaultAccountRate:
		if fault.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((fault.RetryAfter+time.Second-1)/time.Second)))
		}
		status, out = http.StatusTooManyRequests, twErr(429, 20429, "Too Many Requests")
	case FaultServerError:
		status, out = http.StatusInternalServerError, twErr(500, 20500, "Internal Server Error")
	case FaultError:
		status, out = fault.Status, twErr(fault.Status, fault.Code, errorMessages[fault.Code])
	case FaultUnauthorized:
		status, out = http.StatusUnauthorized, twErr(401, 20003, "Authenticate")
	case FaultHTML404, FaultNonJSON:
		status = http.StatusNotFound
		if fault.Kind == FaultNonJSON {
			status = http.StatusBadGateway
		}
		s.record(entry, status, 0, fault.Kind, "")
		writeHTML(w, status)
		return
	default:
		if fault.Kind == FaultDeletedFirst && rt.webhook != "" {
			s.DeleteWebhook(rt.webhook)
		}
		if !ok {
			status, out = http.StatusNotFound, twErr(404, 20404, "The requested resource "+r.URL.Path+" was not found")
		} else {
			status, out = s.serveAPI(r, rt, form, &entry)
		}
	}
	code := 0
	if e, isErr := out.(*apiError); isErr {
		code = e.Code
	}
	sid := entry.WebhookSid
	if wh, isWh := out.(map[string]interface{}); isWh && sid == "" {
		sid, _ = wh["sid"].(string)
	}
	s.record(entry, status, code, fault.Kind, sid)
	if fault.Kind == FaultNullSid {
		nullSids(out)
	}
	if fault.Kind == FaultLoseResponse {
		dropConnection(w)
		return
	}
	writeJSON(w, status, out)
}

// admit applies the concurrency and rate limits and picks a fault for a request
// of op under conversation (its route's; "" for none). The returned function
// ends the request's time in flight.
func (s *Server) admit(r *http.Request, op, conversation string) (Fault, func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[op]++
	acct := ""
	user, _, hasUser := r.BasicAuth()
	if hasUser {
		acct = s.accountOfLocked(user)
	}
	if s.maxInFlight > 0 && s.inFlight[acct] >= s.maxInFlight {
		s.injected[FaultConcurrencyLimit]++
		s.refused[op]++
		return Fault{Kind: FaultConcurrencyLimit}, func() {}
	}
	if hasUser {
		if a := s.accounts[acct]; a != nil && a.limiter != nil && !a.limiter.Allow() {
			s.injected[FaultAccountRate]++
			s.refused[op]++
			return Fault{Kind: FaultAccountRate, RetryAfter: s.retryAfter429}, func() {}
		}
	}
	s.inFlight[acct]++
	f := s.pickFaultLocked(op, conversation)
	if f.Kind != FaultNone {
		s.injected[f.Kind]++
	}
	return f, func() {
		s.mu.Lock()
		s.inFlight[acct]--
		s.mu.Unlock()
	}
}

func (s *Server) latencyFor() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latency
}

func (s *Server) record(e Request, status, code int, fault FaultKind, sid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.recordRequests {
		return
	}
	e.Status, e.Code, e.Fault, e.WebhookSid = status, code, fault, sid
	s.log = append(s.log, e)
}

func dropConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

func writeJSON(w http.ResponseWriter, status int, v interface{}) {
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// nullSids answers the sid of a rendered webhook, or of each listed one, as null.
func nullSids(out interface{}) {
	m, ok := out.(map[string]interface{})
	if !ok {
		return
	}
	if _, isWebhook := m["sid"]; isWebhook {
		m["sid"] = nil
	}
	if items, isList := m["webhooks"].([]map[string]interface{}); isList {
		for _, it := range items {
			it["sid"] = nil
		}
	}
}

// writeHTML answers as a proxy or load balancer in front of Twilio does: an
// HTML page, no Twilio error JSON.
func writeHTML(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, "<html><head><title>%d %s</title></head><body><center><h1>%d %s</h1></center><hr><center>nginx</center></body></html>\n",
		status, http.StatusText(status), status, http.StatusText(status))
}

func (s *Server) accountOfLocked(user string) string {
	if strings.HasPrefix(user, "SK") {
		return s.apiKeys[user][0]
	}
	return user
}

// authenticate returns the account of the request's Basic credentials.
func (s *Server) authenticateLocked(r *http.Request) (string, bool) {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return "", false
	}
	if strings.HasPrefix(user, "SK") {
		k, found := s.apiKeys[user]
		if !found || k[1] != pass || s.accounts[k[0]] == nil {
			return "", false
		}
		return k[0], true
	}
	a := s.accounts[user]
	return user, a != nil && a.authToken == pass
}

// serveAPI answers one authenticated API request.
func (s *Server) serveAPI(r *http.Request, rt route, form url.Values, entry *Request) (int, interface{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	acct, ok := s.authenticateLocked(r)
	if !ok {
		return http.StatusUnauthorized, twErr(401, 20003, "Authenticate")
	}
	entry.Account = acct
	if e := s.checkConversationLocked(acct, rt); e != nil {
		return e.Status, e
	}
	switch rt.op {
	case OpCreate:
		return s.createLocked(acct, rt, form, entry)
	case OpList:
		return s.listLocked(rt, form)
	}
	wh, found := s.webhooks[rt.webhook]
	if found && wh.ConversationSid == rt.conversation && rt.op != OpDelete {
		entry.WebhookSid = wh.Sid // logged even when its answer shows it null
	}
	if !found || wh.ConversationSid != rt.conversation {
		return http.StatusNotFound, twErr(404, 20404, "The requested resource /Conversations/"+rt.conversation+"/Webhooks/"+rt.webhook+" was not found")
	}
	switch rt.op {
	case OpFetch:
		return http.StatusOK, s.renderLocked(wh, rt)
	case OpUpdate:
		return s.updateLocked(wh, rt, form)
	default: // OpDelete
		delete(s.webhooks, wh.Sid)
		return http.StatusNoContent, nil
	}
}

func (s *Server) checkConversationLocked(acct string, rt route) *apiError {
	a := s.accounts[acct]
	service := a.defaultService
	if rt.service != "" {
		service = rt.service
	}
	c, ok := s.conversations[rt.conversation]
	if !ok && s.anyConv && conversationSidRe.MatchString(rt.conversation) {
		c = &conversation{account: acct, service: service}
		s.conversations[rt.conversation] = c
		ok = true
	}
	if !ok || c.account != acct || c.service != service {
		return twErr(404, 50350, "Conversation not found")
	}
	return nil
}

func (s *Server) createLocked(acct string, rt route, form url.Values, entry *Request) (int, interface{}) {
	target := form.Get("Target")
	switch {
	case target == "":
		return http.StatusBadRequest, twErr(400, 50368, "Conversation webhook type not provided")
	case target != "webhook" && target != "trigger" && target != "studio":
		return http.StatusBadRequest, twErr(400, 50364, "Invalid conversation webhook type")
	}
	wh := &Webhook{Target: target}
	if e := applyConfig(wh, form); e != nil {
		return e.Status, e
	}
	if e := validate(wh); e != nil {
		return e.Status, e
	}
	if v, ok := form["Configuration.ReplayAfter"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 0 {
			return http.StatusBadRequest, twErr(400, 20422, "Invalid Parameter: Configuration.ReplayAfter")
		}
		wh.ReplayAfter = &n
	}
	count := 0
	for _, w := range s.webhooks {
		if w.ConversationSid == rt.conversation {
			count++
		}
	}
	if count >= s.maxPerConv {
		return http.StatusBadRequest, twErr(400, CodeTooManyWebhooks, "Too many conversation webhooks")
	}
	c := s.conversations[rt.conversation]
	wh.Sid = s.newSidLocked("WH")
	wh.AccountSid, wh.ServiceSid, wh.ConversationSid = acct, c.service, rt.conversation
	wh.DateCreated = s.now().Truncate(time.Second)
	wh.DateUpdated = wh.DateCreated
	s.seq++
	wh.seq = s.seq
	s.webhooks[wh.Sid] = wh
	entry.WebhookSid = wh.Sid
	return http.StatusCreated, s.renderLocked(wh, rt)
}

func (s *Server) updateLocked(wh *Webhook, rt route, form url.Values) (int, interface{}) {
	next := copyWebhook(wh)
	if e := applyConfig(&next, form); e != nil {
		return e.Status, e
	}
	if e := validate(&next); e != nil {
		return e.Status, e
	}
	next.DateUpdated = s.now().Truncate(time.Second)
	*wh = next
	return http.StatusOK, s.renderLocked(wh, rt)
}

// applyConfig copies the Configuration.* parameters that are present. As on
// Twilio, a parameter that is not sent keeps its value: an empty list cannot be
// sent as form fields, so an update cannot clear a webhook's last filter or
// keyword.
func applyConfig(wh *Webhook, form url.Values) *apiError {
	if v, ok := form["Configuration.Url"]; ok {
		wh.URL = v[0]
	}
	if v, ok := form["Configuration.Method"]; ok {
		m := strings.ToLower(v[0])
		if m != "get" && m != "post" {
			return twErr(400, 20422, "Invalid Parameter: Configuration.Method")
		}
		wh.Method = m
	}
	if v, ok := form["Configuration.Filters"]; ok {
		wh.Filters = v
	}
	if v, ok := form["Configuration.Triggers"]; ok {
		wh.Triggers = v
	}
	if v, ok := form["Configuration.FlowSid"]; ok {
		wh.FlowSid = v[0]
	}
	return nil
}

// validate enforces Twilio's rules for a webhook's configuration.
func validate(wh *Webhook) *apiError {
	for _, f := range wh.Filters {
		if !validFilters[f] {
			return twErr(400, 50365, "Invalid conversation webhook filter")
		}
	}
	switch wh.Target {
	case "webhook", "trigger":
		if wh.URL == "" {
			return twErr(400, 50369, "Conversation webhook URL not provided")
		}
		if len(wh.URL) > 512 {
			return twErr(400, 50372, "Conversation webhook URL is too long")
		}
		if u, err := url.Parse(wh.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return twErr(400, 20422, "Invalid Parameter: Configuration.Url")
		}
		if wh.Method == "" {
			wh.Method = "post"
		}
	}
	switch wh.Target {
	case "webhook":
		if len(wh.Filters) == 0 {
			return twErr(400, 50370, "Conversation webhook filter not provided")
		}
	case "trigger":
		if len(wh.Triggers) == 0 {
			return twErr(400, 50371, "Conversation webhook trigger not provided")
		}
		if len(wh.Triggers) > 5 {
			return twErr(400, 50362, "Too many conversation webhook triggers")
		}
		for _, t := range wh.Triggers {
			if t == "" || len(t) > 248 {
				return twErr(400, 50366, "Invalid conversation webhook trigger")
			}
		}
	case "studio":
		if !flowSidRe.MatchString(wh.FlowSid) {
			return twErr(400, 50367, "Invalid conversation webhook flow SID")
		}
	}
	return nil
}

func (s *Server) basePathLocked(rt route) string {
	if rt.service != "" {
		return s.publicURL + "/v1/Services/" + rt.service + "/Conversations/" + rt.conversation + "/Webhooks"
	}
	return s.publicURL + "/v1/Conversations/" + rt.conversation + "/Webhooks"
}

// renderLocked is the webhook's JSON as Twilio returns it, in the shape chosen by
// SetTriggerKeywordsIn and with the fields chosen by SetNullFields answered null.
func (s *Server) renderLocked(wh *Webhook, rt route) map[string]interface{} {
	cfg := map[string]interface{}{}
	if wh.URL != "" {
		cfg["url"] = wh.URL
	}
	if wh.Method != "" {
		cfg["method"] = wh.Method
	}
	if len(wh.Filters) > 0 {
		cfg["filters"] = slices.Clone(wh.Filters)
	}
	switch {
	case len(wh.Triggers) == 0:
	case s.keywordsInFilters && wh.Target == "trigger":
		cfg["filters"] = append(slices.Clone(wh.Filters), wh.Triggers...)
	default:
		cfg["triggers"] = slices.Clone(wh.Triggers)
	}
	if wh.FlowSid != "" {
		cfg["flow_sid"] = wh.FlowSid
	}
	if wh.ReplayAfter != nil {
		cfg["replay_after"] = *wh.ReplayAfter
	}
	out := map[string]interface{}{
		"sid":              wh.Sid,
		"account_sid":      wh.AccountSid,
		"conversation_sid": wh.ConversationSid,
		"target":           wh.Target,
		"url":              s.basePathLocked(rt) + "/" + wh.Sid,
		"configuration":    cfg,
		"date_created":     wh.DateCreated.Format(time.RFC3339),
		"date_updated":     wh.DateUpdated.Format(time.RFC3339),
	}
	if rt.service != "" {
		out["chat_service_sid"] = wh.ServiceSid
	}
	s.nullFieldsLocked(out)
	return out
}

func (s *Server) listLocked(rt route, form url.Values) (int, interface{}) {
	size := 5
	if v := form.Get("PageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 5 {
			return http.StatusBadRequest, twErr(400, 20422, "Invalid Parameter: PageSize must be between 1 and 5")
		}
		size = n
	}
	page := 0
	if v := form.Get("Page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return http.StatusBadRequest, twErr(400, 20422, "Invalid Parameter: Page")
		}
		page = n
	}
	all := s.sortedLocked(func(w *Webhook) bool { return w.ConversationSid == rt.conversation })
	start := min(page*size, len(all))
	end := min(start+size, len(all))
	items := make([]map[string]interface{}, 0, end-start)
	for i := start; i < end; i++ {
		items = append(items, s.renderLocked(&all[i], rt))
	}
	base := s.basePathLocked(rt)
	pageURL := func(p int) string { return fmt.Sprintf("%s?PageSize=%d&Page=%d", base, size, p) }
	meta := map[string]interface{}{
		"page": page, "page_size": size, "key": "webhooks",
		"first_page_url": pageURL(0), "url": pageURL(page),
		"previous_page_url": nil, "next_page_url": nil,
	}
	if page > 0 {
		meta["previous_page_url"] = pageURL(page - 1)
	}
	if end < len(all) {
		meta["next_page_url"] = pageURL(page+1) + "&PageToken=PA" + all[end-1].Sid
	}
	return http.StatusOK, map[string]interface{}{"webhooks": items, "meta": meta}
}
