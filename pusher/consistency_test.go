package pusher

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
)

// An origin caught between re-signing its packages and running createrepo (or between
// rewriting repodata in place and writing repomd.xml) is not pushed: its metadata is
// withheld, and the packages rewritten under their names are not overwritten, so the
// region keeps serving the older state whole. Before the fix the push overwrote the
// package, re-published the unchanged repomd.xml and verified the region fresh, and every
// dnf client failed the package's checksum (found by TestConcurrencySoak).
func TestOriginBetweenResignAndCreaterepoIsNotPushed(t *testing.T) {
	f := newFixture(t)
	r, _ := f.fileRegion("mid-update-1")
	if rr := f.push(r).Regions[0]; rr.Status != model.RunOK || f.repoState(r) != model.RepoFresh {
		t.Fatalf("first push: %+v", rr)
	}
	pkg := repoDir + "/Packages/hello-1.0-1.noarch.rpm"
	_, before := get(t, r.URL(pkg))
	resigned := []byte(before + "re-signed")
	if err := os.WriteFile(filepath.Join(f.origin, pkg), resigned, 0o644); err != nil {
		t.Fatal(err)
	}
	rr := f.push(r).Regions[0]
	if rr.Status != model.RunFailed || !strings.Contains(rr.Error, "primary.xml names Packages/hello-1.0-1.noarch.rpm") {
		t.Errorf("push of an origin mid-update: %s %q", rr.Status, rr.Error)
	}
	if _, now := get(t, r.URL(pkg)); now != before {
		t.Errorf("the package the served metadata names was overwritten")
	}
	if s := f.repoState(r); s != model.RepoFresh {
		t.Errorf("the region, still whole, is %s", s)
	}
	// createrepo catches up: the next push publishes the new state.
	createrepo(t, filepath.Join(f.origin, repoDir))
	if rr := f.push(r).Regions[0]; rr.Status != model.RunOK || f.repoState(r) != model.RepoFresh {
		t.Fatalf("push after createrepo: %+v", rr)
	}
	if _, now := get(t, r.URL(pkg)); now != string(resigned) {
		t.Errorf("the re-signed package did not go up")
	}
	f.checkRegionHasOrigin(r)
}

// Repodata rewritten in place before repomd.xml: the same.
func TestOriginRepodataAheadOfRepomdIsNotPushed(t *testing.T) {
	f := newFixture(t)
	r, _ := f.fileRegion("mid-update-2")
	repo := filepath.Join(f.origin, repoDir)
	createrepoSimple(t, repo)
	if rr := f.push(r).Regions[0]; rr.Status != model.RunOK {
		t.Fatalf("first push: %+v", rr)
	}
	primary := repoDir + "/repodata/primary.xml.gz"
	_, before := get(t, r.URL(primary))
	repomdPath := filepath.Join(repo, "repodata", "repomd.xml")
	oldRepomd, _ := os.ReadFile(repomdPath)
	if err := os.Remove(filepath.Join(repo, "Packages", "greet-2.1-1.noarch.rpm")); err != nil {
		t.Fatal(err)
	}
	createrepoSimple(t, repo)
	if err := os.WriteFile(repomdPath, oldRepomd, 0o644); err != nil { // repomd.xml not written yet
		t.Fatal(err)
	}
	rr := f.push(r).Regions[0]
	if rr.Status != model.RunFailed || !strings.Contains(rr.Error, "repodata/primary.xml.gz with another") {
		t.Errorf("push of repodata ahead of repomd.xml: %s %q", rr.Status, rr.Error)
	}
	if _, now := get(t, r.URL(primary)); now != before {
		t.Errorf("primary.xml.gz the served repomd.xml names was overwritten")
	}
}

// A push never takes the last region serving a repository out for a rewrite in place
// while another region is out: found by TestConcurrencySoak, where pushes the origin's
// next change interrupted left one region out after the other until every metalink was a
// 503. The last serving region keeps the older version whole until another serves the new.
func TestRewriteInPlaceNeverTakesTheLastServingRegion(t *testing.T) {
	f := newFixture(t)
	a, _ := f.fileRegion("last-a")
	b, _ := f.fileRegion("last-b")
	if res := f.push(a, b); res.Failed() {
		t.Fatalf("first push: %+v %+v", res.Regions[0], res.Regions[1])
	}
	pkg := repoDir + "/Packages/hello-1.0-1.noarch.rpm"
	_, before := get(t, b.URL(pkg))
	if err := os.WriteFile(filepath.Join(f.origin, pkg), []byte(before+"re-signed"), 0o644); err != nil {
		t.Fatal(err)
	}
	createrepo(t, filepath.Join(f.origin, repoDir))
	// An earlier push of a took it out for the rewrite and was interrupted.
	states, _ := f.db.RegionRepos(context.Background())
	for _, st := range states {
		if st.RegionID == a.ID {
			st.State, st.Error = model.RepoStale, reasonInPlace
			if err := f.db.SetRegionRepo(context.Background(), db.NoFence, st); err != nil {
				t.Fatal(err)
			}
		}
	}
	rr := f.push(b).Regions[0]
	if rr.Status != model.RunFailed || !strings.Contains(rr.Error, "last one serving") {
		t.Errorf("push of the last serving region: %s %q", rr.Status, rr.Error)
	}
	if s := f.repoState(b); s != model.RepoFresh && s != model.RepoAlternate {
		t.Errorf("the last serving region is %s", s)
	}
	if _, now := get(t, b.URL(pkg)); now != before {
		t.Error("the last serving region's package was overwritten")
	}
	// Once a serves the new version, b follows.
	if rr := f.push(a).Regions[0]; rr.Status != model.RunOK || f.repoState(a) != model.RepoFresh {
		t.Fatalf("push of a: %+v", rr)
	}
	if rr := f.push(b).Regions[0]; rr.Status != model.RunOK || f.repoState(b) != model.RepoFresh {
		t.Fatalf("push of b after a: %+v", rr)
	}
	f.checkRegionHasOrigin(b)
}
