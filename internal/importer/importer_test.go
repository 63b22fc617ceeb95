package importer

import (
	"context"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

const (
	fakeAccount   = "AC0123456789abcdef0123456789abcdef"
	fakeToken     = "fakeAuthTokenDoNotPrint"
	fakeKeySid    = "SK0123456789abcdef0123456789abcdef"
	fakeKeySecret = "fakeKeySecretDoNotPrint"
)

// fakeTwilio is the HTTP fake behind httptest, with one conversation in the
// account's default service and one in a named service.
type fakeTwilio struct {
	*twiliofake.Server
	url            string
	defaultService string
	conv           string // in the default service
	service        string // a named service
	serviceConv    string // in service
}

func newFakeTwilio(t *testing.T) *fakeTwilio {
	t.Helper()
	f := &fakeTwilio{Server: twiliofake.New(), conv: twiliofake.NewSid("CH"), service: twiliofake.NewSid("IS"), serviceConv: twiliofake.NewSid("CH")}
	f.defaultService = f.AddAccount(fakeAccount, fakeToken)
	f.AddAPIKey(fakeAccount, fakeKeySid, fakeKeySecret)
	f.AddConversation(fakeAccount, f.conv)
	f.AddServiceConversation(fakeAccount, f.service, f.serviceConv)
	srv := httptest.NewServer(f.Server)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

// api is our Twilio client for the fake's account, with an API key.
func (f *fakeTwilio) api(t *testing.T) twilio.WebhookAPI {
	t.Helper()
	return clientFor(t, twilio.Options{BaseURL: f.url, MaxAttempts: 1})
}

// clientFor is our Twilio client with the fake account's API key.
func clientFor(t *testing.T, opts twilio.Options) twilio.WebhookAPI {
	t.Helper()
	factory, err := twilio.NewFactory(opts)
	if err != nil {
		t.Fatal(err)
	}
	api, err := factory.For(twilio.Credentials{AccountSid: fakeAccount, APIKeySid: fakeKeySid, APIKeySecret: fakeKeySecret})
	if err != nil {
		t.Fatal(err)
	}
	return api
}

// decode renders obj as cwh-import writes it and reads it back as a user's
// kubectl would, checking on the way that the CRD admits it.
func decode(t *testing.T, obj *v1alpha1.ConversationWebhook) *v1alpha1.ConversationWebhook {
	t.Helper()
	data, err := YAML(obj)
	if err != nil {
		t.Fatal(err)
	}
	if errs := loadCRD(t).admit(t, data); len(errs) > 0 {
		t.Fatalf("the CRD rejects the manifest: %v\n%s", errs.ToAggregate(), data)
	}
	for _, forbidden := range []string{fakeAccount, fakeToken, fakeKeySid, fakeKeySecret, "status", "creationTimestamp"} {
		if strings.Contains(string(data), forbidden) {
			t.Errorf("manifest contains %q:\n%s", forbidden, data)
		}
	}
	out := &v1alpha1.ConversationWebhook{}
	if err := yaml.UnmarshalStrict(data, out); err != nil {
		t.Fatalf("manifest does not decode into v1alpha1: %v\n%s", err, data)
	}
	return out
}

func TestManifestsRoundTrip(t *testing.T) {
	f := newFakeTwilio(t)
	api := f.api(t)
	cases := []struct {
		name    string
		service bool
		in      twiliofake.Webhook
		want    v1alpha1.ConversationWebhookSpec // conversationSid, serviceSid and policies are filled in
	}{
		{
			name: "webhook",
			in: twiliofake.Webhook{Target: "webhook", URL: "https://hooks.example.com/w", Method: "get",
				Filters: []string{"onMessageAdded", "onParticipantRemoved"}},
			want: v1alpha1.ConversationWebhookSpec{Target: v1alpha1.TargetWebhook, URL: "https://hooks.example.com/w", Method: v1alpha1.MethodGET,
				Filters: []v1alpha1.Filter{"onMessageAdded", "onParticipantRemoved"}},
		},
		{
			name: "webhook with replayAfter and no method",
			in: twiliofake.Webhook{Target: "webhook", URL: "http://hooks.example.com:8080/w?q=1", ReplayAfter: ptr.To(0),
				Filters: []string{"onConversationUpdated"}},
			want: v1alpha1.ConversationWebhookSpec{Target: v1alpha1.TargetWebhook, URL: "http://hooks.example.com:8080/w?q=1", Method: v1alpha1.MethodPOST,
				Filters: []v1alpha1.Filter{"onConversationUpdated"}, ReplayAfter: ptr.To[int32](0)},
		},
		{
			name: "trigger",
			in:   twiliofake.Webhook{Target: "trigger", URL: "https://hooks.example.com/t", Method: "post", Triggers: []string{"help", "stop"}},
			want: v1alpha1.ConversationWebhookSpec{Target: v1alpha1.TargetTrigger, URL: "https://hooks.example.com/t", Method: v1alpha1.MethodPOST,
				Triggers: []string{"help", "stop"}},
		},
		{
			name: "trigger answered with its keywords under filters",
			in:   twiliofake.Webhook{Target: "trigger", URL: "https://hooks.example.com/t", Method: "POST", Filters: []string{"agent", "human"}},
			want: v1alpha1.ConversationWebhookSpec{Target: v1alpha1.TargetTrigger, URL: "https://hooks.example.com/t", Method: v1alpha1.MethodPOST,
				Triggers: []string{"agent", "human"}},
		},
		{
			name: "studio",
			in:   twiliofake.Webhook{Target: "studio", FlowSid: testFlow},
			want: v1alpha1.ConversationWebhookSpec{Target: v1alpha1.TargetStudio, FlowSid: testFlow},
		},
		{
			name: "studio with a method Twilio keeps",
			in:   twiliofake.Webhook{Target: "studio", FlowSid: testFlow, Method: "get", Filters: []string{"onMessageAdded"}},
			want: v1alpha1.ConversationWebhookSpec{Target: v1alpha1.TargetStudio, FlowSid: testFlow, Filters: []v1alpha1.Filter{"onMessageAdded"}},
		},
		{
			name: "service-scoped webhook", service: true,
			in: twiliofake.Webhook{Target: "webhook", URL: "https://hooks.example.com/s", Method: "post",
				Filters: []string{"onMessageAdded", "onMessageAdded", "onDeliveryUpdated"}},
			want: v1alpha1.ConversationWebhookSpec{Target: v1alpha1.TargetWebhook, URL: "https://hooks.example.com/s", Method: v1alpha1.MethodPOST,
				Filters: []v1alpha1.Filter{"onMessageAdded", "onDeliveryUpdated"}},
		},
		{
			name: "service-scoped trigger", service: true,
			in: twiliofake.Webhook{Target: "trigger", URL: "https://hooks.example.com/st", Triggers: []string{"urgent"}},
			want: v1alpha1.ConversationWebhookSpec{Target: v1alpha1.TargetTrigger, URL: "https://hooks.example.com/st", Method: v1alpha1.MethodPOST,
				Triggers: []string{"urgent"}},
		},
		{
			name: "service-scoped studio", service: true,
			in:   twiliofake.Webhook{Target: "studio", FlowSid: testFlow},
			want: v1alpha1.ConversationWebhookSpec{Target: v1alpha1.TargetStudio, FlowSid: testFlow},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			scope := twilio.Scope{ConversationSid: f.conv}
			if tc.service {
				scope = twilio.Scope{ServiceSid: f.service, ConversationSid: f.serviceConv}
			}
			for _, w := range f.ConversationWebhooks(scope.ConversationSid) {
				f.DeleteWebhook(w.Sid)
			}
			tc.in.ConversationSid = scope.ConversationSid
			sid := f.CreateWebhook(tc.in)
			f.ResetLog()

			objs, refusals, err := Manifests(context.Background(), api, []twilio.Scope{scope}, Options{Namespace: "support"})
			if err != nil || len(refusals) > 0 || len(objs) != 1 {
				t.Fatalf("Manifests = %d objects, refusals %v, error %v", len(objs), refusals, err)
			}
			if c := f.Counts(); c[twiliofake.OpList] != 1 || len(c) != 1 {
				t.Errorf("requests = %v, want one list", c)
			}
			got := decode(t, objs[0])
			want := tc.want
			want.ConversationSid, want.ServiceSid = scope.ConversationSid, scope.ServiceSid
			want.ManagementPolicy, want.DeletionPolicy = v1alpha1.ManagementPolicyObserve, v1alpha1.DeletionPolicyOrphan
			if !equalSpec(got.Spec, want) {
				t.Errorf("spec =\n%+v\nwant\n%+v", got.Spec, want)
			}
			if got.APIVersion != "conversations.twilio-operator.io/v1alpha1" || got.Kind != "ConversationWebhook" {
				t.Errorf("apiVersion/kind = %s/%s", got.APIVersion, got.Kind)
			}
			if got.Name != "wh-"+strings.ToLower(sid) || got.Namespace != "support" {
				t.Errorf("name = %s/%s", got.Namespace, got.Name)
			}
			if got.Annotations[v1alpha1.AnnotationWebhookSid] != sid || len(got.Annotations) != 1 {
				t.Errorf("annotations = %v, want only webhook-sid %s", got.Annotations, sid)
			}
		})
	}
}

func equalSpec(a, b v1alpha1.ConversationWebhookSpec) bool {
	ja, _ := yaml.Marshal(a)
	jb, _ := yaml.Marshal(b)
	return string(ja) == string(jb)
}

func TestManifestsManage(t *testing.T) {
	f := newFakeTwilio(t)
	f.CreateWebhook(twiliofake.Webhook{ConversationSid: f.conv, Target: "studio", FlowSid: testFlow})
	objs, _, err := Manifests(context.Background(), f.api(t), []twilio.Scope{{ConversationSid: f.conv}},
		Options{Manage: true, NamePrefix: "team-a-"})
	if err != nil || len(objs) != 1 {
		t.Fatalf("Manifests = %d objects, error %v", len(objs), err)
	}
	got := decode(t, objs[0])
	if got.Spec.ManagementPolicy != v1alpha1.ManagementPolicyFull || got.Spec.DeletionPolicy != v1alpha1.DeletionPolicyDelete {
		t.Errorf("policies = %s/%s, want Full/Delete", got.Spec.ManagementPolicy, got.Spec.DeletionPolicy)
	}
	if !strings.HasPrefix(got.Name, "team-a-wh") || got.Namespace != "" {
		t.Errorf("name = %q/%q", got.Namespace, got.Name)
	}
}

// TestManifestsRefusals stores webhooks Twilio's own rules or newer Twilio
// features allow and the CRD cannot express; each is refused with its field,
// and the webhook beside them is still imported.
func TestManifestsRefusals(t *testing.T) {
	f := newFakeTwilio(t)
	api := f.api(t)
	url := "https://hooks.example.com/r"
	cases := []struct {
		name  string
		in    twiliofake.Webhook
		field string
	}{
		{"unknown filter", twiliofake.Webhook{Target: "webhook", URL: url, Filters: []string{"onMessageAdded", "onMessageRead"}}, "spec.filters[1]"},
		{"six triggers", twiliofake.Webhook{Target: "trigger", URL: url, Triggers: []string{"a", "b", "c", "d", "e", "f"}}, "spec.triggers"},
		{"trigger over 248 characters", twiliofake.Webhook{Target: "trigger", URL: url, Triggers: []string{strings.Repeat("x", 249)}}, "spec.triggers[0]"},
		{"url over 512 characters", twiliofake.Webhook{Target: "webhook", URL: url + strings.Repeat("x", 500), Filters: []string{"onMessageAdded"}}, "spec.url"},
		{"url not http", twiliofake.Webhook{Target: "webhook", URL: "wss://hooks.example.com/r", Filters: []string{"onMessageAdded"}}, "spec.url"},
		{"studio without flow", twiliofake.Webhook{Target: "studio"}, "spec.flowSid"},
		{"unknown target", twiliofake.Webhook{Target: "email", URL: url}, "spec.target"},
		{"webhook without filters", twiliofake.Webhook{Target: "webhook", URL: url}, "spec.filters"},
		{"trigger without keywords", twiliofake.Webhook{Target: "trigger", URL: url}, "spec.triggers"},
		{"method unknown", twiliofake.Webhook{Target: "webhook", URL: url, Method: "put", Filters: []string{"onMessageAdded"}}, "spec.method"},
		{"studio with url", twiliofake.Webhook{Target: "studio", FlowSid: testFlow, URL: url}, "spec.url"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, w := range f.ConversationWebhooks(f.conv) {
				f.DeleteWebhook(w.Sid)
			}
			tc.in.ConversationSid = f.conv
			bad := f.CreateWebhook(tc.in)
			good := f.CreateWebhook(twiliofake.Webhook{ConversationSid: f.conv, Target: "studio", FlowSid: testFlow})
			objs, refusals, err := Manifests(context.Background(), api, []twilio.Scope{{ConversationSid: f.conv}}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) != 1 || objs[0].Annotations[v1alpha1.AnnotationWebhookSid] != good {
				t.Errorf("objects = %d, want the good webhook %s alone", len(objs), good)
			}
			if len(refusals) != 1 || refusals[0].WebhookSid != bad || refusals[0].Scope.ConversationSid != f.conv {
				t.Fatalf("refusals = %+v, want one for %s", refusals, bad)
			}
			var fields []string
			for _, p := range refusals[0].Problems {
				fields = append(fields, p.Field)
			}
			if !slices.Contains(fields, tc.field) {
				t.Errorf("refusal names %v, want %s", fields, tc.field)
			}
			msg := refusals[0].String()
			if !strings.Contains(msg, bad) || !strings.Contains(msg, tc.field) || strings.Contains(msg, url) {
				t.Errorf("refusal message must name the webhook and field, never the url: %s", msg)
			}
		})
	}
}

