package twiliofake

import (
	"fmt"
	"slices"
	"strings"
)

// Where a trigger webhook's keywords are answered (SetTriggerKeywordsIn).
const (
	// KeywordsInTriggers answers keywords under configuration.triggers (the default).
	KeywordsInTriggers = "triggers"
	// KeywordsInFilters answers keywords under configuration.filters, after the
	// webhook's filters, as every example in Twilio's OpenAPI document does.
	KeywordsInFilters = "filters"
)

// NullableFields are the answer fields SetNullFields can answer as JSON null: the
// names of twilio.Field… (top-level fields by their JSON name, configuration
// fields prefixed "configuration."), plus the whole "configuration" and the dates.
var NullableFields = []string{
	"sid", "account_sid", "conversation_sid", "chat_service_sid", "target", "url",
	"configuration", "configuration.url", "configuration.method", "configuration.filters",
	"configuration.triggers", "configuration.flow_sid", "configuration.replay_after",
	"date_created", "date_updated",
}

// SetTriggerKeywordsIn chooses where a trigger webhook's keywords are answered:
// KeywordsInTriggers (the default; also for "") or KeywordsInFilters. It changes
// answers only: keywords are always taken from Configuration.Triggers.
func (s *Server) SetTriggerKeywordsIn(where string) error {
	switch where {
	case "", KeywordsInTriggers, KeywordsInFilters:
	default:
		return fmt.Errorf("twiliofake: trigger keywords in %q: want %q or %q", where, KeywordsInTriggers, KeywordsInFilters)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keywordsInFilters = where == KeywordsInFilters
	return nil
}

// SetNullFields answers the named fields (see NullableFields) as JSON null in
// every webhook of every answer (create, fetch, update, list); none turns it off.
// A top-level field is nulled only where the answer has it (chat_service_sid only
// on the service path); a configuration field is nulled whatever the target. The
// stored webhooks are unchanged.
func (s *Server) SetNullFields(fields ...string) error {
	for _, f := range fields {
		if !slices.Contains(NullableFields, f) {
			return fmt.Errorf("twiliofake: field %q cannot be answered null; want one of %s", f, strings.Join(NullableFields, ", "))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nullFields = slices.Clone(fields)
	return nil
}

// nullFieldsLocked applies SetNullFields to one rendered webhook.
func (s *Server) nullFieldsLocked(out map[string]interface{}) {
	for _, f := range s.nullFields {
		sub, isCfg := strings.CutPrefix(f, "configuration.")
		if !isCfg {
			if _, ok := out[f]; ok {
				out[f] = nil
			}
			continue
		}
		if cfg, ok := out["configuration"].(map[string]interface{}); ok {
			cfg[sub] = nil
		}
	}
}
