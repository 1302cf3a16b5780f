package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/pusher"
)

// Pusher is what the daemon pushes with: *pusher.Pusher.
type Pusher interface {
	PushWith(ctx context.Context, regions []*model.Region, opts pusher.Options) (*pusher.Result, error)
}

var _ Pusher = (*pusher.Pusher)(nil)

// Daemon pushes what changes under an origin when it changes: the tree watcher's events
// and publishers' triggers are coalesced by scope (Debouncer), and every scope due at
// once goes into one push. With Watch set it registers as a watcher of the origin, so
// scheduled pushes may skip the walk while it has seen every change.
type Daemon struct {
	DB     *db.DB
	Pusher Pusher
	Root   string // origin.path
	Settle time.Duration
	// Watch follows the tree with inotify; false runs only the trigger queue.
	Watch bool
	Log   *slog.Logger
	// Metrics (nil: unregistered ones) are read by the trigger handler: set them
	// before Run.
	Metrics *Metrics
	Host    string
	PID     int
	// ShutdownTimeout: when Run's context ends, a running push may finish this long.
	ShutdownTimeout time.Duration
	// BeatInterval and RepoInterval default to 5 s and 30 s.
	BeatInterval, RepoInterval time.Duration

	mu       sync.Mutex
	queued   []string // triggered keys not yet taken by the loop
	wake     chan struct{}
	initOnce sync.Once

	// holdEvents, when set, stops the loop consuming file system events until it is
	// closed (tests use it to make the kernel's queue overflow).
	holdEvents chan struct{}
	// Test hooks: pushStarted is told each push's keys as it starts, eventSeen each
	// event's scope key, overflowed runs once coverage was dropped for an overflow.
	pushStarted func(keys []string, at time.Time)
	eventSeen   func(key string, at time.Time)
	overflowed  func()
	// registered is told each watcher record the daemon registers; addWatch replaces
	// inotify_add_watch (tests inject the watch limit, which they cannot reach for real
	// without changing a machine-wide sysctl).
	registered func(*db.Watcher)
	addWatch   func(fw *fsnotify.Watcher, path string) error
}

func (d *Daemon) init() {
	d.initOnce.Do(func() {
		d.wake = make(chan struct{}, 1)
		if d.Log == nil {
			d.Log = slog.New(slog.DiscardHandler)
		}
		if d.Metrics == nil {
			d.Metrics = NewMetrics(nil)
		}
		if d.BeatInterval <= 0 {
			d.BeatInterval = 5 * time.Second
		}
		if d.RepoInterval <= 0 {
			d.RepoInterval = 30 * time.Second
		}
		if d.Settle <= 0 {
			d.Settle = 2 * time.Second
		}
		if d.ShutdownTimeout <= 0 {
			d.ShutdownTimeout = 5 * time.Minute
		}
	})
}

// Trigger queues pushes of origin directories (ResolveScope's; nil is the whole origin).
// It returns at once; the push follows once the scopes are quiet for TriggerQuiet.
func (d *Daemon) Trigger(scope []string) {
	d.init()
	if len(scope) == 0 {
		scope = []string{""}
	}
	d.mu.Lock()
	d.queued = append(d.queued, scope...)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *Daemon) takeTriggers() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	q := d.queued
	d.queued = nil
	return q
}

// job is one push: the keys it settles (none for a retry) and its scope.
type job struct {
	keys  []string
	scope []string
	retry *regionRetry
}

type outcome struct {
	job    job
	err    error
	failed []string // regions busy or failed
}

