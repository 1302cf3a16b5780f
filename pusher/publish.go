package pusher

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/regionmirror/regionmirror/internal/model"
)

// Reasons recorded for a repository a push took out of the answers.
const (
	reasonInPlace  = "being rewritten in place"
	reasonHalfPair = "repomd.xml and its signature were not both published"
)

// serving reports whether a region's repository record sends clients there.
func serving(st *model.RegionRepo) bool {
	return st != nil && (st.State == model.RepoFresh || st.State == model.RepoAlternate)
}

func findRegionRepo(states []model.RegionRepo, regionID, repoID int64) *model.RegionRepo {
	for i := range states {
		if states[i].RegionID == regionID && states[i].RepositoryID == repoID {
			return &states[i]
		}
	}
	return nil
}

// awaitRegionEdits waits, before anything is written, until every region's last move has
// been in the database for the announce delay. A region moved to a new place in front of
// the same bucket (another listener, a CDN) has its copies forgotten, so its push sees
// nothing to take out, yet servers go on offering the old place, with the old metadata,
// until they read the move: an overwrite before then would serve that metadata's clients
// other bytes under the same names.
func (p *Pusher) awaitRegionEdits(ctx context.Context, cfg Config, group []*regionPush) {
	if cfg.DryRun || cfg.AnnounceDelay <= 0 {
		return
	}
	var wait time.Duration
	for _, rr := range group {
		if rr.failed() {
			continue
		}
		w, err := p.DB.RegionMoveWait(ctx, rr.region.ID, cfg.AnnounceDelay)
		if err != nil {
			rr.fail(fmt.Errorf("push %s: %w", rr.Region, err))
			continue
		}
		wait = max(wait, w)
	}
	if wait <= 0 {
		return
	}
	p.log().Info("waiting for servers to read a region edit before writing", slog.Duration("wait", wait))
	select {
	case <-ctx.Done():
	case <-time.After(wait):
	}
}

// takeOutRewritten takes out of the answers, database-first, every repository a region
// serves in which this push overwrites files under their own names: the metadata the
// region serves names those files with their old checksums, so its clients would fail
// from the first overwrite until the new repomd.xml lands, and for good if the push
// stops before. The record goes to stale (committed and notified), then the push waits
// the announce delay so that servers have dropped the region, then overwrites. Only the
// verification after the last phase makes the repository fresh again; a failed push leaves it out.
func (p *Pusher) takeOutRewritten(ctx context.Context, cfg Config, active []*regionPush) {
	if cfg.DryRun || !slices.ContainsFunc(active, func(rr *regionPush) bool { return len(rr.plan.InPlace) > 0 }) {
		return
	}
	states, err := p.DB.RegionRepos(ctx)
	took := false
	for _, rr := range active {
		if len(rr.plan.InPlace) == 0 || rr.failed() {
			continue
		}
		if err != nil {
			rr.fail(fmt.Errorf("push %s: %w", rr.Region, err))
			continue
		}
		if rr.checkLock(ctx, true) != nil {
			continue
		}
		for _, repo := range rr.plan.InPlace {
			prev := findRegionRepo(states, rr.region.ID, repo.ID)
			if !serving(prev) {
				continue
			}
			taken, err := p.DB.TakeOut(context.WithoutCancel(ctx), rr.fence(), model.RegionRepo{RegionID: rr.region.ID, RepositoryID: repo.ID,
				RepomdSHA256: prev.RepomdSHA256, State: model.RepoStale, HTTPStatus: prev.HTTPStatus, Error: reasonInPlace})
			if err != nil {
				rr.fail(fmt.Errorf("push %s: take repository %s/%s out of the answers before rewriting it in place: %w", rr.Region, repo.Name, repo.Arch, err))
				break
			}
			if !taken {
				// The last region serving it while others are being rewritten: it keeps
				// serving the older version whole until another region serves the new one.
				rr.plan.Defer(repo, rr.objects)
				rr.deferred = append(rr.deferred, fmt.Sprintf("%s/%s", repo.Name, repo.Arch))
				p.log().Warn("rewrite in place deferred: the region is the last one serving the repository", slog.String("region", rr.Region),
					slog.String("repo", repo.Name), slog.String("arch", repo.Arch))
				continue
			}
			took = true
			p.log().Info("repository taken out of the answers while its files are rewritten in place",
				slog.String("region", rr.Region), slog.String("repo", repo.Name), slog.String("arch", repo.Arch))
		}
	}
	if took && cfg.AnnounceDelay > 0 {
		// A duration from our own commit: no clock is compared.
		p.sleep(ctx, cfg.AnnounceDelay)
	}
}

