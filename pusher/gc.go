package pusher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/objstore"
)

// GCOptions tune a gc.
type GCOptions struct {
	// Grace is push.delete_grace: how long a copy stays after the origin deleted its file
	// and the last repomd.xml that may name it left the metalinks.
	Grace time.Duration
	// AlternatesMaxAge is metalink.alternates_max_age: how long a superseded repomd.xml is
	// still offered.
	AlternatesMaxAge time.Duration
	// UpdateDelay is how long copies are marked deleting, on the database's clock, before
	// their objects go: every server must have read the mark and stopped sending clients
	// there (push.announce_delay; 0: no wait).
	UpdateDelay time.Duration
	// OnDemandDelay is how long on-demand copies (expiry, eviction, purges) stay marked
	// deleting before their objects go, when longer than UpdateDelay: ondemand.stale_after,
	// after which a server cut off from the database stops sending clients to them.
	OnDemandDelay time.Duration
	// BatchSize is how many copies are deleted between two checks of the lock (default 64).
	BatchSize int
	// ExpireAfter is ondemand.expire_after: an on-demand copy no client asked for in that
	// long is removed (0: 14 days).
	ExpireAfter time.Duration
	// UploadAge is how old an incomplete multipart upload must be for gc to abort it
	// (0: 24h, far longer than any upload takes; negative: every one, for tests).
	UploadAge time.Duration
	DryRun    bool
}

func (o GCOptions) defaults() GCOptions {
	if o.BatchSize <= 0 {
		o.BatchSize = 64
	}
	if o.ExpireAfter <= 0 {
		o.ExpireAfter = 14 * 24 * time.Hour
	}
	if o.UploadAge == 0 {
		o.UploadAge = 24 * time.Hour
	}
	return o
}

// GCResult is what gc did in one region.
type GCResult struct {
	Region  string   `json:"region"`
	Status  string   `json:"status"`
	RunID   int64    `json:"run_id,omitempty"`
	Expired int      `json:"expired_files"` // copies of deleted files whose time has come
	Kept    int      `json:"kept_files"`    // copies of deleted files that must stay for now
	Deleted int      `json:"deleted_files"`
	Paths   []string `json:"paths,omitempty"`      // with --dry-run: what would be deleted
	KeptWhy []GCKept `json:"kept,omitempty"`       // with --dry-run: what stays, and why
	Twins   []string `json:"twins_kept,omitempty"` // "+" twin keys left alone: real files
	// On-demand copies (see PlanExpiry): expired, evicted above --max-bytes, and marked
	// deleting by a purge or an interrupted expiry (finished here); removed counts those
	// gone, with the bytes freed. HeldBytes is what the region's on-demand copies held
	// before, KeptBytes after.
	ExpiredOnDemand int   `json:"expired_on_demand"`
	Evicted         int   `json:"evicted"`
	Purged          int   `json:"purged_on_demand"`
	Removed         int   `json:"removed_on_demand"`
	FreedBytes      int64 `json:"freed_bytes"`
	HeldBytes       int64 `json:"held_bytes,omitempty"`
	KeptBytes       int64 `json:"kept_bytes,omitempty"`
	// OnDemand lists, with --dry-run, the on-demand copies that would go and why.
	OnDemand []ExpiryDelete `json:"on_demand,omitempty"`
	// AbortedUploads counts incomplete multipart uploads aborted (with --dry-run: that
	// would be).
	AbortedUploads int           `json:"aborted_uploads"`
	Error          string        `json:"error,omitempty"`
	Duration       time.Duration `json:"duration_ns"`
}

// GC removes from regions the copies of files the origin deleted, once PlanGC allows it.
// Each region is judged under its write lock (a push of it cannot run meanwhile), from
// what the database says at that moment; the copies go database-first: marked deleting,
// then, once every server has read that, the objects, then the records.
func (p *Pusher) GC(ctx context.Context, regions []*model.Region, o GCOptions) ([]*GCResult, int, error) {
	o = o.defaults()
	var results []*GCResult
	for _, r := range regions {
		start := time.Now()
		res := &GCResult{Region: r.Name}
		err := p.gcRegion(ctx, r, o, res)
		res.Duration, res.Status = time.Since(start), model.RunOK
		var le *db.LockedError
		switch {
		case errors.As(err, &le):
			res.Status, res.Error = model.RunBusy, err.Error()
		case err != nil:
			res.Status, res.Error = model.RunFailed, err.Error()
			p.log().Error("gc failed", slog.String("region", r.Name), slog.Any("err", err))
		default:
			p.log().Info("gc finished", slog.String("region", r.Name), slog.Int("deleted", res.Deleted), slog.Int("kept", res.Kept))
		}
		results = append(results, res)
	}
	if o.DryRun {
		return results, 0, nil
	}
	// Forget deleted files whose time has come and that no region holds (a failed
	// region keeps them recorded; PurgeFiles checks both in its own transaction).
	st, err := p.DB.GCState(ctx, 0)
	if err != nil {
		return results, 0, err
	}
	in, err := p.gcInput(ctx, st, nil, o, true)
	if err != nil {
		return results, 0, err
	}
	var ids []int64
	for _, d := range PlanGC(in).Delete {
		ids = append(ids, d.FileID)
	}
	if len(ids) == 0 {
		return results, 0, nil
	}
	purged, err := p.DB.PurgeFiles(ctx, ids)
	return results, purged, err
}

