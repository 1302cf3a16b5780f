package db

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/regionmirror/regionmirror/internal/model"
)

// WriteLock is the name of the lock a push and a gc of a region share.
func WriteLock(region string) string { return "push/" + region }

// ScanLock is the name of the lock a scan of a region holds for its whole run (it takes
// the write lock too while it compares objects and judges repositories).
func ScanLock(region string) string { return "scan/" + region }

// ErrLockLost means a run's lock is no longer held: its connection was lost, or someone
// took the lock since, or the region moved. The run must stop; writes carrying its fence
// fail with an error wrapping ErrLockLost.
var ErrLockLost = errors.New("lock lost")

// ErrRegionChanged: the region's location changed between reading it and locking it.
var ErrRegionChanged = errors.New("region changed")

// errReleased is the cause of a Held's context after Release.
var errReleased = errors.New("lock released")

// keepAlive is how often a held lock's connection is used, so that idle timeouts of the
// server or of a proxy never close it, and a lost connection is noticed within about
// this long.
const keepAlive = time.Second

// Fence is a held lock's token. A write that carries it commits only while the lock is
// still held by the session that took it and nobody took it since.
type Fence struct {
	name string
	gen  int64
	pid  uint32
	key  int64
}

// NoFence checks nothing: for tests' setup, never for production writes.
var NoFence Fence

// NotHeld is the fence of work that holds no lock (a dry run): every write carrying it
// is refused.
var NotHeld = Fence{name: "(no lock held)", gen: -1}

