package ops

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/twilio-operator/conversation-webhook-operator/test/install"
)

const dashboardFile = "charts/conversation-webhook-operator/files/dashboard.json"

// dashboard is the part of Grafana's dashboard model the test reads.
type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID      int     `json:"id"`
	Type    string  `json:"type"`
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"` // a collapsed row's
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
}

// variables are the dashboard's template variables, replaced by values a
// query can take before it is parsed.
var variables = strings.NewReplacer(
	"$__rate_interval", "5m",
	"$__interval", "1m",
	"$job", ".*conversation-webhook-operator.*",
)

var variable = regexp.MustCompile(`\$\{?\w+`)

// TestDashboardQueries: the JSON is valid, every panel has targets, and every
// query parses and names only exported metrics.
func TestDashboardQueries(t *testing.T) {
	var d dashboard
	if err := json.Unmarshal(read(t, dashboardFile), &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("the dashboard needs a uid and a title")
	}
	ids := map[int]bool{}
	queries := 0
	var check func(p panel)
	check = func(p panel) {
		if ids[p.ID] {
			t.Errorf("panel %q: id %d used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			for _, c := range p.Panels {
				check(c)
			}
			return
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			q := variables.Replace(tg.Expr)
			if v := variable.FindString(q); v != "" {
				t.Errorf("panel %q: unknown variable %s in %q", p.Title, v, tg.Expr)
				continue
			}
			checkQuery(t, fmt.Sprintf("panel %q target %s", p.Title, tg.RefID), q)
			queries++
		}
	}
	for _, p := range d.Panels {
		check(p)
	}
	if queries == 0 {
		t.Fatal("no query in the dashboard")
	}
	labelValues := regexp.MustCompile(`^label_values\((.+), *\w+\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Errorf("variable %s: %v", v.Name, err)
			continue
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("variable %s: %q is not label_values(selector, label)", v.Name, q.Query)
			continue
		}
		checkQuery(t, "variable "+v.Name, m[1])
	}
}

// TestChartShipsRulesAndDashboard renders the chart with both enabled: the
// PrometheusRule carries the rules file, the ConfigMap the dashboard and the
// sidecar's label. Off by default.
func TestChartShipsRulesAndDashboard(t *testing.T) {
	chart := filepath.Join(root, install.ChartDir)
	objs, err := install.RenderChart(chart, "", "cwh", "cwh-system")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.GetKind() == "PrometheusRule" || strings.HasSuffix(o.GetName(), "-dashboard") {
			t.Errorf("%s %s rendered by default", o.GetKind(), o.GetName())
		}
	}

	values := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(values, []byte("prometheusRule:\n  enabled: true\n  labels:\n    release: kube-prometheus-stack\n"+
		"grafanaDashboard:\n  enabled: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	objs, err = install.RenderChart(chart, values, "cwh", "cwh-system")
	if err != nil {
		t.Fatal(err)
	}
	rule, cm := findKind(objs, "PrometheusRule"), findKind(objs, "ConfigMap")
	if rule == nil || cm == nil {
		t.Fatalf("want a PrometheusRule and a ConfigMap, got %d objects", len(objs))
	}
	if rule.GetLabels()["release"] != "kube-prometheus-stack" {
		t.Errorf("PrometheusRule labels %v lack prometheusRule.labels", rule.GetLabels())
	}
	var want map[string]any
	if err := yaml.Unmarshal(read(t, chartRules), &want); err != nil {
		t.Fatal(err)
	}
	if spec, _, _ := unstructured.NestedMap(rule.Object, "spec"); !reflect.DeepEqual(spec, want) {
		t.Errorf("the rendered PrometheusRule's spec differs from %s", chartRules)
	}
	if cm.GetLabels()["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap labels %v lack grafana_dashboard: \"1\"", cm.GetLabels())
	}
	data, _, _ := unstructured.NestedString(cm.Object, "data", "conversation-webhook-operator.json")
	var got, file any
	if err := json.Unmarshal([]byte(data), &got); err != nil {
		t.Fatalf("the ConfigMap's dashboard is not JSON: %v", err)
	}
	if err := json.Unmarshal(read(t, dashboardFile), &file); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, file) {
		t.Errorf("the ConfigMap's dashboard differs from %s", dashboardFile)
	}
}

func findKind(objs []*unstructured.Unstructured, kind string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind {
			return o
		}
	}
	return nil
}
