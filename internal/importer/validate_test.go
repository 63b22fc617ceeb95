package importer

import (
	"strings"
	"testing"

	"k8s.io/utils/ptr"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
)

var (
	testConv    = "CH" + strings.Repeat("a", 32)
	testService = "IS" + strings.Repeat("b", 32)
	testFlow    = "FW" + strings.Repeat("c", 32)
)

// validSpec is a spec the CRD admits, for each target.
func validSpec(target v1alpha1.Target) v1alpha1.ConversationWebhookSpec {
	s := v1alpha1.ConversationWebhookSpec{ConversationSid: testConv, Target: target}
	switch target {
	case v1alpha1.TargetWebhook:
		s.URL, s.Method, s.Filters = "https://hooks.example.com/w", v1alpha1.MethodPOST, []v1alpha1.Filter{"onMessageAdded"}
	case v1alpha1.TargetTrigger:
		s.URL, s.Method, s.Triggers = "https://hooks.example.com/t", v1alpha1.MethodGET, []string{"help"}
	case v1alpha1.TargetStudio:
		s.FlowSid = testFlow
	}
	return s
}

// TestValidateMirrorsCRD checks each rule of Validate against the generated
// CRD: a spec Validate refuses is one the API server rejects, on the same
// field, and a spec it accepts is admitted.
func TestValidateMirrorsCRD(t *testing.T) {
	crd := loadCRD(t)
	long := func(n int) string { return strings.Repeat("k", n) }
	urlOf := func(n int) string {
		const base = "https://hooks.example.com/"
		return base + strings.Repeat("p", n-len(base))
	}
	cases := []struct {
		name   string
		target v1alpha1.Target
		tweak  func(*v1alpha1.ConversationWebhookSpec)
		fields []string // Validate's fields; nil: admitted
	}{
		{"webhook as is", v1alpha1.TargetWebhook, func(*v1alpha1.ConversationWebhookSpec) {}, nil},
		{"trigger as is", v1alpha1.TargetTrigger, func(*v1alpha1.ConversationWebhookSpec) {}, nil},
		{"studio as is", v1alpha1.TargetStudio, func(*v1alpha1.ConversationWebhookSpec) {}, nil},
		{"service-scoped", v1alpha1.TargetWebhook, func(s *v1alpha1.ConversationWebhookSpec) { s.ServiceSid = testService }, nil},
		{"every filter", v1alpha1.TargetWebhook, func(s *v1alpha1.ConversationWebhookSpec) { s.Filters = Filters }, nil},
		{"filters on a trigger", v1alpha1.TargetTrigger, func(s *v1alpha1.ConversationWebhookSpec) {
			s.Filters = []v1alpha1.Filter{"onMessageAdded"}
		}, nil},
		{"five triggers of 248 characters", v1alpha1.TargetTrigger, func(s *v1alpha1.ConversationWebhookSpec) {
			s.Triggers = []string{long(248), "b", "c", "d", "e"}
		}, nil},
		{"trigger of 248 multi-byte characters", v1alpha1.TargetTrigger, func(s *v1alpha1.ConversationWebhookSpec) {
			s.Triggers = []string{strings.Repeat("é", 248)}
		}, nil},
		{"url of 512 characters", v1alpha1.TargetWebhook, func(s *v1alpha1.ConversationWebhookSpec) { s.URL = urlOf(512) }, nil},
		{"http url with port, query and fragment", v1alpha1.TargetWebhook, func(s *v1alpha1.ConversationWebhookSpec) {
			s.URL = "http://10.0.0.1:8080/hook?x=1#top"
		}, nil},
		{"studio with POST", v1alpha1.TargetStudio, func(s *v1alpha1.ConversationWebhookSpec) { s.Method = v1alpha1.MethodPOST }, nil},
		{"replayAfter 0", v1alpha1.TargetWebhook, func(s *v1alpha1.ConversationWebhookSpec) { s.ReplayAfter = ptr.To[int32](0) }, nil},
		{"observe and orphan", v1alpha1.TargetWebhook, func(s *v1alpha1.ConversationWebhookSpec) {
			s.ManagementPolicy, s.DeletionPolicy = v1alpha1.ManagementPolicyObserve, v1alpha1.DeletionPolicyOrphan
		}, nil},

		{"conversationSid malformed", v1alpha1.TargetWebhook, func(s *v1alpha1.ConversationWebhookSpec) { s.ConversationSid = "CH123" },
			[]string{"spec.conversationSid"}},
		{"serviceSid malformed", v1alpha1.TargetWebhook, func(s *v1alpha1.ConversationWebhookSpec) { s.ServiceSid = "IS" + long(32) },
			[]string{"spec.serviceSid"}},
		{"unknown target", v1alpha1.TargetWebhook, func(s *v1alpha1.ConversationWebhookSpec) { s.Target = "email" },
			[]string{"spec.target"}},
		{"unknown filter", v1alpha1.TargetWebhook, func(s *v1alpha1.ConversationWebhookSpec) {
			s.Filters = []v1alpha1.Filter{"onMessageAdded", "onMessageSent"}
		}, []string{"spec.filters[1]"}},
		{"filter listed twice", v1alpha1.TargetWebhook, func(s *v1alpha1.ConversationWebhookSpec) {
			s.Filters = []v1alpha1.Filter{"onMessageAdded", "onMessageAdded"}
		}, []string{"spec.filters[1]"}},
		{"webhook without filters", v1alpha1.TargetWebhook, func(s *v1alpha1.ConversationWebhookSpec) { s.Filters = nil },
			[]string{"spec.filters"}},
		{"six triggers", v1alpha1.TargetTrigger, func(s *v1alpha1.ConversationWebhookSpec) {
			s.Triggers = []string{"a", "b", "c", "d", "e", "f"}
		}, []string{"spec.triggers"}},
		{"trigger of 249 characters", v1alpha1.TargetTrigger, func(s *v1alpha1.ConversationWebhookSpec) {
			s.Triggers = []string{"ok", long(249)}
		}, []string{"spec.triggers[1]"}},
		{"empty trigger", v1alpha1.TargetTrigger, func(s *v1alpha1.ConversationWebhookSpec) { s.Triggers = []string{""} },
			[]string{"spec.triggers[0]"}},
		{"trigger listed twice", v1alpha1.TargetTrigger, func(s *v1alpha1.ConversationWebhookSpec) { s.Triggers = []string{"a", "a"} },
			[]string{"spec.triggers[1]"}},
		{"trigger without keywords", v1alpha1.TargetTrigger, func(s *v1alpha1.ConversationWebhookSpec) { s.Triggers = nil },
			[]string{"spec.triggers"}},
		{"triggers on a webhook", v1alpha1.TargetWebhook, func(s *v1alpha1.ConversationWebhookSpec) { s.Triggers = []string{"help"} },
			[]string{"spec.triggers"}},
		{"url of 513 characters", v1alpha1.TargetWebhook, func(s *v1alpha1.ConversationWebhookSpec) { s.URL = urlOf(513) },
			[]string{"spec.url"}},
		{"url ftp", v1alpha1.TargetTrigger, func(s *v1alpha1.ConversationWebhookSpec) { s.URL = "ftp://hooks.example.com/t" },
			[]string{"spec.url"}},
		{"url relative", v1alpha1.TargetWebhook, func(s *v1alpha1.ConversationWebhookSpec) { s.URL = "/hook" },
			[]string{"spec.url"}},
		{"url without host", v1alpha1.TargetWebhook, func(s *v1alpha1.ConversationWebhookSpec) { s.URL = "https:///hook" },
			[]string{"spec.url"}},
		{"url missing for webhook", v1alpha1.TargetWebhook, func(s *v1alpha1.ConversationWebhookSpec) { s.URL = "" },
			[]string{"spec.url"}},
		{"url missing for trigger", v1alpha1.TargetTrigger, func(s *v1alpha1.ConversationWebhookSpec) { s.URL = "" },
			[]string{"spec.url"}},
		{"url on studio", v1alpha1.TargetStudio, func(s *v1alpha1.ConversationWebhookSpec) { s.URL = "https://hooks.example.com/s" },
			[]string{"spec.url"}},
		{"method PUT", v1alpha1.TargetWebhook, func(s *v1alpha1.ConversationWebhookSpec) { s.Method = "PUT" },
			[]string{"spec.method"}},
		{"method lower case", v1alpha1.TargetWebhook, func(s *v1alpha1.ConversationWebhookSpec) { s.Method = "post" },
			[]string{"spec.method"}},
		{"GET on studio", v1alpha1.TargetStudio, func(s *v1alpha1.ConversationWebhookSpec) { s.Method = v1alpha1.MethodGET },
			[]string{"spec.method"}},
		{"studio without flow", v1alpha1.TargetStudio, func(s *v1alpha1.ConversationWebhookSpec) { s.FlowSid = "" },
			[]string{"spec.flowSid"}},
		{"flow malformed", v1alpha1.TargetStudio, func(s *v1alpha1.ConversationWebhookSpec) { s.FlowSid = "FW123" },
			[]string{"spec.flowSid"}},
		{"flow on a webhook", v1alpha1.TargetWebhook, func(s *v1alpha1.ConversationWebhookSpec) { s.FlowSid = testFlow },
			[]string{"spec.flowSid"}},
		{"replayAfter negative", v1alpha1.TargetWebhook, func(s *v1alpha1.ConversationWebhookSpec) { s.ReplayAfter = ptr.To[int32](-1) },
			[]string{"spec.replayAfter"}},
		{"managementPolicy unknown", v1alpha1.TargetWebhook, func(s *v1alpha1.ConversationWebhookSpec) { s.ManagementPolicy = "Ignore" },
			[]string{"spec.managementPolicy"}},
		{"deletionPolicy unknown", v1alpha1.TargetWebhook, func(s *v1alpha1.ConversationWebhookSpec) { s.DeletionPolicy = "Keep" },
			[]string{"spec.deletionPolicy"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := validSpec(tc.target)
			tc.tweak(&spec)
			var got []string
			for _, p := range Validate(&spec) {
				got = append(got, p.Field)
				if strings.Contains(p.Reason, spec.URL) && spec.URL != "" {
					t.Errorf("%s: reason quotes the url: %s", p.Field, p.Reason)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
				t.Errorf("Validate fields = %v, want %v (%v)", got, tc.fields, Validate(&spec))
			}
			errs := crd.admitSpec(t, spec)
			if len(tc.fields) == 0 {
				if len(errs) > 0 {
					t.Errorf("Validate accepts what the CRD rejects: %v", errs.ToAggregate())
				}
				return
			}
			if len(errs) == 0 {
				t.Fatalf("Validate refuses (%v) what the CRD admits", got)
			}
			for _, f := range tc.fields {
				named := false
				for _, e := range errs {
					named = named || e.Field == f || strings.HasPrefix(e.Field, f+"[") || strings.HasPrefix(f, e.Field+"[")
				}
				if !named {
					t.Errorf("the CRD rejects on other fields than %s: %v", f, errs.ToAggregate())
				}
			}
		})
	}
}
