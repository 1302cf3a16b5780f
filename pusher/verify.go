package pusher

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"path"
	"slices"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/objstore"
	"github.com/regionmirror/regionmirror/internal/repocheck"
	"github.com/regionmirror/regionmirror/internal/repomd"
)

// verifyRepos moves each repository the region carries to the state its repomd.xml shows
// when read back, as clients read it. A repository becomes fresh only here, after every
// phase succeeded in this region.
func (p *Pusher) verifyRepos(ctx context.Context, cfg Config, rr *regionPush, repos []model.Repository, inv *InventoryReport) {
	filesByPath := make(map[string]*model.File, len(inv.Live))
	for i := range inv.Live {
		filesByPath[inv.Live[i].Path] = &inv.Live[i]
	}
	pairs := pairIndex(inv.Live)
	states, err := p.DB.RegionRepos(ctx)
	if err != nil {
		rr.fail(err)
		return
	}
	for _, repo := range repos {
		path := repo.MetadataPath()
		f := filesByPath[path]
		// The same rule as the plan's: a region that does not carry the whole repository
		// got none of its metadata.
		if f == nil || !rr.region.CarriesRepository(repo.Directory) {
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
		var prev *model.RegionRepo
		for i := range states {
			if states[i].RegionID == rr.region.ID && states[i].RepositoryID == repo.ID {
				prev = &states[i]
			}
		}
		// Verified here: written by this push, or recorded verified before it.
		verified := rr.uploadedKeys[path] || rr.objects[f.ID].Holds(f)
		pair := pairs[pairKey(path)]
		written := slices.ContainsFunc(pair, func(pf *model.File) bool { return rr.uploadedKeys[pf.Path] })
		if !written && prev != nil && prev.State == model.RepoFresh && bytes.Equal(prev.RepomdSHA256, f.SHA256) && verified {
			rr.Repos = append(rr.Repos, RepoResult{Repo: repo.Name, Arch: repo.Arch, State: model.RepoFresh})
			continue
		}
		if !verified {
			continue
		}
		st := repocheck.Check(ctx, cfg.HTTPClient, rr.region, rr.store, path, versions)
		if st.Via == repocheck.ViaStorage {
			p.log().Info("read repomd.xml back through the storage API", slog.String("region", rr.Region), slog.String("path", path))
		}
		if st.State == model.RepoFresh {
			// The pair is read back together: a repomd.xml beside a signature of another
			// one fails every client with repo_gpgcheck.
			for _, pf := range pair {
				if pf.Path == path {
					continue
				}
				if err := readBack(ctx, cfg, rr, pf); err != nil {
					st.State, st.Error = model.RepoStale, err.Error()
					break
				}
			}
		}
		if err := p.setRegionRepo(ctx, rr, st.RegionRepo); err != nil {
			rr.fail(err)
			return
		}
		rr.Repos = append(rr.Repos, RepoResult{Repo: repo.Name, Arch: repo.Arch, State: st.State, Via: st.Via})
		if st.State != model.RepoFresh {
			rr.fail(fmt.Errorf("push %s: repository %s/%s: repomd.xml read back is %s: %s", rr.Region, repo.Name, repo.Arch, st.State, st.Error))
		}
	}
}

// pairIndex lists, by pairKey, the origin's repomd.xml and the files published with it
// (repomd.xml.asc, repomd.xml.key; an APT suite's Release files): one pass over the
// inventory.
func pairIndex(live []model.File) map[string][]*model.File {
	out := map[string][]*model.File{}
	for i := range live {
		if f := &live[i]; PhaseOf(f.Path) == PhaseRepomd {
			key := pairKey(f.Path)
			out[key] = append(out[key], f)
		}
	}
	return out
}

// readBack reads a published file through the region's public URL (the storage API where
// this host cannot reach it, as repocheck does) and compares it with the origin's.
func readBack(ctx context.Context, cfg Config, rr *regionPush, f *model.File) error {
	sum, status, err := repocheck.FetchSHA256(ctx, cfg.HTTPClient, rr.region.URL(f.Path))
	if err != nil && rr.store != nil && (status == 0 || rr.region.Access == model.AccessLocationOnly) {
		sum, err = storeSHA256(ctx, rr.store, f.Path)
	}
	switch {
	case err != nil:
		return fmt.Errorf("%s read back: %w", path.Base(f.Path), err)
	case !bytes.Equal(sum, f.SHA256):
		return fmt.Errorf("%s read back does not match the origin's", path.Base(f.Path))
	}
	return nil
}

func storeSHA256(ctx context.Context, s objstore.Store, key string) ([]byte, error) {
	r, err := s.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(r, repomd.MaxSize+1)); err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return h.Sum(nil), nil
}
