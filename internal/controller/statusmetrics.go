package controller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
)

// StatusMetricsControllerName names the controller that exports the status
// gauges (its controller_runtime_* and workqueue_* series carry this name).
const StatusMetricsControllerName = "conversationwebhook-status-metrics"

// Labels of the status gauges.
const (
	labelNamespace = "namespace"
	labelName      = "name"
)

// statusConditions are the condition types the status gauge exports, and
// statusValues the statuses each has a series for.
var (
	statusConditions = []string{v1alpha1.ConditionReady, v1alpha1.ConditionReconciling, v1alpha1.ConditionStalled}
	statusValues     = []metav1.ConditionStatus{metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionUnknown}
)

// StatusMetrics exports every ConversationWebhook's conditions as gauges, as
// cert-manager and external-secrets do, so that alerts can ask which objects
// are not Ready and why. It is a controller of its own on the ConversationWebhook
// informer: it reads status only, never writes, and never calls Twilio.
//
// conversationwebhook_status_condition{namespace,name,condition,status} is 1
// for the current status of Ready, Reconciling and Stalled and 0 for the two
// others. As kstatus reads them, an absent Reconciling or Stalled is False
// (the reconciler removes both once Ready), an absent Ready is Unknown.
// conversationwebhook_stalled_reason{namespace,name,reason} is 1 while
// Stalled=True with that reason, and absent otherwise. Both lose an object's
// series when the object is deleted: cardinality is bounded by the objects.
//
// It keeps three statuses and a reason per object (a gauge vector keeps nine
// labelled series, about 6 KiB an object) and is a prometheus.Gatherer, not a
// collector: a scrape builds its two families directly, in a few allocations,
// where a registry would copy and check each of the nine series an object
// has, hash them and sort them all
// (BenchmarkStatusMetricsScrape). WithStatusMetrics serves them next to a
// registry's.
type StatusMetrics struct {
	reader    client.Reader
	condition *prometheus.Desc
	stalled   *prometheus.Desc

	mu      sync.Mutex
	objects map[types.NamespacedName]objectConditions
}

// objectConditions is what the gauges say of one object: the index in
// statusValues of each statusConditions' current status, and the stalled
// reason ("" unless Stalled=True).
type objectConditions struct {
	current [3]uint8 // len(statusConditions)
	reason  string
}

// Names and help of the status families.
const (
	conditionMetric = "conversationwebhook_status_condition"
	conditionHelp   = "The status of each ConversationWebhook's Ready, Reconciling and Stalled conditions: " +
		"1 for the current status (True, False or Unknown), 0 for the others."
	stalledMetric = "conversationwebhook_stalled_reason"
	stalledHelp   = "1 while a ConversationWebhook is Stalled=True, with the condition's reason."
)

var (
	_ prometheus.Gatherer = (*StatusMetrics)(nil)
	// conditionPairs and statusPairs are the label pairs shared by every
	// object's series, in the order of statusConditions and statusValues.
	conditionPairs = labelPairs("condition", statusConditions...)
	statusPairs    = labelPairs("status", statusValues...)
)

// NewStatusMetrics creates the gauges; SetupWithManager starts following the
// objects, and WithStatusMetrics serves them.
func NewStatusMetrics() *StatusMetrics {
	return &StatusMetrics{
		condition: prometheus.NewDesc(conditionMetric, conditionHelp, []string{labelNamespace, labelName, "condition", "status"}, nil),
		stalled:   prometheus.NewDesc(stalledMetric, stalledHelp, []string{labelNamespace, labelName, "reason"}, nil),
		objects:   map[types.NamespacedName]objectConditions{},
	}
}

