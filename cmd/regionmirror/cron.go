package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/robfig/cron/v3"
	"github.com/spf13/cobra"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/config"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/pusher"
	"github.com/regionmirror/regionmirror/pusher/fill"
	"github.com/regionmirror/regionmirror/pusher/watch"
	"github.com/regionmirror/regionmirror/scanner"
)

func (a *app) cronCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cron",
		Short: "Run push, scan and gc on the configured schedules; safe with any number of instances",
		Long: `Run push, scan and gc on the schedules of the configuration (standard cron specs, or
descriptors such as @hourly and @every 10m). Every region's push, scan and gc holds a
PostgreSQL advisory lock, so any number of cron instances on any number of machines never
run the same job for the same region at once; an instance finding a region busy leaves it
to the other. A job still running at its next tick is not started again. SIGTERM stops
taking new jobs and lets running ones finish within cron.shutdown_timeout. SIGHUP
(systemctl reload) reads the configuration again and applies the log level and the
schedules; running jobs go on, a broken configuration is logged and the one in use stays.
With origin.path set, POST /api/v1/push (body {"paths": [...]}, a bearer token from
server.admin_tokens) queues pushes of those directories; with push.watch: true cron also
follows the origin with inotify as 'regionmirror watch' does, and a scheduled push that
finds nothing changed ends without walking the origin (the full walk still runs every
push.full_inventory_interval). With fill.workers set, cron also runs that many fill workers for its lifetime (see
'regionmirror fill'); SIGTERM stops them at once, aborting copies in flight.
/healthz and /metrics are served on cron.listen.`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			holdHangups()
			ctx := cmd.Context()
			d, err := a.openDB(ctx, true)
			if err != nil {
				return err
			}
			if a.cfg.Origin.Path == "" && a.cfg.Schedules.Push+a.cfg.Schedules.GC != "" {
				return usagef("origin.path is not set (config file, or REGIONMIRROR_ORIGIN_PATH); push and gc need it")
			}
			return (&cronDaemon{app: a, db: d}).run(ctx)
		}),
	}
}

type cronDaemon struct {
	app     *app
	db      *db.DB
	runs    *prometheus.CounterVec
	running *prometheus.GaugeVec
	lastOK  *prometheus.GaugeVec
	// lastFailed: RegionmirrorJobFailing compares it with lastOK.
	lastFailed *prometheus.GaugeVec
	duration   *prometheus.GaugeVec
}

type cronJob struct {
	name string
	spec string
	run  func(ctx context.Context) error
}

func (c *cronDaemon) jobs(s config.Schedules) []cronJob {
	all := []cronJob{{"push", s.Push, c.push}, {"scan", s.Scan, c.scan}, {"gc", s.GC, c.gc}}
	var out []cronJob
	for _, j := range all {
		if j.spec != "" {
			out = append(out, j)
		}
	}
	return out
}

