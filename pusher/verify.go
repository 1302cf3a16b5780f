package pusher

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/repocheck"
)

// verifyRepos moves each repository the region carries to the state its repomd.xml shows
// when read back, as clients read it. A repository becomes fresh only here, after every
// phase succeeded in this region.
func (p *Pusher) verifyRepos(ctx context.Context, cfg Config, rr *RegionResult, repos []model.Repository, inv *InventoryReport) {
	filesByPath := make(map[string]*db.File, len(inv.Live))
	for i := range inv.Live {
		filesByPath[inv.Live[i].Path] = &inv.Live[i]
	}
	states, err := p.DB.RegionRepos(ctx)
	if err != nil {
		rr.fail(err)
		return
	}
	for _, repo := range repos {
		path := RepomdPath(repo.Directory)
		f := filesByPath[path]
		if f == nil || !Included(rr.region.Includes, path) {
			continue
		}
		versions, err := p.DB.RepomdVersions(ctx, repo.ID)
		if err != nil {
			rr.fail(err)
			return
		}
		if len(versions) == 0 || !bytes.Equal(versions[0].SHA256, f.SHA256) {
			continue // the origin's repomd.xml was not recorded (unreadable files, invalid)
		}
		var prev *db.RegionRepo
		for i := range states {
			if states[i].RegionID == rr.region.ID && states[i].RepositoryID == repo.ID {
				prev = &states[i]
			}
		}
		// Verified here: written by this push, or recorded verified before it.
		verified := rr.uploadedKeys[path] || Verified(f, rr.objects[f.ID])
		if !rr.uploadedKeys[path] && prev != nil && prev.State == db.RepoFresh && bytes.Equal(prev.RepomdSHA256, f.SHA256) && verified {
			rr.Repos = append(rr.Repos, RepoResult{Repo: repo.Name, Arch: repo.Arch, State: db.RepoFresh})
			continue
		}
		if !verified {
			continue
		}
		st := repocheck.Check(ctx, cfg.HTTPClient, rr.region, rr.store, path, versions)
		if st.Via == repocheck.ViaStorage {
			p.log().Info("read repomd.xml back through the storage API", slog.String("region", rr.Region), slog.String("path", path))
		}
		if err := p.DB.SetRegionRepo(ctx, db.NoFence, st.RegionRepo); err != nil {
			rr.fail(err)
			return
		}
		rr.Repos = append(rr.Repos, RepoResult{Repo: repo.Name, Arch: repo.Arch, State: st.State, Via: st.Via})
		if st.State != db.RepoFresh {
			rr.fail(fmt.Errorf("push %s: repository %s/%s: repomd.xml read back is %s: %s", rr.Region, repo.Name, repo.Arch, st.State, st.Error))
		}
	}
}
