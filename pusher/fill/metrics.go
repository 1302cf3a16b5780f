package fill

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the workers' Prometheus series; a nil *Metrics records nothing.
type Metrics struct {
	jobs     *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers the fill series with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "regionmirror_fill_jobs_total",
			Help: "Fill jobs worked by outcome (copied, retry, failed)."}, []string{"outcome"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "regionmirror_fill_copy_bytes_total",
			Help: "Bytes copied into on-demand regions, by source (server-side, origin)."}, []string{"via"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "regionmirror_fill_copy_duration_seconds",
			Help: "Time of a successful copy, from claim to record, by source.", Buckets: prometheus.ExponentialBuckets(0.01, 4, 9)},
			[]string{"via"}),
	}
	reg.MustRegister(m.jobs, m.bytes, m.duration)
	return m
}

func (m *Metrics) done(via string, size int64, took time.Duration) {
	if m == nil {
		return
	}
	m.jobs.WithLabelValues("copied").Inc()
	m.bytes.WithLabelValues(via).Add(float64(size))
	m.duration.WithLabelValues(via).Observe(took.Seconds())
}

func (m *Metrics) failed(final bool) {
	if m == nil {
		return
	}
	outcome := "retry"
	if final {
		outcome = "failed"
	}
	m.jobs.WithLabelValues(outcome).Inc()
}
