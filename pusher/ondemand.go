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

// realPaths tells which of the "+" twins of paths are real files: recorded in the
// inventory (live or deleted) or present at the origin, not yet recorded.
func (p *Pusher) realPaths(ctx context.Context, paths []string) (map[string]bool, error) {
	var twins []string
	for _, q := range paths {
		if twin := model.SpaceTwin(q); twin != "" {
			twins = append(twins, twin)
		}
	}
	real, err := p.DB.RecordedPaths(ctx, twins)
	if err != nil {
		return nil, err
	}
	if p.Origin != nil {
		for _, t := range twins {
			if f, err := p.Origin.Open(t); err == nil {
				f.Close()
				real[t] = true
			}
		}
	}
	return real, nil
}

// gcOnDemand removes an on-demand region's expired and evicted copies (PlanExpiry), and in
// any region finishes the copies of live files marked deleting by a purge or by an expiry
// that died midway. Database-first, as gc: mark, wait the servers' update delay, delete
// the objects, forget the records.
func (p *Pusher) gcOnDemand(ctx context.Context, r *model.Region, o GCOptions, res *GCResult, rr *db.RegionRun, alive func(context.Context) error) error {
	now, objs, err := p.DB.LiveCopies(ctx, r.ID, !r.OnDemand())
	if err != nil {
		return fmt.Errorf("gc %s: %w", r.Name, err)
	}
	paths := make([]string, 0, len(objs))
	for i := range objs {
		paths = append(paths, objs[i].Path)
	}
	real, err := p.realPaths(ctx, paths)
	if err != nil {
		return fmt.Errorf("gc %s: %w", r.Name, err)
	}
	in := ExpiryInput{Now: now, ExpireAfter: o.ExpireAfter, Region: r, RealPaths: real}
	var purged []ExpiryDelete
	for i := range objs {
		ob := &objs[i]
		if ob.State == model.ObjectDeleting {
			keys, kept := DeleteKeys(ob.Path, func(q string) bool { return real[q] })
			purged = append(purged, ExpiryDelete{FileID: ob.FileID, Path: ob.Path, Size: ob.Size, Reason: RemovePurged,
				LastUsed: LastUsed(ob), Keys: keys, TwinKept: kept})
			continue
		}
		in.Copies = append(in.Copies, ExpiryCopy{FileID: ob.FileID, Path: ob.Path, Size: ob.Size, State: ob.State, LastUsed: LastUsed(ob)})
	}
	plan := PlanExpiry(in)
	res.ExpiredOnDemand, res.Evicted, res.Purged = len(plan.Expire), len(plan.Evict), len(purged)
	res.HeldBytes, res.KeptBytes = plan.HeldBytes, plan.KeptBytes
	ds := append(purged, plan.Deletes()...)
	for _, d := range ds {
		if d.TwinKept != "" {
			res.Twins = append(res.Twins, d.TwinKept)
		}
	}
	if o.DryRun {
		res.OnDemand = ds
		return nil
	}
	if len(ds) == 0 {
		return nil
	}
	removed, freed, err := p.removeCopies(ctx, r, rr.Fence(), o, alive, ds)
	res.Removed += removed
	res.FreedBytes += freed
	if err != nil {
		return fmt.Errorf("gc %s: %w", r.Name, err)
	}
	p.log().Info("gc removed on-demand copies", slog.String("region", r.Name), slog.Int("expired", len(plan.Expire)),
		slog.Int("evicted", len(plan.Evict)), slog.Int("purged", len(purged)), slog.Int64("freed_bytes", freed))
	return nil
}

// removeCopies takes copies of live files out of a region database-first: marked deleting
// (and their fill jobs removed, so no worker records them again) under fence, then, once
// every server has read the mark or stopped trusting its data (o.UpdateDelay, or
// o.OnDemandDelay when longer, on the database's clock), their objects
// deleted and last their records forgotten. A copy already marked deleting waits too:
// nothing records when its mark was committed. It returns how many went and their bytes.
func (p *Pusher) removeCopies(ctx context.Context, r *model.Region, fence db.Fence, o GCOptions, alive func(context.Context) error, ds []ExpiryDelete) (int, int64, error) {
	if err := alive(ctx); err != nil {
		return 0, 0, err
	}
	ids := make([]int64, 0, len(ds))
	byID := make(map[int64]ExpiryDelete, len(ds))
	for _, d := range ds {
		ids = append(ids, d.FileID)
		byID[d.FileID] = d
	}
	marked, err := p.DB.MarkCopiesDeleting(ctx, fence, r.ID, ids)
	if err != nil || len(marked) == 0 {
		return 0, 0, err
	}
	if err := p.waitForServers(ctx, max(o.UpdateDelay, o.OnDemandDelay), alive); err != nil {
		return 0, 0, err
	}
	store, err := p.openStore(ctx, r)
	if err != nil {
		return 0, 0, err
	}
	batchSize := max(o.BatchSize, 1)
	var n int
	var freed int64
	for start := 0; start < len(marked); start += batchSize {
		if err := alive(ctx); err != nil {
			return n, freed, err
		}
		var done []int64
		var derr error
		var bytes int64
	batch:
		for _, id := range marked[start:min(start+batchSize, len(marked))] {
			for _, k := range byID[id].Keys {
				if derr = store.Delete(ctx, k); derr != nil && !errors.Is(derr, objstore.ErrNotExist) {
					break batch
				}
				derr = nil
			}
			done = append(done, id)
			bytes += byID[id].Size
		}
		// Forget what is gone even when a later delete failed; a copy left deleting is
		// finished by the next gc.
		if len(done) > 0 {
			forgot, err := p.DB.ForgetDeletingCopies(context.WithoutCancel(ctx), fence, r.ID, done)
			n += forgot
			if forgot == len(done) {
				freed += bytes
			}
			if err != nil {
				return n, freed, err
			}
		}
		if derr != nil {
			return n, freed, derr
		}
	}
	return n, freed, nil
}

// abortUploads aborts the region's incomplete multipart uploads older than o.UploadAge (a
// fill or push worker killed mid-upload leaves them, and S3 bills their parts). With
// DryRun it only counts them.
func (p *Pusher) abortUploads(ctx context.Context, r *model.Region, o GCOptions, res *GCResult, alive func(context.Context) error) error {
	if r.Kind != model.KindS3 {
		return nil
	}
	store, err := p.openStore(ctx, r)
	if err != nil {
		return fmt.Errorf("gc %s: %w", r.Name, err)
	}
	uc, ok := store.(objstore.UploadCleaner)
	if !ok {
		return nil
	}
	ups, err := uc.ListMultipartUploads(ctx)
	if err != nil {
		return fmt.Errorf("gc %s: %w", r.Name, err)
	}
	for _, u := range ups {
		if o.UploadAge > 0 && time.Since(u.Initiated) < o.UploadAge {
			continue
		}
		if o.DryRun {
			res.AbortedUploads++
			continue
		}
		if err := alive(ctx); err != nil {
			return err
		}
		if err := uc.AbortMultipartUpload(ctx, u.Key, u.UploadID); err != nil {
			return fmt.Errorf("gc %s: %w", r.Name, err)
		}
		res.AbortedUploads++
	}
	if res.AbortedUploads > 0 {
		p.log().Info("gc aborted incomplete multipart uploads", slog.String("region", r.Name), slog.Int("uploads", res.AbortedUploads))
	}
	return nil
}
