// Package ops tests what an SRE runs the operator with: the alert rules
// (config/prometheus/rules.yaml and the chart's copy), the Grafana dashboard
// and the runbook they point at. Every query parses, names only metrics the
// operator exports, and every alert fires on a synthetic failure and stays
// quiet on a healthy series, evaluated by Prometheus' own rule engine.
package ops

import (
	"regexp"
	"slices"
	"sort"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/twilio-operator/conversation-webhook-operator/internal/controller"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// metricKind says which series names a metric exports.
type metricKind int

const (
	scalar    metricKind = iota // counter or gauge: one name
	histogram                   // name_bucket, name_sum, name_count
)

// exported is every metric a rule or a dashboard query may name: the
// operator's own (checked against the code's registrations below),
// controller-runtime's well-known ones, and Prometheus' up.
var exported = []struct {
	name    string
	kind    metricKind
	source  string
	pending bool // named by DESIGN.md, not registered by the code yet
}{
	{"conversationwebhook_status_condition", scalar, "operator", false},
	{"conversationwebhook_stalled_reason", scalar, "operator", false},
	{"conversationwebhook_drift_corrections_total", scalar, "operator", false},
	{"twilio_api_requests_total", scalar, "operator", false},
	{"twilio_api_request_duration_seconds", histogram, "operator", false},
	// Per-account limiter metrics (DESIGN.md "Metrics"), built in internal/twilio.
	{"twilio_account_inflight", scalar, "operator", false},
	{"twilio_account_inflight_limit", scalar, "operator", false},
	{"twilio_account_throttled_total", scalar, "operator", false},

	{"controller_runtime_reconcile_total", scalar, "controller-runtime", false},
	{"controller_runtime_reconcile_errors_total", scalar, "controller-runtime", false},
	{"controller_runtime_terminal_reconcile_errors_total", scalar, "controller-runtime", false},
	{"controller_runtime_reconcile_panics_total", scalar, "controller-runtime", false},
	{"controller_runtime_reconcile_time_seconds", histogram, "controller-runtime", false},
	{"controller_runtime_max_concurrent_reconciles", scalar, "controller-runtime", false},
	{"controller_runtime_active_workers", scalar, "controller-runtime", false},
	{"workqueue_depth", scalar, "controller-runtime", false},
	{"workqueue_adds_total", scalar, "controller-runtime", false},
	{"workqueue_retries_total", scalar, "controller-runtime", false},
	{"workqueue_queue_duration_seconds", histogram, "controller-runtime", false},
	{"workqueue_work_duration_seconds", histogram, "controller-runtime", false},
	{"workqueue_unfinished_work_seconds", scalar, "controller-runtime", false},
	{"workqueue_longest_running_processor_seconds", scalar, "controller-runtime", false},

	{"up", scalar, "prometheus", false},
}

// exportedNames lists every series name of the table.
func exportedNames() map[string]bool {
	out := map[string]bool{}
	for _, m := range exported {
		if m.kind == histogram {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				out[m.name+s] = true
			}
			continue
		}
		out[m.name] = true
	}
	return out
}

// describer records the names of the metrics registered with it.
type describer struct{ names []string }

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (d *describer) Register(c prometheus.Collector) error {
	d.describe(c.Describe)
	return nil
}

// describe records the names of the descriptions describe sends.
func (d *describer) describe(describe func(chan<- *prometheus.Desc)) {
	ch := make(chan *prometheus.Desc, 16)
	go func() { describe(ch); close(ch) }()
	for desc := range ch {
		if m := fqName.FindStringSubmatch(desc.String()); m != nil {
			d.names = append(d.names, m[1])
		}
	}
}

func (d *describer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = d.Register(c)
	}
}

func (d *describer) Unregister(prometheus.Collector) bool { return true }

// TestExportedTableMatchesTheCode keeps the table honest: every metric the
// operator's code registers is in it, and every operator metric in it (but
// those DESIGN.md names and the code does not register yet) is registered.
func TestExportedTableMatchesTheCode(t *testing.T) {
	d := &describer{}
	controller.NewMetrics(d)
	d.describe(controller.NewStatusMetrics().Describe)
	twilio.NewMetrics(d)
	sort.Strings(d.names)
	if len(d.names) == 0 {
		t.Fatal("no metric registered: the describer no longer reads the names")
	}
	var inTable []string
	for _, m := range exported {
		if m.source != "operator" {
			continue
		}
		if !slices.Contains(d.names, m.name) {
			if m.pending {
				t.Logf("%s: in DESIGN.md, not registered by the code yet", m.name)
				continue
			}
			t.Errorf("%s is in the table but the code does not register it", m.name)
		}
		inTable = append(inTable, m.name)
	}
	for _, n := range d.names {
		if !slices.Contains(inTable, n) {
			t.Errorf("the code registers %s: add it to the exported table", n)
		}
	}
}

// promqlParser is a plain Prometheus parser: no experimental features, so an
// expression that parses here parses in any current Prometheus.
var promqlParser = parser.NewParser(parser.Options{})

// metricNames returns the metric names an expression's selectors name.
func metricNames(t *testing.T, expr parser.Expr) []string {
	t.Helper()
	var names []string
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == "__name__" {
				name = m.Value
			}
		}
		if name == "" {
			t.Errorf("selector %s names no metric", vs)
		}
		names = append(names, name)
		return nil
	})
	return names
}

// checkQuery parses a query and checks that it names only exported metrics.
func checkQuery(t *testing.T, where, query string) {
	t.Helper()
	expr, err := promqlParser.ParseExpr(query)
	if err != nil {
		t.Errorf("%s: %q does not parse: %v", where, query, err)
		return
	}
	known := exportedNames()
	for _, n := range metricNames(t, expr) {
		if !known[n] {
			t.Errorf("%s: %q names %s, which the operator does not export", where, query, n)
		}
	}
}
