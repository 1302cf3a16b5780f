package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/regionmirror/regionmirror/internal/repomd"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

// The APT repository of the world: an archive at debian/ in the origin, suite stable,
// by-hash, published again every round (a new package version; Packages rewritten in place
// and a new by-hash twin).
const (
	aptRepo  = "deb"
	aptDir   = "debian"
	aptSuite = "stable"
)

// aptStats are what the apt-like clients saw.
type aptStats struct {
	lists      atomic.Int64 // mirror lists read
	entries    atomic.Int64 // base URLs in them
	files      atomic.Int64 // index and pool files fetched and checked
	mismatches atomic.Int64 // a file whose bytes are not what the InRelease it was read under lists
	failures   atomic.Int64 // runs where no entry gave a complete, correct suite (apt update fails)
	server5xx  atomic.Int64
	other      atomic.Int64 // non-200 mirror lists below 500
}

func (s *aptStats) String() string {
	return fmt.Sprintf("apt: lists %d handing out %d base URLs; files checked %d; mismatches %d; client failures %d; list 5xx %d, other non-200 %d",
		s.lists.Load(), s.entries.Load(), s.files.Load(), s.mismatches.Load(), s.failures.Load(), s.server5xx.Load(), s.other.Load())
}

// check fails the test for every broken promise to apt clients.
func (s *aptStats) check(t *testing.T) {
	t.Helper()
	if s.mismatches.Load() != 0 || s.failures.Load() != 0 || s.server5xx.Load() != 0 || s.other.Load() != 0 {
		t.Errorf("the promise to apt clients broke: %s", s)
	}
	if s.lists.Load() < 10 {
		t.Errorf("only %d mirror lists read: the apt clients did not really run", s.lists.Load())
	}
}

// addApt builds the archive in the origin and registers it.
func (w *world) addApt() *testenv.AptArchive {
	w.t.Helper()
	a := testenv.NewAptArchive(w.t, filepath.Join(w.origin, aptDir), aptSuite, true, true)
	a.Publish(w.t, aptPackages(0), testenv.PublishOptions{})
	w.mustCLI("repo", "add", aptRepo, "--kind", "apt", "--suite", aptSuite, aptDir)
	return a
}

// aptPackages are the packages of round r: two that never change and one new version a
// round (the older versions' files stay in the pool, as publishers keep them).
func aptPackages(r int) []testenv.AptPackage {
	return []testenv.AptPackage{
		{Name: "hello", Version: "1.0", Content: "hello"},
		{Name: "world", Version: "2.0", Content: "world"},
		{Name: "tick", Version: fmt.Sprintf("1.%d", r), Content: fmt.Sprintf("tick round %d", r)},
	}
}

// aptClient behaves like apt 2.6 with a mirror+http source: it reads the mirror list, takes
// InRelease from the first entry that has it, then every index file InRelease lists by its
// by-hash name (then by its plain name) and one package from Packages, trying the next entry
// when one fails, as apt's mirror method does; every file is checked against the InRelease
// it was read under (apt 2.6 fails on a mismatch, without trying another entry).
type aptClient struct {
	c  *client // for get
	st *aptStats
}

func (a *aptClient) loop(ctx context.Context, locations []string) {
	for i := 0; ctx.Err() == nil; i++ {
		a.run(ctx, locations[i%len(locations)])
	}
}

