package pusher

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/objstore"
	"github.com/regionmirror/regionmirror/internal/repomd"
)

// Ways repomd.xml was read back.
const (
	ViaPublicURL = "public-url"
	ViaStorage   = "storage"
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
	objects, err := p.DB.RegionObjects(ctx, rr.region.ID)
	if err != nil {
		rr.fail(err)
		return
	}
	objByPath := make(map[string]*db.RegionObject, len(objects))
	for i := range objects {
		objByPath[objects[i].Path] = &objects[i]
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
		if !rr.uploadedKeys[path] && prev != nil && prev.State == db.RepoFresh && bytes.Equal(prev.RepomdSHA256, f.SHA256) &&
			Verified(f, objByPath[path]) {
			rr.Repos = append(rr.Repos, RepoResult{Repo: repo.Name, Arch: repo.Arch, State: db.RepoFresh})
			continue
		}
		if !Verified(f, objByPath[path]) {
			continue
		}
		st := p.readBack(ctx, cfg, rr, path, versions)
		if err := p.DB.SetRegionRepo(ctx, st.RegionRepo); err != nil {
			rr.fail(err)
			return
		}
		rr.Repos = append(rr.Repos, RepoResult{Repo: repo.Name, Arch: repo.Arch, State: st.State, Via: st.via})
		if st.State != db.RepoFresh {
			rr.fail(fmt.Errorf("push %s: repository %s/%s: repomd.xml read back is %s: %s", rr.Region, repo.Name, repo.Arch, st.State, st.Error))
		}
	}
}

type readBackState struct {
	db.RegionRepo
	via string
}

// readBack fetches repomd.xml through the region's public URL; where that cannot be
// reached (a location-only bucket, a network the pusher is not in) through the storage
// API. It classifies what it read against the repository's versions.
func (p *Pusher) readBack(ctx context.Context, cfg Config, rr *RegionResult, path string, versions []db.RepomdVersion) readBackState {
	st := readBackState{RegionRepo: db.RegionRepo{RegionID: rr.region.ID, RepositoryID: versions[0].RepositoryID}}
	sum, status, err := fetchPublic(ctx, cfg.HTTPClient, rr.region.URL(path))
	st.HTTPStatus, st.via = status, ViaPublicURL
	if err != nil && status != http.StatusNotFound {
		p.log().Warn("public read of repomd.xml failed; reading through the storage API", slog.String("region", rr.Region),
			slog.String("url", rr.region.URL(path)), slog.Any("err", err))
		sum, err = fetchStore(ctx, rr.store, path)
		st.via = ViaStorage
		if errors.Is(err, objstore.ErrNotExist) {
			status = http.StatusNotFound
		}
	}
	switch {
	case status == http.StatusNotFound && err != nil:
		st.State, st.Error = db.RepoMissing, err.Error()
	case err != nil:
		st.State, st.Error = db.RepoUnreachable, err.Error()
	default:
		st.RepomdSHA256 = sum
		st.State = Classify(sum, versions)
		if st.State == db.RepoStale {
			st.Error = "serves a repomd.xml the origin did not publish"
		}
	}
	return st
}

// Classify names the state of a region serving a repomd.xml with this SHA-256.
func Classify(sum []byte, versions []db.RepomdVersion) string {
	for i, v := range versions {
		if bytes.Equal(v.SHA256, sum) {
			if i == 0 {
				return db.RepoFresh
			}
			return db.RepoAlternate
		}
	}
	return db.RepoStale
}

// fetchPublic GETs a URL as dnf does, bypassing caches, and hashes the body.
func fetchPublic(ctx context.Context, client *http.Client, url string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Cache-Control", "no-cache")
	req.Header.Set("User-Agent", "regionmirror")
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(resp.Body, repomd.MaxSize+1)); err != nil {
		return nil, resp.StatusCode, fmt.Errorf("GET %s: %w", url, err)
	}
	return h.Sum(nil), resp.StatusCode, nil
}

func fetchStore(ctx context.Context, s objstore.Store, key string) ([]byte, error) {
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
