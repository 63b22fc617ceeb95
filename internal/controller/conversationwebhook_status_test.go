package controller

import (
	"errors"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// summary renders conditions as "Type=Status/Reason@gen" for comparison.
func summary(st *v1alpha1.ConversationWebhookStatus) map[string]string {
	out := map[string]string{}
	for _, c := range st.Conditions {
		out[c.Type] = fmt.Sprintf("%s/%s@%d", c.Status, c.Reason, c.ObservedGeneration)
	}
	return out
}

func TestConditionSetters(t *testing.T) {
	now := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	start := func() *v1alpha1.ConversationWebhookStatus {
		st := &v1alpha1.ConversationWebhookStatus{Sid: "WH1"}
		setStalled(st, 1, v1alpha1.ReasonCredentialsInvalid, "bad")
		return st
	}
	cases := []struct {
		name string
		set  func(*v1alpha1.ConversationWebhookStatus)
		want map[string]string
	}{
		{"ready clears stalled and reconciling", func(st *v1alpha1.ConversationWebhookStatus) { setReady(st, 2, now) },
			map[string]string{"Ready": "True/Available@2"}},
		{"progressing replaces stalled", func(st *v1alpha1.ConversationWebhookStatus) {
			setProgressing(st, 2, v1alpha1.ReasonUpdating, "retrying")
		}, map[string]string{"Ready": "False/Updating@2", "Reconciling": "True/Updating@2"}},
		{"stalled replaces reconciling", func(st *v1alpha1.ConversationWebhookStatus) {
			setProgressing(st, 2, v1alpha1.ReasonCreating, "retrying")
			setStalled(st, 3, v1alpha1.ReasonWebhookLimitReached, "five")
		}, map[string]string{"Ready": "False/WebhookLimitReached@3", "Stalled": "True/WebhookLimitReached@3"}},
		{"paused clears the rest", func(st *v1alpha1.ConversationWebhookStatus) { setPaused(st, 4) },
			map[string]string{"Ready": "False/Paused@4"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := start()
			tc.set(st)
			got := summary(st)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("conditions %v, want %v", got, tc.want)
			}
			if want := st.Conditions[0].ObservedGeneration; st.ObservedGeneration != want {
				t.Fatalf("status observedGeneration %d, conditions %d", st.ObservedGeneration, want)
			}
		})
	}
	st := start()
	setReady(st, 2, now)
	if st.LastSyncTime == nil || !st.LastSyncTime.Equal(&now) {
		t.Fatalf("lastSyncTime %v, want %v", st.LastSyncTime, now)
	}
}

func TestRecordWebhookKeepsReplayAfter(t *testing.T) {
	wh := &twilio.Webhook{Sid: "WH1", Target: "studio", Configuration: twilio.Configuration{FlowSid: "FW1"}}
	cases := []struct {
		name   string
		before *v1alpha1.ConversationWebhookStatus
		sent   *int32
		answer *int32
		want   *int32
	}{
		{"Twilio's answer wins", &v1alpha1.ConversationWebhookStatus{}, ptr.To[int32](1), ptr.To[int32](2), ptr.To[int32](2)},
		{"sent on create when Twilio omits it", &v1alpha1.ConversationWebhookStatus{}, ptr.To[int32](0), nil, ptr.To[int32](0)},
		{"kept for the same SID", &v1alpha1.ConversationWebhookStatus{Sid: "WH1", Configuration: &v1alpha1.WebhookConfiguration{ReplayAfter: ptr.To[int32](7)}}, nil, nil, ptr.To[int32](7)},
		{"not kept across SIDs", &v1alpha1.ConversationWebhookStatus{Sid: "WH0", Configuration: &v1alpha1.WebhookConfiguration{ReplayAfter: ptr.To[int32](7)}}, nil, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := *wh
			w.Configuration.ReplayAfter = tc.answer
			recordWebhook(tc.before, &w, tc.sent)
			if got := tc.before.Configuration.ReplayAfter; !ptr.Equal(got, tc.want) {
				t.Fatalf("replayAfter %v, want %v", ptr.Deref(got, -1), ptr.Deref(tc.want, -1))
			}
		})
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		name     string
		err      error
		reason   string
		terminal bool
	}{
		{"stalled error", stalled(v1alpha1.ReasonCredentialsMissing, errors.New("x")), v1alpha1.ReasonCredentialsMissing, true},
		{"wrapped in a phase", inPhase(v1alpha1.ReasonCreating, stalled(v1alpha1.ReasonCreateIncomplete, errors.New("x"))), v1alpha1.ReasonCreateIncomplete, true},
		{"401", &twilio.APIError{Status: 401, Code: 20003}, v1alpha1.ReasonCredentialsInvalid, true},
		{"403 with 20003", &twilio.APIError{Status: 403, Code: 20003}, v1alpha1.ReasonCredentialsInvalid, true},
		{"50350", &twilio.APIError{Status: 404, Code: 50350}, v1alpha1.ReasonConversationNotFound, true},
		{"50361", &twilio.APIError{Status: 400, Code: 50361}, v1alpha1.ReasonWebhookLimitReached, true},
		{"other 4xx", &twilio.APIError{Status: 400, Code: 50365}, v1alpha1.ReasonConfigurationRejected, true},
		{"429", &twilio.APIError{Status: 429, Code: 20429}, "", false},
		{"500", &twilio.APIError{Status: 500, Code: 20500}, "", false},
		{"network", &twilio.APIError{Message: "refused", Err: errors.New("refused")}, "", false},
		{"API server", errors.New("etcd timeout"), "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reason, terminal := classify(tc.err)
			if reason != tc.reason || terminal != tc.terminal {
				t.Fatalf("classify = %q, %v; want %q, %v", reason, terminal, tc.reason, tc.terminal)
			}
		})
	}
}