func (c *cronDaemon) run(ctx context.Context) error {
	log := c.app.log
	reg := prometheus.NewRegistry()
	// The label is task, not job: Prometheus's own job label would rename a job label
	// to exported_job at the scrape.
	c.runs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "regionmirror_cron_job_runs_total",
		Help: "Scheduled job runs by task (push, scan, gc) and outcome (ok, failed)."}, []string{"task", "outcome"})
	c.running = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "regionmirror_cron_job_running",
		Help: "1 while the job runs in this instance."}, []string{"task"})
	c.lastOK = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "regionmirror_cron_job_last_success_timestamp_seconds",
		Help: "When the job last finished without failure."}, []string{"task"})
	c.lastFailed = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "regionmirror_cron_job_last_failure_timestamp_seconds",
		Help: "When the job last finished with a failure."}, []string{"task"})
	c.duration = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "regionmirror_cron_job_last_duration_seconds",
		Help: "How long the job's last run took."}, []string{"task"})
	reg.MustRegister(c.runs, c.running, c.lastOK, c.lastFailed, c.duration, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// Jobs get their own context: SIGTERM must not cut a push in half, only the
	// shutdown deadline does.
	jobCtx, cancelJobs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelJobs()
	hup, stopHangups := hangups()
	defer stopHangups()
	sched := cron.New()
	jobs := c.jobs(c.app.cfg.Schedules)
	if len(jobs) == 0 && c.app.cfg.Fill.Workers == 0 && !c.app.cfg.Push.Watch {
		return usagef("cron: every schedule is empty; set schedules.push, schedules.scan or schedules.gc (or fill.workers)")
	}
	// One wrapper per job for the daemon's life, so a job still running when a reload
	// changes its schedule is not started again beside itself.
	wrapped := map[string]cron.Job{}
	for _, j := range c.jobs(config.Schedules{Push: "-", Scan: "-", GC: "-"}) {
		wrapped[j.name] = cron.NewChain(cron.Recover(cronLogger{log}), cron.SkipIfStillRunning(cronLogger{log})).
			Then(cron.FuncJob(func() { c.runJob(jobCtx, j) }))
	}
	entries, err := c.schedule(sched, nil, jobs, wrapped)
	if err != nil {
		return err
	}
	c.presetMetrics(jobs)

	// With an origin, cron takes push triggers; with push.watch it also follows the
	// tree (the watch daemon for its life).
	var dm *watch.Daemon
	watchDone := make(chan struct{})
	if c.app.cfg.Origin.Path != "" {
		if dm, err = c.app.newWatchDaemon(ctx, c.db, c.app.cfg.Push.Watch, reg); err != nil {
			return err
		}
		go func() {
			defer close(watchDone)
			// Started again when it fails (the database unreachable at its start, the
			// event stream lost): triggers it accepted stay queued in dm meanwhile.
			for wait := time.Second; ; wait = min(2*wait, time.Minute) {
				err := dm.Run(ctx)
				if err == nil || ctx.Err() != nil {
					return
				}
				log.Error("watch stopped; starting it again", slog.Any("err", err), slog.Duration("in", wait))
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		}()
	} else {
		close(watchDone)
	}

	var srv *http.Server
	if addr := c.app.cfg.Cron.Listen; addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("cron: listen on %s: %w", addr, err)
		}
		mux := http.NewServeMux()
		c.app.daemonRoutes(mux, c.db, reg)
		if dm != nil {
			mux.Handle("/api/v1/push", c.app.triggerHandler(dm))
		}
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		log.Info("cron listening", slog.String("addr", ln.Addr().String()))
	}

	// Fill workers, with fill.workers set, run for the daemon's life. SIGTERM stops them at
	// once: copies in flight are aborted and their jobs given back for another worker.
	fillDone := make(chan struct{})
	if n := c.app.cfg.Fill.Workers; n > 0 {
		w := c.app.newFillWorker(c.db, nil)
		w.Metrics = fill.NewMetrics(reg)
		log.Info("fill workers starting", slog.String("worker", w.ID), slog.Int("workers", w.Config.Workers))
		go func() {
			defer close(fillDone)
			if s, err := w.Run(ctx, false); err != nil {
				log.Error("fill workers stopped", slog.Any("err", err))
			} else {
				log.Info("fill workers stopped", slog.Int64("copied", s.Copied), slog.Int64("failed", s.Failed))
			}
		}()
	} else {
		close(fillDone)
	}

	sched.Start()
	cur := c.app.cfg.Schedules
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-hup:
			cur, entries = c.reload(sched, cur, entries, wrapped)
		}
	}
	timeout := c.app.cfg.Cron.ShutdownTimeout.Std()
	log.Info("stopping: no new jobs; running jobs may finish", slog.Duration("timeout", timeout))
	stopped := sched.Stop()
	select {
	case <-stopped.Done():
	case <-time.After(timeout):
		log.Warn("shutdown timeout: cancelling running jobs")
		cancelJobs()
		<-stopped.Done()
	}
	<-fillDone
	<-watchDone
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
	log.Info("cron stopped")
	return nil
}

