package selection_test

import (
	"strings"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/server/selection"
)

// TestCells: the freshness grid of the test world, the one the dashboard, the API and
// `regionmirror status` show. Health, access and enabled do not enter a cell: they decide
// whether a client is sent, not what the region's copy is.
func TestCells(t *testing.T) {
	type want struct {
		state   string
		version int
		known   bool
		reason  string // prefix of the verdict's reason ("" when offered)
		err     string // the recorded (public) error
	}
	base := map[string]want{
		"us-east-1":      {state: model.RepoFresh, version: 0, known: true},
		"eu-central-1":   {state: model.RepoFresh, version: 0, known: true},
		"ap-southeast-2": {state: model.RepoFresh, version: 0, known: true},
		"ap-northeast-1": {state: model.RepoAlternate, version: 1, known: true},
		"us-east-2":      {state: model.RepoFresh, version: 0, known: true},
		"eu-west-1":      {state: model.RepoFresh, version: 0, known: true},
		"sa-east-1":      {state: model.RepoFresh, version: 0, known: true},
		"us-west-2":      {state: model.RepoFresh, version: 0, known: true},
		"me-south-1":     {state: model.RepoExcluded, version: -1, reason: "does not carry the repository"},
		"ca-central-1":   {state: model.RepoStale, version: -1, known: true, reason: "serves a stale repomd.xml", err: "serves an unknown repomd.xml"},
		"af-south-1":     {state: model.RepoStale, version: 2, known: true, reason: "serves a repomd.xml superseded 96h0m0s ago, beyond metalink.alternates_max_age (72h0m0s)"},
		"eu-north-1":     {state: model.RepoUnverified, version: -1, reason: "repository not verified in this region yet"},
		"eu-south-1":     {state: model.RepoMissing, version: -1, known: true, reason: "has no repomd.xml", err: "HTTP 404"},
		"eu-west-3":      {state: model.RepoUnreachable, version: -1, known: true, reason: "unreachable", err: "connection refused"},
		"ap-south-1":     {state: model.RepoStale, version: -1, known: true, reason: "serves a repomd.xml the origin never published"},
		"us-gov-1":       {state: model.RepoFresh, version: 0, known: true},
	}
	with := func(changes map[string]want) map[string]want {
		out := map[string]want{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range changes {
			out[k] = v
		}
		return out
	}
	for _, tt := range []struct {
		name   string
		maxAge time.Duration
		want   map[string]want
	}{
		{"72h window", 72 * time.Hour, base},
		{"200h window: the older alternate is offered too", 200 * time.Hour, with(map[string]want{
			"af-south-1": {state: model.RepoAlternate, version: 2, known: true},
		})},
		{"no window: every superseded version is stale", 0, with(map[string]want{
			"ap-northeast-1": {state: model.RepoStale, version: 1, known: true, reason: "serves a repomd.xml superseded 1h0m0s ago, beyond metalink.alternates_max_age (0s)"},
			"af-south-1":     {state: model.RepoStale, version: 2, known: true, reason: "serves a repomd.xml superseded 96h0m0s ago, beyond metalink.alternates_max_age (0s)"},
		})},
	} {
		t.Run(tt.name, func(t *testing.T) {
			snap := selection.BuildSnapshot(fixtureData(t, world), nil, selection.Policy{AlternatesMaxAge: tt.maxAge}, nil)
			repo := snap.Repository("demo-1", "x86_64")
			cells := snap.Cells(repo, now)
			if len(cells) != len(snap.Regions) || len(cells) != len(tt.want) {
				t.Fatalf("%d cells for %d regions, want %d", len(cells), len(snap.Regions), len(tt.want))
			}
			for i, c := range cells {
				if c.Region != snap.Regions[i] {
					t.Errorf("cell %d is of %s, want %s (the order of the regions)", i, c.Region.Name, snap.Regions[i].Name)
				}
				w := tt.want[c.Region.Name]
				if c.State != w.state || c.Version != w.version || c.Recorded.Known != w.known || c.Recorded.Error != w.err ||
					!strings.HasPrefix(c.Reason, w.reason) || (w.reason == "") != (c.Reason == "") {
					t.Errorf("%s: state %s version %d known %v reason %q error %q, want %+v",
						c.Region.Name, c.State, c.Version, c.Recorded.Known, c.Reason, c.Recorded.Error, w)
				}
				if c.Offered() != (w.state == model.RepoFresh || w.state == model.RepoAlternate) {
					t.Errorf("%s: offered %v in state %s", c.Region.Name, c.Offered(), c.State)
				}
				if got := snap.Cell(repo, c.Region, now); got.RepoFreshness != c.RepoFreshness || got.Recorded.Known != c.Recorded.Known {
					t.Errorf("%s: Cell %+v, Cells %+v", c.Region.Name, got.RepoFreshness, c.RepoFreshness)
				}
			}
		})
	}
}

// TestCellsAgreeWithSelection: for a client that names the region (location=, which
// admits location-only regions too), selection chooses a region exactly when its cell is
// offered, with the cell's version, and otherwise gives the cell's reason; only disabled
// and down regions are left out for reasons of their own.
func TestCellsAgreeWithSelection(t *testing.T) {
	for _, maxAge := range []time.Duration{0, time.Hour, 72 * time.Hour, 200 * time.Hour} {
		snap := selection.BuildSnapshot(fixtureData(t, world), nil, selection.Policy{AlternatesMaxAge: maxAge}, nil)
		repo := snap.Repository("demo-1", "x86_64")
		for _, r := range snap.Regions {
			if !r.Enabled || r.Health == model.HealthDown {
				continue
			}
			cell := snap.Cell(repo, r, now)
			d := selection.SelectRepository(snap, repo, selection.Request{Now: now, Location: r.Name})
			chosen, reason := -1, ""
			for _, c := range d.Chosen {
				if c.Region == r {
					chosen = c.Version
				}
			}
			for _, e := range d.Excluded {
				if e.Region == r {
					reason = e.Reason
				}
			}
			wantReason := cell.Reason
			if cell.State == model.RepoExcluded {
				wantReason = "does not carry " + repo.Directory
			}
			switch {
			case cell.Offered() && chosen != cell.Version:
				t.Errorf("max age %s, %s: cell %+v, chosen with version %d (excluded: %q)", maxAge, r.Name, cell.RepoFreshness, chosen, reason)
			case !cell.Offered() && (chosen >= 0 || !strings.HasPrefix(reason, wantReason)):
				t.Errorf("max age %s, %s: cell %+v, but chosen %d, excluded for %q", maxAge, r.Name, cell.RepoFreshness, chosen, reason)
			}
		}
	}
}