func TestConfigMatches(t *testing.T) {
	want := twilio.Configuration{URL: "https://e.com", Method: "POST", Filters: []string{"a", "b"}}
	cases := []struct {
		name string
		got  twilio.Configuration
		same bool
	}{
		{"identical", twilio.Configuration{URL: "https://e.com", Method: "POST", Filters: []string{"a", "b"}}, true},
		{"method case", twilio.Configuration{URL: "https://e.com", Method: "post", Filters: []string{"a", "b"}}, true},
		{"method defaulted by Twilio", twilio.Configuration{URL: "https://e.com", Filters: []string{"a", "b"}}, true},
		{"filter order", twilio.Configuration{URL: "https://e.com", Method: "post", Filters: []string{"b", "a"}}, true},
		{"filter repeated", twilio.Configuration{URL: "https://e.com", Method: "post", Filters: []string{"b", "a", "a"}}, true},
		{"url", twilio.Configuration{URL: "https://e.com/x", Method: "post", Filters: []string{"a", "b"}}, false},
		{"method", twilio.Configuration{URL: "https://e.com", Method: "get", Filters: []string{"a", "b"}}, false},
		{"filter missing", twilio.Configuration{URL: "https://e.com", Method: "post", Filters: []string{"a"}}, false},
		{"triggers added", twilio.Configuration{URL: "https://e.com", Method: "post", Filters: []string{"a", "b"}, Triggers: []string{"t"}}, false},
		{"flow added", twilio.Configuration{URL: "https://e.com", Method: "post", Filters: []string{"a", "b"}, FlowSid: "FW1"}, false},
		{"replayAfter is not updatable", twilio.Configuration{URL: "https://e.com", Method: "post", Filters: []string{"a", "b"}, ReplayAfter: ptr.To[int32](3)}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := configMatches(want, tc.got); got != tc.same {
				t.Fatalf("configMatches = %v, want %v", got, tc.same)
			}
		})
	}
	studio := desiredOf(&v1alpha1.ConversationWebhookSpec{Target: v1alpha1.TargetStudio, FlowSid: "FW1", Method: "POST"})
	if studio.cfg.Method != "" || !configMatches(studio.cfg, twilio.Configuration{FlowSid: "FW1", Method: "get"}) {
		t.Fatalf("studio compares a method it never sends: %+v", studio.cfg)
	}
}

func TestReplaceNeeded(t *testing.T) {
	spec := v1alpha1.ConversationWebhookSpec{ConversationSid: "CH1", Target: v1alpha1.TargetWebhook, URL: "https://e.com", ReplayAfter: ptr.To[int32](1)}
	recorded := v1alpha1.ConversationWebhookStatus{Sid: "WH1", ConversationSid: "CH1", Configuration: &v1alpha1.WebhookConfiguration{ReplayAfter: ptr.To[int32](1)}}
	wh := &twilio.Webhook{Sid: "WH1", ConversationSid: "CH1", Target: "webhook"}
	cases := []struct {
		name   string
		tweak  func(*v1alpha1.ConversationWebhook, *twilio.Webhook, *twilio.Scope)
		needed bool
	}{
		{"nothing changed", func(*v1alpha1.ConversationWebhook, *twilio.Webhook, *twilio.Scope) {}, false},
		{"conversation", func(o *v1alpha1.ConversationWebhook, _ *twilio.Webhook, _ *twilio.Scope) {
			o.Spec.ConversationSid = "CH2"
		}, true},
		{"conversation SID case only", func(o *v1alpha1.ConversationWebhook, _ *twilio.Webhook, _ *twilio.Scope) {
			o.Spec.ConversationSid = "ch1"
		}, false},
		{"service", func(o *v1alpha1.ConversationWebhook, _ *twilio.Webhook, _ *twilio.Scope) { o.Spec.ServiceSid = "IS1" }, true},
		{"target", func(_ *v1alpha1.ConversationWebhook, w *twilio.Webhook, _ *twilio.Scope) { w.Target = "trigger" }, true},
		{"replayAfter", func(o *v1alpha1.ConversationWebhook, _ *twilio.Webhook, _ *twilio.Scope) {
			o.Spec.ReplayAfter = ptr.To[int32](2)
		}, true},
		{"replayAfter removed", func(o *v1alpha1.ConversationWebhook, _ *twilio.Webhook, _ *twilio.Scope) { o.Spec.ReplayAfter = nil }, true},
		{"replayAfter unknown for an adopted webhook", func(o *v1alpha1.ConversationWebhook, _ *twilio.Webhook, _ *twilio.Scope) {
			o.Status.Sid = ""
			o.Spec.ReplayAfter = ptr.To[int32](9)
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := &v1alpha1.ConversationWebhook{Spec: *spec.DeepCopy(), Status: *recorded.DeepCopy()}
			w := *wh
			scope := twilio.Scope{ConversationSid: "CH1"}
			tc.tweak(o, &w, &scope)
			if got := replaceNeeded(o, "WH1", scope, desiredOf(&o.Spec), &w); got != tc.needed {
				t.Fatalf("replaceNeeded = %v, want %v", got, tc.needed)
			}
		})
	}
}