// schedule replaces the entries of sched (old) with jobs; it changes nothing when a spec
// does not parse.
func (c *cronDaemon) schedule(sched *cron.Cron, old []cron.EntryID, jobs []cronJob, wrapped map[string]cron.Job) ([]cron.EntryID, error) {
	specs := make([]cron.Schedule, len(jobs))
	for i, j := range jobs {
		s, err := cron.ParseStandard(j.spec)
		if err != nil {
			return old, fmt.Errorf("cron: schedule %s %q: %w", j.name, j.spec, err)
		}
		specs[i] = s
	}
	for _, id := range old {
		sched.Remove(id)
	}
	var out []cron.EntryID
	for i, j := range jobs {
		out = append(out, sched.Schedule(specs[i], wrapped[j.name]))
		c.app.log.Info("scheduled", slog.String("job", j.name), slog.String("spec", j.spec))
	}
	return out, nil
}

// reload is cron's answer to SIGHUP: the configuration is read again, the log level
// and the schedules apply (running jobs go on); a broken configuration, or one without
// any schedule, is logged and the one in use stays. Other settings (database, origin,
// push and scan options) are read by jobs from the configuration of the start and take
// effect on restart.
func (c *cronDaemon) reload(sched *cron.Cron, cur config.Schedules, entries []cron.EntryID, wrapped map[string]cron.Job) (config.Schedules, []cron.EntryID) {
	log := c.app.log
	log.Info("reloading (SIGHUP)")
	cfg, err := c.app.reloadConfig()
	if err == nil && len(c.jobs(cfg.Schedules)) == 0 && c.app.cfg.Fill.Workers == 0 {
		err = errors.New("every schedule is empty")
	}
	if err == nil && cfg.Schedules != cur {
		entries, err = c.schedule(sched, entries, c.jobs(cfg.Schedules), wrapped)
		if err == nil {
			c.presetMetrics(c.jobs(cfg.Schedules)) // a job scheduled only now
			c.forgetMetrics(c.jobs(cur), c.jobs(cfg.Schedules))
		}
	}
	if err != nil {
		log.Error("reload: configuration not reloaded; the one in use stays", slog.Any("err", err))
		log.Info("reloaded", slog.Bool("config", false), slog.String("log_level", c.app.level.Level().String()))
		return cur, entries
	}
	old := *c.app.cfg
	old.Schedules, old.Log = cfg.Schedules, cfg.Log
	if !reflect.DeepEqual(&old, cfg) {
		log.Warn("reload: settings other than log.level and schedules take effect on restart")
	}
	log.Info("reloaded", slog.Bool("config", true), slog.String("log_level", c.app.level.Level().String()),
		slog.String("push", cfg.Schedules.Push), slog.String("scan", cfg.Schedules.Scan), slog.String("gc", cfg.Schedules.GC))
	return cfg.Schedules, entries
}

// presetMetrics makes the series of every scheduled job exist from the start, at 0:
// alerts compare and take increase() of them without absent(), and the first failure
// is an increase from 0, not a series appearing at 1. The last success stays absent until
// there is one (a 0 would read as a success in 1970), and so does the last failure. A
// series that exists already is left as it is: a reload presets while a job may run.
func (c *cronDaemon) presetMetrics(jobs []cronJob) {
	for _, j := range jobs {
		c.runs.WithLabelValues(j.name, "ok")
		c.runs.WithLabelValues(j.name, "failed")
		c.running.WithLabelValues(j.name)
	}
}

