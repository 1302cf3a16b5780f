package server

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
)

// ActivitySource is the database side of Activity; *db.DB is one.
type ActivitySource interface {
	// AddUsage adds one round's deltas in one transaction.
	AddUsage(ctx context.Context, delta model.UsageDelta) error
	RedirectCounts(ctx context.Context) ([]model.RedirectCount, error)
	RecentRuns(ctx context.Context, kind string, limit int) ([]model.Run, error)
	LastRuns(ctx context.Context) ([]model.LastRun, error)
}

var _ ActivitySource = (*db.DB)(nil)

// ActivityOptions configure an Activity.
type ActivityOptions struct {
	// Interval is how often counts are flushed and runs re-read; Timeout bounds each round.
	Interval time.Duration
	Timeout  time.Duration
	// RecentRuns is how many runs the dashboard lists.
	RecentRuns int
	Log        *slog.Logger
	// Now is the clock counts are dated by (time.Now when nil): tests move it across hours
	// and weeks.
	Now func() time.Time
}

// Activity counts redirects in memory and, in the background, adds them to the
// database's totals and reads back the totals and recent runs for the pages. Requests only
// ever touch atomic counters and an atomic pointer: a slow or hung database delays the
// dashboard's figures, never a redirect.
type Activity struct {
	src    ActivitySource
	opt    ActivityOptions
	log    *slog.Logger
	counts sync.Map // target name ("" for the origin) -> *redirectCount
	view   atomic.Pointer[ActivityView]

	// countme requests not yet taken by a flush: one per machine per week, so a mutex
	// costs nothing that matters (and only requests carrying countme= take it).
	countmeM sync.Mutex
	countme  map[model.CountmeKey]int64
	week     atomic.Pointer[weekSpan] // the ISO week countme requests were last counted in

	flushM sync.Mutex // held by a flush; guards the fields below
	// windowStart is when the pending redirect counts were last taken: what a flush takes
	// was counted since, and is added to windowStart's hour. Run flushes at every hour's
	// start, so a window crosses an hour only by the time a flush takes.
	windowStart time.Time
	// Deltas of failed flushes, added to the next one's (totals go back to the atomics).
	carryHours   map[model.HourKey]model.HourCount
	carryCountme map[model.CountmeKey]int64
}

// weekSpan is an ISO week: [start, end).
type weekSpan struct{ start, end time.Time }

type redirectCount struct {
	pendingReqs, pendingBytes, pendingMisses atomic.Int64 // not yet in the database
	reqs, bytes, misses                      atomic.Int64 // since this process started
	// What a failed flush put back into pending and already holds in carryHours: the
	// next flush leaves it out of its hour (guarded by flushM).
	carriedReqs, carriedBytes int64
}

// FillStatsSource is what an ActivitySource also offers when it has on-demand regions'
// figures (*db.DB does); they are read in the same background round.
type FillStatsSource interface {
	FillStats(ctx context.Context) ([]model.FillStats, error)
}

var _ FillStatsSource = (*db.DB)(nil)

// UsageSource is what an ActivitySource also offers when it keeps usage figures (*db.DB
// does); the background round reads the last UsageWeeks weeks and UsageHours hours.
type UsageSource interface {
	UsageSince(ctx context.Context, from, hoursFrom, to time.Time, repo string) (model.UsageStats, error)
}

var _ UsageSource = (*db.DB)(nil)

// How much usage history the server holds in memory for the dashboard and the stats API
// (the CLI reads any window from the database).
const (
	UsageWeeks = 104
	UsageHours = 31 * 24
)

// ActivityView is what the background loop last read, plus this process's counts.
type ActivityView struct {
	ReadAt     time.Time // zero before the first successful read
	Error      string    // the last round's error ("" when it worked)
	Totals     []model.RedirectCount
	RecentRuns []model.Run
	LastRuns   []model.LastRun
	// FillStats are the on-demand regions' copies and jobs (nil when the source has none).
	FillStats []model.FillStats
	// Usage is the held usage history (nil when the source keeps none or before the first
	// read): From is UsageWeeks weeks back, hours from UsageHours back.
	Usage *model.UsageStats
	// Publications are the last PublicationsPerRepo repomd.xml versions of every
	// repository and where they were served, by repository ID (nil when the source has none).
	Publications map[int64][]model.Publication
}

