package watch

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the watcher's and the trigger API's; NewMetrics registers them.
type Metrics struct {
	Events    prometheus.Counter
	Pushes    *prometheus.CounterVec // by outcome: ok, partial (some region busy or failed), failed
	Overflows prometheus.Counter
	Dirs      prometheus.Gauge
	Pending   prometheus.Gauge
	Covering  prometheus.Gauge
	Triggers  *prometheus.CounterVec // by HTTP status code
}

// NewMetrics creates the metrics and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Events: prometheus.NewCounter(prometheus.CounterOpts{Name: "regionmirror_watch_events_total",
			Help: "File system events seen under the origin."}),
		Pushes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "regionmirror_watch_pushes_total",
			Help: "Pushes started by the watcher or a trigger, by outcome (ok, partial: some region busy or failed, failed)."}, []string{"outcome"}),
		Overflows: prometheus.NewCounter(prometheus.CounterOpts{Name: "regionmirror_watch_overflows_total",
			Help: "Kernel event queue overflows; each leads to a full push."}),
		Dirs: prometheus.NewGauge(prometheus.GaugeOpts{Name: "regionmirror_watch_directories",
			Help: "Directories under the origin being watched."}),
		Pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "regionmirror_watch_pending_scopes",
			Help: "Changed scopes not yet pushed (queued or in flight)."}),
		Covering: prometheus.NewGauge(prometheus.GaugeOpts{Name: "regionmirror_watch_covering",
			Help: "1 while this watcher claims to have seen every change under the origin."}),
		Triggers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "regionmirror_push_trigger_requests_total",
			Help: "POST /api/v1/push requests by status code."}, []string{"code"}),
	}
	if reg != nil {
		reg.MustRegister(m.Events, m.Pushes, m.Overflows, m.Dirs, m.Pending, m.Covering, m.Triggers)
	}
	return m
}