func TestManifestsListFailures(t *testing.T) {
	f := newFakeTwilio(t)
	missing := twiliofake.NewSid("CH")
	sid := f.CreateWebhook(twiliofake.Webhook{ConversationSid: f.conv, Target: "studio", FlowSid: testFlow})
	scopes := []twilio.Scope{{ConversationSid: missing}, {ConversationSid: f.conv}, {ServiceSid: f.defaultService, ConversationSid: f.conv}}
	objs, _, err := Manifests(context.Background(), f.api(t), scopes, Options{})
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("error = %v, want one naming %s", err, missing)
	}
	if len(objs) != 1 || objs[0].Annotations[v1alpha1.AnnotationWebhookSid] != sid {
		t.Errorf("objects = %d, want %s once (listed under two scopes)", len(objs), sid)
	}

	// Rejected credentials fail every conversation: stop after the first.
	factory, _ := twilio.NewFactory(twilio.Options{BaseURL: f.url, MaxAttempts: 1})
	wrong, _ := factory.For(twilio.Credentials{AccountSid: fakeAccount, AuthToken: "wrong"})
	f.ResetLog()
	_, _, err = Manifests(context.Background(), wrong, scopes[1:], Options{})
	if !twilio.IsUnauthorized(err) || f.Counts()[twiliofake.OpList] != 1 {
		t.Errorf("error = %v after %v requests, want one 401", err, f.Counts())
	}
	if strings.Contains(err.Error(), "wrong") || strings.Contains(err.Error(), fakeAccount) {
		t.Errorf("error shows a credential: %v", err)
	}
}

