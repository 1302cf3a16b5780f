package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/filetable"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/server/selection"
)

// Loader is what the store reads the database through; *db.DB is one.
type Loader interface {
	LoadSnapshot(ctx context.Context) (*model.SnapshotData, error)
	LoadFileTable(ctx context.Context) (*filetable.Table, error)
	UpdateFileTable(ctx context.Context, base *filetable.Table) (*filetable.Table, db.FileTableChanges, error)
	ReconcileFileTable(ctx context.Context, base *filetable.Table) (*filetable.Table, db.FileTableChanges, error)
	Listen(ctx context.Context, ready func(), fn func(payload string)) error
}

var _ Loader = (*db.DB)(nil)

// StoreOptions configure a Store.
type StoreOptions struct {
	Policy selection.Policy
	// Interval rebuilds the snapshot even without notifications (a safety net).
	Interval time.Duration
	// Debounce collects a burst of notifications (a push records objects in many small
	// transactions) into one rebuild.
	Debounce time.Duration
	// LoadFiles loads the per-file data (the origin inventory and verified copies).
	LoadFiles bool
	// FilesMinInterval is the least time between two updates of the per-file data (each
	// reads only what changed, but copies the parts it changes).
	FilesMinInterval time.Duration
	// FilesMaxAge reads the per-file data whole at least this often and compares it with
	// the updated copy: a safety net under the updates (it costs the seconds of a full
	// read, but not its memory).
	FilesMaxAge time.Duration
	// TableFile keeps the per-file data on disk ("" for none): written after every full or
	// reconciling read, and at start read and brought up to date instead of reading every
	// row (seconds at a million files).
	TableFile string
	Log       *slog.Logger
	// OnBuild is called after every build attempt (kind "snapshot" or "files"), after the
	// Metrics made from the store (see NewMetrics) counted it.
	OnBuild func(kind string, took time.Duration, err error)
}

// Store holds the current snapshot and rebuilds it when the database changes. Readers
// call Snapshot and never block; a failed rebuild keeps the last snapshot serving.
type Store struct {
	loader Loader
	opt    StoreOptions
	log    *slog.Logger
	cur    atomic.Pointer[selection.Snapshot]

	build     sync.Mutex // one build at a time: file tables are updated along one chain
	mu        sync.Mutex // guards the fields below
	data      *model.SnapshotData
	files     *selection.FileIndex
	filesAt   time.Time // the last read or update of the per-file data
	filesFrom time.Time // when that read began (Snapshot.FilesReadFrom)
	urgent    atomic.Pointer[func() bool]
	// filesNotified: a notification about per-file data came, perhaps dropped from the
	// full trigger channel.
	filesNotified atomic.Bool
	// filesTook is how long the last per-file update took (urgent pacing).
	filesTook atomic.Int64
	fullAt    time.Time // the last full read or reconciliation
	lastErr   error
	lastErrAt time.Time
	lastOKAt  time.Time
	listening bool
	// unreachable is the prober's overlay (see SetUnreachable), an input of every build.
	unreachable map[int64]string

	trigger chan string
	saving  atomic.Bool             // a table file write is running
	metrics atomic.Pointer[Metrics] // counts builds once NewMetrics made them for the store
	// hooks are called with every snapshot installed (Fills wakes waiting requests).
	hooks atomic.Pointer[[]func(*selection.Snapshot)]
}

// onInstall registers fn to be called with every snapshot installed from now on.
func (s *Store) onInstall(fn func(*selection.Snapshot)) {
	for {
		old := s.hooks.Load()
		var next []func(*selection.Snapshot)
		if old != nil {
			next = append(next, *old...)
		}
		next = append(next, fn)
		if s.hooks.CompareAndSwap(old, &next) {
			return
		}
	}
}

// install makes snap the serving snapshot and tells the hooks.
func (s *Store) install(snap *selection.Snapshot) {
	s.cur.Store(snap)
	s.tellHooks(snap)
}

func (s *Store) tellHooks(snap *selection.Snapshot) {
	if hooks := s.hooks.Load(); hooks != nil {
		for _, fn := range *hooks {
			fn(snap)
		}
	}
}

