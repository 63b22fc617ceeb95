package controller

import (
	"context"
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
// It is a collector, not gauge vectors: it keeps three statuses and a reason
// per object (a gauge vector keeps nine labelled series, about 6 KiB an
// object) and builds the series when scraped, sharing the label pairs of an
// object's series (BenchmarkStatusMetricsScrape).
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

var (
	_ prometheus.Collector = (*StatusMetrics)(nil)
	// conditionPairs and statusPairs are the label pairs shared by every
	// object's series, in the order of statusConditions and statusValues.
	conditionPairs = labelPairs("condition", statusConditions...)
	statusPairs    = labelPairs("status", statusValues...)
)

// NewStatusMetrics creates the gauges, registers them with reg, and reads
// objects through reader (the manager's cached client).
func NewStatusMetrics(reader client.Reader, reg prometheus.Registerer) *StatusMetrics {
	s := &StatusMetrics{
		reader: reader,
		condition: prometheus.NewDesc("conversationwebhook_status_condition",
			"The status of each ConversationWebhook's Ready, Reconciling and Stalled conditions: "+
				"1 for the current status (True, False or Unknown), 0 for the others.",
			[]string{labelNamespace, labelName, "condition", "status"}, nil),
		stalled: prometheus.NewDesc("conversationwebhook_stalled_reason",
			"1 while a ConversationWebhook is Stalled=True, with the condition's reason.",
			[]string{labelNamespace, labelName, "reason"}, nil),
		objects: map[types.NamespacedName]objectConditions{},
	}
	reg.MustRegister(s)
	return s
}

// SetupWithManager runs the exporter on every change of a ConversationWebhook,
// status included. Like every controller it runs on the elected leader only,
// so one replica exports the gauges.
func (s *StatusMetrics) SetupWithManager(mgr ctrl.Manager) error {
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

// Describe implements prometheus.Collector.
func (s *StatusMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- s.condition
	ch <- s.stalled
}

// Collect implements prometheus.Collector: nine condition series per object,
// and its stalled reason while it has one.
func (s *StatusMetrics) Collect(ch chan<- prometheus.Metric) {
	type entry struct {
		key types.NamespacedName
		oc  objectConditions
	}
	s.mu.Lock()
	entries := make([]entry, 0, len(s.objects))
	for key, oc := range s.objects {
		entries = append(entries, entry{key, oc})
	}
	s.mu.Unlock()
	for _, e := range entries {
		// Label pairs sorted by name, as the registry wants them; the series
		// of one object in one allocation, sent by pointer.
		name, namespace := labelPair(labelName, e.key.Name), labelPair(labelNamespace, e.key.Namespace)
		const series = 3 * 3 // len(statusConditions) * len(statusValues)
		labels := make([]*dto.LabelPair, 0, 4*series)
		gauges := make([]gauge, 0, series)
		for i := range statusConditions {
			for v := range statusValues {
				labels = append(labels, conditionPairs[i], name, namespace, statusPairs[v])
				n := len(labels)
				// Capacity capped: a wrapping registerer appends to a series' labels.
				gauges = append(gauges, gauge{desc: s.condition, labels: labels[n-4 : n : n], value: gaugeZero})
				if int(e.oc.current[i]) == v {
					gauges[len(gauges)-1].value = gaugeOne
				}
				ch <- &gauges[len(gauges)-1]
			}
		}
		if e.oc.reason != "" {
			ch <- &gauge{desc: s.stalled, labels: []*dto.LabelPair{name, namespace, labelPair("reason", e.oc.reason)}, value: gaugeOne}
		}
	}
}

// gauge is one series built at scrape time. Its label pairs and value may be
// shared with other series: the registry and the encoders copy before they
// change anything, and a wrapping registerer (prometheus.WrapRegistererWith)
// appends to the label slice, whose capacity ends with the series' own.
type gauge struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair
	value  *dto.Gauge
}

// gaugeZero and gaugeOne are the two values a status series takes.
var gaugeZero, gaugeOne = &dto.Gauge{Value: new(0.0)}, &dto.Gauge{Value: new(1.0)}

func (g *gauge) Desc() *prometheus.Desc { return g.desc }

func (g *gauge) Write(out *dto.Metric) error {
	out.Label, out.Gauge = g.labels, g.value
	return nil
}

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
