package twiliofake

import (
	"net/http"
	"time"
)

// OpConfiguration is GET /v1/Configuration, which the operator uses to verify
// credentials.
const OpConfiguration = "configuration"

// serveConfiguration answers GET /v1/Configuration: the authenticated
// account's Conversations configuration, whose account_sid is the account the
// credentials act for (an API key's account, whatever else the caller claims).
func (s *Server) serveConfiguration(w http.ResponseWriter, r *http.Request) {
	entry := Request{Time: time.Now(), Method: r.Method, Path: r.URL.Path, Operation: OpConfiguration}
	fault, release := s.admit(r, OpConfiguration, "")
	defer release()
	status, out := s.configurationAnswer(r, fault)
	code := 0
	if e, isErr := out.(*apiError); isErr {
		code = e.Code
	}
	s.record(entry, status, code, fault.Kind, "")
	writeJSON(w, status, out)
}

func (s *Server) configurationAnswer(r *http.Request, fault Fault) (int, interface{}) {
	switch fault.Kind {
	case FaultRateLimited, FaultConcurrencyLimit, FaultAccountRate:
		return http.StatusTooManyRequests, twErr(429, 20429, "Too Many Requests")
	case FaultServerError:
		return http.StatusInternalServerError, twErr(500, 20500, "Internal Server Error")
	case FaultError:
		return fault.Status, twErr(fault.Status, fault.Code, errorMessages[fault.Code])
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	acct, ok := s.authenticateLocked(r)
	if !ok {
		return http.StatusUnauthorized, twErr(401, 20003, "Authenticate")
	}
	return http.StatusOK, map[string]interface{}{
		"account_sid":                   acct,
		"default_chat_service_sid":      s.accounts[acct].defaultService,
		"default_messaging_service_sid": nil,
		"default_inactive_timer":        nil,
		"default_closed_timer":          nil,
		"url":                           s.publicURL + "/v1/Configuration",
		"links":                         map[string]string{"webhooks": s.publicURL + "/v1/Configuration/Webhooks"},
	}
}