// gcInput assembles PlanGC's input from the database's state (and, for "+" twins, the
// origin). allFresh ignores the region's freshness (the purge of files no region holds).
func (p *Pusher) gcInput(ctx context.Context, st *db.GCState, r *model.Region, o GCOptions, allFresh bool) (GCInput, error) {
	repos, err := p.DB.ListRepositories(ctx)
	if err != nil {
		return GCInput{}, err
	}
	in := GCInput{Now: st.Now, Grace: o.Grace, AlternatesMaxAge: o.AlternatesMaxAge}
	if r != nil {
		in.Includes = r.Includes
	}
	for _, repo := range repos {
		in.Repositories = append(in.Repositories, GCRepository{Name: repo.Name, Arch: repo.Arch, Directory: repo.Directory,
			Versions: st.Versions[repo.ID], FreshInRegion: allFresh || st.Fresh[repo.ID]})
	}
	var twins []string
	for _, c := range st.Copies {
		in.Copies = append(in.Copies, GCCopy{FileID: c.FileID, Path: c.Path, DeletedAt: c.DeletedAt, State: c.State})
		if twin := model.SpaceTwin(c.Path); twin != "" {
			twins = append(twins, twin)
		}
	}
	if in.RealPaths, err = p.DB.RecordedPaths(ctx, twins); err != nil {
		return GCInput{}, err
	}
	// A twin the origin has but the inventory has not recorded yet is a real file too.
	if p.Origin != nil {
		for _, t := range twins {
			if f, err := p.Origin.Open(t); err == nil {
				f.Close()
				in.RealPaths[t] = true
			}
		}
	}
	return in, nil
}

func (p *Pusher) gcRegion(ctx context.Context, r *model.Region, o GCOptions, res *GCResult) (err error) {
	// alive checks the region's lock before every step that takes something away.
	alive := func(context.Context) error { return nil }
	var rr *db.RegionRun
	if !o.DryRun {
		var berr error
		if rr, berr = p.DB.BeginRegionRun(ctx, model.RunGC, r); berr != nil {
			return berr
		}
		res.RunID = rr.Run.ID
		// The run's context ends when the lock is lost: deletes and waits stop with it.
		ctx = rr.Context()
		alive = func(ctx context.Context) error {
			if err := rr.Check(ctx); err != nil {
				return fmt.Errorf("gc %s: %w", r.Name, err)
			}
			return nil
		}
		defer func() {
			if lost := rr.Err(); lost != nil && !errors.Is(err, db.ErrLockLost) {
				err = errors.Join(err, fmt.Errorf("gc %s: %w", r.Name, lost))
			}
			rr.Run.Files = int64(res.Deleted + res.Removed)
			rr.Run.Bytes = res.FreedBytes
			rr.Run.Counts = map[string]int64{"expired": int64(res.Expired), "kept": int64(res.Kept), "deleted": int64(res.Deleted),
				"expired_on_demand": int64(res.ExpiredOnDemand), "evicted": int64(res.Evicted), "purged_on_demand": int64(res.Purged),
				"removed_on_demand": int64(res.Removed), "freed_bytes": res.FreedBytes, "aborted_uploads": int64(res.AbortedUploads)}
			if ferr := rr.Finish(context.WithoutCancel(ctx), err); ferr != nil && err == nil {
				err = ferr
			}
		}()
	}
	err = p.gcDeleted(ctx, r, o, res, rr, alive)
	// A region held back for deleted files (not fresh) still expires its on-demand
	// copies: those are live files, which no repomd.xml freshness rule concerns.
	if err != nil && !errors.Is(err, errNotFresh) {
		return err
	}
	if oerr := p.gcOnDemand(ctx, r, o, res, rr, alive); oerr != nil {
		return errors.Join(err, oerr)
	}
	if uerr := p.abortUploads(ctx, r, o, res, alive); uerr != nil {
		return errors.Join(err, uerr)
	}
	return err
}

