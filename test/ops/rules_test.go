package ops

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"
	"sigs.k8s.io/yaml"
)

const (
	root        = "../.."
	rulesFile   = "config/prometheus/rules.yaml"
	chartRules  = "charts/conversation-webhook-operator/files/prometheus-rules.yaml"
	runbookFile = "docs/runbook.md"
	runbookURL  = "https://github.com/twilio-operator/conversation-webhook-operator/blob/main/docs/runbook.md#"
)

func read(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// loadRules parses the chart's rule groups with Prometheus' own rule-file
// parser, strictly (unknown fields, names and expressions are errors).
func loadRules(t *testing.T) []rulefmt.Rule {
	t.Helper()
	groups, errs := rulefmt.Parse(read(t, chartRules), false, model.LegacyValidation, promqlParser, promslog.NewNopLogger())
	for _, err := range errs {
		t.Errorf("%s: %v", chartRules, err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	var out []rulefmt.Rule
	for _, g := range groups.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// TestRulesCopiesAreIdentical: the kustomize PrometheusRule's spec is the
// chart's file, so that both install the same alerts.
func TestRulesCopiesAreIdentical(t *testing.T) {
	var pr struct {
		Kind string         `json:"kind"`
		Spec map[string]any `json:"spec"`
	}
	if err := yaml.Unmarshal(read(t, rulesFile), &pr); err != nil {
		t.Fatal(err)
	}
	var chart map[string]any
	if err := yaml.Unmarshal(read(t, chartRules), &chart); err != nil {
		t.Fatal(err)
	}
	if pr.Kind != "PrometheusRule" {
		t.Errorf("%s is a %q, not a PrometheusRule", rulesFile, pr.Kind)
	}
	if !reflect.DeepEqual(pr.Spec, chart) {
		t.Errorf("the spec of %s differs from %s: edit both copies together", rulesFile, chartRules)
	}
	kustomization := string(read(t, "config/prometheus/kustomization.yaml"))
	if !strings.Contains(kustomization, "- rules.yaml") {
		t.Errorf("config/prometheus/kustomization.yaml does not list rules.yaml")
	}
}

// TestRulesAreComplete: every alert parses, names only exported metrics, and
// has a severity, a summary, a description and a runbook section that exists.
func TestRulesAreComplete(t *testing.T) {
	runbook := anchors(string(read(t, runbookFile)))
	rs := loadRules(t)
	if len(rs) == 0 {
		t.Fatal("no rules")
	}
	for _, r := range rs {
		if r.Alert == "" {
			t.Errorf("%q is not an alerting rule", r.Expr)
			continue
		}
		checkQuery(t, r.Alert, r.Expr)
		if s := r.Labels["severity"]; s != "warning" && s != "critical" {
			t.Errorf("%s: severity %q, want warning or critical", r.Alert, s)
		}
		for _, a := range []string{"summary", "description", "runbook_url"} {
			if r.Annotations[a] == "" {
				t.Errorf("%s: no %s annotation", r.Alert, a)
			}
		}
		url := r.Annotations["runbook_url"]
		if !strings.HasPrefix(url, runbookURL) || !runbook[strings.TrimPrefix(url, runbookURL)] {
			t.Errorf("%s: runbook_url %s is not a section of %s", r.Alert, url, runbookFile)
		}
	}
}

var heading = regexp.MustCompile(`(?m)^#{1,6} +(.+?) *$`)

// anchors returns the GitHub anchors of a Markdown file's headings.
func anchors(md string) map[string]bool {
	out := map[string]bool{}
	for _, m := range heading.FindAllStringSubmatch(md, -1) {
		a := strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
				return r
			case r >= 'A' && r <= 'Z':
				return r + 'a' - 'A'
			case r == ' ':
				return '-'
			}
			return -1
		}, m[1])
		out[a] = true
	}
	return out
}

// ruleCase is one synthetic history (promqltest `load` syntax, one sample a
// minute from time 0) and whether the alert must be firing at the end.
type ruleCase struct {
	name   string
	load   string
	at     time.Duration
	firing []map[string]string // the labels each firing alert must carry
}

// ruleCases are, for every alert, a failure it fires on and healthy
// histories it stays quiet on.
var ruleCases = map[string][]ruleCase{
	"ConversationWebhookStalled": {
		{name: "stalled for 20m", at: 20 * time.Minute, load: `
conversationwebhook_stalled_reason{job="cwh-metrics",namespace="shop",name="orders",reason="ConversationNotFound"} 1x30
conversationwebhook_status_condition{job="cwh-metrics",namespace="shop",name="orders",condition="Stalled",status="True"} 1x30`,
			firing: []map[string]string{{"namespace": "shop", "name": "orders", "reason": "ConversationNotFound", "severity": "warning"}}},
		{name: "stalled for 10m, then fixed", at: 30 * time.Minute, load: `
conversationwebhook_stalled_reason{job="cwh-metrics",namespace="shop",name="orders",reason="ConversationNotFound"} 1x10 _x20`},
		{name: "healthy", at: 30 * time.Minute, load: `
conversationwebhook_status_condition{job="cwh-metrics",namespace="shop",name="orders",condition="Stalled",status="False"} 1x30`},
	},
	"ConversationWebhookNotReady": {
		{name: "not Ready for 40m", at: 40 * time.Minute, load: `
conversationwebhook_status_condition{job="cwh-metrics",namespace="shop",name="orders",condition="Ready",status="True"} 0x40
conversationwebhook_status_condition{job="cwh-metrics",namespace="shop",name="orders",condition="Ready",status="False"} 1x40`,
			firing: []map[string]string{{"namespace": "shop", "name": "orders", "severity": "warning"}}},
		{name: "not Ready for 20m", at: 40 * time.Minute, load: `
conversationwebhook_status_condition{job="cwh-metrics",namespace="shop",name="orders",condition="Ready",status="True"} 0x20 1x20`},
		{name: "stalled: ConversationWebhookStalled says it", at: 40 * time.Minute, load: `
conversationwebhook_status_condition{job="cwh-metrics",namespace="shop",name="orders",condition="Ready",status="True"} 0x40
conversationwebhook_stalled_reason{job="cwh-metrics",namespace="shop",name="orders",reason="SidConflict"} 1x40`},
		{name: "healthy", at: 40 * time.Minute, load: `
conversationwebhook_status_condition{job="cwh-metrics",namespace="shop",name="orders",condition="Ready",status="True"} 1x40`},
	},
	"TwilioThrottling": {
		{name: "9% answered 429 for 30m", at: 30 * time.Minute, load: `
twilio_api_requests_total{job="cwh-metrics",namespace="cwh-system",operation="update",code="200"} 0+10x30
twilio_api_requests_total{job="cwh-metrics",namespace="cwh-system",operation="update",code="429"} 0+1x30`,
			firing: []map[string]string{{"namespace": "cwh-system", "job": "cwh-metrics", "severity": "warning"}}},
		{name: "9% for 8m", at: 30 * time.Minute, load: `
twilio_api_requests_total{job="cwh-metrics",namespace="cwh-system",operation="update",code="200"} 0+10x30
twilio_api_requests_total{job="cwh-metrics",namespace="cwh-system",operation="update",code="429"} 0x20 0+1x10`},
		{name: "2% answered 429", at: 30 * time.Minute, load: `
twilio_api_requests_total{job="cwh-metrics",namespace="cwh-system",operation="update",code="200"} 0+10x30
twilio_api_requests_total{job="cwh-metrics",namespace="cwh-system",operation="update",code="429"} 0+0.2x30`},
	},
	"ConversationWebhookReconcileErrors": {
		{name: "20% of reconciles fail for 40m", at: 40 * time.Minute, load: `
controller_runtime_reconcile_total{job="cwh-metrics",namespace="cwh-system",controller="conversationwebhook",result="success"} 0+20x40
controller_runtime_reconcile_total{job="cwh-metrics",namespace="cwh-system",controller="conversationwebhook",result="error"} 0+5x40
controller_runtime_reconcile_errors_total{job="cwh-metrics",namespace="cwh-system",controller="conversationwebhook"} 0+5x40`,
			firing: []map[string]string{{"controller": "conversationwebhook", "severity": "warning"}}},
		{name: "2% fail", at: 40 * time.Minute, load: `
controller_runtime_reconcile_total{job="cwh-metrics",namespace="cwh-system",controller="conversationwebhook",result="success"} 0+20x40
controller_runtime_reconcile_total{job="cwh-metrics",namespace="cwh-system",controller="conversationwebhook",result="error"} 0+0.5x40
controller_runtime_reconcile_errors_total{job="cwh-metrics",namespace="cwh-system",controller="conversationwebhook"} 0+0.5x40`},
		{name: "one error in 15m out of few reconciles", at: 40 * time.Minute, load: `
controller_runtime_reconcile_total{job="cwh-metrics",namespace="cwh-system",controller="conversationwebhook",result="success"} 0+0.5x40
controller_runtime_reconcile_total{job="cwh-metrics",namespace="cwh-system",controller="conversationwebhook",result="error"} 0+0.1x40
controller_runtime_reconcile_errors_total{job="cwh-metrics",namespace="cwh-system",controller="conversationwebhook"} 0+0.1x40`},
	},
	"ConversationWebhookOperatorDown": {
		{name: "every replica down", at: 10 * time.Minute, load: `
up{job="cwh-conversation-webhook-operator-metrics",namespace="cwh-system",pod="a"} 1x2 0x8
up{job="cwh-conversation-webhook-operator-metrics",namespace="cwh-system",pod="b"} 0x10`,
			firing: []map[string]string{{"job": "cwh-conversation-webhook-operator-metrics", "namespace": "cwh-system", "severity": "critical"}}},
		{name: "no target at all", at: 10 * time.Minute, load: `
up{job="something-else"} 1x10`,
			firing: []map[string]string{{"severity": "critical"}}},
		{name: "one replica of two down", at: 10 * time.Minute, load: `
up{job="cwh-conversation-webhook-operator-metrics",namespace="cwh-system",pod="a"} 1x10
up{job="cwh-conversation-webhook-operator-metrics",namespace="cwh-system",pod="b"} 0x10`},
		{name: "down for 3m", at: 10 * time.Minute, load: `
up{job="conversation-webhook-operator-controller-manager-metrics-service",namespace="cwh-system"} 1x5 0x3 1x2`},
	},
}

// TestAlertsFireOnFailuresOnly evaluates each alert as Prometheus does: the
// rule engine (for, keep-firing, templates) over an in-memory TSDB, once a
// minute from time 0 to the case's end.
func TestAlertsFireOnFailuresOnly(t *testing.T) {
	rs := loadRules(t)
	for _, r := range rs {
		cases := ruleCases[r.Alert]
		if len(cases) == 0 {
			t.Errorf("%s: no test case", r.Alert)
			continue
		}
		fired, quiet := false, false
		for _, c := range cases {
			t.Run(r.Alert+"/"+c.name, func(t *testing.T) {
				got := evalAlert(t, r, c.load, c.at)
				if len(got) != len(c.firing) {
					t.Fatalf("%d alerts firing, want %d: %v", len(got), len(c.firing), got)
				}
				for i, want := range c.firing {
					for k, v := range want {
						if got[i].Labels.Get(k) != v {
							t.Errorf("label %s=%q, want %q (%v)", k, got[i].Labels.Get(k), v, got[i].Labels)
						}
					}
					got[i].Annotations.Range(func(l labels.Label) {
						if strings.Contains(l.Value, "error expanding template") || strings.Contains(l.Value, "<no value>") {
							t.Errorf("annotation %s: %s", l.Name, l.Value)
						}
					})
				}
			})
			fired = fired || len(c.firing) > 0
			quiet = quiet || len(c.firing) == 0
		}
		if !fired || !quiet {
			t.Errorf("%s: want a case it fires on and one it stays quiet on", r.Alert)
		}
	}
}

// evalAlert returns the alerts of rule r firing at the end of the history.
func evalAlert(t *testing.T, r rulefmt.Rule, load string, end time.Duration) []*rules.Alert {
	t.Helper()
	storage := promqltest.LoadedStorage(t, "load 1m"+load)
	t.Cleanup(func() { _ = storage.Close() })
	engine := promql.NewEngine(promql.EngineOpts{
		MaxSamples: 1_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute, Parser: promqlParser,
	})
	expr, err := promqlParser.ParseExpr(r.Expr)
	if err != nil {
		t.Fatal(err)
	}
	rule := rules.NewAlertingRule(r.Alert, expr, time.Duration(r.For), time.Duration(r.KeepFiringFor),
		labels.FromMap(r.Labels), labels.FromMap(r.Annotations), labels.EmptyLabels(), "", true, promslog.NewNopLogger())
	query := rules.EngineQueryFunc(engine, storage)
	start := time.Unix(0, 0).UTC()
	for ts := time.Duration(0); ts <= end; ts += time.Minute {
		if _, err := rule.Eval(context.Background(), 0, start.Add(ts), query, nil, 0); err != nil {
			t.Fatalf("at %s: %v", ts, err)
		}
	}
	var firing []*rules.Alert
	for _, a := range rule.ActiveAlerts() {
		if a.State == rules.StateFiring {
			firing = append(firing, a)
		}
	}
	return firing
}
