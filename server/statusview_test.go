package server

import (
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/server/selection"
)

// TestRepositoryCarriedOnlyWhole: the grid the pages and the API render, and the prober,
// agree with selection that a region carries a repository only when its includes cover the
// repository's whole directory (model.CarriesRepository; issue 12, defect 11). Selection's
// own half of the test is in server/selection.
func TestRepositoryCarriedOnlyWhole(t *testing.T) {
	for _, tt := range []struct {
		includes []string
		offered  bool
	}{
		{nil, true},
		{[]string{"demo"}, true},
		{[]string{"demo/1/x86_64/os"}, true},
		{[]string{"demo/1/x86_64/os/repodata"}, false},
		{[]string{"demo/1/x86_64/os/repodata", "demo/1/x86_64/os/Packages"}, false},
		{[]string{"demo/1/x86_64/o"}, false},
	} {
		spec := regionSpec{Name: "eu-central-1", Country: "DE", Lat: 50.1, Lon: 8.7, Includes: tt.includes, RepoState: "fresh", RepoVersion: "v3"}
		snap := selection.BuildSnapshot(fixtureData(t, []regionSpec{spec}), nil, selection.Policy{AlternatesMaxAge: 72 * time.Hour}, nil)
		if got := len(selection.SelectRepository(snap, snap.Repository("demo-1", "x86_64"), selection.Request{Now: now}).Chosen) == 1; got != tt.offered {
			t.Errorf("includes %q: selection offers it: %v, want %v", tt.includes, got, tt.offered)
		}
		wantCell := "fresh"
		if !tt.offered {
			wantCell = CellExcluded
		}
		if c := repositoryViews(snap, now)[0].Regions["eu-central-1"]; c.State != wantCell {
			t.Errorf("includes %q: the grid says %s, want %s", tt.includes, c.State, wantCell)
		}
		if pt := probeTargetOf(snap, snap.Regions[0]); pt.repomd != tt.offered {
			t.Errorf("includes %q: the prober asks for %s", tt.includes, pt.what)
		}
	}
}