// NewStore returns a store with no snapshot yet; call Refresh or Run.
func NewStore(loader Loader, opt StoreOptions) *Store {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Interval <= 0 {
		opt.Interval = time.Minute
	}
	if opt.Debounce <= 0 {
		opt.Debounce = 250 * time.Millisecond
	}
	if opt.FilesMinInterval <= 0 {
		opt.FilesMinInterval = time.Second
	}
	if opt.FilesMaxAge <= 0 {
		opt.FilesMaxAge = 6 * time.Hour
	}
	return &Store{loader: loader, opt: opt, log: opt.Log, trigger: make(chan string, 64)}
}

// Snapshot returns the current snapshot, or nil before the first successful build.
func (s *Store) Snapshot() *selection.Snapshot { return s.cur.Load() }

// Swap installs a snapshot built elsewhere (tests, explain).
func (s *Store) Swap(snap *selection.Snapshot) { s.install(snap) }

// Status is the store's health, for /readyz and metrics.
type Status struct {
	Ready     bool      // a snapshot is serving
	ReadAt    time.Time // when the serving snapshot's data was read
	DBError   string    // the last rebuild's error, "" when it succeeded
	DBErrorAt time.Time
	LastOKAt  time.Time // the last successful rebuild
	Listening bool      // LISTEN is connected
}

// Status reports the store's health.
func (s *Store) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{LastOKAt: s.lastOKAt, DBErrorAt: s.lastErrAt, Listening: s.listening}
	if s.lastErr != nil {
		st.DBError = s.lastErr.Error()
	}
	if snap := s.cur.Load(); snap != nil {
		st.Ready, st.ReadAt = true, snap.ReadAt
	}
	return st
}

// Refresh reloads the small tables and, when withFiles is set (and files are enabled),
// brings the per-file data up to date: only what changed since the last read, or
// everything the first time. Then it swaps in a new snapshot.
func (s *Store) Refresh(ctx context.Context, withFiles bool) error {
	if withFiles {
		return s.refresh(ctx, filesUpdate, false)
	}
	return s.refresh(ctx, filesKeep, false)
}

// Reload is Refresh reading the per-file data whole into a new table.
func (s *Store) Reload(ctx context.Context) error { return s.refresh(ctx, filesFull, false) }

// Reconcile is Refresh reading the per-file data whole and keeping what did not change,
// as the store does every FilesMaxAge.
func (s *Store) Reconcile(ctx context.Context) error { return s.refresh(ctx, filesReconcile, false) }

type filesMode int

const (
	filesKeep      filesMode = iota
	filesUpdate              // read what changed since the last read
	filesReconcile           // read everything, keep what did not change
	filesFull                // read everything into a new table
)

