package controller

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
)

// statusGauges holds the status gauges of the running manager: fresh each
// time startManager runs.
var statusGauges *StatusMetrics

// statusSeries returns the status gauges of one object in the running manager.
func statusSeries(o client.Object) map[string]float64 {
	GinkgoHelper()
	out, err := gathered(statusGauges, client.ObjectKeyFromObject(o))
	Expect(err).NotTo(HaveOccurred())
	return out
}

// gathered returns one object's series of reg, as `metric{label=value,...}` →
// value, labels sorted, namespace and name left out.
func gathered(reg prometheus.Gatherer, key types.NamespacedName) (map[string]float64, error) {
	families, err := reg.Gather()
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var ns, name string
			var rest []string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "namespace":
					ns = l.GetValue()
				case "name":
					name = l.GetValue()
				default:
					rest = append(rest, l.GetName()+"="+l.GetValue())
				}
			}
			if ns != key.Namespace || name != key.Name {
				continue
			}
			sort.Strings(rest)
			out[fmt.Sprintf("%s{%s}", f.GetName(), strings.Join(rest, ","))] = m.GetGauge().GetValue()
		}
	}
	return out, nil
}

// gauges is what statusSeries returns for an object whose Ready,
// Reconciling and Stalled conditions have these statuses, Stalled=True with
// stalledReason when it is not empty.
func gauges(ready, reconciling, stalled, stalledReason string) map[string]float64 {
	out := map[string]float64{}
	for cond, current := range map[string]string{"Ready": ready, "Reconciling": reconciling, "Stalled": stalled} {
		for _, s := range []string{"True", "False", "Unknown"} {
			v := 0.0
			if s == current {
				v = 1
			}
			out[fmt.Sprintf("conversationwebhook_status_condition{condition=%s,status=%s}", cond, s)] = v
		}
	}
	if stalledReason != "" {
		out["conversationwebhook_stalled_reason{reason="+stalledReason+"}"] = 1
	}
	return out
}

var _ = Describe("status metrics", func() {
	ctx := context.Background()

	It("follow an object through Ready, Stalled, Ready again and deletion", func() {
		t := newTenant(1)
		o := t.object("gauged")
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		waitReady(o)
		eventually := func(want map[string]float64) {
			GinkgoHelper()
			Eventually(func() map[string]float64 { return statusSeries(o) }).
				WithTimeout(20 * time.Second).WithPolling(100 * time.Millisecond).Should(Equal(want))
		}
		eventually(gauges("True", "False", "False", ""))

		By("its conversation removed from Twilio, then its spec edited: Stalled")
		fake.RemoveConversation(t.convs[0])
		editURL(o, "https://hooks.example.com/gauged-2")
		waitStalled(o, v1alpha1.ReasonConversationNotFound)
		eventually(gauges("False", "False", "True", v1alpha1.ReasonConversationNotFound))

		By("the conversation back and the spec edited again: Ready, the stalled reason gone")
		fake.AddConversation(testAccount, t.convs[0])
		editURL(o, "https://hooks.example.com/gauged-3")
		waitReady(o)
		eventually(gauges("True", "False", "False", ""))

		By("deleted: every series of the object gone")
		Expect(k8sClient.Delete(ctx, o)).To(Succeed())
		waitGone(o)
		eventually(map[string]float64{})
	})

	It("labels no SID, URL or secret", func() {
		families, err := statusGauges.Gather()
		Expect(err).NotTo(HaveOccurred())
		for _, f := range families {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					Expect(l.GetName()).To(BeElementOf("namespace", "name", "condition", "status", "reason"))
				}
			}
		}
	})
})

// editURL changes the object's spec.url, a spec edit that makes the
// reconciler act again.
func editURL(o *v1alpha1.ConversationWebhook, url string) {
	GinkgoHelper()
	Eventually(func() error {
		cur := get(o)
		cur.Spec.URL = url
		return k8sClient.Update(context.Background(), cur)
	}).WithTimeout(10 * time.Second).Should(Succeed())
}

