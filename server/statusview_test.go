package server

import (
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/server/selection"
	"github.com/regionmirror/regionmirror/server/selection/selectiontest"
)

// TestRepositoryCarriedOnlyWhole: the grid the pages and the API render, and the prober,
// agree with selection that a region carries a repository only when its includes cover the
// repository's whole directory (model.CarriesRepository; issue 12, defect 11). Selection's
// own half of the test is in server/selection.
func TestRepositoryCarriedOnlyWhole(t *testing.T) {
	for _, tt := range selectiontest.CarriedCases {
		spec := regionSpec{Name: "eu-central-1", Country: "DE", Lat: 50.1, Lon: 8.7, Includes: tt.Includes, RepoState: "fresh", RepoVersion: "v3"}
		snap := selection.BuildSnapshot(fixtureData(t, []regionSpec{spec}), nil, selection.Policy{AlternatesMaxAge: 72 * time.Hour}, nil)
		if got := len(selection.SelectRepository(snap, snap.Repository("demo-1", "x86_64"), selection.Request{Now: now}).Chosen) == 1; got != tt.Offered {
			t.Errorf("includes %q: selection offers it: %v, want %v", tt.Includes, got, tt.Offered)
		}
		wantCell := "fresh"
		if !tt.Offered {
			wantCell = CellExcluded
		}
		if c := repositoryViews(snap, now, nil)[0].Regions["eu-central-1"]; c.State != wantCell {
			t.Errorf("includes %q: the grid says %s, want %s", tt.Includes, c.State, wantCell)
		}
		if pt := probeTargetOf(snap, snap.Regions[0]); pt.repomd != tt.Offered {
			t.Errorf("includes %q: the prober asks for %s", tt.Includes, pt.what)
		}
	}
}