// refresh reads the database and installs a new snapshot. With holdRepos (per-file
// changes wait to be read) the regions' repository states stay those of the last build.
func (s *Store) refresh(ctx context.Context, mode filesMode, holdRepos bool) error {
	s.build.Lock()
	defer s.build.Unlock()
	// The repositories and regions first, the per-file data after: a region's flip to a
	// new repomd.xml commits after the files it names are recorded, so per-file data read
	// later is at least as new as the flip, never older.
	start := time.Now()
	data, err := s.loader.LoadSnapshot(ctx)
	if err != nil {
		s.built("snapshot", time.Since(start), err)
		return err
	}
	loadTook := time.Since(start)
	filesFrom := time.Now()
	var files *selection.FileIndex
	full := false
	var tableFileAt time.Time // when the table file read at start was written
	if mode != filesKeep && s.opt.LoadFiles {
		s.mu.Lock()
		base := s.files
		s.mu.Unlock()
		var err error
		if base != nil && mode != filesFull {
			if t := base.Table(); t.Gone.Count()*10 > t.Len() {
				// Purged files keep their place until a full read; compact them now.
				s.log.Info("reading the per-file data whole to drop purged files", slog.Int("purged", t.Gone.Count()), slog.Int("files", t.Len()))
				mode = filesFull
			}
		}
		if (mode == filesUpdate || mode == filesReconcile) && base != nil {
			start := time.Now()
			var t *filetable.Table
			var ch db.FileTableChanges
			kind := "files_update"
			if mode == filesReconcile {
				kind = "files_reconcile"
				t, ch, err = s.loader.ReconcileFileTable(ctx, base.Table())
			} else {
				t, ch, err = s.loader.UpdateFileTable(ctx, base.Table())
			}
			switch {
			case errors.Is(err, db.ErrFileTableStale):
				s.log.Info("per-file data cannot be updated; reading it whole", slog.Any("reason", err))
				mode = filesFull
			case err == nil:
				files = base.Update(t)
				s.filesTook.Store(int64(time.Since(start)))
				s.built(kind, time.Since(start), nil)
				if mode == filesReconcile && !ch.Empty() {
					// Change tracking missed these: something wrote around the triggers.
					s.log.Warn("per-file data differed from the database; corrected", slog.String("differences", ch.String()))
				} else if !ch.Empty() {
					s.log.Debug("per-file data updated", slog.String("changes", ch.String()), slog.Duration("took", time.Since(start)))
				}
			default:
				s.built(kind, time.Since(start), err)
				return err
			}
		}
		if base == nil && mode != filesFull && s.opt.TableFile != "" {
			start := time.Now()
			if t, written, err := s.fromTableFile(ctx); err != nil {
				s.log.Info("reading the per-file data from the database, not from the table file", slog.String("file", s.opt.TableFile), slog.Any("reason", err))
			} else {
				files = selection.NewFileIndex(t)
				tableFileAt = written
				s.built("files_table_file", time.Since(start), nil)
			}
		}
		if files == nil && (mode == filesFull || base == nil) {
			start := time.Now()
			var t *filetable.Table
			t, err = s.loader.LoadFileTable(ctx)
			if err == nil {
				files, full = selection.NewFileIndex(t), true
			}
			s.built("files", time.Since(start), err)
			if err != nil {
				return err
			}
		}
	}
	s.mu.Lock()
	if files != nil {
		s.files, s.filesAt, s.filesFrom = files, time.Now(), filesFrom
		if full || mode == filesReconcile {
			s.fullAt = s.filesAt
		}
		if !tableFileAt.IsZero() {
			// The file was written after a full or reconciling read: the next is due
			// counting from then, not now.
			s.fullAt = tableFileAt
		}
	}
	if holdRepos && s.data != nil {
		data.RegionRepos = heldRegionRepos(s.data.RegionRepos, data.RegionRepos)
		// A region moved since (its copy forgotten in the same transaction) stays where
		// it was until the per-file data that forgets its copies is read too: its new
		// place must not be offered the copies verified at the old one.
		for i := range data.Regions {
			for _, old := range s.data.Regions {
				if old.ID == data.Regions[i].ID && db.Moved(&old, &data.Regions[i]) {
					data.Regions[i] = old
				}
			}
		}
	}
	s.data = data
	start = time.Now()
	snap := selection.BuildSnapshot(data, s.files, s.opt.Policy, s.unreachable)
	snap.BuildTime = loadTook + time.Since(start)
	snap.FilesReadFrom = s.filesFrom
	s.cur.Store(snap)
	s.mu.Unlock()
	s.tellHooks(snap) // outside the lock
	s.built("snapshot", snap.BuildTime, nil)
	if full {
		// The previous file table is garbage now; give its memory back rather than let the
		// heap grow to twice the live size before the next collection.
		debug.FreeOSMemory()
	}
	if (full || mode == filesReconcile) && files != nil && s.opt.TableFile != "" {
		s.saveTableFile(files.Table())
	}
	s.log.Debug("snapshot rebuilt", slog.String("contents", snap.Stats()), slog.Duration("took", snap.BuildTime))
	return nil
}

// heldRegionRepos are the repository states a build shows while its per-file data waits:
// what the database gives a region (a new verified repomd.xml) waits for the files, as the
// last build's state; what it takes away (a repository taken out, found stale, missing or
// unreachable, a row forgotten) applies at once. Holding a removal would keep offering a
// region that a push took out before rewriting its files in place.
func heldRegionRepos(old, cur []model.RegionRepo) []model.RegionRepo {
	type key struct{ region, repo int64 }
	was := make(map[key]*model.RegionRepo, len(old))
	for i := range old {
		was[key{old[i].RegionID, old[i].RepositoryID}] = &old[i]
	}
	out := make([]model.RegionRepo, 0, len(cur))
	for _, rr := range cur {
		switch prev := was[key{rr.RegionID, rr.RepositoryID}]; {
		case rr.State != model.RepoFresh && rr.State != model.RepoAlternate:
			out = append(out, rr)
		case prev != nil:
			out = append(out, *prev)
		}
	}
	return out
}