// gcDeleted removes the region's copies of files the origin deleted, once PlanGC allows.
func (p *Pusher) gcDeleted(ctx context.Context, r *model.Region, o GCOptions, res *GCResult, rr *db.RegionRun, alive func(context.Context) error) error {
	// What may go is read under the lock: a push that revived a file and verified the
	// region before gc got here has its copy recorded live.
	st, err := p.DB.GCState(ctx, r.ID)
	if err != nil {
		return fmt.Errorf("gc %s: %w", r.Name, err)
	}
	in, err := p.gcInput(ctx, st, r, o, false)
	if err != nil {
		return fmt.Errorf("gc %s: %w", r.Name, err)
	}
	plan := PlanGC(in)
	res.Expired, res.Kept = len(plan.Delete), len(plan.Kept)
	for _, k := range plan.Kept {
		if k.Reason == KeepRegionNotFresh {
			res.Expired++ // its time has come, but the region holds it back
		}
	}
	for _, d := range plan.Delete {
		if d.TwinKept != "" {
			res.Twins = append(res.Twins, d.TwinKept)
		}
	}
	if plan.Blocked != "" {
		return fmt.Errorf("gc %s: %w: %s", r.Name, errNotFresh, plan.Blocked)
	}
	if o.DryRun {
		for _, d := range plan.Delete {
			res.Paths = append(res.Paths, d.Path)
		}
		res.KeptWhy = plan.Kept
		return nil
	}
	if len(plan.Delete) == 0 {
		return nil
	}

	// Database first: the copies are marked deleting (the servers stop sending clients
	// there), in a transaction that checks again that each file is still deleted.
	if err := alive(ctx); err != nil {
		return err
	}
	byID := make(map[int64]GCDelete, len(plan.Delete))
	marks := make([]db.GCMark, 0, len(plan.Delete))
	for _, d := range plan.Delete {
		byID[d.FileID] = d
		marks = append(marks, db.GCMark{FileID: d.FileID, DeletedAt: d.DeletedAt})
	}
	marked, err := p.DB.MarkExpiredDeleting(ctx, rr.Fence(), r.ID, marks, o.Grace)
	if err != nil {
		return fmt.Errorf("gc %s: %w", r.Name, err)
	}
	if len(marked) < len(marks) {
		p.log().Info("gc: files revived since they were judged stay", slog.String("region", r.Name), slog.Int("files", len(marks)-len(marked)))
	}
	if len(marked) == 0 {
		return nil
	}
	// Copies another gc marked wait too: nothing records when that gc committed its mark
	// (it may have died a moment ago), so servers may still send clients there. In an
	// on-demand region they are on-demand copies: a server cut off from the database
	// keeps them until its data is ondemand.stale_after old.
	delay := o.UpdateDelay
	if r.OnDemand() {
		delay = max(delay, o.OnDemandDelay)
	}
	if err := p.waitForServers(ctx, delay, alive); err != nil {
		return fmt.Errorf("gc %s: %w", r.Name, err)
	}

	store, err := p.openStore(ctx, r)
	if err != nil {
		return fmt.Errorf("gc %s: %w", r.Name, err)
	}
	for start := 0; start < len(marked); start += o.BatchSize {
		if err := alive(ctx); err != nil {
			return err
		}
		batch := marked[start:min(start+o.BatchSize, len(marked))]
		var done []int64
		var derr error
	batch:
		for _, id := range batch {
			for _, k := range byID[id].Keys {
				if derr = store.Delete(ctx, k); derr != nil {
					break batch
				}
			}
			done = append(done, id)
		}
		// Forget what is gone even when a later delete failed; a copy left deleting is
		// finished by the next gc.
		if len(done) > 0 {
			n, err := p.DB.ForgetDeletingCopies(context.WithoutCancel(ctx), rr.Fence(), r.ID, done)
			res.Deleted += n
			if err != nil {
				return fmt.Errorf("gc %s: %w", r.Name, err)
			}
		}
		if derr != nil {
			return fmt.Errorf("gc %s: %w", r.Name, derr)
		}
	}
	return nil
}

// openStore opens the region's store (through OpenStore when set).
func (p *Pusher) openStore(ctx context.Context, r *model.Region) (objstore.Store, error) {
	if p.OpenStore != nil {
		return p.OpenStore(ctx, r)
	}
	return objstore.Open(ctx, r, p.Config.StoreOptions)
}

// waitForServers waits until delay has passed on the database's clock since now, so that
// every server has rebuilt its snapshot from the marks just committed.
func (p *Pusher) waitForServers(ctx context.Context, delay time.Duration, alive func(context.Context) error) error {
	if delay <= 0 {
		return nil
	}
	from, err := p.DB.Now(ctx)
	if err != nil {
		return err
	}
	for {
		now, err := p.DB.Now(ctx)
		if err != nil {
			return err
		}
		left := from.Add(delay).Sub(now)
		if left <= 0 {
			return nil
		}
		if err := alive(ctx); err != nil {
			return err
		}
		select {
		case <-time.After(min(left, time.Second)):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

var errNotFresh = errors.New("not collecting")
