package server

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/regionmirror/regionmirror/internal/accesslog"
	"github.com/regionmirror/regionmirror/internal/model"
)

// Metrics are the server's Prometheus collectors, on a registry of their own so that
// tests and several servers in one process do not collide.
type Metrics struct {
	Registry   *prometheus.Registry
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	buildTime  *prometheus.GaugeVec
	builds     *prometheus.CounterVec
	geoipLooks *prometheus.CounterVec
	// The two geoipLooks counters, resolved once: the label lookup is a hash per request.
	geoipFound, geoipUnknown prometheus.Counter
	probeUp                  *prometheus.GaugeVec
	// On-demand regions (see Fills).
	fillMisses      *prometheus.CounterVec
	fillDropped     prometheus.Counter
	copyRequests    prometheus.Counter
	fillFlushErrors *prometheus.CounterVec
	waits           *prometheus.CounterVec
	waitDuration    prometheus.Histogram
	// The request series met so far (few: endpoints are route patterns, codes and tiers
	// are bounded), so that a request costs one map read rather than label hashing.
	series readMap[requestKey, *requestSeries]
	// now is the clock repositories' states are judged at (tests set it).
	now func() time.Time
}

type requestKey struct {
	endpoint string
	code     int
	tier     string
}

type requestSeries struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

// observeRequest counts a request and its duration.
func (m *Metrics) observeRequest(endpoint string, code int, tier string, took time.Duration) {
	k := requestKey{endpoint, code, tier}
	rs, ok := m.series.load(k)
	if !ok {
		// Two requests may both get here: the collectors hand both the same series.
		rs = &requestSeries{
			count:    m.requests.WithLabelValues(endpoint, strconv.Itoa(code), tier),
			duration: m.duration.WithLabelValues(endpoint),
		}
		m.series.store(k, rs)
	}
	rs.count.Inc()
	rs.duration.Observe(took.Seconds())
}

// NewMetrics registers the collectors. The snapshot and database gauges read store at
// every scrape, and the build counters count store's builds: NewMetrics makes itself
// store's build observer, so the store is created first and the metrics from it.
func NewMetrics(store *Store) *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry(), now: time.Now}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "regionmirror_http_requests_total",
		Help: "HTTP requests by endpoint, status code and selection tier (location, country, netblock, geoip, weight, none; - when no selection ran).",
	}, []string{"endpoint", "code", "tier"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "regionmirror_http_request_duration_seconds",
		Help:    "Time to answer HTTP requests, by endpoint.",
		Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1},
	}, []string{"endpoint"})
	m.buildTime = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "regionmirror_snapshot_build_seconds",
		Help: "How long the last successful build took: kind snapshot (every table but files, and the swap) or files (the per-file data).",
	}, []string{"kind"})
	m.builds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "regionmirror_snapshot_builds_total",
		Help: "Snapshot build attempts by kind and result (ok, error).",
	}, []string{"kind", "result"})
	m.geoipLooks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "regionmirror_geoip_lookups_total",
		Help: "GeoIP lookups by result (found, unknown).",
	}, []string{"result"})
	m.geoipFound, m.geoipUnknown = m.geoipLooks.WithLabelValues("found"), m.geoipLooks.WithLabelValues("unknown")
	m.probeUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "regionmirror_region_reachable",
		Help: "1 when this server's prober reaches the region's public URL, 0 when it left the region out of answers (public, enabled regions; absent when probing is off).",
	}, []string{"region"})
	m.fillMisses = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "regionmirror_ondemand_misses_total",
		Help: "Requests whose first region was on-demand and did not hold the file verified (answered elsewhere, a copy queued), by region.",
	}, []string{"region"})
	m.fillDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "regionmirror_ondemand_dropped_total",
		Help: "Misses and copy requests not kept because the pending set was full.",
	})
	m.copyRequests = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "regionmirror_ondemand_copy_requests_recorded_total",
		Help: "Last-request times of on-demand copies written to the database (one per copy and flush).",
	})
	m.fillFlushErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "regionmirror_ondemand_flush_errors_total",
		Help: "Failed writes of misses (the fill queue) or copy requests to the database, by what (misses, requests).",
	}, []string{"what"})
	m.waits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "regionmirror_ondemand_waits_total",
		Help: "First requests that waited for their copy (ondemand.max_wait), by result: copied, timeout, gone (the client left), full (too many waiting: not waited).",
	}, []string{"result"})
	m.waitDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "regionmirror_ondemand_wait_seconds",
		Help:    "How long first requests waited for their copy (ondemand.max_wait).",
		Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25},
	})
	age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "regionmirror_snapshot_age_seconds",
		Help: "Age of the data the serving snapshot was built from (-1 before the first snapshot).",
	}, func() float64 {
		if snap := store.Snapshot(); snap != nil {
			return time.Since(snap.ReadAt).Seconds()
		}
		return -1
	})
	dbUp := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "regionmirror_database_up",
		Help: "1 when the last snapshot rebuild reached the database, else 0.",
	}, func() float64 {
		if store.Status().DBError == "" {
			return 1
		}
		return 0
	})
	m.Registry.MustRegister(m.requests, m.duration, m.buildTime, m.builds, m.geoipLooks, m.probeUp, age, dbUp,
		m.fillMisses, m.fillDropped, m.copyRequests, m.fillFlushErrors, m.waits, m.waitDuration,
		&repoStateCollector{store: store, now: func() time.Time { return m.now() }},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	store.metrics.Store(m)
	return m
}