// TestStatusMetricsRecord walks one object's conditions through the gauges
// without an API server: absent conditions, a stalled reason that changes,
// recovery, and deletion; a second object is left alone throughout.
func TestStatusMetricsRecord(t *testing.T) {
	s := NewStatusMetrics()
	reg := s
	a := types.NamespacedName{Namespace: "shop", Name: "orders"}
	b := types.NamespacedName{Namespace: "shop", Name: "billing"}
	cond := func(typ string, status metav1.ConditionStatus, reason string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: status, Reason: reason}
	}
	stalled := func(reason string) []metav1.Condition {
		return []metav1.Condition{cond(v1alpha1.ConditionReady, metav1.ConditionFalse, reason),
			cond(v1alpha1.ConditionStalled, metav1.ConditionTrue, reason)}
	}
	ready := []metav1.Condition{cond(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonAvailable)}
	s.record(b, ready)

	for _, step := range []struct {
		name       string
		conditions []metav1.Condition // nil with forget
		forget     bool
		want       map[string]float64
	}{
		{"no condition yet: Ready Unknown, the others False", []metav1.Condition{}, false,
			gauges("Unknown", "False", "False", "")},
		{"reconciling", []metav1.Condition{cond(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonCreating),
			cond(v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonCreating)}, false,
			gauges("False", "True", "False", "")},
		{"stalled", stalled(v1alpha1.ReasonConversationNotFound), false,
			gauges("False", "False", "True", v1alpha1.ReasonConversationNotFound)},
		{"stalled for another reason: one reason series", stalled(v1alpha1.ReasonConfigurationRejected), false,
			gauges("False", "False", "True", v1alpha1.ReasonConfigurationRejected)},
		{"ready", ready, false, gauges("True", "False", "False", "")},
		{"a status the API does not allow: Unknown", []metav1.Condition{cond(v1alpha1.ConditionReady, "Maybe", v1alpha1.ReasonAvailable)}, false,
			gauges("Unknown", "False", "False", "")},
		{"deleted", nil, true, map[string]float64{}},
	} {
		if step.forget {
			s.forget(a)
		} else {
			s.record(a, step.conditions)
		}
		got, err := gathered(reg, a)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, step.want) {
			t.Errorf("%s: got %v, want %v", step.name, got, step.want)
		}
		if other, _ := gathered(reg, b); !reflect.DeepEqual(other, gauges("True", "False", "False", "")) {
			t.Errorf("%s: the other object's series changed: %v", step.name, other)
		}
	}
}

// The families a scrape builds are the ones client_golang's own gauge vectors
// give for the same objects, series for series and in the text format byte for
// byte once lines are sorted (labels sorted by name, as the registry keeps
// them), and pass the checks prometheus.Gatherers makes of any gatherer.
func TestStatusMetricsGatherAsGaugeVectorsWould(t *testing.T) {
	s := NewStatusMetrics()
	ref := prometheus.NewRegistry()
	condition := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: conditionMetric, Help: conditionHelp},
		[]string{labelNamespace, labelName, "condition", "status"})
	stalled := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: stalledMetric, Help: stalledHelp},
		[]string{labelNamespace, labelName, "reason"})
	ref.MustRegister(condition, stalled)
	reasons := []string{"", v1alpha1.ReasonConversationNotFound, "", v1alpha1.ReasonConfigurationRejected, ""}
	statuses := []metav1.ConditionStatus{metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionUnknown}
	for i := range 25 {
		// Two namespaces that share names, in no particular order.
		key := types.NamespacedName{Namespace: []string{"shop", "billing"}[i%2], Name: fmt.Sprintf("hook-%d", (i*7)%13)}
		var conditions []metav1.Condition
		want := [3]metav1.ConditionStatus{metav1.ConditionUnknown, metav1.ConditionFalse, metav1.ConditionFalse}
		reason := reasons[i%len(reasons)]
		for c, typ := range statusConditions {
			if (i+c)%4 == 0 {
				continue // absent
			}
			st := statuses[(i+c)%3]
			if typ == v1alpha1.ConditionStalled && reason != "" {
				st = metav1.ConditionTrue
			}
			conditions = append(conditions, metav1.Condition{Type: typ, Status: st, Reason: reason})
			want[c] = st
		}
		if want[2] != metav1.ConditionTrue {
			reason = ""
		}
		s.record(key, conditions)
		stalled.DeletePartialMatch(prometheus.Labels{labelNamespace: key.Namespace, labelName: key.Name})
		for c, typ := range statusConditions {
			for _, v := range statusValues {
				value := 0.0
				if v == want[c] {
					value = 1
				}
				condition.WithLabelValues(key.Namespace, key.Name, typ, string(v)).Set(value)
			}
		}
		if reason != "" {
			stalled.WithLabelValues(key.Namespace, key.Name, reason).Set(1)
		}
	}

	got, err := s.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d families, want 2 (conditions and stalled reasons)", len(got))
	}
	for _, f := range got {
		if cap(f.Metric) != len(f.Metric) {
			t.Errorf("%s: room for %d more series, which appending would write into another family's", f.GetName(), cap(f.Metric)-len(f.Metric))
		}
		for _, m := range f.GetMetric() {
			if !slices.IsSortedFunc(m.GetLabel(), func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) }) {
				t.Errorf("%s: labels not sorted by name: %v", f.GetName(), m.GetLabel())
			}
		}
	}
	if _, err := (prometheus.Gatherers{s}).Gather(); err != nil {
		t.Errorf("prometheus.Gatherers refuses the families: %v", err)
	}
	if a, b := scrapeText(t, s), scrapeText(t, ref); a != b {
		t.Errorf("the scrape differs from gauge vectors'\n got:\n%s\nwant:\n%s", a, b)
	}
}

