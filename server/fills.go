package server

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/server/selection"
)

// FillSource is the database side of Fills; *db.DB is one.
type FillSource interface {
	QueueFills(ctx context.Context, misses []model.FillMiss) (int, error)
	RecordCopyRequests(ctx context.Context, reqs []model.CopyRequest) error
}

var _ FillSource = (*db.DB)(nil)

// FillOptions configure Fills.
type FillOptions struct {
	// Interval is how often misses and copy requests are flushed; Timeout bounds a flush.
	Interval time.Duration
	Timeout  time.Duration
	// MaxPending bounds the misses and the copy requests held between flushes (each):
	// beyond it new ones are dropped and counted. A dropped miss is queued by the next
	// request that misses; a dropped request only makes a copy look older to expiry.
	MaxPending int
	// MaxWait is ondemand.max_wait: how long a request that missed waits for the copy
	// (0: not at all). MaxWaiters bounds the requests waiting at once; beyond it a miss is
	// answered at once.
	MaxWait    time.Duration
	MaxWaiters int
	Metrics    *Metrics
	Log        *slog.Logger
}

// Fills collects, in memory, the requests that missed an on-demand region (the region a
// client would be sent to first lacks a verified copy) and the requests sent to an
// on-demand copy, and writes them in batches in the background: misses become fill jobs
// (db.QueueFills), requests move copies' last-request times (db.RecordCopyRequests, the
// expiry clock). A request only takes a lock around a map: a slow or hung database delays
// the copies, never an answer. Requests that wait for a copy (MaxWait) are woken by the
// snapshot that shows it verified (see wake), never by asking the database.
type Fills struct {
	src     FillSource
	opt     FillOptions
	log     *slog.Logger
	metrics *Metrics

	mu       sync.Mutex
	misses   map[copyKey]struct{}
	requests map[copyKey]time.Time
	kick     chan struct{}
	flushM   sync.Mutex
	dropped  atomic.Int64

	// waiting is how many requests wait (cheap to read at every snapshot install).
	waiting atomic.Int64
	wmu     sync.Mutex
	waiters map[copyKey]*waiter
}

type copyKey struct {
	region int64
	path   string
}

// waiter is the requests waiting for one copy: ch is closed once a snapshot shows it.
type waiter struct {
	ch chan struct{}
	n  int
}

// NewFills returns a Fills; src may be nil (nothing is written: tests of the request path).
func NewFills(src FillSource, opt FillOptions) *Fills {
	if opt.Interval <= 0 {
		opt.Interval = time.Second
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 10 * time.Second
	}
	if opt.MaxPending <= 0 {
		opt.MaxPending = 100_000
	}
	if opt.MaxWaiters <= 0 {
		opt.MaxWaiters = 10_000
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	return &Fills{src: src, opt: opt, log: opt.Log, metrics: opt.Metrics,
		misses: map[copyKey]struct{}{}, requests: map[copyKey]time.Time{},
		kick: make(chan struct{}, 1), waiters: map[copyKey]*waiter{}}
}

// Missed records that a request for path would have gone to the on-demand region first,
// which does not hold it verified. Repeated misses of one copy before a flush are one.
func (f *Fills) Missed(region *selection.Region, path string) {
	if m := f.metrics; m != nil {
		m.fillMisses.WithLabelValues(region.Name).Inc()
	}
	k := copyKey{region.ID, path}
	f.mu.Lock()
	if _, ok := f.misses[k]; !ok {
		if len(f.misses) >= f.opt.MaxPending {
			f.mu.Unlock()
			f.drop()
			return
		}
		f.misses[k] = struct{}{}
	}
	f.mu.Unlock()
}

// Requested records a request sent to the on-demand region's copy of path at at.
func (f *Fills) Requested(regionID int64, path string, at time.Time) {
	k := copyKey{regionID, path}
	f.mu.Lock()
	if _, ok := f.requests[k]; !ok && len(f.requests) >= f.opt.MaxPending {
		f.mu.Unlock()
		f.drop()
		return
	}
	f.requests[k] = at
	f.mu.Unlock()
}

func (f *Fills) drop() {
	f.dropped.Add(1)
	if m := f.metrics; m != nil {
		m.fillDropped.Inc()
	}
}

// Waiting reports whether requests are waiting for copies (the store then rebuilds at
// once on their NOTIFY).
func (f *Fills) Waiting() bool { return f.waiting.Load() > 0 }

// Dropped returns how many misses and requests were dropped for want of room.
func (f *Fills) Dropped() int64 { return f.dropped.Load() }

// Kick asks the loop to flush now (a request is about to wait for its copy).
func (f *Fills) Kick() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// Run flushes every Interval, and at once when kicked, until ctx ends; then once more.
func (f *Fills) Run(ctx context.Context) {
	t := time.NewTicker(f.opt.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), f.opt.Timeout)
			f.flush(fctx, true)
			cancel()
			return
		case <-t.C:
		case <-f.kick:
		}
		fctx, cancel := context.WithTimeout(ctx, f.opt.Timeout)
		f.Flush(fctx)
		cancel()
	}
}