// forgetMetrics removes the series of the jobs of old that jobs no longer schedules: a
// job taken off the schedule after a failed run would hold RegionmirrorJobFailing until
// a restart. (A run still going reports once more when it ends.)
func (c *cronDaemon) forgetMetrics(old, jobs []cronJob) {
	for _, o := range old {
		if slices.ContainsFunc(jobs, func(j cronJob) bool { return j.name == o.name }) {
			continue
		}
		c.runs.DeleteLabelValues(o.name, "ok")
		c.runs.DeleteLabelValues(o.name, "failed")
		c.lastOK.DeleteLabelValues(o.name)
		c.lastFailed.DeleteLabelValues(o.name)
		c.duration.DeleteLabelValues(o.name)
		c.running.DeleteLabelValues(o.name)
	}
}

// runJob runs one tick of a job and accounts for it.
func (c *cronDaemon) runJob(ctx context.Context, j cronJob) {
	log := c.app.log.With(slog.String("job", j.name))
	c.running.WithLabelValues(j.name).Set(1)
	defer c.running.WithLabelValues(j.name).Set(0)
	start := time.Now()
	err := j.run(ctx)
	c.duration.WithLabelValues(j.name).Set(time.Since(start).Seconds())
	if err != nil {
		c.runs.WithLabelValues(j.name, "failed").Inc()
		c.lastFailed.WithLabelValues(j.name).SetToCurrentTime()
		log.Error("job failed", slog.Any("err", err), slog.Duration("took", time.Since(start)))
		return
	}
	c.runs.WithLabelValues(j.name, "ok").Inc()
	c.lastOK.WithLabelValues(j.name).SetToCurrentTime()
	log.Info("job done", slog.Duration("took", time.Since(start)))
}

// failures joins the regions that failed; busy regions belong to another instance.
func failures(kind string, names []string) error {
	if len(names) == 0 {
		return nil
	}
	return fmt.Errorf("%s failed in %s", kind, strings.Join(names, ", "))
}

func (c *cronDaemon) push(ctx context.Context) error {
	p, regions, err := c.app.pusherFor(ctx, nil)
	if err != nil || len(regions) == 0 {
		return err
	}
	// A scheduled push ends without walking the origin when a live watcher has seen
	// every change and nothing changed since every region's last sync.
	cfg := c.app.cfg
	res, err := p.PushWith(ctx, regions, pusher.Options{Scheduled: true, OriginRoot: cfg.Origin.Path,
		FullInventoryInterval: cfg.Push.FullInventoryInterval.Std()})
	if err != nil {
		return err
	}
	if res.Note != "" {
		c.app.log.Info("push", slog.String("job", "push"), slog.Bool("noop", res.Noop), slog.String("note", res.Note))
	}
	return failures("push", regionsWhere(res.Regions, func(r *pusher.RegionResult) (string, bool) {
		return r.Region, r.Status == model.RunFailed
	}))
}

func (c *cronDaemon) scan(ctx context.Context) error {
	regions, err := c.db.ResolveRegions(ctx, nil)
	if err != nil || len(regions) == 0 {
		return err
	}
	reports, err := c.app.newScanner(c.db, false).Scan(ctx, regions)
	if err != nil {
		return err
	}
	return failures("scan", regionsWhere(reports, func(r *scanner.RegionReport) (string, bool) {
		return r.Region, r.Status == model.RunFailed
	}))
}

func (c *cronDaemon) gc(ctx context.Context) error {
	p, regions, err := c.app.pusherFor(ctx, nil)
	if err != nil || len(regions) == 0 {
		return err
	}
	results, _, err := p.GC(ctx, regions, c.app.gcOptions(false))
	if err != nil {
		return err
	}
	return failures("gc", regionsWhere(results, func(r *pusher.GCResult) (string, bool) {
		return r.Region, r.Status == model.RunFailed
	}))
}

// cronLogger adapts slog to robfig/cron's logger.
type cronLogger struct{ log *slog.Logger }

func (l cronLogger) Info(msg string, kv ...any) { l.log.Debug("cron: "+msg, kv...) }
func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error("cron: "+msg, append(kv, slog.Any("err", err))...)
}
