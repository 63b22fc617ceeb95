package controller

import (
	"context"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
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
type StatusMetrics struct {
	reader    client.Reader
	condition *prometheus.GaugeVec
	stalled   *prometheus.GaugeVec

	mu      sync.Mutex
	reasons map[types.NamespacedName]string // the stalled reason exported per object
}

// NewStatusMetrics creates the gauges, registers them with reg, and reads
// objects through reader (the manager's cached client).
func NewStatusMetrics(reader client.Reader, reg prometheus.Registerer) *StatusMetrics {
	s := &StatusMetrics{
		reader: reader,
		condition: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "conversationwebhook_status_condition",
			Help: "The status of each ConversationWebhook's Ready, Reconciling and Stalled conditions: " +
				"1 for the current status (True, False or Unknown), 0 for the others.",
		}, []string{labelNamespace, labelName, "condition", "status"}),
		stalled: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "conversationwebhook_stalled_reason",
			Help: "1 while a ConversationWebhook is Stalled=True, with the condition's reason.",
		}, []string{labelNamespace, labelName, "reason"}),
		reasons: map[types.NamespacedName]string{},
	}
	reg.MustRegister(s.condition, s.stalled)
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

// record exports one object's conditions.
func (s *StatusMetrics) record(key types.NamespacedName, conditions []metav1.Condition) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range statusConditions {
		current := metav1.ConditionFalse
		if t == v1alpha1.ConditionReady {
			current = metav1.ConditionUnknown
		}
		if c := meta.FindStatusCondition(conditions, t); c != nil {
			current = c.Status
		}
		for _, v := range statusValues {
			value := 0.0
			if v == current {
				value = 1
			}
			s.condition.WithLabelValues(key.Namespace, key.Name, t, string(v)).Set(value)
		}
	}
	reason := ""
	if c := meta.FindStatusCondition(conditions, v1alpha1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue {
		reason = c.Reason
	}
	if old, ok := s.reasons[key]; ok && old != reason {
		s.stalled.DeleteLabelValues(key.Namespace, key.Name, old)
		delete(s.reasons, key)
	}
	if reason != "" {
		s.stalled.WithLabelValues(key.Namespace, key.Name, reason).Set(1)
		s.reasons[key] = reason
	}
}

// forget removes every series of a deleted object.
func (s *StatusMetrics) forget(key types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	match := prometheus.Labels{labelNamespace: key.Namespace, labelName: key.Name}
	s.condition.DeletePartialMatch(match)
	s.stalled.DeletePartialMatch(match)
	delete(s.reasons, key)
}