func TestManifestsChecksScopesFirst(t *testing.T) {
	f := newFakeTwilio(t)
	_, _, err := Manifests(context.Background(), f.api(t), []twilio.Scope{{ConversationSid: f.conv}, {ConversationSid: "CH../../Services"}}, Options{})
	if err == nil || len(f.Requests()) != 0 {
		t.Errorf("error = %v after %d requests, want an error before any request", err, len(f.Requests()))
	}
	_, _, err = Manifests(context.Background(), f.api(t), []twilio.Scope{{ConversationSid: f.conv + " "}}, Options{})
	if err == nil || len(f.Requests()) != 0 {
		t.Errorf("error = %v after %d requests, want an error before any request", err, len(f.Requests()))
	}
	_, _, err = Manifests(context.Background(), f.api(t), nil, Options{NamePrefix: "Bad_"})
	if err == nil {
		t.Error("a prefix that makes invalid names is accepted")
	}
}

func TestParseScope(t *testing.T) {
	conv, svc := "CH"+strings.Repeat("0aF", 10)+"00", "IS"+strings.Repeat("9", 32)
	cases := []struct {
		in   string
		want twilio.Scope
		ok   bool
	}{
		{conv, twilio.Scope{ConversationSid: conv}, true},
		{"  " + conv + "\t", twilio.Scope{ConversationSid: conv}, true},
		{svc + "/" + conv, twilio.Scope{ServiceSid: svc, ConversationSid: conv}, true},
		{"", twilio.Scope{}, false},
		{"CH123", twilio.Scope{}, false},
		{conv + "0", twilio.Scope{}, false},
		{"ch" + conv[2:], twilio.Scope{}, false},
		{"CH" + strings.Repeat("g", 32), twilio.Scope{}, false},
		{svc + "/" + conv + "/Webhooks", twilio.Scope{}, false},
		{"/" + conv, twilio.Scope{}, false},
		{conv + "/" + svc, twilio.Scope{}, false},
		{"IS123/" + conv, twilio.Scope{}, false},
		{conv + "?PageSize=50", twilio.Scope{}, false},
	}
	for _, tc := range cases {
		got, err := ParseScope(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseScope(%q) = %+v, %v; want %+v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// listAPI answers ListWebhooks from a map and fails every other call: the
// importer never writes.
type listAPI map[twilio.Scope][]twilio.Webhook

func (l listAPI) AccountSid() string { return fakeAccount }
func (l listAPI) CreateWebhook(context.Context, twilio.Scope, twilio.CreateWebhookInput) (*twilio.Webhook, error) {
	panic("write")
}
func (l listAPI) FetchWebhook(context.Context, twilio.Scope, string) (*twilio.Webhook, error) {
	panic("fetch")
}
func (l listAPI) UpdateWebhook(context.Context, twilio.Scope, string, twilio.Configuration) (*twilio.Webhook, error) {
	panic("write")
}
func (l listAPI) DeleteWebhook(context.Context, twilio.Scope, string) error { panic("write") }
func (l listAPI) ListWebhooks(_ context.Context, sc twilio.Scope) ([]twilio.Webhook, error) {
	return l[sc], nil
}

func TestManifestsNameCollision(t *testing.T) {
	scope := twilio.Scope{ConversationSid: testConv}
	studio := func(sid string) twilio.Webhook {
		return twilio.Webhook{Sid: sid, ConversationSid: testConv, Target: "studio", Configuration: twilio.Configuration{FlowSid: testFlow}}
	}
	lower, upper := "WH"+strings.Repeat("ab", 16), "WH"+strings.Repeat("AB", 16)
	objs, refusals, err := Manifests(context.Background(), listAPI{scope: {studio(lower), studio(upper)}}, []twilio.Scope{scope}, Options{})
	if err != nil || len(objs) != 1 || len(refusals) != 1 || refusals[0].WebhookSid != upper || refusals[0].Problems[0].Field != "metadata.name" {
		t.Errorf("objects %d, refusals %+v, error %v", len(objs), refusals, err)
	}
}

// TestManifestKeywordShapes takes a trigger's keywords and event filters where
// the client put them (see twilio's decodeConfiguration), as the operator does.
func TestManifestKeywordShapes(t *testing.T) {
	scope := twilio.Scope{ConversationSid: testConv}
	sid := "WH" + strings.Repeat("1", 32)
	trigger := func(cfg twilio.Configuration) twilio.Webhook {
		cfg.URL = "https://hooks.example.com/t"
		return twilio.Webhook{Sid: sid, Target: "trigger", Configuration: cfg}
	}
	cases := []struct {
		name              string
		in                twilio.Configuration
		filters, triggers string
		refused           bool
	}{
		{"keywords under triggers", twilio.Configuration{Triggers: []string{"help"}}, "", "help", false},
		// The client moves keywords answered under filters when triggers is
		// absent; with triggers answered (empty) they are filters, as the
		// operator reads them: not event names, so refused.
		{"keywords under filters, triggers answered empty", twilio.Configuration{Filters: []string{"help", "agent"}, Triggers: []string{}},
			"", "", true},
		{"events under filters and keywords under triggers", twilio.Configuration{Filters: []string{"onMessageAdded"}, Triggers: []string{"help"}},
			"onMessageAdded", "help", false},
		{"only events under filters", twilio.Configuration{Filters: []string{"onMessageAdded"}}, "", "", true},
		{"events and words mixed under filters", twilio.Configuration{Filters: []string{"onMessageAdded", "help"}}, "", "", true},
	}
	for _, tc := range cases {
		obj, refusal := Manifest(scope, trigger(tc.in), Options{})
		if tc.refused {
			if refusal == nil {
				t.Errorf("%s: not refused", tc.name)
			}
			continue
		}
		if refusal != nil {
			t.Errorf("%s: refused: %s", tc.name, refusal)
			continue
		}
		var filters []string
		for _, f := range obj.Spec.Filters {
			filters = append(filters, string(f))
		}
		if strings.Join(filters, ",") != tc.filters || strings.Join(obj.Spec.Triggers, ",") != tc.triggers {
			t.Errorf("%s: filters %v, triggers %v", tc.name, filters, obj.Spec.Triggers)
		}
	}
}
