package controller

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

const (
	planConv  = "CH00000000000000000000000000000001"
	planConv2 = "CH00000000000000000000000000000002"
	planOwned = "WH00000000000000000000000000000001"
	planOther = "WH00000000000000000000000000000002"
	planOld   = "WH00000000000000000000000000000003"
)

// planCase is the default case: an object that manages planOwned, which
// Twilio holds exactly as the spec says. Each table row tweaks it.
type planCase struct {
	want     desired
	obs      observation
	led      ledger
	inSync   bool
	wantKind stepKind
	wantWhy  string
	// supersede is the step's supersede flag, checked when set.
	supersede *bool
}

func defaultPlanCase() *planCase {
	want := desiredOf(&v1alpha1.ConversationWebhookSpec{
		ConversationSid: planConv, Target: v1alpha1.TargetWebhook, URL: "https://e.com/a", Filters: []v1alpha1.Filter{"onMessageAdded"},
	})
	current := &twilio.Webhook{Sid: planOwned, ConversationSid: planConv, Target: "webhook",
		Configuration: twilio.Configuration{URL: "https://e.com/a", Method: "post", Filters: []string{"onMessageAdded"}}}
	return &planCase{
		want:   want,
		obs:    observation{current: current},
		led:    ledger{owned: &ref{sid: planOwned, scope: want.scope}, annotated: planOwned, replay: recordedReplay{known: true}},
		inSync: true, wantKind: stepNone,
	}
}

