package pusher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
)

// What a purge did in one region.
const (
	PurgeRemoved    = "removed"     // an on-demand copy: marked, its object deleted after the delay, its record forgotten
	PurgeForgotten  = "forgotten"   // a pushed copy: its record forgotten, so the next push writes it again
	PurgeNotHeld    = "not-held"    // nothing recorded there (any fill job for it is gone too)
	PurgeNotCarried = "not-carried" // the region does not carry the path
)

// PurgeResult is what a purge did in one region.
type PurgeResult struct {
	Region string `json:"region"`
	Fill   string `json:"fill"`
	Action string `json:"action"`
	RunID  int64  `json:"run_id,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Purge removes region's copy of the origin file f: database-first for a copy the region
// fills on demand (under the region's gc lock: marked deleting, fill jobs removed, the
// servers' update delay waited on the database's clock, the object and its "+" twin
// deleted, then the record forgotten); for a copy a push writes, the record is forgotten
// and the next push writes it again (the object stays until then). Every purge of a
// carried path is recorded as a run of kind purge. updateDelay is how long the mark
// stands before the object goes (ondemand.stale_after + push.announce_delay).
// A busy region is a *db.LockedError. f must be a file of the inventory: nothing else is
// ever purged.
func (p *Pusher) Purge(ctx context.Context, r *model.Region, f *model.File, updateDelay time.Duration) (res *PurgeResult, err error) {
	res = &PurgeResult{Region: r.Name, Fill: r.Fill}
	if res.Fill == "" {
		res.Fill = model.FillPush
	}
	if !r.Carries(f.Path) {
		res.Action = PurgeNotCarried
		return res, nil
	}
	if !r.FillsOnDemand(f.Path) {
		run, err := p.DB.StartRun(ctx, model.RunPurge, r)
		if err != nil {
			return nil, err
		}
		res.RunID = run.ID
		n, ferr := p.DB.ForgetObject(ctx, f.Path, r.ID)
		res.Action = PurgeForgotten
		if n == 0 {
			res.Action = PurgeNotHeld
		}
		run.Files = int64(n)
		run.Counts = map[string]int64{"forgotten": int64(n)}
		if err := errors.Join(ferr, p.DB.FinishRun(context.WithoutCancel(ctx), run, ferr)); err != nil {
			return res, fmt.Errorf("purge %s in %s: %w", f.Path, r.Name, err)
		}
		return res, nil
	}

	rr, err := p.DB.BeginRegionRun(ctx, model.RunPurge, r)
	if err != nil {
		return nil, err
	}
	res.RunID = rr.Run.ID
	ctx = rr.Context()
	alive := func(ctx context.Context) error {
		if err := rr.Check(ctx); err != nil {
			return fmt.Errorf("purge %s: %w", r.Name, err)
		}
		return nil
	}
	var removed int
	var freed int64
	defer func() {
		if lost := rr.Err(); lost != nil && !errors.Is(err, db.ErrLockLost) {
			err = errors.Join(err, fmt.Errorf("purge %s: %w", r.Name, lost))
		}
		rr.Run.Files, rr.Run.Bytes = int64(removed), freed
		rr.Run.Counts = map[string]int64{"removed": int64(removed), "freed_bytes": freed}
		if ferr := rr.Finish(context.WithoutCancel(ctx), err); ferr != nil && err == nil {
			err = ferr
		}
	}()
	real, err := p.realPaths(ctx, []string{f.Path})
	if err != nil {
		return res, fmt.Errorf("purge %s in %s: %w", f.Path, r.Name, err)
	}
	keys, _ := DeleteKeys(f.Path, func(q string) bool { return real[q] })
	var size int64
	objs, err := p.DB.ObjectsOfFile(ctx, f.ID)
	if err != nil {
		return res, fmt.Errorf("purge %s in %s: %w", f.Path, r.Name, err)
	}
	for _, o := range objs {
		if o.RegionID == r.ID {
			size = o.Size
		}
	}
	d := ExpiryDelete{FileID: f.ID, Path: f.Path, Size: size, Reason: RemovePurged, Keys: keys}
	removed, freed, err = p.removeCopies(ctx, r, rr.Fence(), GCOptions{UpdateDelay: updateDelay, BatchSize: 1}, alive, []ExpiryDelete{d})
	res.Action = PurgeRemoved
	if removed == 0 && err == nil {
		res.Action = PurgeNotHeld // any fill job for it was removed with the mark
	}
	if err != nil {
		return res, fmt.Errorf("purge %s in %s: %w", f.Path, r.Name, err)
	}
	return res, nil
}