// Flush writes the pending misses and requests. What fails to be written stays pending
// (within MaxPending) for the next flush.
func (f *Fills) Flush(ctx context.Context) { f.flush(ctx, false) }

// flush is Flush; last says no flush follows (the server is stopping), so what fails is
// reported lost rather than kept.
func (f *Fills) flush(ctx context.Context, last bool) {
	if f.src == nil {
		return
	}
	f.flushM.Lock()
	defer f.flushM.Unlock()
	f.mu.Lock()
	misses, requests := f.misses, f.requests
	if len(misses) == 0 && len(requests) == 0 {
		f.mu.Unlock()
		return
	}
	f.misses, f.requests = make(map[copyKey]struct{}, len(misses)), make(map[copyKey]time.Time, len(requests))
	f.mu.Unlock()

	if len(misses) > 0 {
		batch := make([]model.FillMiss, 0, len(misses))
		for k := range misses {
			batch = append(batch, model.FillMiss{RegionID: k.region, Path: k.path})
		}
		n, err := f.src.QueueFills(ctx, batch)
		if err != nil {
			f.flushFailed("misses", len(batch), last, err)
			f.mu.Lock()
			for k := range misses {
				if len(f.misses) >= f.opt.MaxPending {
					break
				}
				f.misses[k] = struct{}{}
			}
			f.mu.Unlock()
		} else if n > 0 {
			f.log.Debug("fill jobs queued", slog.Int("misses", len(batch)), slog.Int("queued", n))
		}
	}
	if len(requests) > 0 {
		batch := make([]model.CopyRequest, 0, len(requests))
		for k, at := range requests {
			batch = append(batch, model.CopyRequest{RegionID: k.region, Path: k.path, At: at})
		}
		if err := f.src.RecordCopyRequests(ctx, batch); err != nil {
			f.flushFailed("requests", len(batch), last, err)
			f.mu.Lock()
			for k, at := range requests {
				if len(f.requests) >= f.opt.MaxPending {
					break
				}
				if cur, ok := f.requests[k]; !ok || cur.Before(at) {
					f.requests[k] = at
				}
			}
			f.mu.Unlock()
		} else if m := f.metrics; m != nil {
			m.copyRequests.Add(float64(len(batch)))
		}
	}
}

func (f *Fills) flushFailed(what string, n int, last bool, err error) {
	if last {
		// A lost miss is queued again by the next request for it, on any server; a lost
		// request time lets the copy expire as if unused since the one before.
		f.log.Error("fills: the last flush failed; these are lost", slog.String("what", what), slog.Int("count", n), slog.Any("err", err))
	} else {
		f.log.Warn("fills: writing to the database failed; kept for the next flush", slog.String("what", what), slog.Int("count", n), slog.Any("err", err))
	}
	if m := f.metrics; m != nil {
		m.fillFlushErrors.WithLabelValues(what).Inc()
	}
}

