package controller

import (
	"errors"
	"fmt"
	"strings"
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

func TestReplaceReason(t *testing.T) {
	spec := v1alpha1.ConversationWebhookSpec{ConversationSid: "CH1", Target: v1alpha1.TargetWebhook, URL: "https://e.com", ReplayAfter: ptr.To[int32](1)}
	known := recordedReplay{value: ptr.To[int32](1), known: true}
	wh := twilio.Webhook{Sid: "WH1", ConversationSid: "CH1", Target: "webhook"}
	cases := []struct {
		name   string
		tweak  func(*v1alpha1.ConversationWebhookSpec, *twilio.Webhook, *twilio.Scope, *recordedReplay)
		needed bool
	}{
		{"nothing changed", func(*v1alpha1.ConversationWebhookSpec, *twilio.Webhook, *twilio.Scope, *recordedReplay) {}, false},
		{"conversation", func(s *v1alpha1.ConversationWebhookSpec, _ *twilio.Webhook, _ *twilio.Scope, _ *recordedReplay) {
			s.ConversationSid = "CH2"
		}, true},
		{"conversation SID case only", func(s *v1alpha1.ConversationWebhookSpec, _ *twilio.Webhook, _ *twilio.Scope, _ *recordedReplay) {
			s.ConversationSid = "ch1"
		}, false},
		{"service", func(s *v1alpha1.ConversationWebhookSpec, _ *twilio.Webhook, _ *twilio.Scope, _ *recordedReplay) {
			s.ServiceSid = "IS1"
		}, true},
		{"target", func(_ *v1alpha1.ConversationWebhookSpec, w *twilio.Webhook, _ *twilio.Scope, _ *recordedReplay) {
			w.Target = "trigger"
		}, true},
		{"target left out of the answer", func(_ *v1alpha1.ConversationWebhookSpec, w *twilio.Webhook, _ *twilio.Scope, _ *recordedReplay) {
			w.Target = ""
		}, false},
		{"replayAfter", func(s *v1alpha1.ConversationWebhookSpec, _ *twilio.Webhook, _ *twilio.Scope, _ *recordedReplay) {
			s.ReplayAfter = ptr.To[int32](2)
		}, true},
		{"replayAfter removed", func(s *v1alpha1.ConversationWebhookSpec, _ *twilio.Webhook, _ *twilio.Scope, _ *recordedReplay) {
			s.ReplayAfter = nil
		}, true},
		{"replayAfter answered by Twilio wins over the record", func(s *v1alpha1.ConversationWebhookSpec, w *twilio.Webhook, _ *twilio.Scope, _ *recordedReplay) {
			w.Configuration.ReplayAfter = ptr.To[int32](3)
		}, true},
		{"replayAfter unknown for a webhook not yet recorded", func(s *v1alpha1.ConversationWebhookSpec, _ *twilio.Webhook, _ *twilio.Scope, r *recordedReplay) {
			*r = recordedReplay{}
			s.ReplayAfter = ptr.To[int32](9)
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, w, scope, replay := *spec.DeepCopy(), wh, twilio.Scope{ConversationSid: "CH1"}, known
			tc.tweak(&s, &w, &scope, &replay)
			if got := replaceReason(desiredOf(&s), &w, scope, replay); (got != "") != tc.needed {
				t.Fatalf("replaceReason = %q, want a reason: %v", got, tc.needed)
			}
		})
	}
}

func TestUserAnnotationsChanged(t *testing.T) {
	obj := func(sid string, kv ...string) *v1alpha1.ConversationWebhook {
		o := &v1alpha1.ConversationWebhook{}
		o.Status.Sid = sid
		o.Annotations = map[string]string{"a": "1", v1alpha1.AnnotationWebhookSid: "WH1"}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "-" {
				delete(o.Annotations, kv[i])
				continue
			}
			o.Annotations[kv[i]] = kv[i+1]
		}
		return o
	}
	base := obj("WH1")
	cases := []struct {
		name    string
		old     *v1alpha1.ConversationWebhook
		updated *v1alpha1.ConversationWebhook
		changed bool
	}{
		{"same", base, obj("WH1"), false},
		{"create-pending written", base, obj("WH1", v1alpha1.AnnotationCreatePending, "2026-01-01T00:00:00Z"), false},
		{"legacy replaced-webhook removed", obj("WH1", v1alpha1.AnnotationReplacedWebhook, "CH1/WH0"), obj("WH1"), false},
		{"paused", base, obj("WH1", v1alpha1.AnnotationPaused, "true"), true},
		{"webhook-sid set by a user", base, obj("WH1", v1alpha1.AnnotationWebhookSid, "WH2"), true},
		{"webhook-sid removed by a user", base, obj("WH1", v1alpha1.AnnotationWebhookSid, "-"), true},
		{"user annotation", base, obj("WH1", "a", "2"), true},
		{"the operator records a created webhook", obj("", v1alpha1.AnnotationWebhookSid, "-", v1alpha1.AnnotationCreatePending, "2026-01-01T00:00:00Z"),
			obj("WH9", v1alpha1.AnnotationWebhookSid, "WH9"), false},
		{"the operator rewrites a stale webhook-sid", obj("WH1", v1alpha1.AnnotationWebhookSid, "WH7"), obj("WH1"), false},
		{"a user removes a malformed create-pending", obj("WH1", v1alpha1.AnnotationCreatePending, "yesterday"), obj("WH1"), true},
		{"a user writes a malformed create-pending", base, obj("WH1", v1alpha1.AnnotationCreatePending, "../x"), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := userAnnotationsChanged(tc.old, tc.updated); got != tc.changed {
				t.Fatalf("userAnnotationsChanged = %v, want %v", got, tc.changed)
			}
		})
	}
}

