package repocheck

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	pathpkg "path"
	"strings"

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
	model.RegionRepo
	Via string
	// Reachable is false when clients could not read it at all (network error, 403, 5xx):
	// a health failure, unlike a 404.
	Reachable bool
	// Body is the repomd.xml read (nil when none was), so that the files it names can be
	// checked against what the region holds.
	Body []byte
}

// Check reads path (a repository's repomd.xml, or an APT suite's InRelease) through the region's public URL. The
// storage API is used instead only where clients of this process cannot be: a
// location-only region, or a public URL this host cannot connect to. An HTTP error from
// the public URL is what clients get, so it is the answer.
func Check(ctx context.Context, client *http.Client, r *model.Region, store objstore.Store, path string, versions []model.RepomdVersion) Result {
	res := Result{RegionRepo: model.RegionRepo{RegionID: r.ID}, Via: ViaPublicURL, Reachable: true}
	if len(versions) > 0 {
		res.RepositoryID = versions[0].RepositoryID
	}
	body, via, status, err := Read(ctx, client, r, store, path)
	res.HTTPStatus, res.Via = status, via
	if via == ViaStorage {
		res.HTTPStatus = 0
	}
	var sum []byte
	if err == nil {
		h := sha256.Sum256(body)
		sum, res.Body = h[:], body
	}
	switch {
	case err != nil && status == http.StatusNotFound:
		res.State, res.Error = model.RepoMissing, err.Error()
	case err != nil:
		res.State, res.Error, res.Reachable = model.RepoUnreachable, err.Error(), false
	default:
		res.RepomdSHA256 = sum
		res.State = Classify(sum, versions)
		if res.State == model.RepoStale {
			name, article := pathpkg.Base(path), "a "
			if strings.HasPrefix(name, "In") {
				article = "an " // InRelease
			}
			res.Error = "serves " + article + name + " the origin did not publish"
		}
	}
	return res
}

// Classify names the state of a region serving a repomd.xml with this SHA-256, given the
// repository's versions newest first.
func Classify(sum []byte, versions []model.RepomdVersion) string {
	for i, v := range versions {
		if bytes.Equal(v.SHA256, sum) {
			if i == 0 {
				return model.RepoFresh
			}
			return model.RepoAlternate
		}
	}
	return model.RepoStale
}

// Read reads a small file of a region (repomd.xml, its signature) as clients do: through
// the public URL, or through the storage API where clients of this process cannot be (a
// location-only region, or a public URL this host cannot connect to). The status is the
// HTTP status (404 also when the storage has no such object), 0 when no answer came.
func Read(ctx context.Context, client *http.Client, r *model.Region, store objstore.Store, path string) (body []byte, via string, status int, err error) {
	body, status, err = Fetch(ctx, client, r.URL(path))
	if err == nil || store == nil || (status != 0 && r.Access != model.AccessLocationOnly) {
		return body, ViaPublicURL, status, err
	}
	body, err = storeRead(ctx, store, path)
	status = 0
	if errors.Is(err, objstore.ErrNotExist) {
		status = http.StatusNotFound
	}
	return body, ViaStorage, status, err
}

// FetchSHA256 GETs a URL as dnf does, bypassing caches, and hashes the body. The status is
// 0 when no HTTP answer came.
func FetchSHA256(ctx context.Context, client *http.Client, url string) ([]byte, int, error) {
	body, status, err := Fetch(ctx, client, url)
	if err != nil {
		return nil, status, err
	}
	sum := sha256.Sum256(body)
	return sum[:], status, nil
}

// Fetch GETs a URL as dnf does, bypassing caches, and returns at most repomd.MaxSize bytes
// of the body (a longer one is an error).
func Fetch(ctx context.Context, client *http.Client, url string) ([]byte, int, error) {
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
	body, err := io.ReadAll(io.LimitReader(resp.Body, repomd.MaxSize+1))
	if err != nil {
		return nil, resp.StatusCode, fmt.Errorf("GET %s: %w", url, err)
	}
	if len(body) > repomd.MaxSize {
		return nil, resp.StatusCode, fmt.Errorf("GET %s: larger than %d bytes", url, repomd.MaxSize)
	}
	return body, resp.StatusCode, nil
}

func storeRead(ctx context.Context, s objstore.Store, key string) ([]byte, error) {
	r, err := s.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	body, err := io.ReadAll(io.LimitReader(r, repomd.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if len(body) > repomd.MaxSize {
		return nil, fmt.Errorf("read %s: larger than %d bytes", key, repomd.MaxSize)
	}
	return body, nil
}