// Run watches and pushes until ctx ends; then a running push may finish within
// ShutdownTimeout and the watcher's record is removed.
func (d *Daemon) Run(ctx context.Context) error {
	d.init()
	log := d.Log
	deb := NewDebouncer(d.Settle)
	var rq retries

	var tree *Tree
	var events <-chan fsnotify.Event
	var errs <-chan error
	if d.Watch {
		t, err := openTree(d.Root, log, d.addWatch)
		if err != nil {
			return err
		}
		// Closes the tree in use at the end (a reopened one, see Check below).
		defer func() { tree.Close() }()
		tree, events, errs = t, t.Events(), t.Errors()
		d.Metrics.Dirs.Set(float64(t.Dirs()))
		log.Info("watching the origin", slog.String("root", d.Root), slog.Int("directories", t.Dirs()))
	}

	repos, err := d.DB.ListRepositories(ctx)
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}

	// The watcher's record: coverage is claimed from since, taken after every watch is
	// in place; a change before it is found by the start push, which walks after it.
	var w *db.Watcher
	var since *time.Time
	var lost <-chan struct{}
	register := func() error {
		nw, err := d.DB.RegisterWatcher(ctx, d.Root, d.Host, d.PID)
		if err != nil {
			return err
		}
		w, lost, since = nw, nw.Context().Done(), nil
		if d.registered != nil {
			d.registered(nw)
		}
		if !tree.Limited() {
			now, err := d.DB.Now(ctx)
			if err != nil {
				return err
			}
			since = &now
		}
		return nil
	}
	lastPending := -1
	limited := tree != nil && tree.Limited()
	beat := func() {
		n := deb.Pending()
		lastPending = n
		d.Metrics.Pending.Set(float64(n))
		if w == nil {
			d.Metrics.Covering.Set(0)
			return
		}
		if err := w.Beat(ctx, since, n); err != nil {
			log.Warn("watcher heartbeat", slog.Any("err", err))
			return
		}
		if since != nil {
			d.Metrics.Covering.Set(1)
		} else {
			d.Metrics.Covering.Set(0)
		}
	}
	// dropCoverage stops vouching at once (events were lost, or some directory is not
	// watched); vouchAgain vouches from now, when registered and every directory is
	// watched, and queues the full push that walks after that moment and finds what was
	// missed.
	dropCoverage := func() {
		since = nil
		beat()
	}
	vouchAgain := func() {
		if w != nil && !tree.Limited() {
			if now, err := d.DB.Now(ctx); err == nil {
				since = &now
			}
		}
		deb.Immediate("", time.Now())
	}
	if d.Watch {
		if err := register(); err != nil {
			return fmt.Errorf("watch: %w", err)
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if w != nil {
				if err := w.Close(cctx); err != nil {
					log.Warn("close the watcher record", slog.Any("err", err))
				}
			}
			d.Metrics.Covering.Set(0)
		}()
		// One full push at start: it walks after since, so together with the events
		// from since on nothing is missed.
		deb.Immediate("", time.Now())
		beat()
	}

	// Pushes get their own context: the end of ctx lets a running push finish.
	pushCtx, cancelPushes := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelPushes()
	done := make(chan outcome, 1)
	running := false
	failures := 0 // consecutive pushes that returned an error
	start := func(j job) {
		running = true
		if d.pushStarted != nil {
			d.pushStarted(j.keys, time.Now())
		}
		go func() { done <- d.push(pushCtx, j) }()
	}

	beatTick := time.NewTicker(d.BeatInterval)
	defer beatTick.Stop()
	repoTick := time.NewTicker(d.RepoInterval)
	defer repoTick.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var reRegister <-chan time.Time
	hold := d.holdEvents

	for {
		evc := events
		if hold != nil {
			evc = nil
		}
		select {
		case <-ctx.Done():
			if running {
				log.Info("stopping: the running push may finish", slog.Duration("timeout", d.ShutdownTimeout))
				select {
				case <-done:
				case <-time.After(d.ShutdownTimeout):
					log.Warn("shutdown timeout: cancelling the running push")
					cancelPushes()
					<-done
				}
			}
			return nil
		case <-hold:
			hold = nil
		case ev, ok := <-evc:
			if !ok {
				return errors.New("watch: the event stream closed")
			}
			d.Metrics.Events.Inc()
			now := time.Now()
			for _, c := range tree.handle(ev) {
				key := scopeKey(c, repos)
				deb.Event(key, now)
				if d.eventSeen != nil {
					d.eventSeen(key, now)
				}
			}
			if lim := tree.Limited(); lim != limited {
				limited = lim
				if lim {
					// Some directory is not watched (the watch limit, a directory it may
					// not read): no coverage until it is.
					log.Warn("not every directory of the origin is watched: coverage dropped; scheduled pushes walk")
					dropCoverage()
				} else if w != nil {
					vouchAgain() // every directory is watched again
				}
			}
			if tree.RootLost() {
				// Its record goes with Run (the deferred Close): scheduled pushes walk.
				return fmt.Errorf("watch: the origin %s was removed or renamed away; nothing under it is watched", d.Root)
			}
			d.Metrics.Dirs.Set(float64(tree.Dirs()))
		case err, ok := <-errs:
			if !ok {
				return errors.New("watch: the event stream closed")
			}
			if !errors.Is(err, fsnotify.ErrEventOverflow) {
				log.Warn("watch", slog.Any("err", err))
				break
			}
			// Events were lost: coverage ends at once, starts again now, and a full
			// push (walking after the new since) finds what was missed.
			d.Metrics.Overflows.Inc()
			log.Warn("the kernel's event queue overflowed: a full push follows")
			if w != nil {
				dropCoverage()
				if d.overflowed != nil {
					d.overflowed()
				}
			}
			vouchAgain()
		case <-d.wake:
			now := time.Now()
			for _, k := range d.takeTriggers() {
				deb.Trigger(scopeKey(change{Path: k, Dir: true}, repos), now)
			}
		case o := <-done:
			running = false
			now := time.Now()
			switch {
			case o.err != nil:
				failures++
				d.Metrics.Pushes.WithLabelValues("failed").Inc()
				log.Error("push failed; its scope stays pending", slog.Any("scope", o.job.scope), slog.Any("err", o.err))
				deb.Done(false, now, now.Add(retryBackoff(failures)))
				if o.job.retry != nil && !rq.failed(o.job.retry.scope, o.job.retry.regions, o.job.retry, now) {
					log.Warn("giving up the retry; the scheduled push will do it", slog.Any("regions", o.job.retry.regions))
				}
			default:
				failures = 0
				deb.Done(true, now, now)
				outcome := "ok"
				if len(o.failed) > 0 {
					outcome = "partial"
					if !rq.failed(o.job.scope, o.failed, o.job.retry, now) {
						log.Warn("giving up the retry; the scheduled push will do it", slog.Any("regions", o.failed))
					}
				}
				d.Metrics.Pushes.WithLabelValues(outcome).Inc()
			}
		case <-beatTick.C:
			if tree != nil {
				if err := tree.Check(d.Root); err != nil {
					// The watches no longer see the origin: stop vouching at once, watch it
					// again from scratch, and push it in full (walking after the new since).
					log.Warn("the origin is no longer watched as it was: watching it again, then a full push", slog.Any("why", err))
					d.Metrics.Overflows.Inc()
					dropCoverage()
					t, err := openTree(d.Root, log, d.addWatch)
					if err != nil {
						return fmt.Errorf("watch: %w", err)
					}
					tree.Close()
					tree, events, errs = t, t.Events(), t.Errors()
					d.Metrics.Dirs.Set(float64(t.Dirs()))
					limited = t.Limited()
					vouchAgain()
				}
			}
			beat()
		case <-repoTick.C:
			if r, err := d.DB.ListRepositories(ctx); err == nil {
				repos = r
			} else {
				log.Warn("list repositories", slog.Any("err", err))
			}
		case <-lost:
			log.Warn("the watcher's lock was lost: no coverage claimed until registered again")
			w, lost, since = nil, nil, nil
			d.Metrics.Covering.Set(0)
			reRegister = time.After(0)
		case <-reRegister:
			reRegister = nil
			if err := register(); err != nil {
				log.Warn("register the watcher again", slog.Any("err", err))
				reRegister = time.After(5 * time.Second)
			} else {
				log.Info("watcher registered again")
				beat()
			}
		case <-timer.C:
		}

		now := time.Now()
		if !running {
			if keys := deb.Take(now); len(keys) > 0 {
				start(job{keys: keys, scope: scopeOf(keys, repos)})
			} else if r := rq.take(now); r != nil {
				start(job{scope: r.scope, retry: r})
			}
		}
		if n := deb.Pending(); (n == 0) != (lastPending == 0) {
			beat() // at once when pending goes 0→n or n→0
		}
		timer.Stop()
		if !running {
			next, ok := deb.Next()
			if rn, rok := rq.next(); rok && (!ok || rn.Before(next)) {
				next, ok = rn, true
			}
			if ok {
				timer.Reset(max(time.Until(next), time.Millisecond))
			}
		}
	}
}

