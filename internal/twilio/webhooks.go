package twilio

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	neturl "net/url"
	"strconv"
	"strings"
	"time"

	conversations "github.com/twilio/twilio-go/rest/conversations/v1"
)

// PageSize is the largest page Twilio serves for conversation-scoped webhooks.
const PageSize = 5

// WebhookAPI is what the controller needs from Twilio: the conversation-scoped
// webhook operations. Every method is a single logical operation (retried inside
// when safe) and returns an *APIError on failure.
type WebhookAPI interface {
	// AccountSid is the account the client acts for.
	AccountSid() string
	// CreateWebhook creates a webhook and returns it as Twilio stored it.
	CreateWebhook(ctx context.Context, scope Scope, in CreateWebhookInput) (*Webhook, error)
	// FetchWebhook returns one webhook.
	FetchWebhook(ctx context.Context, scope Scope, sid string) (*Webhook, error)
	// UpdateWebhook changes a webhook's url, method, filters, triggers or flow SID.
	UpdateWebhook(ctx context.Context, scope Scope, sid string, cfg Configuration) (*Webhook, error)
	// DeleteWebhook deletes a webhook.
	DeleteWebhook(ctx context.Context, scope Scope, sid string) error
	// ListWebhooks returns every webhook of the conversation, following pages.
	ListWebhooks(ctx context.Context, scope Scope) ([]Webhook, error)
}

var _ WebhookAPI = (*Client)(nil)

// Scope is the conversation a webhook belongs to, optionally in a named service.
type Scope struct {
	// ServiceSid (IS…) selects /v1/Services/{ServiceSid}/Conversations/…; empty selects /v1/Conversations/….
	ServiceSid string
	// ConversationSid (CH…) of the conversation.
	ConversationSid string
}

// String is the scope's path-like name, "[IS…/]CH…".
func (s Scope) String() string {
	if s.ServiceSid != "" {
		return s.ServiceSid + "/" + s.ConversationSid
	}
	return s.ConversationSid
}

// Configuration is a webhook's configuration. Empty fields are not sent.
type Configuration struct {
	URL      string
	Method   string
	Filters  []string
	Triggers []string
	FlowSid  string
	// ReplayAfter is sent on create only; nil is not sent, 0 is.
	ReplayAfter *int32
}

// CreateWebhookInput is a webhook to create.
type CreateWebhookInput struct {
	// Target is webhook, trigger or studio.
	Target        string
	Configuration Configuration
}

// Webhook is a webhook as Twilio returned it. Twilio's spec marks most fields
// nullable: Has tells a field that was absent or null (zero value here, Has
// false) from one that was empty (zero value, Has true).
type Webhook struct {
	Sid             string
	AccountSid      string
	ServiceSid      string
	ConversationSid string
	Target          string
	// URL is the API address of the webhook resource.
	URL           string
	Configuration Configuration
	DateCreated   time.Time
	DateUpdated   time.Time
	// absent are the fields the answer did not carry (see Has).
	absent fieldSet
}