// RepositoryStates are the values of regionmirror_repository_state's state label.
var RepositoryStates = []string{model.RepoFresh, model.RepoAlternate, model.RepoStale, model.RepoMissing}

// repositoryState is a freshness cell's state (selection.Cell) as the metric says it: what
// clients get from the region. Unverified (nothing verified there) is stale, as a copy
// clients would refuse; unreachable (the last check read nothing) is missing; excluded
// ("" here) has no series, the region does not carry the repository.
func repositoryState(cell string) string {
	switch cell {
	case model.RepoFresh, model.RepoAlternate, model.RepoStale, model.RepoMissing:
		return cell
	case model.RepoUnverified:
		return model.RepoStale
	case model.RepoUnreachable:
		return model.RepoMissing
	}
	return ""
}

var repoStateDesc = prometheus.NewDesc("regionmirror_repository_state",
	"What the region serves of the repository, as this server's snapshot judges it: 1 for the current state (fresh, alternate, stale: refused or not verified, missing: none found or unreadable), 0 for the others; no series where the region does not carry the repository.",
	[]string{"region", "repo", "arch", "state"}, nil)

// repoStateCollector exports regionmirror_repository_state from the serving snapshot at
// every scrape (nothing before the first snapshot).
type repoStateCollector struct {
	store *Store
	now   func() time.Time
}

func (c *repoStateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- repoStateDesc }

func (c *repoStateCollector) Collect(ch chan<- prometheus.Metric) {
	snap := c.store.Snapshot()
	if snap == nil {
		return
	}
	now := c.now()
	for _, repo := range snap.Repos {
		for _, cell := range snap.Cells(repo, now) {
			st := repositoryState(cell.State)
			if st == "" {
				continue
			}
			for _, s := range RepositoryStates {
				v := 0.0
				if s == st {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(repoStateDesc, prometheus.GaugeValue, v, cell.Region.Name, repo.Name, repo.Arch, s)
			}
		}
	}
}

// observeBuild records a snapshot build (see Store.built).
func (m *Metrics) observeBuild(kind string, took time.Duration, err error) {
	if err != nil {
		m.builds.WithLabelValues(kind, "error").Inc()
		return
	}
	m.builds.WithLabelValues(kind, "ok").Inc()
	m.buildTime.WithLabelValues(kind).Set(took.Seconds())
}

// WatchRequestLog exports the request log's counts: lines written, and lines dropped
// because the log fell behind its output (log.access_when_full: drop).
func (m *Metrics) WatchRequestLog(l *accesslog.Logger) {
	m.Registry.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "regionmirror_access_log_written_total",
			Help: "Request log lines written.",
		}, func() float64 { return float64(l.Written()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "regionmirror_access_log_dropped_total",
			Help: "Request log lines dropped because the log fell behind its output (log.access_when_full: drop).",
		}, func() float64 { return float64(l.Dropped()) }))
}
