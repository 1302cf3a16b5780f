// Package repocheck reads a region's repomd.xml back as clients do and says which of the
// repository's versions it is. The pusher uses it to verify what it wrote, the scanner to
// verify what regions serve.
package repocheck

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/objstore"
	"github.com/regionmirror/regionmirror/internal/repomd"
)

// Ways repomd.xml was read.
const (
	ViaPublicURL = "public-url"
	ViaStorage   = "storage"
)

// Result is what a region serves for one repository.
type Result struct {
	db.RegionRepo
	Via string
	// Reachable is false when clients could not read it at all (network error, 403, 5xx):
	// a health failure, unlike a 404.
	Reachable bool
}

// Check reads path (a repository's repomd.xml) through the region's public URL. The
// storage API is used instead only where clients of this process cannot be: a
// location-only region, or a public URL this host cannot connect to. An HTTP error from
// the public URL is what clients get, so it is the answer.
func Check(ctx context.Context, client *http.Client, r *model.Region, store objstore.Store, path string, versions []db.RepomdVersion) Result {
	res := Result{RegionRepo: db.RegionRepo{RegionID: r.ID}, Via: ViaPublicURL, Reachable: true}
	if len(versions) > 0 {
		res.RepositoryID = versions[0].RepositoryID
	}
	sum, status, err := FetchSHA256(ctx, client, r.URL(path))
	res.HTTPStatus = status
	if err != nil && store != nil && (status == 0 || r.Access == model.AccessLocationOnly) {
		res.Via = ViaStorage
		sum, err = storeSHA256(ctx, store, path)
		status = 0
		if errors.Is(err, objstore.ErrNotExist) {
			status = http.StatusNotFound
		}
	}
	switch {
	case err != nil && status == http.StatusNotFound:
		res.State, res.Error = db.RepoMissing, err.Error()
	case err != nil:
		res.State, res.Error, res.Reachable = db.RepoUnreachable, err.Error(), false
	default:
		res.RepomdSHA256 = sum
		res.State = Classify(sum, versions)
		if res.State == db.RepoStale {
			res.Error = "serves a repomd.xml the origin did not publish"
		}
	}
	return res
}

// Classify names the state of a region serving a repomd.xml with this SHA-256, given the
// repository's versions newest first.
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

// FetchSHA256 GETs a URL as dnf does, bypassing caches, and hashes the body. The status is
// 0 when no HTTP answer came.
func FetchSHA256(ctx context.Context, client *http.Client, url string) ([]byte, int, error) {
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