// NewActivity returns an Activity; src may be nil (counting only, nothing persisted).
func NewActivity(src ActivitySource, opt ActivityOptions) *Activity {
	if opt.Interval <= 0 {
		opt.Interval = 10 * time.Second
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 5 * time.Second
	}
	if opt.RecentRuns <= 0 {
		opt.RecentRuns = 10
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	a := &Activity{src: src, opt: opt, log: opt.Log, countme: map[model.CountmeKey]int64{},
		windowStart: opt.Now(), carryHours: map[model.HourKey]model.HourCount{}, carryCountme: map[model.CountmeKey]int64{}}
	a.view.Store(&ActivityView{})
	return a
}

// Redirected counts one redirect of a file of size bytes to a region ("" for the origin).
func (a *Activity) Redirected(target string, size int64) {
	v, ok := a.counts.Load(target)
	if !ok {
		v, _ = a.counts.LoadOrStore(target, new(redirectCount))
	}
	c := v.(*redirectCount)
	c.pendingReqs.Add(1)
	c.pendingBytes.Add(size)
	c.reqs.Add(1)
	c.bytes.Add(size)
}

// Countme counts one request that carried countme=bucket (1..4) for a repository the
// server answered, in the ISO week of now.
func (a *Activity) Countme(repo, arch string, bucket int) {
	if bucket < 1 || bucket > 4 {
		return
	}
	now := a.opt.Now()
	w := a.week.Load()
	if w == nil || now.Before(w.start) || !now.Before(w.end) {
		// A new week (or the first request): WeekStart costs more than the rest here.
		start := model.WeekStart(now)
		w = &weekSpan{start: start, end: start.AddDate(0, 0, 7)}
		a.week.Store(w)
	}
	k := model.CountmeKey{Repo: repo, Arch: arch, Week: w.start, Bucket: bucket}
	a.countmeM.Lock()
	a.countme[k]++
	a.countmeM.Unlock()
}

// Missed counts one request whose first region, an on-demand one, lacked the file and
// was answered elsewhere.
func (a *Activity) Missed(region string) {
	c := a.counter(region)
	c.pendingMisses.Add(1)
	c.misses.Add(1)
}

func (a *Activity) counter(target string) *redirectCount {
	v, ok := a.counts.Load(target)
	if !ok {
		v, _ = a.counts.LoadOrStore(target, new(redirectCount))
	}
	return v.(*redirectCount)
}

// Local returns this process's counts since it started, by target.
func (a *Activity) Local() []model.RedirectCount {
	var out []model.RedirectCount
	a.counts.Range(func(k, v any) bool {
		c := v.(*redirectCount)
		out = append(out, model.RedirectCount{Region: k.(string), Requests: c.reqs.Load(), Bytes: c.bytes.Load(), Misses: c.misses.Load()})
		return true
	})
	slices.SortFunc(out, func(x, y model.RedirectCount) int { return cmp.Compare(x.Region, y.Region) })
	return out
}

// View returns the last state read from the database; it never blocks.
func (a *Activity) View() *ActivityView { return a.view.Load() }

// Totals returns the redirect totals: the database's as last read plus what this process
// counted since and has not flushed yet; this process's own counts when the database was
// never read.
func (a *Activity) Totals() []model.RedirectCount {
	v := a.View()
	if v.ReadAt.IsZero() {
		return a.Local()
	}
	byName := map[string]model.RedirectCount{}
	for _, t := range v.Totals {
		byName[t.Region] = t
	}
	a.counts.Range(func(k, val any) bool {
		c := val.(*redirectCount)
		t := byName[k.(string)]
		t.Region = k.(string)
		t.Requests += c.pendingReqs.Load()
		t.Bytes += c.pendingBytes.Load()
		t.Misses += c.pendingMisses.Load()
		byName[t.Region] = t
		return true
	})
	out := make([]model.RedirectCount, 0, len(byName))
	for _, t := range byName {
		out = append(out, t)
	}
	slices.SortFunc(out, func(x, y model.RedirectCount) int { return cmp.Compare(x.Region, y.Region) })
	return out
}

// Run flushes and re-reads every Interval until ctx ends, then flushes once more.
func (a *Activity) Run(ctx context.Context) {
	a.Round(ctx)
	t := time.NewTicker(a.opt.Interval)
	defer t.Stop()
	// A round at every hour's start, so the hourly figures go to the hour they were made in.
	hour := time.NewTimer(untilNextHour(time.Now()))
	defer hour.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), a.opt.Timeout)
			if err := a.flush(fctx); err != nil {
				a.log.Error("activity: the last flush failed; the counts since the one before are lost", slog.Any("err", err))
			}
			cancel()
			return
		case <-t.C:
			a.Round(ctx)
		case <-hour.C:
			a.Round(ctx)
			hour.Reset(untilNextHour(time.Now()))
		}
	}
}