// CreateWebhook creates a webhook. A failed create is never retried except on 429:
// after a 5xx or a network error Twilio may have created it all the same. A 2xx
// answer without a usable sid (absent, null, not WH + 32 hex digits, or not
// JSON) is an error for which IsIncompleteCreate is true.
func (c *Client) CreateWebhook(ctx context.Context, scope Scope, in CreateWebhookInput) (*Webhook, error) {
	var out *Webhook
	cfg := in.Configuration
	err := c.do(ctx, OpCreate, func(api *conversations.ApiService) error {
		if scope.ServiceSid != "" {
			p := &conversations.CreateServiceConversationScopedWebhookParams{Target: &in.Target}
			p.ConfigurationUrl, p.ConfigurationMethod, p.ConfigurationFlowSid = optString(cfg.URL), optString(lowerMethod(cfg.Method)), optString(cfg.FlowSid)
			p.ConfigurationFilters, p.ConfigurationTriggers, p.ConfigurationReplayAfter = optSlice(cfg.Filters), optSlice(cfg.Triggers), optInt(cfg.ReplayAfter)
			r, err := api.CreateServiceConversationScopedWebhook(scope.ServiceSid, scope.ConversationSid, p)
			if err != nil {
				return err
			}
			out = fromServiceModel(r)
			return c.checkCreatedIn(scope, out)
		}
		p := &conversations.CreateConversationScopedWebhookParams{Target: &in.Target}
		p.ConfigurationUrl, p.ConfigurationMethod, p.ConfigurationFlowSid = optString(cfg.URL), optString(lowerMethod(cfg.Method)), optString(cfg.FlowSid)
		p.ConfigurationFilters, p.ConfigurationTriggers, p.ConfigurationReplayAfter = optSlice(cfg.Filters), optSlice(cfg.Triggers), optInt(cfg.ReplayAfter)
		r, err := api.CreateConversationScopedWebhook(scope.ConversationSid, p)
		if err != nil {
			return err
		}
		out = fromModel(r)
		return c.checkCreatedIn(scope, out)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// FetchWebhook returns one webhook. An answer whose sid is absent or null is taken
// to be the requested webhook (Has(FieldSid) is false); one whose sid is malformed
// or another webhook's is a retryable error.
func (c *Client) FetchWebhook(ctx context.Context, scope Scope, sid string) (*Webhook, error) {
	var out *Webhook
	err := c.do(ctx, OpFetch, func(api *conversations.ApiService) error {
		if scope.ServiceSid != "" {
			r, err := api.FetchServiceConversationScopedWebhook(scope.ServiceSid, scope.ConversationSid, sid)
			if err != nil {
				return err
			}
			out = fromServiceModel(r)
			return c.checkAnsweredIn(OpFetch, scope, sid, out)
		}
		r, err := api.FetchConversationScopedWebhook(scope.ConversationSid, sid)
		if err != nil {
			return err
		}
		out = fromModel(r)
		return c.checkAnsweredIn(OpFetch, scope, sid, out)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateWebhook changes a webhook in place. ReplayAfter is not sent: Twilio
// takes it on create only.
func (c *Client) UpdateWebhook(ctx context.Context, scope Scope, sid string, cfg Configuration) (*Webhook, error) {
	var out *Webhook
	err := c.do(ctx, OpUpdate, func(api *conversations.ApiService) error {
		if scope.ServiceSid != "" {
			p := &conversations.UpdateServiceConversationScopedWebhookParams{}
			p.ConfigurationUrl, p.ConfigurationMethod, p.ConfigurationFlowSid = optString(cfg.URL), optString(lowerMethod(cfg.Method)), optString(cfg.FlowSid)
			p.ConfigurationFilters, p.ConfigurationTriggers = optSlice(cfg.Filters), optSlice(cfg.Triggers)
			r, err := api.UpdateServiceConversationScopedWebhook(scope.ServiceSid, scope.ConversationSid, sid, p)
			if err != nil {
				return err
			}
			out = fromServiceModel(r)
			return c.checkAnsweredIn(OpUpdate, scope, sid, out)
		}
		p := &conversations.UpdateConversationScopedWebhookParams{}
		p.ConfigurationUrl, p.ConfigurationMethod, p.ConfigurationFlowSid = optString(cfg.URL), optString(lowerMethod(cfg.Method)), optString(cfg.FlowSid)
		p.ConfigurationFilters, p.ConfigurationTriggers = optSlice(cfg.Filters), optSlice(cfg.Triggers)
		r, err := api.UpdateConversationScopedWebhook(scope.ConversationSid, sid, p)
		if err != nil {
			return err
		}
		out = fromModel(r)
		return c.checkAnsweredIn(OpUpdate, scope, sid, out)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// checkCreatedIn accepts a create's answer only with a usable webhook SID and
// for the request's conversation and account: any other is an incomplete create
// (the webhook may exist; the caller lists the conversation to find it).
func (c *Client) checkCreatedIn(scope Scope, wh *Webhook) error {
	if err := checkCreated(wh); err != nil {
		return err
	}
	if err := checkScope(OpCreate, scope, c.creds.AccountSid, wh); err != nil {
		return &APIError{Operation: OpCreate, Err: errIncompleteCreate,
			Message: AsAPIError(err).Message + ": the webhook may exist; list the conversation's webhooks to find it"}
	}
	return nil
}

// checkAnsweredIn accepts a fetch's or update's answer only for webhook sid,
// in the request's conversation and account.
func (c *Client) checkAnsweredIn(op string, scope Scope, sid string, wh *Webhook) error {
	if err := checkAnswered(op, sid, wh); err != nil {
		return err
	}
	return checkScope(op, scope, c.creds.AccountSid, wh)
}

// DeleteWebhook deletes a webhook. A 404 is returned as an error: callers that
// count it as done check IsNotFound.
func (c *Client) DeleteWebhook(ctx context.Context, scope Scope, sid string) error {
	return c.do(ctx, OpDelete, func(api *conversations.ApiService) error {
		if scope.ServiceSid != "" {
			return api.DeleteServiceConversationScopedWebhook(scope.ServiceSid, scope.ConversationSid, sid)
		}
		return api.DeleteConversationScopedWebhook(scope.ConversationSid, sid)
	})
}

// ListWebhooks returns all webhooks of the conversation. It asks for pages of
// PageSize and follows meta.next_page_url; each page is one rate-limited request.
// A listed webhook without a WH… sid fails the whole list with a retryable error
// rather than being skipped: a skipped webhook could be the one a pending create
// made, and the caller would create another.
func (c *Client) ListWebhooks(ctx context.Context, scope Scope) ([]Webhook, error) {
	var all []Webhook
	next := ""
	for page := 0; ; page++ {
		var nextURL string
		err := c.do(ctx, OpList, func(api *conversations.ApiService) error {
			var err error
			var items []Webhook
			items, nextURL, err = listPage(api, scope, c.creds.AccountSid, next)
			if err == nil {
				all = append(all, items...)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		if nextURL == "" {
			return all, nil
		}
		if page > 100 {
			return nil, &APIError{Operation: OpList, Status: 502, Message: "more than 100 pages of webhooks: paging does not end"}
		}
		if err := scope.checkNextPage(nextURL); err != nil {
			return nil, err
		}
		next = nextURL
	}
}

// webhooksPath is the path of the scope's webhooks list.
func (s Scope) webhooksPath() string {
	if s.ServiceSid != "" {
		return "/v1/Services/" + s.ServiceSid + "/Conversations/" + s.ConversationSid + "/Webhooks"
	}
	return "/v1/Conversations/" + s.ConversationSid + "/Webhooks"
}

// checkNextPage refuses a next_page_url that leaves the scope's webhooks list:
// its host is replaced by the API URL's (no credential leaves for another
// host), but its path would be followed, and another conversation's webhooks
// listed as this one's.
func (s Scope) checkNextPage(next string) error {
	u, err := neturl.Parse(next)
	if err == nil && strings.EqualFold(u.Path, s.webhooksPath()) {
		return nil
	}
	return &APIError{Operation: OpList, Err: errMalformedAnswer,
		Message: fmt.Sprintf("the list's next_page_url leaves the webhooks of %s", s)}
}

func listPage(api *conversations.ApiService, scope Scope, account, next string) ([]Webhook, string, error) {
	url, query := next, neturl.Values(nil)
	if url == "" {
		// The first page, as twilio-go's Page* calls ask for it; read here so
		// that an answer without Twilio's shape is refused (see decodePage).
		url = DefaultBaseURL + scope.webhooksPath()
		query = neturl.Values{"PageSize": {strconv.Itoa(PageSize)}}
	}
	resp, err := api.RequestHandler().Get(url, query, map[string]interface{}{"Content-Type": "application/x-www-form-urlencoded"}, "")
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close() //nolint:errcheck // read-only body
	if scope.ServiceSid != "" {
		page, nextURL, err := decodePage[conversations.ConversationsV1ServiceConversationScopedWebhook](resp.Body)
		if err != nil {
			return nil, "", err
		}
		list, err := serviceItems(scope, account, page)
		return list, nextURL, err
	}
	page, nextURL, err := decodePage[conversations.ConversationsV1ConversationScopedWebhook](resp.Body)
	if err != nil {
		return nil, "", err
	}
	list, err := items(scope, account, page)
	return list, nextURL, err
}

// listAnswer is a page of webhooks as Twilio answers it: a webhooks array (empty
// when there are none) and meta.
type listAnswer[T any] struct {
	Webhooks *[]T `json:"webhooks"`
	Meta     *struct {
		NextPageURL *string `json:"next_page_url"`
	} `json:"meta"`
}

// decodePage reads a list page. A 2xx answer without a webhooks array and a
// meta object is not Twilio's (a proxy's {}, say): read as "no webhooks", it
// would make a lost create's webhook look absent, and the operator create
// another. It is refused as an answer that is not Twilio's (retried).
func decodePage[T any](body io.Reader) ([]T, string, error) {
	var page listAnswer[T]
	if err := json.NewDecoder(body).Decode(&page); err != nil {
		return nil, "", err
	}
	if page.Webhooks == nil || page.Meta == nil {
		return nil, "", fmt.Errorf("%w: a list answer without a webhooks array and meta", errNotTwilio)
	}
	return *page.Webhooks, deref(page.Meta.NextPageURL), nil
}

func lowerMethod(m string) string { return strings.ToLower(m) }

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func optSlice(s []string) *[]string {
	if len(s) == 0 {
		return nil
	}
	return &s
}

func optInt(i *int32) *int {
	if i == nil {
		return nil
	}
	v := int(*i)
	return &v
}
