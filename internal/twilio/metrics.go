package twilio

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// accountLabel names a Twilio account (its verified AC… SID) in the account metrics.
const accountLabel = "account"

// Metrics are the client's Prometheus metrics.
type Metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	inflight  *prometheus.GaugeVec
	ceiling   *prometheus.GaugeVec
	throttled *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg (controller-runtime's
// metrics.Registry in the manager).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "twilio_api_requests_total",
			Help: "Twilio API requests by operation and HTTP status code (\"error\" when no answer arrived).",
		}, []string{"operation", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "twilio_api_request_duration_seconds",
			Help:    "Duration of Twilio API requests by operation.",
			Buckets: []float64{0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"operation"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "twilio_account_inflight",
			Help: "Twilio requests in flight per Twilio account (its verified AC… SID).",
		}, []string{accountLabel}),
		ceiling: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "twilio_account_inflight_limit",
			Help: "The adaptive ceiling of requests in flight per Twilio account: lowered on 429, raised after a run of successes.",
		}, []string{accountLabel}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "twilio_account_throttled_total",
			Help: "Twilio answers 429 (error 20429: too many requests, or too many in flight) per Twilio account.",
		}, []string{accountLabel}),
	}
	reg.MustRegister(m.requests, m.duration, m.inflight, m.ceiling, m.throttled)
	return m
}

func (m *Metrics) observeAccount(account string, inflight, ceiling int, throttled bool) {
	if m == nil {
		return
	}
	m.inflight.WithLabelValues(account).Set(float64(inflight))
	m.ceiling.WithLabelValues(account).Set(float64(ceiling))
	if throttled {
		m.throttled.WithLabelValues(account).Inc()
	}
}

func (m *Metrics) observe(op, code string, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(op, code).Inc()
	m.duration.WithLabelValues(op).Observe(d.Seconds())
}
