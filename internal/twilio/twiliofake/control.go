package twiliofake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// ControlConversation registers a conversation through the control API.
type ControlConversation struct {
	AccountSid      string `json:"accountSid"`
	ServiceSid      string `json:"serviceSid,omitempty"`
	ConversationSid string `json:"conversationSid"`
}

// ControlSettings are the fault and answer-shape settings of the control API.
// Every PUT sets all of them: a field left out returns to its default.
type ControlSettings struct {
	LatencyMillis  int         `json:"latencyMillis"`
	MaxInFlight    int         `json:"maxInFlight"`
	AccountRPS     float64     `json:"accountRPS"`
	AccountBurst   int         `json:"accountBurst"`
	FaultFraction  float64     `json:"faultFraction"`
	FaultSeed      uint64      `json:"faultSeed"`
	FaultKinds     []FaultKind `json:"faultKinds"`
	RecordRequests *bool       `json:"recordRequests,omitempty"`
	// TriggerKeywordsIn is where trigger keywords are answered: "triggers"
	// (default) or "filters" (Twilio's examples). See SetTriggerKeywordsIn.
	TriggerKeywordsIn string `json:"triggerKeywordsIn,omitempty"`
	// NullFields are answered as JSON null (see NullableFields, SetNullFields).
	NullFields []string `json:"nullFields,omitempty"`
}

// ControlStats are the counts the control API reports.
type ControlStats struct {
	Requests map[string]int    `json:"requests"`
	Faults   map[FaultKind]int `json:"faults"`
	Webhooks int               `json:"webhooks"`
}

// serveControl is the fake's own API for a standalone server (no authentication:
// it listens on loopback only):
//
//	GET    /_fake/webhooks            all stored webhooks
//	DELETE /_fake/webhooks/{sid}      delete one behind the operator's back
//	POST   /_fake/conversations       register a conversation (ControlConversation)
//	PUT    /_fake/settings            latency, limits, random faults, answer shapes (ControlSettings)
//	GET    /_fake/stats               request and fault counts
//	POST   /_fake/reset-stats         clear the request log and counts
func (s *Server) serveControl(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/_fake/")
	switch {
	case path == "webhooks" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.Webhooks())
	case strings.HasPrefix(path, "webhooks/") && r.Method == http.MethodDelete:
		if !s.DeleteWebhook(strings.TrimPrefix(path, "webhooks/")) {
			writeJSON(w, http.StatusNotFound, twErr(404, 20404, "no such webhook"))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case path == "conversations" && r.Method == http.MethodPost:
		var c ControlConversation
		if err := json.NewDecoder(r.Body).Decode(&c); err != nil || c.ConversationSid == "" {
			writeJSON(w, http.StatusBadRequest, twErr(400, 20422, "want {accountSid, serviceSid?, conversationSid}"))
			return
		}
		s.mu.Lock()
		_, known := s.accounts[c.AccountSid]
		s.mu.Unlock()
		switch {
		case !known:
			writeJSON(w, http.StatusNotFound, twErr(404, 20404, "unknown account"))
			return
		case c.ServiceSid != "":
			s.AddServiceConversation(c.AccountSid, c.ServiceSid, c.ConversationSid)
		default:
			s.AddConversation(c.AccountSid, c.ConversationSid)
		}
		w.WriteHeader(http.StatusNoContent)
	case path == "settings" && r.Method == http.MethodPut:
		var c ControlSettings
		if err := json.NewDecoder(r.Body).Decode(&c); err != nil {
			writeJSON(w, http.StatusBadRequest, twErr(400, 20422, err.Error()))
			return
		}
		if err := c.Validate(); err != nil {
			writeJSON(w, http.StatusBadRequest, twErr(400, 20422, err.Error()))
			return
		}
		s.ApplySettings(c)
		w.WriteHeader(http.StatusNoContent)
	case path == "stats" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, ControlStats{Requests: s.Counts(), Faults: s.FaultCounts(), Webhooks: len(s.Webhooks())})
	case path == "reset-stats" && r.Method == http.MethodPost:
		s.ResetLog()
		w.WriteHeader(http.StatusNoContent)
	default:
		writeJSON(w, http.StatusNotFound, twErr(404, 20404, "unknown control endpoint"))
	}
}

// Validate checks the answer-shape settings.
func (c ControlSettings) Validate() error {
	for _, f := range c.NullFields {
		if !slices.Contains(NullableFields, f) {
			return fmt.Errorf("twiliofake: field %q cannot be answered null; want one of %s", f, strings.Join(NullableFields, ", "))
		}
	}
	switch c.TriggerKeywordsIn {
	case "", KeywordsInTriggers, KeywordsInFilters:
		return nil
	}
	return fmt.Errorf("twiliofake: trigger keywords in %q: want %q or %q", c.TriggerKeywordsIn, KeywordsInTriggers, KeywordsInFilters)
}

// ApplySettings sets latency, limits, random faults and answer shapes at once.
// Answer-shape settings that Validate refuses are left unchanged.
func (s *Server) ApplySettings(c ControlSettings) {
	if c.Validate() == nil {
		_ = s.SetTriggerKeywordsIn(c.TriggerKeywordsIn)
		_ = s.SetNullFields(c.NullFields...)
	}
	s.SetLatency(time.Duration(c.LatencyMillis) * time.Millisecond)
	s.SetMaxInFlight(c.MaxInFlight)
	s.SetAccountRate(c.AccountRPS, c.AccountBurst, 0)
	s.SetRandomFaults(c.FaultFraction, c.FaultSeed, c.FaultKinds...)
	if c.RecordRequests != nil {
		s.SetRecordRequests(*c.RecordRequests)
	}
}