func TestPausedAndPollIntervalValues(t *testing.T) {
	cases := []struct {
		key, value string // value "-" leaves the annotation out
		paused     bool
		period     time.Duration
		invalid    bool
	}{
		{v1alpha1.AnnotationPaused, "-", false, 0, false},
		{v1alpha1.AnnotationPaused, "true", true, 0, false},
		{v1alpha1.AnnotationPaused, "false", false, 0, false},
		{v1alpha1.AnnotationPaused, "", false, 0, true},
		{v1alpha1.AnnotationPaused, "yes", false, 0, true},
		{v1alpha1.AnnotationPaused, "True", false, 0, true},
		{v1alpha1.AnnotationPaused, "1", false, 0, true},
		{v1alpha1.AnnotationPollInterval, "-", false, 0, false},
		{v1alpha1.AnnotationPollInterval, "5m", false, 5 * time.Minute, false},
		{v1alpha1.AnnotationPollInterval, "1s", false, time.Second, false},
		{v1alpha1.AnnotationPollInterval, "nonsense", false, 0, true},
		{v1alpha1.AnnotationPollInterval, "10", false, 0, true},
		{v1alpha1.AnnotationPollInterval, "0s", false, 0, true},
		{v1alpha1.AnnotationPollInterval, "-1m", false, 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.key+"="+tc.value, func(t *testing.T) {
			o := &v1alpha1.ConversationWebhook{}
			if tc.value != "-" {
				o.Annotations = map[string]string{tc.key: tc.value}
			}
			p, perr := paused(o)
			d, derr := annotatedPollInterval(o)
			err := errors.Join(perr, derr)
			if tc.invalid != (err != nil) {
				t.Fatalf("error %v, want one: %v", err, tc.invalid)
			}
			if err != nil {
				if reason, terminal := classify(err); !terminal || reason != v1alpha1.ReasonInvalidAnnotation {
					t.Fatalf("error %v classified %q (terminal %v), want InvalidAnnotation", err, reason, terminal)
				}
				if !strings.Contains(err.Error(), tc.key) {
					t.Fatalf("error %q does not name %s", err, tc.key)
				}
			}
			if p != tc.paused || d != tc.period {
				t.Fatalf("paused %v, period %v; want %v, %v", p, d, tc.paused, tc.period)
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