func (a *aptClient) run(ctx context.Context, loc string) {
	u := a.c.w.srvURL + "/apt/" + aptRepo + ".list"
	if loc != "" {
		u = a.c.w.srvURL + "/apt/" + aptRepo + "/" + loc + ".list"
	}
	body, status, err := a.c.get(ctx, u)
	if ctx.Err() != nil {
		return
	}
	switch {
	case status >= 500 || (err != nil && status == 0):
		a.st.server5xx.Add(1)
		a.c.st.note("apt list %s: %d %v", u, status, err)
		a.c.pause(ctx)
		return
	case status != 200:
		a.st.other.Add(1)
		a.c.st.note("apt list %s: %d: %s", u, status, firstLine(body))
		return
	}
	a.st.lists.Add(1)
	var entries []string
	for _, line := range strings.Split(string(body), "\n") {
		if base, _, _ := strings.Cut(line, "\t"); strings.TrimSpace(base) != "" && !strings.HasPrefix(base, "#") {
			entries = append(entries, strings.TrimSuffix(strings.TrimSpace(base), "/"))
		}
	}
	a.st.entries.Add(int64(len(entries)))
	// apt update: InRelease from the first entry that answers (then Release, as apt
	// does for a suite without one), then its indices.
	for _, base := range entries {
		raw, _, err := a.c.get(ctx, base+"/dists/"+aptSuite+"/InRelease")
		if err != nil && ctx.Err() == nil {
			raw, _, err = a.c.get(ctx, base+"/dists/"+aptSuite+"/Release")
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			continue // a region down, or not holding the suite yet: the next entry
		}
		rel, err := repomd.ParseRelease(bytes.NewReader(raw))
		if err != nil {
			a.st.mismatches.Add(1)
			a.c.st.note("apt: InRelease from %s does not parse: %v", base, err)
			return
		}
		if !a.suite(ctx, entries, rel) && ctx.Err() == nil {
			a.st.failures.Add(1)
		}
		return
	}
	a.st.failures.Add(1)
	a.c.st.note("apt: no entry of %d served InRelease", len(entries))
}

// suite fetches every index file rel lists and one package, each from the first entry
// that has it; false when one could be had from none, or had other bytes.
func (a *aptClient) suite(ctx context.Context, entries []string, rel *repomd.Release) bool {
	var packages []byte
	for _, f := range rel.Files {
		names := []string{f.Path}
		if rel.ByHash {
			names = []string{path.Join(path.Dir(f.Path), "by-hash/SHA256", fmt.Sprintf("%x", f.SHA256)), f.Path}
		}
		b, ok := a.first(ctx, entries, names, "dists/"+aptSuite+"/")
		if !ok {
			return false
		}
		if sum := sha256.Sum256(b); int64(len(b)) != f.Size || !bytes.Equal(sum[:], f.SHA256) {
			a.st.mismatches.Add(1)
			a.c.st.note("apt: %s: other bytes than its InRelease lists (Hash Sum mismatch)", f.Path)
			return false
		}
		if f.Path == "main/binary-amd64/Packages.gz" {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err == nil {
				packages, _ = io.ReadAll(zr)
			}
		}
	}
	var pkgs []repomd.DebPackage
	if err := repomd.ParsePackages(bytes.NewReader(packages), func(p repomd.DebPackage) error {
		pkgs = append(pkgs, p)
		return nil
	}); err != nil || len(pkgs) == 0 {
		a.st.mismatches.Add(1)
		a.c.st.note("apt: Packages.gz unreadable: %v", err)
		return false
	}
	// The newest package: the file the last publish added.
	p := pkgs[len(pkgs)-1]
	b, ok := a.first(ctx, entries, []string{p.Filename}, "")
	if !ok {
		return false
	}
	if sum := sha256.Sum256(b); int64(len(b)) != p.Size || !bytes.Equal(sum[:], p.SHA256) {
		a.st.mismatches.Add(1)
		a.c.st.note("apt: %s: other bytes than Packages lists", p.Filename)
		return false
	}
	return true
}

// first fetches the first of names (relative to prefix under a base URL) that an entry
// has, in apt's order: its mirror method tries every entry for one name, and only then
// does apt fall back from the by-hash name to the plain one.
func (a *aptClient) first(ctx context.Context, entries, names []string, prefix string) ([]byte, bool) {
	for _, n := range names {
		for _, base := range entries {
			b, _, err := a.c.get(ctx, base+"/"+prefix+n)
			if ctx.Err() != nil {
				return nil, false
			}
			if err == nil {
				a.st.files.Add(1)
				return b, true
			}
			// A region that lags has no by-hash file of the newer revision: the next entry.
		}
	}
	a.c.st.note("apt: %s from no entry of %d", names[0], len(entries))
	return nil, false
}
