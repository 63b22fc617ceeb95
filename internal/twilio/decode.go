package twilio

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	conversations "github.com/twilio/twilio-go/rest/conversations/v1"
)

func items(scope Scope, account string, in []conversations.ConversationsV1ConversationScopedWebhook) ([]Webhook, error) {
	out := make([]Webhook, 0, len(in))
	for i := range in {
		wh := fromModel(&in[i])
		if err := checkListed(scope, account, wh); err != nil {
			return nil, err
		}
		out = append(out, *wh)
	}
	return out, nil
}

func serviceItems(scope Scope, account string, in []conversations.ConversationsV1ServiceConversationScopedWebhook) ([]Webhook, error) {
	out := make([]Webhook, 0, len(in))
	for i := range in {
		wh := fromServiceModel(&in[i])
		if err := checkListed(scope, account, wh); err != nil {
			return nil, err
		}
		out = append(out, *wh)
	}
	return out, nil
}

// modelFields are the fields both of twilio-go's webhook models carry.
type modelFields struct {
	sid, accountSid, serviceSid, conversationSid, target, url *string
	configuration                                             *interface{}
	dateCreated, dateUpdated                                  *time.Time
}

func fromModel(m *conversations.ConversationsV1ConversationScopedWebhook) *Webhook {
	if m == nil {
		return nil
	}
	return newWebhook(modelFields{
		sid: m.Sid, accountSid: m.AccountSid, conversationSid: m.ConversationSid, target: m.Target,
		url: m.Url, configuration: m.Configuration, dateCreated: m.DateCreated, dateUpdated: m.DateUpdated,
	})
}

func fromServiceModel(m *conversations.ConversationsV1ServiceConversationScopedWebhook) *Webhook {
	if m == nil {
		return nil
	}
	return newWebhook(modelFields{
		sid: m.Sid, accountSid: m.AccountSid, serviceSid: m.ChatServiceSid, conversationSid: m.ConversationSid,
		target: m.Target, url: m.Url, configuration: m.Configuration, dateCreated: m.DateCreated, dateUpdated: m.DateUpdated,
	})
}

// newWebhook builds a Webhook from an answer, recording which fields were absent
// or null. The conversation-scoped answer has no chat_service_sid: it is absent.
func newWebhook(f modelFields) *Webhook {
	wh := &Webhook{
		Sid: CanonicalSid(deref(f.sid)), AccountSid: deref(f.accountSid), ServiceSid: deref(f.serviceSid),
		ConversationSid: deref(f.conversationSid), Target: deref(f.target), URL: deref(f.url),
		DateCreated: derefTime(f.dateCreated), DateUpdated: derefTime(f.dateUpdated),
	}
	wh.Configuration, wh.absent = decodeConfiguration(wh.Target, f.configuration)
	wh.absent.mark(FieldSid, f.sid == nil)
	wh.absent.mark(FieldAccountSid, f.accountSid == nil)
	wh.absent.mark(FieldServiceSid, f.serviceSid == nil)
	wh.absent.mark(FieldConversationSid, f.conversationSid == nil)
	wh.absent.mark(FieldTarget, f.target == nil)
	wh.absent.mark(FieldResourceURL, f.url == nil)
	return wh
}

// checkCreated accepts a create's 2xx answer only with a webhook SID: without
// one the webhook may exist all the same, and the caller must find it by listing.
func checkCreated(wh *Webhook) error {
	if wh == nil || !IsWebhookSid(wh.Sid) {
		got := "no sid"
		if wh != nil && wh.Has(FieldSid) {
			got = "a sid that is not WH + 32 hex digits"
		}
		return &APIError{
			Operation: OpCreate,
			Message:   "Twilio answered the create with " + got + ": the webhook may exist; list the conversation's webhooks to find it",
			Err:       errIncompleteCreate,
		}
	}
	return nil
}

// checkAnswered accepts a fetch's or update's answer for the webhook sid: an
// answer with none of sid, target and configuration is not a webhook; an
// absent or null sid is taken to be the requested one (Has(FieldSid) stays
// false), a malformed or different one makes the answer unusable. Hexadecimal
// digits in another case name the same webhook; Sid is canonical either way.
func checkAnswered(op, sid string, wh *Webhook) error {
	switch {
	case wh == nil || !wh.carriesAny(FieldSid, FieldTarget, FieldURL, FieldMethod, FieldFilters, FieldTriggers, FieldFlowSid):
		// {}, null, or every field null: nothing says there is a webhook, let
		// alone one that matches the spec.
		return &APIError{Operation: op, Message: "empty answer: no sid, target or configuration", Err: errMalformedAnswer}
	case !wh.Has(FieldSid):
		wh.Sid = CanonicalSid(sid)
		return nil
	case !IsWebhookSid(wh.Sid) || !strings.EqualFold(wh.Sid, sid):
		return &APIError{Operation: op, Message: "the answer is not webhook " + sid + ": its sid is missing, malformed or another webhook's", Err: errMalformedAnswer}
	}
	return nil
}

// checkListed refuses a listed webhook without a webhook SID, or of another
// conversation or account than the list asked for (see checkScope): skipping
// it could hide the webhook a pending create made, and the caller would create
// another; taking it would record a webhook of another conversation.
func checkListed(scope Scope, account string, wh *Webhook) error {
	if wh == nil || !IsWebhookSid(wh.Sid) {
		return &APIError{Operation: OpList, Message: "a listed webhook has no sid, or one that is not WH + 32 hex digits", Err: errMalformedAnswer}
	}
	return checkScope(OpList, scope, account, wh)
}

