package controller

import "github.com/prometheus/client_golang/prometheus"

// Drift correction actions.
const (
	// DriftUpdate is a webhook edited behind the operator's back, restored in place.
	DriftUpdate = "update"
	// DriftRecreate is a webhook deleted behind the operator's back, created again.
	DriftRecreate = "recreate"
)

// Metrics are the controller's own Prometheus metrics.
type Metrics struct {
	driftCorrections *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{driftCorrections: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "conversationwebhook_drift_corrections_total",
		Help: "Webhooks changed or deleted outside the operator and corrected, by action (update, recreate).",
	}, []string{"action"})}
	reg.MustRegister(m.driftCorrections)
	return m
}

func (m *Metrics) driftCorrected(action string) {
	if m != nil {
		m.driftCorrections.WithLabelValues(action).Inc()
	}
}