func TestPlan(t *testing.T) {
	other := &twilio.Webhook{Sid: planOther, ConversationSid: planConv, Target: "webhook"}
	yes, no := ptr.To(true), ptr.To(false)
	cases := []struct {
		name  string
		tweak func(c *planCase)
	}{
		{"converged: nothing to do", func(*planCase) {}},
		{"new object: create", func(c *planCase) {
			c.led, c.obs = ledger{}, observation{}
			c.wantKind, c.wantWhy, c.supersede = stepCreate, whyFirst, no
		}},
		{"pending create found by listing: record it", func(c *planCase) {
			c.led = ledger{pending: &pendingRecord{scope: c.want.scope, recorded: true}}
			c.obs = observation{recovered: other}
			c.wantKind, c.wantWhy = stepRecord, whyRecover
		}},
		{"pending replacement found: record it, superseding the old", func(c *planCase) {
			c.led.pending = &pendingRecord{scope: c.want.scope, recorded: true}
			c.obs = observation{recovered: other}
			c.wantKind, c.wantWhy, c.supersede = stepRecord, whyRecover, yes
		}},
		{"pending create not listed yet but maybe still in flight: wait, never create twice", func(c *planCase) {
			c.led = ledger{pending: &pendingRecord{scope: c.want.scope, recorded: true}}
			c.obs = observation{pendingInFlight: true}
			c.wantKind = stepWait
		}},
		{"pending create in flight but already listed: record it", func(c *planCase) {
			c.led = ledger{pending: &pendingRecord{scope: c.want.scope, recorded: true}}
			c.obs = observation{recovered: other, pendingInFlight: true}
			c.wantKind, c.wantWhy = stepRecord, whyRecover
		}},
		{"pending create not found: create again", func(c *planCase) {
			c.led = ledger{pending: &pendingRecord{scope: c.want.scope, recorded: true}}
			c.obs = observation{unknown: []string{planOther}}
			c.wantKind, c.wantWhy = stepCreate, whyFirst
		}},
		{"annotation missing (restored without it): rewrite it", func(c *planCase) {
			c.led.annotated, c.inSync = "", false
			c.wantKind, c.wantWhy = stepAnnotate, whyBookkeep
		}},
		{"annotation still names the superseded webhook: rewrite it before deleting that", func(c *planCase) {
			c.led.superseded = &ref{sid: planOld, scope: c.want.scope}
			c.led.annotated, c.inSync = planOld, false
			c.wantKind, c.wantWhy = stepAnnotate, whyBookkeep
		}},
		{"superseded webhook: delete it", func(c *planCase) {
			c.led.superseded = &ref{sid: planOld, scope: c.want.scope}
			c.wantKind = stepDeleteSuperseded
		}},
		{"superseded webhook is deleted before a new replacement", func(c *planCase) {
			c.led.superseded = &ref{sid: planOld, scope: c.want.scope}
			c.want.scope.ConversationSid = planConv2
			c.wantKind = stepDeleteSuperseded
		}},
		{"another object manages the SID: stall", func(c *planCase) {
			c.obs = observation{conflict: "ns/other"}
			c.wantKind, c.wantWhy = stepStall, v1alpha1.ReasonSidConflict
		}},
		{"annotation names another existing webhook: adopt it, superseding the owned one", func(c *planCase) {
			c.led.annotated, c.inSync = planOther, false
			c.obs = observation{claim: other}
			c.wantKind, c.wantWhy, c.supersede = stepRecord, whyAdopt, yes
		}},
		{"annotation on a new object names an existing webhook: adopt it", func(c *planCase) {
			c.led = ledger{annotated: planOther}
			c.obs = observation{claim: other}
			c.wantKind, c.wantWhy, c.supersede = stepRecord, whyAdopt, no
		}},
		{"annotation names a webhook that is gone, nothing owned: create", func(c *planCase) {
			c.led = ledger{annotated: planOther}
			c.obs = observation{claimGone: true}
			c.wantKind, c.wantWhy = stepCreate, whyRecreate
		}},
		{"stale annotation (GitOps re-applied a gone SID): keep the owned webhook, rewrite it", func(c *planCase) {
			c.led.annotated, c.inSync = planOther, false
			c.obs.claimGone = true
			c.wantKind, c.wantWhy = stepAnnotate, whyStaleSid
		}},
		{"stale annotation and the owned webhook gone too: recreate", func(c *planCase) {
			c.led.annotated, c.inSync = planOther, false
			c.obs = observation{claimGone: true, currentGone: true}
			c.wantKind, c.wantWhy = stepCreate, whyRecreate
		}},
		{"owned webhook deleted outside: recreate", func(c *planCase) {
			c.obs = observation{currentGone: true}
			c.wantKind, c.wantWhy = stepCreate, whyRecreate
		}},
		{"url differs: update", func(c *planCase) {
			c.want.cfg.URL = "https://e.com/b"
			c.wantKind, c.wantWhy = stepUpdate, whySpec
		}},
		{"method differs only in case, filters only in order: nothing", func(c *planCase) {
			c.want.cfg.Method = "POST"
			c.want.cfg.Filters = []string{"onMessageAdded", "onMessageAdded"}
		}},
		{"an update's answer still differs: replace", func(c *planCase) {
			c.want.cfg.Filters = nil
			c.obs.answer = answerUpdate
			c.wantKind, c.wantWhy, c.supersede = stepCreate, whyReplace, yes
		}},
		{"a create's answer differs from what was sent: stall, never loop", func(c *planCase) {
			c.want.cfg.URL = "https://e.com/b"
			c.obs.answer = answerCreate
			c.wantKind, c.wantWhy = stepStall, v1alpha1.ReasonConfigurationRejected
		}},
		{"conversation changed: replace", func(c *planCase) {
			c.want.scope.ConversationSid = planConv2
			c.wantKind, c.wantWhy, c.supersede = stepCreate, whyReplace, yes
		}},
		{"target changed: replace", func(c *planCase) {
			c.want.target = "trigger"
			c.wantKind, c.wantWhy = stepCreate, whyReplace
		}},
		{"replayAfter changed: replace", func(c *planCase) {
			c.want.cfg.ReplayAfter = ptr.To[int32](4)
			c.wantKind, c.wantWhy = stepCreate, whyReplace
		}},
		{"target left out of Twilio's answer: nothing", func(c *planCase) {
			c.obs.current.Target = ""
		}},
		{"observe: drift is reported, never updated", func(c *planCase) {
			c.want.observeOnly, c.want.cfg.URL = true, "https://e.com/b"
			c.wantKind = stepReport
		}},
		{"observe: a conversation change is reported, never replaced", func(c *planCase) {
			c.want.observeOnly, c.want.scope.ConversationSid = true, planConv2
			c.wantKind = stepReport
		}},
		{"observe: owned webhook gone: reported, never recreated", func(c *planCase) {
			c.want.observeOnly, c.obs = true, observation{currentGone: true}
			c.wantKind = stepReport
		}},
		{"observe: new object, nothing found: reported, never created", func(c *planCase) {
			c.want.observeOnly, c.led, c.obs = true, ledger{}, observation{}
			c.wantKind = stepReport
		}},
		{"observe: a superseded webhook is left alone", func(c *planCase) {
			c.want.observeOnly = true
			c.led.superseded = &ref{sid: planOld, scope: c.want.scope}
			c.wantKind = stepReport
		}},
		{"observe: the webhook found is recorded without superseding the owned one", func(c *planCase) {
			c.want.observeOnly = true
			c.led.annotated, c.inSync = planOther, false
			c.obs = observation{claim: other}
			c.wantKind, c.wantWhy, c.supersede = stepRecord, whyAdopt, no
		}},
		{"observe: a webhook found by matching the spec is recorded as matched, not as named", func(c *planCase) {
			c.want.observeOnly = true
			c.led, c.inSync = ledger{}, false
			c.obs = observation{claim: other}
			c.wantKind, c.wantWhy, c.supersede = stepRecord, whyMatch, no
		}},
		{"observe: a pending create's result is recorded", func(c *planCase) {
			c.want.observeOnly = true
			c.led = ledger{pending: &pendingRecord{scope: c.want.scope, recorded: true}}
			c.obs = observation{recovered: other}
			c.wantKind, c.wantWhy = stepRecord, whyRecover
		}},
		{"observe: a pending create not found is not retried", func(c *planCase) {
			c.want.observeOnly = true
			c.led = ledger{pending: &pendingRecord{scope: c.want.scope, recorded: true}}
			c.obs = observation{}
			c.wantKind = stepReport
		}},
		{"observe: a stale annotation is rewritten (no Twilio write)", func(c *planCase) {
			c.want.observeOnly = true
			c.led.annotated, c.inSync = planOther, false
			c.obs.claimGone = true
			c.wantKind, c.wantWhy = stepAnnotate, whyStaleSid
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := defaultPlanCase()
			tc.tweak(c)
			got := plan(c.want, &c.obs, &c.led, c.inSync)
			if got.kind != c.wantKind || (c.wantWhy != "" && got.why != c.wantWhy) {
				t.Fatalf("plan = %s/%s (%s), want %s/%s", got.kind, got.why, got.detail, c.wantKind, c.wantWhy)
			}
			if c.supersede != nil && got.supersede != *c.supersede {
				t.Fatalf("supersede = %v, want %v", got.supersede, *c.supersede)
			}
		})
	}
}

