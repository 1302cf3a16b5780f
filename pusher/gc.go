package pusher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/objstore"
)

// GCResult is what gc did in one region.
type GCResult struct {
	Region   string        `json:"region"`
	Status   string        `json:"status"`
	RunID    int64         `json:"run_id,omitempty"`
	Expired  int           `json:"expired_files"` // files the region holds whose grace period is over
	Deleted  int           `json:"deleted_files"`
	Paths    []string      `json:"paths,omitempty"` // with --dry-run: what would be deleted
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// GC removes from regions the files the origin deleted more than grace ago. It never
// runs beside a push of the same region (they share the region's lock), and it leaves a
// region alone while any repository there is not fresh: a region still serving older
// metadata may still need the files that metadata names.
func (p *Pusher) GC(ctx context.Context, regions []*model.Region, grace time.Duration, dryRun bool) ([]*GCResult, int, error) {
	expired, err := p.DB.ExpiredFiles(ctx, grace)
	if err != nil {
		return nil, 0, err
	}
	byID := make(map[int64]*db.File, len(expired))
	for i := range expired {
		byID[expired[i].ID] = &expired[i]
	}
	repos, err := p.DB.ListRepositories(ctx)
	if err != nil {
		return nil, 0, err
	}
	var results []*GCResult
	for _, r := range regions {
		start := time.Now()
		res := &GCResult{Region: r.Name}
		err := p.gcRegion(ctx, r, byID, repos, dryRun, res)
		res.Duration, res.Status = time.Since(start), db.RunOK
		var le *db.LockedError
		switch {
		case errors.As(err, &le):
			res.Status, res.Error = StatusBusy, err.Error()
		case err != nil:
			res.Status, res.Error = db.RunFailed, err.Error()
			p.log().Error("gc failed", slog.String("region", r.Name), slog.Any("err", err))
		default:
			p.log().Info("gc finished", slog.String("region", r.Name), slog.Int("deleted", res.Deleted))
		}
		results = append(results, res)
	}
	if dryRun || len(expired) == 0 {
		return results, 0, nil
	}
	ids := make([]int64, 0, len(expired))
	for _, f := range expired {
		ids = append(ids, f.ID)
	}
	// Forget files no region holds any more (a failed region keeps them recorded).
	purged, err := p.DB.PurgeFiles(ctx, ids)
	return results, purged, err
}

func (p *Pusher) gcRegion(ctx context.Context, r *model.Region, expired map[int64]*db.File, repos []model.Repository, dryRun bool, res *GCResult) (err error) {
	if !dryRun {
		lock, err := p.DB.TryLock(ctx, "push/"+r.Name)
		if err != nil {
			return fmt.Errorf("gc %s: %w", r.Name, err)
		}
		defer lock.Release()
		run, err := p.DB.StartRun(ctx, db.RunGC, r)
		if err != nil {
			return fmt.Errorf("gc %s: %w", r.Name, err)
		}
		res.RunID = run.ID
		defer func() {
			run.Files = int64(res.Deleted)
			run.Counts = map[string]int64{"expired": int64(res.Expired), "deleted": int64(res.Deleted)}
			if ferr := p.DB.FinishRun(context.WithoutCancel(ctx), run, err); ferr != nil && err == nil {
				err = ferr
			}
		}()
	}
	objects, err := p.DB.RegionObjects(ctx, r.ID)
	if err != nil {
		return err
	}
	var doomed []*db.File
	for _, o := range objects {
		if f := expired[o.FileID]; f != nil {
			doomed = append(doomed, f)
		}
	}
	res.Expired = len(doomed)
	if len(doomed) == 0 {
		return nil
	}
	if err := p.checkFresh(ctx, r, repos); err != nil {
		return err
	}
	if dryRun {
		for _, f := range doomed {
			res.Paths = append(res.Paths, f.Path)
		}
		return nil
	}
	open := p.OpenStore
	if open == nil {
		open = func(ctx context.Context, r *model.Region) (objstore.Store, error) {
			return objstore.Open(ctx, r, p.Config.StoreOptions)
		}
	}
	store, err := open(ctx, r)
	if err != nil {
		return fmt.Errorf("gc %s: %w", r.Name, err)
	}
	var done []int64
	defer func() {
		// Forget what is gone even when a later delete failed.
		if len(done) > 0 {
			if derr := p.DB.DeleteObjects(context.WithoutCancel(ctx), db.NoFence, r.ID, done); derr != nil && err == nil {
				err = derr
			}
		}
	}()
	for _, f := range doomed {
		keys := []string{f.Path}
		if twin := SpaceTwin(f.Path); twin != "" {
			keys = append(keys, twin)
		}
		for _, k := range keys {
			if err := store.Delete(ctx, k); err != nil {
				return fmt.Errorf("gc %s: %w", r.Name, err)
			}
		}
		done = append(done, f.ID)
		res.Deleted++
	}
	return nil
}

// checkFresh fails unless every repository the region carries serves the current repomd.xml.
func (p *Pusher) checkFresh(ctx context.Context, r *model.Region, repos []model.Repository) error {
	states, err := p.DB.RegionRepos(ctx)
	if err != nil {
		return err
	}
	for _, repo := range repos {
		if !Included(r.Includes, RepomdPath(repo.Directory)) {
			continue
		}
		versions, err := p.DB.RepomdVersions(ctx, repo.ID)
		if err != nil {
			return err
		}
		if len(versions) == 0 {
			continue
		}
		fresh := false
		for _, s := range states {
			if s.RegionID == r.ID && s.RepositoryID == repo.ID && s.State == db.RepoFresh && bytes.Equal(s.RepomdSHA256, versions[0].SHA256) {
				fresh = true
			}
		}
		if !fresh {
			return fmt.Errorf("gc %s: %w: repository %s/%s is not fresh there; push it first", r.Name, errNotFresh, repo.Name, repo.Arch)
		}
	}
	return nil
}

var errNotFresh = errors.New("not collecting")