// SetupWithManager runs the exporter on every change of a ConversationWebhook,
// status included. Like every controller it runs on the elected leader only,
// so one replica exports the gauges.
func (s *StatusMetrics) SetupWithManager(mgr ctrl.Manager) error {
	s.reader = mgr.GetClient()
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.ConversationWebhook{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Named(StatusMetricsControllerName).
		Complete(s)
}

// Reconcile sets the object's gauges from its conditions, or removes them
// once it is gone.
func (s *StatusMetrics) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	o := &v1alpha1.ConversationWebhook{}
	if err := s.reader.Get(ctx, req.NamespacedName, o); err != nil {
		if apierrors.IsNotFound(err) {
			s.forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	s.record(req.NamespacedName, o.Status.Conditions)
	return ctrl.Result{}, nil
}

// record keeps one object's conditions for the next scrape.
func (s *StatusMetrics) record(key types.NamespacedName, conditions []metav1.Condition) {
	var oc objectConditions
	for i, t := range statusConditions {
		current := metav1.ConditionFalse
		if t == v1alpha1.ConditionReady {
			current = metav1.ConditionUnknown
		}
		c := meta.FindStatusCondition(conditions, t)
		if c != nil {
			current = c.Status
		}
		v := slices.Index(statusValues, current)
		if v < 0 { // not a status the API allows: Unknown
			v = slices.Index(statusValues, metav1.ConditionUnknown)
		}
		oc.current[i] = uint8(v)
		if t == v1alpha1.ConditionStalled && c != nil && c.Status == metav1.ConditionTrue {
			oc.reason = c.Reason
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objects[key] = oc
}

// forget removes every series of a deleted object.
func (s *StatusMetrics) forget(key types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.objects, key)
}

// Describe sends the descriptions of the two families (their names, help and
// labels), as a prometheus.Collector's Describe does.
func (s *StatusMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- s.condition
	ch <- s.stalled
}

// statusEntry is one object's key and gauges, as a scrape reads them.
type statusEntry struct {
	key types.NamespacedName
	oc  objectConditions
}

// Gather implements prometheus.Gatherer: nine condition series per object and
// its stalled reason while it has one, grouped by object, objects in namespace
// and name order (a registry would sort them by label values; Prometheus reads
// series in any order). Families without a series are left out (the text
// format has none).
func (s *StatusMetrics) Gather() ([]*dto.MetricFamily, error) {
	s.mu.Lock()
	entries := make([]statusEntry, 0, len(s.objects))
	stalled := 0
	for key, oc := range s.objects {
		entries = append(entries, statusEntry{key, oc})
		if oc.reason != "" {
			stalled++
		}
	}
	s.mu.Unlock()
	if len(entries) == 0 {
		return nil, nil
	}
	slices.SortFunc(entries, func(a, b statusEntry) int {
		return cmp.Or(cmp.Compare(a.key.Namespace, b.key.Namespace), cmp.Compare(a.key.Name, b.key.Name))
	})

	// One allocation each for every series, its label slices, and the
	// name and namespace pairs; the condition, status and value are shared.
	const perObject = 3 * 3 // len(statusConditions) * len(statusValues)
	series := make([]dto.Metric, perObject*len(entries)+stalled)
	pointers := make([]*dto.Metric, len(series))
	labels := make([]*dto.LabelPair, 4*perObject*len(entries)+3*stalled)
	keyPairs := make([]dto.LabelPair, 2*len(entries)+stalled)
	n := perObject * len(entries)
	// Capacity capped: appending to one family never writes into the other.
	conditions := &dto.MetricFamily{Name: new(conditionMetric), Help: new(conditionHelp), Type: dto.MetricType_GAUGE.Enum(),
		Metric: pointers[:n:n]}
	reasons := &dto.MetricFamily{Name: new(stalledMetric), Help: new(stalledHelp), Type: dto.MetricType_GAUGE.Enum(),
		Metric: pointers[n:]}
	m, l, r := 0, 0, 0 // next series, label and reason series
	for i := range entries {
		e := &entries[i]
		name, namespace := &keyPairs[2*i], &keyPairs[2*i+1]
		name.Name, name.Value = &nameLabel, &e.key.Name
		namespace.Name, namespace.Value = &namespaceLabel, &e.key.Namespace
		for c := range statusConditions {
			for v := range statusValues {
				// Label pairs sorted by name, as the registry sorts them;
				// capacity capped so that appending to one copies.
				copy(labels[l:], []*dto.LabelPair{conditionPairs[c], name, namespace, statusPairs[v]})
				series[m].Label, series[m].Gauge = labels[l:l+4:l+4], gaugeZero
				if int(e.oc.current[c]) == v {
					series[m].Gauge = gaugeOne
				}
				pointers[m] = &series[m]
				m, l = m+1, l+4
			}
		}
		if e.oc.reason != "" {
			reason := &keyPairs[2*len(entries)+r]
			reason.Name, reason.Value = &reasonLabel, &e.oc.reason
			copy(labels[l:], []*dto.LabelPair{name, namespace, reason})
			k := n + r
			series[k].Label, series[k].Gauge = labels[l:l+3:l+3], gaugeOne
			pointers[k] = &series[k]
			l, r = l+3, r+1
		}
	}
	if stalled == 0 {
		return []*dto.MetricFamily{conditions}, nil
	}
	return []*dto.MetricFamily{conditions, reasons}, nil
}

// The label names of the pairs a scrape builds, shared by them all.
var nameLabel, namespaceLabel, reasonLabel = labelName, labelNamespace, "reason"

// gaugeZero and gaugeOne are the two values a status series takes, shared by
// every series: the encoders read them only.
var gaugeZero, gaugeOne = &dto.Gauge{Value: new(0.0)}, &dto.Gauge{Value: new(1.0)}

func labelPair(name, value string) *dto.LabelPair {
	return &dto.LabelPair{Name: &name, Value: &value}
}

func labelPairs[S ~string](name string, values ...S) []*dto.LabelPair {
	out := make([]*dto.LabelPair, len(values))
	for i, v := range values {
		out[i] = labelPair(name, string(v))
	}
	return out
}

// WithStatusMetrics returns reg serving s's families as well: it registers
// with reg, and gathers reg's families and s's, in name order. s's
// descriptions are registered with reg, so that reg refuses a collector that
// exports one of s's names when it registers (and s twice), as it refused one
// before; a family of reg with such a name is still an error when gathered.
func WithStatusMetrics(reg metrics.RegistererGatherer, s *StatusMetrics) (metrics.RegistererGatherer, error) {
	if err := reg.Register(statusNames{s}); err != nil {
		return nil, fmt.Errorf("registering the status metrics: %w", err)
	}
	return &withStatus{RegistererGatherer: reg, status: s}, nil
}

// statusNames registers the status families' descriptions with a registry;
// it collects nothing (WithStatusMetrics gathers them).
type statusNames struct{ s *StatusMetrics }

func (n statusNames) Describe(ch chan<- *prometheus.Desc) { n.s.Describe(ch) }
func (statusNames) Collect(chan<- prometheus.Metric)      {}

type withStatus struct {
	metrics.RegistererGatherer
	status *StatusMetrics
}

func (w *withStatus) Gather() ([]*dto.MetricFamily, error) {
	families, err := w.RegistererGatherer.Gather()
	own, _ := w.status.Gather() // never fails
	for _, f := range families {
		if f.GetName() == conditionMetric || f.GetName() == stalledMetric {
			return families, errors.Join(err, fmt.Errorf("a collector exports %s, which the status metrics serve", f.GetName()))
		}
	}
	families = append(families, own...)
	slices.SortFunc(families, func(a, b *dto.MetricFamily) int { return cmp.Compare(a.GetName(), b.GetName()) })
	return families, err
}