// Round flushes the pending counts and reads totals and runs, within Timeout.
func (a *Activity) Round(parent context.Context) {
	if a.src == nil {
		return
	}
	ctx, cancel := context.WithTimeout(parent, a.opt.Timeout)
	defer cancel()
	next := &ActivityView{}
	err := a.flush(ctx)
	if err == nil {
		next.Totals, err = a.src.RedirectCounts(ctx)
	}
	if err == nil {
		next.RecentRuns, err = a.src.RecentRuns(ctx, "", a.opt.RecentRuns)
	}
	if err == nil {
		next.LastRuns, err = a.src.LastRuns(ctx)
	}
	if fs, ok := a.src.(FillStatsSource); ok && err == nil {
		next.FillStats, err = fs.FillStats(ctx)
	}
	if us, ok := a.src.(UsageSource); ok && err == nil {
		var u model.UsageStats
		from, to := model.UsageWindow(a.opt.Now(), UsageWeeks)
		// Weeks go further back than hours: HourlyFrom says where the hours start.
		if u, err = us.UsageSince(ctx, from, to.Add(-UsageHours*time.Hour), to, ""); err == nil {
			next.Usage = &u
		}
	}
	if ps, ok := a.src.(PublicationsSource); ok && err == nil {
		next.Publications, err = readPublications(ctx, ps)
	}
	if err != nil {
		if parent.Err() != nil {
			return // shutting down; Run flushes once more
		}
		a.log.Warn("activity: database round failed; the pages show older figures", slog.Any("err", err))
		prev := *a.View()
		prev.Error = err.Error()
		a.view.Store(&prev)
		return
	}
	next.ReadAt = time.Now()
	a.view.Store(next)
}

// untilNextHour is the time from now to a moment after the next hour starts.
func untilNextHour(now time.Time) time.Duration {
	return now.Truncate(time.Hour).Add(time.Hour + 50*time.Millisecond).Sub(now)
}

// flush moves the pending counts to the database; on failure they stay pending.
func (a *Activity) flush(ctx context.Context) error {
	if a.src == nil {
		return nil
	}
	a.flushM.Lock()
	defer a.flushM.Unlock()
	now := a.opt.Now()
	hour := a.windowStart.UTC().Truncate(time.Hour)
	a.windowStart = now
	var (
		delta model.UsageDelta
		from  []*redirectCount
	)
	a.counts.Range(func(k, v any) bool {
		c := v.(*redirectCount)
		r, b, m := c.pendingReqs.Swap(0), c.pendingBytes.Swap(0), c.pendingMisses.Swap(0)
		if r != 0 || b != 0 || m != 0 {
			delta.Totals = append(delta.Totals, model.RedirectCount{Region: k.(string), Requests: r, Bytes: b, Misses: m})
			from = append(from, c)
		}
		// Pending holds what a failed flush put back for the totals; its hours are in
		// carryHours already.
		hr, hb := r-c.carriedReqs, b-c.carriedBytes
		c.carriedReqs, c.carriedBytes = 0, 0
		if hr != 0 || hb != 0 {
			hk := model.HourKey{Hour: hour, Region: k.(string)}
			h := a.carryHours[hk]
			h.HourKey, h.Requests, h.Bytes = hk, h.Requests+hr, h.Bytes+hb
			a.carryHours[hk] = h
		}
		return true
	})
	a.countmeM.Lock()
	taken := a.countme
	a.countme = map[model.CountmeKey]int64{}
	a.countmeM.Unlock()
	for k, n := range taken {
		a.carryCountme[k] += n
	}
	for _, h := range a.carryHours {
		delta.Hours = append(delta.Hours, h)
	}
	for k, n := range a.carryCountme {
		delta.Countme = append(delta.Countme, model.CountmeCount{CountmeKey: k, Hits: n})
	}
	if delta.Empty() {
		return nil
	}
	if err := a.src.AddUsage(ctx, delta); err != nil {
		// The totals go back to the atomics (Totals shows them meanwhile); the hours and
		// countme stay carried.
		for i, c := range from {
			c.pendingReqs.Add(delta.Totals[i].Requests)
			c.pendingBytes.Add(delta.Totals[i].Bytes)
			c.pendingMisses.Add(delta.Totals[i].Misses)
			c.carriedReqs, c.carriedBytes = delta.Totals[i].Requests, delta.Totals[i].Bytes
		}
		return err
	}
	clear(a.carryHours)
	clear(a.carryCountme)
	return nil
}