func (p *Pusher) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// recordHalfPairs records as stale, in each region, every repository of which the repomd phase
// wrote part of the repomd.xml pair but not all of it: the region serves a repomd.xml
// and a signature that do not match.
func (p *Pusher) recordHalfPairs(ctx context.Context, cfg Config, active []*regionPush, repos []model.Repository) {
	if cfg.DryRun {
		return
	}
	byKey := make(map[string]*model.Repository, len(repos))
	for i := range repos {
		byKey[pairKey(repos[i].MetadataPath())] = &repos[i]
	}
	for _, rr := range active {
		planned := map[string][]string{}
		for _, it := range rr.plan.Items[PhaseRepomd] {
			key := pairKey(it.File.Path)
			planned[key] = append(planned[key], it.File.Path)
		}
		rr.mu.Lock()
		written := maps.Clone(rr.uploadedKeys)
		rr.mu.Unlock()
		for key, paths := range planned {
			repo := byKey[key]
			if repo == nil || !halfPair(paths, repo.MetadataPath(), written) {
				continue
			}
			err := p.setRegionRepo(ctx, rr, model.RegionRepo{RegionID: rr.region.ID, RepositoryID: repo.ID, State: model.RepoStale, Error: reasonHalfPair})
			if err != nil {
				p.log().Error("cannot record a half-published repository", slog.String("region", rr.Region), slog.Any("err", err))
			}
			rr.fail(fmt.Errorf("push %s: repository %s/%s: %s", rr.Region, repo.Name, repo.Arch, reasonHalfPair))
		}
	}
}

// halfPair reports whether, after phase 4 wrote the written paths of the planned part of
// one repository's pair, the region serves a repomd.xml and a signature that do not
// belong together: part of the plan went up and part did not, or repomd.xml was already
// the current one (not planned) and its new signature did not go up. main is the file
// that identifies the repository's state (repomd.xml, or an APT suite's InRelease or
// Release); for APT the pair is the suite's Release files.
func halfPair(planned []string, main string, written map[string]bool) bool {
	n, repomdPlanned := 0, false
	for _, p := range planned {
		if written[p] {
			n++
		}
		if p == main {
			repomdPlanned = true
		}
	}
	return n < len(planned) && (n > 0 || !repomdPlanned)
}

// setRegionRepo records a repository's state in a region.
func (p *Pusher) setRegionRepo(ctx context.Context, rr *regionPush, st model.RegionRepo) error {
	// Recorded even when the push is being cancelled (it is what the region serves), but
	// only while the region's lock is held: the fence refuses it after a loss.
	return p.DB.SetRegionRepo(context.WithoutCancel(ctx), rr.fence(), st)
}

// awaitAnnouncement waits, before repomd.xml files go out, until the newest repomd.xml
// version has been in the database for cfg.AnnounceDelay, so that every server lists it
// in its metalinks before a region serves it. The wait is computed on the database's
// clock, which wrote first_seen.
func (p *Pusher) awaitAnnouncement(ctx context.Context, cfg Config, active []*regionPush) {
	if cfg.DryRun || cfg.AnnounceDelay <= 0 || !slices.ContainsFunc(active, func(rr *regionPush) bool {
		return !rr.failed() && len(rr.plan.Items[PhaseRepomd]) > 0
	}) {
		return
	}
	wait, err := p.DB.AnnounceWait(ctx, cfg.AnnounceDelay)
	if err != nil {
		for _, rr := range active {
			rr.fail(fmt.Errorf("push %s: %w", rr.Region, err))
		}
		return
	}
	wait = min(wait, cfg.AnnounceDelay)
	if wait <= 0 {
		return
	}
	p.log().Debug("waiting until servers know the new repomd.xml", slog.Duration("wait", wait))
	p.sleep(ctx, wait)
}