// SetUnreachable installs the prober's overlay (region ID -> why it is unreachable from
// this server) and rebuilds the snapshot from the data already read: no database access,
// so a dead region leaves answers at once even while the database is away. The new
// snapshot also drops the answers cached for the old one.
func (s *Store) SetUnreachable(unreachable map[int64]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unreachable = unreachable
	if s.data == nil {
		return // the first Refresh applies it
	}
	start := time.Now()
	snap := selection.BuildSnapshot(s.data, s.files, s.opt.Policy, unreachable)
	snap.BuildTime = time.Since(start)
	snap.FilesReadFrom = s.filesFrom
	s.install(snap)
}

// SetPolicy changes the selection policy (a configuration reload) and rebuilds the
// snapshot from the data already read, as SetUnreachable does.
func (s *Store) SetPolicy(p selection.Policy) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p == s.opt.Policy {
		return
	}
	s.opt.Policy = p
	if s.data == nil {
		return
	}
	start := time.Now()
	snap := selection.BuildSnapshot(s.data, s.files, p, s.unreachable)
	snap.BuildTime = time.Since(start)
	snap.FilesReadFrom = s.filesFrom
	s.install(snap)
}

// fromTableFile reads the table file and brings it up to date; it also returns when the
// file was written.
func (s *Store) fromTableFile(ctx context.Context) (*filetable.Table, time.Time, error) {
	t, written, err := filetable.ReadFile(s.opt.TableFile)
	if err != nil {
		return nil, time.Time{}, err
	}
	t, ch, err := s.loader.UpdateFileTable(ctx, t)
	if err != nil {
		return nil, time.Time{}, err
	}
	s.log.Info("per-file data read from the table file and updated", slog.String("file", s.opt.TableFile), slog.String("changes", ch.String()))
	return t, written, nil
}

// saveTableFile writes t to the table file in the background (filetable.WriteFile: a
// crash leaves the old file or the new one). A write still
// running makes this one skip: the next full or reconciling read writes again.
func (s *Store) saveTableFile(t *filetable.Table) {
	if !s.saving.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer s.saving.Store(false)
		if err := filetable.WriteFile(s.opt.TableFile, t); err != nil {
			s.log.Warn("writing the table file failed; the next start reads the database", slog.String("file", s.opt.TableFile), slog.Any("err", err))
		}
	}()
}

func (s *Store) built(kind string, took time.Duration, err error) {
	if errors.Is(err, context.Canceled) {
		return // shutting down: nothing failed
	}
	s.mu.Lock()
	if err != nil {
		if s.lastErr == nil {
			s.log.Warn("snapshot rebuild failed; the last snapshot keeps serving", slog.String("kind", kind), slog.Any("err", err))
		}
		s.lastErr, s.lastErrAt = err, time.Now()
	} else {
		if s.lastErr != nil {
			s.log.Info("database reachable again; snapshot rebuilt", slog.String("kind", kind))
		}
		s.lastErr, s.lastOKAt = nil, time.Now()
	}
	s.mu.Unlock()
	if m := s.metrics.Load(); m != nil {
		m.observeBuild(kind, took, err)
	}
	if s.opt.OnBuild != nil {
		s.opt.OnBuild(kind, took, err)
	}
}

// urgentDebounce and urgentFilesInterval replace Debounce and FilesMinInterval while
// requests wait for a copy (ondemand.max_wait): the copy's NOTIFY should wake them in
// tens of milliseconds, not a second. Only while someone waits, so a push's burst of
// notifications still costs one rebuild a second.
const (
	urgentDebounce      = 10 * time.Millisecond
	urgentFilesInterval = 50 * time.Millisecond
)

// SetUrgent installs the test of whether requests are waiting for the next snapshot.
func (s *Store) SetUrgent(fn func() bool) { s.urgent.Store(&fn) }

func (s *Store) isUrgent() bool {
	fn := s.urgent.Load()
	return fn != nil && (*fn)()
}

func (s *Store) debounce() time.Duration {
	if s.isUrgent() {
		return min(urgentDebounce, s.opt.Debounce)
	}
	return s.opt.Debounce
}

func (s *Store) filesMinInterval() time.Duration {
	if s.isUrgent() {
		// Never more than a third of the time in per-file updates, however many wait.
		return min(max(urgentFilesInterval, 2*time.Duration(s.filesTook.Load())), s.opt.FilesMinInterval)
	}
	return s.opt.FilesMinInterval
}