// scrapeText renders g in the text format, lines sorted.
func scrapeText(t *testing.T, g prometheus.Gatherer) string {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, f := range families {
		if _, err := expfmt.MetricFamilyToText(&b, f); err != nil {
			t.Fatal(err)
		}
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// WithStatusMetrics serves a registry's families and the status families in
// name order, registers with the registry, leaves an empty status out, and
// refuses a collector that exports a status family's name: when it registers,
// or, if it describes nothing (an unchecked collector), when gathered.
func TestWithStatusMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := NewStatusMetrics()
	served, err := WithStatusMetrics(reg, s)
	if err != nil {
		t.Fatal(err)
	}
	names := func() []string {
		t.Helper()
		families, err := served.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, f := range families {
			out = append(out, f.GetName())
		}
		return out
	}
	served.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "zz_total", Help: "z"}),
		prometheus.NewCounter(prometheus.CounterOpts{Name: "aa_total", Help: "a"}))
	if got, want := names(), []string{"aa_total", "zz_total"}; !slices.Equal(got, want) {
		t.Errorf("no object: %v, want %v", got, want)
	}
	s.record(types.NamespacedName{Namespace: "shop", Name: "orders"},
		[]metav1.Condition{{Type: v1alpha1.ConditionStalled, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonConversationNotFound}})
	if got, want := names(), []string{"aa_total", stalledMetric, conditionMetric, "zz_total"}; !slices.Equal(got, want) {
		t.Errorf("one stalled object: %v, want %v", got, want)
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
	if err := served.Register(prometheus.NewGauge(prometheus.GaugeOpts{Name: conditionMetric, Help: "another"})); err == nil {
		t.Errorf("a gauge named %s registered", conditionMetric)
	}
	if _, err := WithStatusMetrics(reg, NewStatusMetrics()); err == nil {
		t.Error("the status metrics served twice by one registry")
	}
	if got, want := names(), []string{"aa_total", stalledMetric, conditionMetric, "zz_total"}; !slices.Equal(got, want) {
		t.Errorf("after the refusals: %v, want %v", got, want)
	}
	served.MustRegister(unchecked{prometheus.NewGauge(prometheus.GaugeOpts{Name: stalledMetric, Help: "another"})})
	if _, err := served.Gather(); err == nil || !strings.Contains(err.Error(), stalledMetric) {
		t.Errorf("an unchecked collector exporting %s: %v, want an error naming it", stalledMetric, err)
	}
}

// unchecked is a collector that describes nothing: a registry cannot check
// its names when it registers.
type unchecked struct{ prometheus.Metric }

func (unchecked) Describe(chan<- *prometheus.Desc) {}

func (u unchecked) Collect(ch chan<- prometheus.Metric) { ch <- u.Metric }

// BenchmarkStatusMetricsScrape renders the status gauges of 10,000 objects
// as the metrics endpoint does: what one scrape costs the manager.
func BenchmarkStatusMetricsScrape(b *testing.B) {
	s := NewStatusMetrics()
	conditions := []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonAvailable}}
	for i := range 10000 {
		s.record(types.NamespacedName{Namespace: fmt.Sprintf("team-%d", i%50), Name: fmt.Sprintf("webhook-%05d", i)}, conditions)
	}
	served, err := WithStatusMetrics(prometheus.NewRegistry(), s)
	if err != nil {
		b.Fatal(err)
	}
	handler := promhttp.HandlerFor(served, promhttp.HandlerOpts{})
	b.ReportAllocs()
	req := httptest.NewRequestWithContext(b.Context(), http.MethodGet, "/metrics", nil)
	for b.Loop() {
		w := &countingWriter{header: http.Header{}}
		handler.ServeHTTP(w, req)
		if w.code != http.StatusOK || w.n < 10000*9*50 {
			b.Fatalf("scrape: %d, %d bytes", w.code, w.n)
		}
	}
}

// countingWriter is a ResponseWriter that keeps only the status and the
// length of the body (a scrape's bytes are not the manager's memory).
type countingWriter struct {
	header http.Header
	code   int
	n      int
}

func (w *countingWriter) Header() http.Header { return w.header }

func (w *countingWriter) WriteHeader(code int) { w.code = code }

func (w *countingWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.n += len(p)
	return len(p), nil
}
