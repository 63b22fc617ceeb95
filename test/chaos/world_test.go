//go:build chaos

package chaos

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

const (
	account   = "AC00000000000000000000000000000009"
	authToken = "chaosAuthToken"
	ns        = "chaos"
	secret    = "twilio"
	// perConv objects share a conversation at most: each may hold two webhooks
	// while it replaces one, and a foreign webhook or an orphan may sit beside
	// them, under Twilio's five per conversation.
	perConv = 2
)

// Bookkeeping annotations: the two last are gone after issue 9's rewrite, so
// they are spelled out here rather than taken from the API package.
const (
	annCreatePending     = "conversations.twilio-operator.io/create-pending"
	annCreatePendingSpec = "conversations.twilio-operator.io/create-pending-spec"
	annReplacedWebhook   = "conversations.twilio-operator.io/replaced-webhook"
)

// world is the Twilio side: the account, its default service and a named one,
// and the conversations objects live in and move between.
type world struct {
	fake           *twiliofake.Server
	defaultService string
	service        string   // a named Conversation Service
	convs          []string // in the default service; the first ones hold the initial objects
	svcConvs       []string // in the named service
	foreignConv    string   // holds webhooks no object may reach: foreign to every object
}

func newWorld(fake *twiliofake.Server, n int) *world {
	w := &world{fake: fake, defaultService: fake.AddAccount(account, authToken), service: fmt.Sprintf("IS%032x", 0x5e41ce)}
	for i := range (n+perConv-1)/perConv + n/8 + 2 {
		w.convs = append(w.convs, fmt.Sprintf("CH%032x", 0xc0000+i))
		fake.AddConversation(account, w.convs[i])
	}
	for i := range n/8 + 2 {
		w.svcConvs = append(w.svcConvs, fmt.Sprintf("CH%032x", 0xd0000+i))
		fake.AddServiceConversation(account, w.service, w.svcConvs[i])
	}
	w.foreignConv = fmt.Sprintf("CH%032x", 0xf0000)
	fake.AddConversation(account, w.foreignConv)
	return w
}

func objName(i int) string { return fmt.Sprintf("hook-%03d", i) }

// Each object's URLs and flow SIDs carry its index, so a create request names
// the object it was made for.
func hookURL(i, k int) string { return fmt.Sprintf("https://hooks.example.com/%d/v%d", i, k) }
func flowSid(i, k int) string { return fmt.Sprintf("FW%08x%024x", i, k) }

var (
	hookURLRe = regexp.MustCompile(`^https://hooks\.example\.com/(\d+)/`)
	flowSidRe = regexp.MustCompile(`^FW([0-9a-f]{8})[0-9a-f]{24}$`)
	pathSidRe = regexp.MustCompile(`/Webhooks/(WH[0-9a-fA-F]{32})$`)
)

// objectOf says which object a create request was made for.
func objectOf(form url.Values) (int, bool) {
	if m := hookURLRe.FindStringSubmatch(form.Get("Configuration.Url")); m != nil {
		i, err := strconv.Atoi(m[1])
		return i, err == nil
	}
	if m := flowSidRe.FindStringSubmatch(form.Get("Configuration.FlowSid")); m != nil {
		i, err := strconv.ParseInt(m[1], 16, 32)
		return int(i), err == nil
	}
	return 0, false
}

// initial is object i's first spec: every fifth a trigger, every fifth a
// studio flow; every seventh on the service-scoped path of its conversation.
func (w *world) initial(i int) *v1alpha1.ConversationWebhook {
	o := &v1alpha1.ConversationWebhook{
		ObjectMeta: metav1.ObjectMeta{Name: objName(i), Namespace: ns},
		Spec:       v1alpha1.ConversationWebhookSpec{ConversationSid: w.convs[i/perConv]},
	}
	targets := []v1alpha1.Target{v1alpha1.TargetWebhook, v1alpha1.TargetWebhook, v1alpha1.TargetWebhook,
		v1alpha1.TargetTrigger, v1alpha1.TargetStudio}
	setTarget(&o.Spec, i, 0, targets[i%len(targets)])
	if i%7 == 6 {
		o.Spec.ServiceSid = w.defaultService
	}
	return o
}

// setTarget sets the target and the fields it needs (CRD rules: url and method
// for webhook and trigger, filters for webhook, triggers for trigger, flowSid
// and nothing else for studio).
func setTarget(s *v1alpha1.ConversationWebhookSpec, i, k int, target v1alpha1.Target) {
	s.Target = target
	s.URL, s.Method, s.Filters, s.Triggers, s.FlowSid = "", "", nil, nil, ""
	switch target {
	case v1alpha1.TargetWebhook:
		s.URL, s.Method = hookURL(i, k), v1alpha1.MethodPOST
		s.Filters = []v1alpha1.Filter{"onMessageAdded", "onConversationUpdated"}
	case v1alpha1.TargetTrigger:
		s.URL, s.Method = hookURL(i, k), v1alpha1.MethodPOST
		s.Triggers = []string{fmt.Sprintf("help-%d", i), "stop"}
	case v1alpha1.TargetStudio:
		s.FlowSid = flowSid(i, k)
	}
}

// editInPlace changes a field Twilio updates in place: url (flowSid for
// studio), method, filters or triggers.
func editInPlace(s *v1alpha1.ConversationWebhookSpec, i, k, choice int) string {
	switch {
	case s.Target == v1alpha1.TargetStudio:
		s.FlowSid = flowSid(i, k)
		return "flowSid"
	case choice%3 == 0:
		s.URL = hookURL(i, k)
		return "url"
	case choice%3 == 1:
		s.Method = map[v1alpha1.HTTPMethod]v1alpha1.HTTPMethod{v1alpha1.MethodGET: v1alpha1.MethodPOST}[s.Method]
		if s.Method == "" {
			s.Method = v1alpha1.MethodGET
		}
		return "method"
	case s.Target == v1alpha1.TargetTrigger:
		s.Triggers = []string{fmt.Sprintf("help-%d", i), fmt.Sprintf("k%d", k)}
		return "triggers"
	default:
		s.Filters = []v1alpha1.Filter{"onMessageAdded", v1alpha1.Filter([]string{"onMessageUpdated", "onParticipantAdded"}[k%2])}
		return "filters"
	}
}

// webhookFor is a webhook made in the fake for an object's spec, as a person
// would make one to be adopted; drift, when set, gives it another url or flow.
func webhookFor(s *v1alpha1.ConversationWebhookSpec, i, k int, drift bool) twiliofake.Webhook {
	w := twiliofake.Webhook{ConversationSid: s.ConversationSid, Target: string(s.Target), URL: s.URL,
		Triggers: s.Triggers, FlowSid: s.FlowSid}
	if s.Target != v1alpha1.TargetStudio {
		w.Method = map[v1alpha1.HTTPMethod]string{v1alpha1.MethodGET: "get"}[s.Method]
		if w.Method == "" {
			w.Method = "post"
		}
	}
	for _, f := range s.Filters {
		w.Filters = append(w.Filters, string(f))
	}
	if s.ReplayAfter != nil {
		w.ReplayAfter = new(int)
		*w.ReplayAfter = int(*s.ReplayAfter)
	}
	switch {
	case drift && s.Target == v1alpha1.TargetStudio:
		w.FlowSid = flowSid(i, k)
	case drift:
		w.URL = hookURL(i, k)
	}
	return w
}