// check verifies the fence inside a writer's transaction. FOR SHARE makes a new holder's
// generation bump wait until this transaction ends, so a write that passed the check
// commits before anyone else can plan on the region.
func (f Fence) check(ctx context.Context, tx pgx.Tx) error {
	if f.name == "" {
		return nil
	}
	var gen int64
	var pid uint32
	err := tx.QueryRow(ctx, "SELECT generation, holder_pid FROM lock_generations WHERE name = $1 FOR SHARE", f.name).Scan(&gen, &pid)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("check lock %s: %w", f.name, err)
	}
	if errors.Is(err, pgx.ErrNoRows) || gen != f.gen || pid != f.pid {
		return fmt.Errorf("%w: %s was taken over or its region moved since this run took it", ErrLockLost, f.name)
	}
	var held bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks l WHERE `+heldAdvisoryKey+` AND l.pid = $2)`,
		f.key, int64(f.pid)).Scan(&held); err != nil {
		return fmt.Errorf("check lock %s: %w", f.name, err)
	}
	if !held {
		return fmt.Errorf("%w: the session holding %s is gone", ErrLockLost, f.name)
	}
	return nil
}

// Held is an advisory lock that knows whether it is still held. A goroutine uses its
// connection every keepAlive and cancels Context, with the loss as cause, once the
// connection fails.
type Held struct {
	name   string
	lock   *Lock
	fence  Fence
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelCauseFunc

	mu      sync.Mutex // the connection is used by one goroutine at a time
	lostErr error      // under mu
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

// Hold takes the named lock (waiting at most lockWait; a *LockedError when someone else
// holds it), bumps its generation, and keeps it alive until Release. Context derives
// from ctx.
func (d *DB) Hold(ctx context.Context, name string) (*Held, error) {
	lock, err := d.TryLock(ctx, name)
	if err != nil {
		return nil, err
	}
	var gen int64
	var pid uint32
	err = lock.conn.QueryRow(ctx, `INSERT INTO lock_generations AS g (name, generation, holder_pid) VALUES ($1, 1, pg_backend_pid())
		ON CONFLICT (name) DO UPDATE SET generation = g.generation + 1, holder_pid = pg_backend_pid()
		RETURNING generation, holder_pid`, name).Scan(&gen, &pid)
	if err != nil {
		lock.Release()
		return nil, fmt.Errorf("lock %s: fence: %w", name, err)
	}
	h := &Held{name: name, lock: lock, fence: Fence{name: name, gen: gen, pid: pid, key: lock.key}, log: d.log,
		stop: make(chan struct{}), done: make(chan struct{})}
	h.ctx, h.cancel = context.WithCancelCause(ctx)
	go h.keep()
	return h, nil
}

func (h *Held) keep() {
	defer close(h.done)
	t := time.NewTicker(keepAlive)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-h.ctx.Done():
			return
		case <-t.C:
			if h.Check(h.ctx) != nil {
				return
			}
		}
	}
}

// Check uses the lock's connection now: nil while the lock is held, else an error
// wrapping ErrLockLost (also for every later call).
func (h *Held) Check(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lostErr != nil {
		return h.lostErr
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := h.lock.conn.Ping(pctx); err != nil {
		if ctx.Err() != nil {
			return nil // the caller gave up; that says nothing about the lock
		}
		h.lostErr = fmt.Errorf("%s: %w: %v", h.name, ErrLockLost, err)
		h.log.Error("lock lost", slog.String("lock", h.name), slog.Any("err", err))
		h.cancel(h.lostErr)
	}
	return h.lostErr
}

// Err is nil while the lock is held, else an error wrapping ErrLockLost.
func (h *Held) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lostErr
}

// Context is cancelled, with the loss as cause, when the lock is lost or released.
func (h *Held) Context() context.Context { return h.ctx }

// Fence is the token the writes made under this lock carry.
func (h *Held) Fence() Fence { return h.fence }

// Release frees the lock; Context is cancelled.
func (h *Held) Release() {
	h.once.Do(func() {
		close(h.stop)
		<-h.done
		h.mu.Lock()
		h.lock.Release()
		h.mu.Unlock()
		h.cancel(errReleased)
	})
}

// RegionRun is a run of one region under its lock: WriteLock for push and gc, ScanLock
// for scan.
type RegionRun struct {
	*Held
	Run       *model.Run
	Abandoned int // earlier runs under the same lock marked interrupted
	db        *DB
}

// lockKinds are the kinds of run that share a lock with kind.
func lockKinds(kind string) []string {
	if kind == model.RunScan {
		return []string{model.RunScan}
	}
	// A purge of an on-demand copy holds the region's write lock as gc does.
	return []string{model.RunPush, model.RunGC, model.RunPurge}
}

// BeginRegionRun takes the region's lock for a run of kind, records the run's start and
// marks as interrupted the runs under the same lock that are still recorded as running
// (their process is dead, or it would hold the lock). A busy lock is a *LockedError
// naming the running run.
func (d *DB) BeginRegionRun(ctx context.Context, kind string, r *model.Region) (*RegionRun, error) {
	name := WriteLock(r.Name)
	if kind == model.RunScan {
		name = ScanLock(r.Name)
	}
	h, err := d.Hold(ctx, name)
	if err != nil {
		var le *LockedError
		if errors.As(err, &le) {
			le.Holder.Run = d.runningRun(ctx, lockKinds(kind), r.ID)
		}
		return nil, fmt.Errorf("%s %s: %w", kind, r.Name, err)
	}
	// The caller read the region before it waited for the lock: a region edit in between
	// moved it, and a run at the old place must not record its copies for the new one
	// (the move bumped the generation before this Hold, so the fence would not refuse).
	cur, err := d.GetRegion(ctx, r.Name)
	if err == nil && (cur.ID != r.ID || Moved(r, cur)) {
		err = fmt.Errorf("%w: the region was moved or replaced since this run read it; run again", ErrRegionChanged)
	}
	if err != nil {
		h.Release()
		return nil, fmt.Errorf("%s %s: %w", kind, r.Name, err)
	}
	run, err := d.StartRun(ctx, kind, r)
	if err != nil {
		h.Release()
		return nil, fmt.Errorf("%s %s: %w", kind, r.Name, err)
	}
	rr := &RegionRun{Held: h, Run: run, db: d}
	if rr.Abandoned, err = d.AbandonRuns(ctx, lockKinds(kind), r.ID, run.ID); err != nil {
		_ = rr.Finish(ctx, err)
		return nil, fmt.Errorf("%s %s: %w", kind, r.Name, err)
	}
	return rr, nil
}

// Finish records the run's end (failed, naming the loss, when the lock was lost) and
// releases the lock. It records even when ctx is cancelled.
func (rr *RegionRun) Finish(ctx context.Context, runErr error) error {
	defer rr.Release()
	if lost := rr.Err(); lost != nil && (runErr == nil || !errors.Is(runErr, ErrLockLost)) {
		runErr = errors.Join(runErr, lost)
	}
	return rr.db.FinishRun(context.WithoutCancel(ctx), rr.Run, runErr)
}

func (d *DB) runningRun(ctx context.Context, kinds []string, regionID int64) *model.Run {
	var r model.Run
	err := d.pool.QueryRow(ctx, `SELECT id, kind, region_id, region_name, started_at, status, host, pid FROM runs
		WHERE kind = ANY($1) AND region_id = $2 AND status = 'running' ORDER BY started_at DESC LIMIT 1`, kinds, regionID).
		Scan(&r.ID, &r.Kind, &r.RegionID, &r.RegionName, &r.StartedAt, &r.Status, &r.Host, &r.PID)
	if err != nil {
		return nil
	}
	return &r
}

// Now is the database's clock, the one every first_seen and deleted_at was written with.
func (d *DB) Now(ctx context.Context) (time.Time, error) {
	var t time.Time
	if err := d.pool.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&t); err != nil {
		return time.Time{}, fmt.Errorf("database clock: %w", err)
	}
	return t, nil
}
