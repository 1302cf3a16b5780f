package scanner

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/regionmirror/regionmirror/internal/model"
)

// A region that moved to a place holding the current repodata but none of the packages
// (nothing recorded there yet) is not fresh: the current repomd.xml's primary.xml names
// every package. Before the fix a scan, shallow or deep, recorded it fresh, since packages
// never pushed were taken to be named by nothing the region serves (found by review).
func TestMovedRegionWithoutPackagesIsNotFresh(t *testing.T) {
	for _, deep := range []bool{false, true} {
		f := newFixture(t, 0)
		f.scanner.Config.Deep = deep
		ctx := context.Background()
		oldDir, newDir := t.TempDir(), t.TempDir()
		oldSrv := httptest.NewServer(http.FileServer(http.Dir(oldDir)))
		defer oldSrv.Close()
		newSrv := httptest.NewServer(http.FileServer(http.Dir(newDir)))
		defer newSrv.Close()
		r := f.add(&model.Region{Name: "moving", Kind: model.KindFile, Dir: oldDir, PublicURL: oldSrv.URL})
		f.push(r)
		if err := os.MkdirAll(filepath.Join(newDir, repoDir), 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("cp", "-a", filepath.Join(oldDir, repoDir, "repodata"), filepath.Join(newDir, repoDir)).CombinedOutput(); err != nil {
			t.Fatal(string(out))
		}
		moved, _, err := f.db.UpdateRegion(ctx, r.Name, func(m *model.Region) error {
			m.Dir, m.PublicURL = newDir, newSrv.URL
			return m.Normalize()
		})
		if err != nil {
			t.Fatal(err)
		}
		rep := f.scan(moved)[0]
		if st := f.repoState(moved); st != model.RepoStale || !strings.Contains(f.repoError(moved), "packages its primary.xml names") {
			t.Errorf("deep=%v: a region holding no package is %s (%q), report %+v", deep, st, f.repoError(moved), rep.Repos)
		}
		// Once the packages are there, it is fresh.
		f.push(moved)
		if f.scan(moved); f.repoState(moved) != model.RepoFresh {
			t.Errorf("deep=%v: after the push: %s (%s)", deep, f.repoState(moved), f.repoError(moved))
		}
	}
}