func TestRefs(t *testing.T) {
	for _, scope := range []twilio.Scope{{ConversationSid: "CH1"}, {ServiceSid: "IS1", ConversationSid: "CH1"}} {
		gotScope, sid := parseRef(formatRef(scope, "WH1"))
		if gotScope != scope || sid != "WH1" {
			t.Fatalf("round trip of %v gave %v %q", scope, gotScope, sid)
		}
	}
	for _, bad := range []string{"", "WH1", "CH1/XX1", "a/b/c", "IS1/CH1/WH1/x"} {
		if _, sid := parseRef(bad); sid != "" {
			t.Fatalf("parseRef(%q) = %q, want none", bad, sid)
		}
	}
}

func TestPendingSpec(t *testing.T) {
	spec := twilio.Scope{ConversationSid: "CHspec"}
	cfg := twilio.Configuration{URL: "https://e.com", Method: "POST", Filters: []string{"onMessageAdded"}}
	fp := fingerprint("webhook", cfg)
	for _, tc := range []struct {
		name, value string
		scope       twilio.Scope
		fp          string
	}{
		{"default path", formatPendingSpec(desired{scope: twilio.Scope{ConversationSid: "CH1"}, target: "webhook", cfg: cfg}),
			twilio.Scope{ConversationSid: "CH1"}, fp},
		{"service path", formatPendingSpec(desired{scope: twilio.Scope{ServiceSid: "IS1", ConversationSid: "CH1"}, target: "webhook", cfg: cfg}),
			twilio.Scope{ServiceSid: "IS1", ConversationSid: "CH1"}, fp},
		{"fingerprint only (older operator)", fp, spec, fp},
		{"unreadable scope", "XX1:" + fp, spec, fp},
		{"empty", "", spec, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scope, got := parsePendingSpec(tc.value, spec)
			if scope != tc.scope || got != tc.fp {
				t.Fatalf("parsePendingSpec(%q) = %v %q, want %v %q", tc.value, scope, got, tc.scope, tc.fp)
			}
		})
	}
}

func TestUserAnnotationsChanged(t *testing.T) {
	base := map[string]string{"a": "1", v1alpha1.AnnotationWebhookSid: "WH1"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for kk, vv := range base {
			m[kk] = vv
		}
		m[k] = v
		return m
	}
	cases := []struct {
		name    string
		updated map[string]string
		changed bool
	}{
		{"same", with("a", "1"), false},
		{"create-pending written", with(v1alpha1.AnnotationCreatePending, "2026-01-01T00:00:00Z"), false},
		{"replaced-webhook written", with(v1alpha1.AnnotationReplacedWebhook, "CH1/WH0"), false},
		{"paused", with(v1alpha1.AnnotationPaused, "true"), true},
		{"webhook-sid set by a user", with(v1alpha1.AnnotationWebhookSid, "WH2"), true},
		{"user annotation", with("a", "2"), true},
	}
	pending := with(v1alpha1.AnnotationCreatePending, "2026-01-01T00:00:00Z")
	delete(pending, v1alpha1.AnnotationWebhookSid)
	recorded := with(v1alpha1.AnnotationWebhookSid, "WH9")
	if userAnnotationsChanged(pending, recorded) {
		t.Error("the operator's own create completion (webhook-sid set, create-pending removed) triggers a reconcile")
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := userAnnotationsChanged(base, tc.updated); got != tc.changed {
				t.Fatalf("userAnnotationsChanged = %v, want %v", got, tc.changed)
			}
		})
	}
}

func TestPollIntervalAndJitter(t *testing.T) {
	r := &ConversationWebhookReconciler{SyncPeriod: 10 * time.Minute}
	cases := map[string]time.Duration{"": 10 * time.Minute, "1s": MinPollInterval, "5m": 5 * time.Minute, "nonsense": 10 * time.Minute}
	for ann, base := range cases {
		o := &v1alpha1.ConversationWebhook{}
		if ann != "" {
			o.Annotations = map[string]string{v1alpha1.AnnotationPollInterval: ann}
		}
		for range 50 {
			got := r.pollInterval(t.Context(), o)
			if got < base-base/10 || got > base+base/10 {
				t.Fatalf("annotation %q: %v outside %v ±10%%", ann, got, base)
			}
		}
	}
}