func TestReadLedger(t *testing.T) {
	want := desiredOf(&v1alpha1.ConversationWebhookSpec{ConversationSid: planConv, Target: v1alpha1.TargetWebhook})
	since := metav1.NewTime(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	cases := []struct {
		name   string
		ann    map[string]string
		status v1alpha1.ConversationWebhookStatus
		// reason is the Stalled reason of a malformed value, "" when valid.
		reason string
		check  func(t *testing.T, led ledger)
	}{
		{"empty", nil, v1alpha1.ConversationWebhookStatus{}, "", func(t *testing.T, led ledger) {
			if led.owned != nil || led.pending != nil || led.annotated != "" {
				t.Fatalf("%+v", led)
			}
		}},
		{"path traversal in webhook-sid", map[string]string{v1alpha1.AnnotationWebhookSid: "../../" + planConv}, v1alpha1.ConversationWebhookStatus{},
			v1alpha1.ReasonInvalidAnnotation, nil},
		{"webhook-sid one digit short", map[string]string{v1alpha1.AnnotationWebhookSid: planOwned[:33]}, v1alpha1.ConversationWebhookStatus{},
			v1alpha1.ReasonInvalidAnnotation, nil},
		{"webhook-sid with a query", map[string]string{v1alpha1.AnnotationWebhookSid: planOwned + "?x"}, v1alpha1.ConversationWebhookStatus{},
			v1alpha1.ReasonInvalidAnnotation, nil},
		{"create-pending not a time", map[string]string{v1alpha1.AnnotationCreatePending: "soon"}, v1alpha1.ConversationWebhookStatus{},
			v1alpha1.ReasonInvalidAnnotation, nil},
		{"status.sid malformed", nil, v1alpha1.ConversationWebhookStatus{Sid: "WH1/../x", ConversationSid: planConv},
			v1alpha1.ReasonInvalidStatus, nil},
		{"superseded in a malformed conversation", nil, v1alpha1.ConversationWebhookStatus{
			SupersededWebhook: &v1alpha1.WebhookReference{Sid: planOld, ConversationSid: "CH../x"}}, v1alpha1.ReasonInvalidStatus, nil},
		{"recorded webhook without its conversation lives where the spec points", nil,
			v1alpha1.ConversationWebhookStatus{Sid: planOwned}, "", func(t *testing.T, led ledger) {
				if led.owned == nil || led.owned.scope != want.scope {
					t.Fatalf("owned = %+v", led.owned)
				}
			}},
		{"pending in status is the operator's record", nil, v1alpha1.ConversationWebhookStatus{
			PendingCreate: &v1alpha1.PendingCreate{Since: since, ConversationSid: planConv2, Fingerprint: "fp"}}, "",
			func(t *testing.T, led ledger) {
				if p := led.pending; p == nil || !p.recorded || p.scope.ConversationSid != planConv2 || p.fingerprint != "fp" {
					t.Fatalf("pending = %+v", led.pending)
				}
			}},
		{"create-pending annotation alone, on an object that manages nothing: look where the spec points", map[string]string{
			v1alpha1.AnnotationCreatePending: "2026-11-01T00:00:00Z"}, v1alpha1.ConversationWebhookStatus{}, "",
			func(t *testing.T, led ledger) {
				if p := led.pending; p == nil || p.recorded || p.scope != want.scope {
					t.Fatalf("pending = %+v", led.pending)
				}
			}},
		{"create-pending annotation alone, on an object that manages a webhook: stale, ignored", map[string]string{
			v1alpha1.AnnotationCreatePending: "2026-11-01T00:00:00Z"}, v1alpha1.ConversationWebhookStatus{Sid: planOwned, ConversationSid: planConv}, "",
			func(t *testing.T, led ledger) {
				if led.pending != nil || led.annotationsInSync(map[string]string{
					v1alpha1.AnnotationCreatePending: "x", v1alpha1.AnnotationWebhookSid: planOwned}) {
					t.Fatalf("pending = %+v", led.pending)
				}
			}},
		{"legacy annotations are reported, not obeyed", map[string]string{
			v1alpha1.AnnotationReplacedWebhook: planConv + "/" + planOther, v1alpha1.AnnotationCreatePendingSpec: planConv2 + ":fp"},
			v1alpha1.ConversationWebhookStatus{}, "", func(t *testing.T, led ledger) {
				if len(led.legacy) != 2 || led.superseded != nil || led.pending != nil {
					t.Fatalf("%+v", led)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := &v1alpha1.ConversationWebhook{Status: tc.status}
			obj.Annotations = tc.ann
			led, err := readLedger(obj, want)
			reason, _ := classify(err)
			if reason != tc.reason {
				t.Fatalf("reason %q (%v), want %q", reason, err, tc.reason)
			}
			if err != nil && len(err.Error()) > 200 {
				t.Fatalf("message echoes too much: %d characters", len(err.Error()))
			}
			if tc.check != nil {
				tc.check(t, led)
			}
		})
	}
}

func TestInvalidErrorEchoesAtMost64Characters(t *testing.T) {
	long := strings.Repeat("x", 1000)
	err := invalidError(v1alpha1.ReasonInvalidAnnotation, "annotation a", long)
	if strings.Contains(err.Error(), strings.Repeat("x", 65)) || !strings.Contains(err.Error(), strings.Repeat("x", 64)) {
		t.Fatalf("message: %s", err)
	}
}

func TestLedgerRoundTrip(t *testing.T) {
	scope := twilio.Scope{ServiceSid: "IS00000000000000000000000000000001", ConversationSid: planConv}
	led := ledger{
		owned:      &ref{sid: planOwned, scope: scope},
		pending:    &pendingRecord{since: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), scope: scope, fingerprint: "fp", recorded: true},
		superseded: &ref{sid: planOld, scope: twilio.Scope{ConversationSid: planConv2}},
	}
	obj := &v1alpha1.ConversationWebhook{}
	obj.Status.Sid, obj.Status.ServiceSid, obj.Status.ConversationSid = planOwned, scope.ServiceSid, scope.ConversationSid
	writeRecord(&obj.Status, &led)
	led.applyAnnotations(obj)
	got, err := readLedger(obj, desired{scope: scope})
	if err != nil {
		t.Fatal(err)
	}
	if *got.owned != *led.owned || *got.superseded != *led.superseded || got.annotated != planOwned ||
		!got.pending.since.Equal(led.pending.since) || got.pending.scope != scope || got.pending.fingerprint != "fp" {
		t.Fatalf("round trip: %+v", got)
	}
	if !got.annotationsInSync(obj.Annotations) {
		t.Fatalf("annotations not in sync after applying them: %v", obj.Annotations)
	}
}

func TestDriftOf(t *testing.T) {
	want := desiredOf(&v1alpha1.ConversationWebhookSpec{ConversationSid: planConv, Target: v1alpha1.TargetWebhook,
		URL: "https://e.com/spec", Filters: []v1alpha1.Filter{"onMessageAdded", "onMessageRemoved"}})
	wh := &twilio.Webhook{Target: "webhook", Configuration: twilio.Configuration{URL: "https://e.com/twilio", Method: "POST",
		Filters: []string{"onMessageRemoved"}}}
	got := driftOf(want, wh, want.scope, recordedReplay{})
	exp := []string{"url: https://e.com/spec → https://e.com/twilio", "filters: [onMessageAdded onMessageRemoved] → [onMessageRemoved]"}
	if strings.Join(got, "|") != strings.Join(exp, "|") {
		t.Fatalf("driftOf = %q, want %q", got, exp)
	}
	if d := driftOf(want, wh, twilio.Scope{ConversationSid: planConv2}, recordedReplay{}); len(d) != 3 || !strings.HasPrefix(d[0], "conversationSid: "+planConv+" → "+planConv2) {
		t.Fatalf("driftOf with another conversation = %q", d)
	}
	wh.Configuration.URL, wh.Configuration.Filters = want.cfg.URL, want.cfg.Filters
	if d := driftOf(want, wh, want.scope, recordedReplay{}); len(d) != 0 {
		t.Fatalf("no drift expected, got %q", d)
	}
}