// filesWanted reports whether a notification payload means the per-file data changed.
func filesWanted(payload string) bool {
	return payload == "files" || payload == "objects" || payload == "schema" || payload == "*"
}

// Run keeps the snapshot current until ctx ends: a full build first, then a rebuild after
// every burst of notifications, and on the timer. LISTEN reconnects with backoff; every
// reconnect triggers a full rebuild, since notifications sent meanwhile are lost.
func (s *Store) Run(ctx context.Context) {
	go s.listen(ctx)
	timer := time.NewTicker(s.opt.Interval)
	defer timer.Stop()
	retry := time.NewTimer(0) // the initial build
	defer retry.Stop()
	pendingFiles := s.opt.LoadFiles
	pendingFull := false
	// pendingRepos: a region's repository state changed (a publication, a take-out, a
	// move). Such a change is read with the per-file data it depends on at once, past the
	// rate limit: holding it would keep a region out of the answers (or in them) for the
	// limit's length, and a push taking regions out one after another would find none left
	// serving. They are a few per push; the per-file bursts the limit is for are not.
	pendingRepos := false
	pending := true
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-s.trigger:
			pending = true
			pendingFiles = pendingFiles || filesWanted(p) || s.filesNotified.Swap(false)
			pendingRepos = pendingRepos || p == "region_repos" || p == "schema" || p == "*"
			if debounce == nil {
				debounce = time.After(s.debounce())
			}
			continue
		case <-timer.C:
			pending = true
			// Updates read only rows marked changed; the timer also catches what a
			// lost notification would have said, and now and then reads everything.
			pendingFiles = pendingFiles || s.opt.LoadFiles
			pendingFull = pendingFull || time.Since(s.fullLoadedAt()) > s.opt.FilesMaxAge
		case <-debounce:
			debounce = nil
		case <-retry.C:
		}
		if !pending {
			continue
		}
		mode, holdRepos := filesKeep, false
		if pendingFiles && s.opt.LoadFiles {
			mode = filesUpdate
			if pendingFull {
				mode = filesReconcile
			}
			if last := s.filesLoadedAt(); !last.IsZero() {
				if wait := s.filesMinInterval() - time.Since(last); wait > 0 && !pendingRepos {
					// Too soon for another update: rebuild the rest now (a new repomd.xml
					// must be announced within push.announce_delay), files later, and the
					// regions' repository states with the files: a snapshot whose states
					// are newer than its per-file data would show a region serving a
					// repomd.xml whose files it does not know are there (/r/ would send
					// its clients elsewhere, or nowhere).
					mode, holdRepos = filesKeep, true
					retry.Reset(wait)
				}
			}
		}
		err := s.refresh(ctx, mode, holdRepos)
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return
		}
		if err != nil {
			retry.Reset(5 * time.Second)
			continue
		}
		pending = false
		if mode != filesKeep {
			pendingFiles = false
			pendingFull = false
			pendingRepos = false
		} else if !s.opt.LoadFiles || !pendingFiles {
			pendingRepos = false
		}
		if pendingFiles {
			pending = true
		}
	}
}

func (s *Store) filesLoadedAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.filesAt
}

func (s *Store) fullLoadedAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fullAt
}

// Notify asks for a rebuild as if the database had sent payload.
func (s *Store) Notify(payload string) {
	if filesWanted(payload) {
		// Set before the send, which may be dropped: the rebuild already queued must
		// then read the per-file data too.
		s.filesNotified.Store(true)
	}
	select {
	case s.trigger <- payload:
	default: // a rebuild is queued anyway
	}
}

func (s *Store) listen(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		err := s.loader.Listen(ctx, func() {
			s.setListening(true)
			backoff = time.Second
			s.Notify("*") // whatever changed while we were not listening
		}, s.Notify)
		s.setListening(false)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("listening for database changes failed; retrying", slog.Any("err", err), slog.Duration("in", backoff))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func (s *Store) setListening(v bool) {
	s.mu.Lock()
	s.listening = v
	s.mu.Unlock()
}

// String describes the store for logs.
func (s *Store) String() string {
	snap := s.Snapshot()
	if snap == nil {
		return "no snapshot"
	}
	return fmt.Sprintf("snapshot of %s read at %s", snap.Stats(), snap.ReadAt.UTC().Format(time.RFC3339))
}