// checkScope refuses a webhook answered for a request in scope, made for
// account, that names another conversation, service (for a service-scoped
// request: a conversation of the default service may name its service) or
// account: status records what Twilio answered, and the next fetch or the
// deletion would go where the answer pointed (Twilio's 404 there read as a
// webhook gone: a duplicate created, or a deletion counted as done). Absent
// or null fields, and SIDs equal but for the case of their hexadecimal digits,
// are written as the request's: an absent account_sid (Twilio's spec allows
// null) is the account the request acted for, as status must record the
// account a webhook belongs to (what AccountChanged guards). The answered value
// quoted in the error is cut and escaped with all server text (Client.scrub).
func checkScope(op string, scope Scope, account string, wh *Webhook) error {
	same := func(field, answered, asked string) (string, error) {
		if !wh.Has(field) || answered == "" || strings.EqualFold(answered, asked) {
			return asked, nil
		}
		return "", &APIError{Operation: op, Err: errMalformedAnswer, Message: fmt.Sprintf(
			"the answer is not for this request: its %s is %q, the request was for %s", field, answered, asked)}
	}
	var err error
	if wh.ConversationSid, err = same(FieldConversationSid, wh.ConversationSid, scope.ConversationSid); err != nil {
		return err
	}
	if scope.ServiceSid != "" {
		if wh.ServiceSid, err = same(FieldServiceSid, wh.ServiceSid, scope.ServiceSid); err != nil {
			return err
		}
	}
	if account != "" {
		wh.AccountSid, err = same(FieldAccountSid, wh.AccountSid, account)
	}
	return err
}

func stringList(v interface{}) ([]string, bool) {
	list, ok := v.([]interface{})
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(list))
	for _, item := range list {
		if s, ok := item.(string); ok {
			out = append(out, s)
		}
	}
	return out, true
}

func intValue(v interface{}) *int32 {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case string:
		parsed, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return nil
		}
		f = parsed
	default:
		return nil
	}
	if f < 0 || f > math.MaxInt32 || f != math.Trunc(f) {
		return nil
	}
	i := int32(f)
	return &i
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func derefTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// DecodeConfiguration reads the free-form configuration object of a Twilio webhook
// answer without knowing the webhook's target: keywords are read from triggers
// only. Prefer DecodeWebhookConfiguration, which also reads Twilio's other shape.
func DecodeConfiguration(raw *interface{}) Configuration {
	cfg, _ := decodeConfiguration("", raw)
	return cfg
}

// DecodeWebhookConfiguration reads the free-form configuration object of a Twilio
// webhook answer whose target is target. Twilio names fields in snake_case
// (flow_sid, replay_after); camelCase is accepted too. Values of the wrong type
// count as absent, unknown fields are ignored.
//
// Trigger keywords come in two shapes. The keywords are read from triggers when
// that key holds a list (even an empty one). When triggers is absent or null and
// the target is trigger (case-insensitively), they are read from filters, the
// shape of every example in Twilio's OpenAPI document: the entries of filters that
// are one of the ten event names (onMessageAdded … onDeliveryUpdated) stay
// Filters, every other entry is a keyword and goes to Triggers. A keyword spelled
// exactly like an event name therefore reads as a filter. For any other target
// filters and triggers are read as they are.
func DecodeWebhookConfiguration(target string, raw *interface{}) Configuration {
	cfg, _ := decodeConfiguration(target, raw)
	return cfg
}

func decodeConfiguration(target string, raw *interface{}) (Configuration, fieldSet) {
	var cfg Configuration
	var absent fieldSet
	m := map[string]interface{}{}
	if raw != nil {
		if obj, ok := (*raw).(map[string]interface{}); ok {
			m = obj
		}
	}
	pick := func(keys ...string) interface{} {
		for _, k := range keys {
			if v, ok := m[k]; ok && v != nil {
				return v
			}
		}
		return nil
	}
	var ok bool
	cfg.URL, ok = pick("url").(string)
	absent.mark(FieldURL, !ok)
	cfg.Method, ok = pick("method").(string)
	absent.mark(FieldMethod, !ok)
	cfg.FlowSid, ok = pick("flow_sid", "flowSid", "flow_id").(string)
	absent.mark(FieldFlowSid, !ok)
	cfg.ReplayAfter = intValue(pick("replay_after", "replayAfter"))
	absent.mark(FieldReplayAfter, cfg.ReplayAfter == nil)
	filters, hasFilters := stringList(pick("filters"))
	triggers, hasTriggers := stringList(pick("triggers"))
	if !hasTriggers && hasFilters && strings.EqualFold(target, "trigger") {
		filters, triggers, hasTriggers = splitKeywords(filters)
	}
	cfg.Filters, cfg.Triggers = filters, triggers
	absent.mark(FieldFilters, !hasFilters)
	absent.mark(FieldTriggers, !hasTriggers)
	return cfg, absent
}

// splitKeywords separates event names (filters) from keywords (triggers). Both
// results are non-nil: the answer carried both, possibly empty.
func splitKeywords(list []string) (filters, keywords []string, ok bool) {
	filters, keywords = []string{}, []string{}
	for _, s := range list {
		if eventNames[s] {
			filters = append(filters, s)
		} else {
			keywords = append(keywords, s)
		}
	}
	return filters, keywords, true
}