// Wait outcomes, as the metrics label them.
const (
	waitCopied  = "copied"  // the copy was verified in time
	waitTimeout = "timeout" // MaxWait passed
	waitGone    = "gone"    // the client went away
	waitFull    = "full"    // too many waiters: answered at once
)

// NowhereWait is how long a request waits for a copy when no verified copy and no
// origin.url could answer it meanwhile (whatever ondemand.max_wait says): the copy a miss
// queued, or metadata a push has just recorded and this server's per-file data does not
// show yet. A wait, not a 503: apt gives up after 30 s, librepo later.
const NowhereWait = 20 * time.Second

// wait waits up to MaxWait for a snapshot that shows region holding path verified,
// checking current once registered (a snapshot may have come in meanwhile). It reports
// whether the copy is there.
func (f *Fills) wait(ctx context.Context, region *selection.Region, path string, current func() *selection.Snapshot) bool {
	return f.waitUpTo(ctx, region, path, current, f.opt.MaxWait, true)
}

// waitUpTo is wait for at most max; kick flushes the pending misses first (a copy is to
// be queued; metadata a push records needs none).
func (f *Fills) waitUpTo(ctx context.Context, region *selection.Region, path string, current func() *selection.Snapshot, max time.Duration, kick bool) bool {
	if max <= 0 {
		return false
	}
	k := copyKey{region.ID, path}
	f.wmu.Lock()
	if f.waiting.Load() >= int64(f.opt.MaxWaiters) {
		f.wmu.Unlock()
		f.observeWait(waitFull, 0)
		return false
	}
	w := f.waiters[k]
	if w == nil {
		w = &waiter{ch: make(chan struct{})}
		f.waiters[k] = w
	}
	w.n++
	f.waiting.Add(1)
	f.wmu.Unlock()
	defer func() {
		f.wmu.Lock()
		w.n--
		if w.n == 0 && f.waiters[k] == w {
			delete(f.waiters, k)
		}
		f.waiting.Add(-1)
		f.wmu.Unlock()
	}()

	start := time.Now()
	if snap := current(); snap != nil && holds(snap, k) {
		f.observeWait(waitCopied, time.Since(start))
		return true
	}
	if kick {
		f.Kick() // the miss is recorded: queue its job now, not at the next tick
	}
	timer := time.NewTimer(max)
	defer timer.Stop()
	select {
	case <-w.ch:
		f.observeWait(waitCopied, time.Since(start))
		return true
	case <-timer.C:
		f.observeWait(waitTimeout, time.Since(start))
	case <-ctx.Done():
		f.observeWait(waitGone, time.Since(start))
	}
	return false
}

func (f *Fills) observeWait(result string, took time.Duration) {
	if m := f.metrics; m != nil {
		m.waits.WithLabelValues(result).Inc()
		if result != waitFull {
			m.waitDuration.Observe(took.Seconds())
		}
	}
}

// wake is called with every snapshot the store installs: it releases the requests
// waiting for copies the snapshot shows verified. Without waiters it is one atomic load.
func (f *Fills) wake(snap *selection.Snapshot) {
	if f.waiting.Load() == 0 || snap == nil || snap.Files == nil {
		return
	}
	f.wmu.Lock()
	defer f.wmu.Unlock()
	for k, w := range f.waiters {
		if holds(snap, k) {
			close(w.ch)
			delete(f.waiters, k) // later waiters for it find the copy in the snapshot
		}
	}
}

// holds reports whether snap shows the copy k verified.
func holds(snap *selection.Snapshot, k copyKey) bool {
	if snap.Files == nil {
		return false
	}
	r := snap.RegionByID(k.region)
	if r == nil {
		return false
	}
	i, ok := snap.Files.Lookup(k.path)
	return ok && snap.Verified(r, i) && r.Carries(k.path)
}