// scopeOf is the push scope of due keys: nil when one is the whole origin.
func scopeOf(keys []string, repos []model.Repository) []string {
	if slices.Contains(keys, "") {
		return nil
	}
	return model.NormalizeScope(keys, repos)
}

// push runs one push with the regions as configured now; a retry goes only to its
// regions.
func (d *Daemon) push(ctx context.Context, j job) outcome {
	o := outcome{job: j}
	regions, err := d.DB.ResolveRegions(ctx, nil)
	if err != nil {
		o.err = err
		return o
	}
	if j.retry != nil {
		regions = slices.DeleteFunc(regions, func(r *model.Region) bool { return !slices.Contains(j.retry.regions, r.Name) })
	}
	if len(regions) == 0 {
		return o
	}
	log := d.Log.With(slog.Any("scope", j.scope))
	start := time.Now()
	res, err := d.Pusher.PushWith(ctx, regions, pusher.Options{Scope: j.scope, OriginRoot: d.Root})
	if err != nil {
		o.err = err
		return o
	}
	for _, r := range res.Regions {
		if r.Status == model.RunBusy || r.Status == model.RunFailed {
			o.failed = append(o.failed, r.Region)
		}
	}
	log.Info("pushed", slog.Int("regions", len(regions)), slog.Any("busy_or_failed", o.failed), slog.Duration("took", time.Since(start)))
	return o
}
