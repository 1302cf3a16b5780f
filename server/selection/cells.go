package selection

import (
	"time"

	"github.com/regionmirror/regionmirror/internal/model"
)

// Cell is what one region serves of one repository: one square of the freshness grid that
// the dashboard, /api/v1/status and `regionmirror status` show, judged by the rule
// selection follows (model.Freshness): a region recorded fresh counts as alternate once a
// newer repomd.xml appears, and as stale once that one is older than the alternates window.
type Cell struct {
	Region *Region
	// Freshness is the verdict: State, the served version and, when not offered, why.
	model.RepoFreshness
	// Recorded is what the last push or scan recorded (Known is false when nothing was).
	// It is left empty (Known false, Version -1) when the region does not carry the
	// repository: what it recorded then does not apply.
	Recorded RegionRepo
}

// Cell judges what r serves of repo at now.
func (s *Snapshot) Cell(repo *Repository, r *Region, now time.Time) Cell {
	c := Cell{Region: r, RepoFreshness: s.freshness(repo, r, now), Recorded: RegionRepo{Version: -1}}
	if c.State != model.RepoExcluded {
		c.Recorded = repo.InRegion[r.Index]
	}
	return c
}

// Cells judges repo in every region, in the order of s.Regions.
func (s *Snapshot) Cells(repo *Repository, now time.Time) []Cell {
	out := make([]Cell, len(s.Regions))
	for i, r := range s.Regions {
		out[i] = s.Cell(repo, r, now)
	}
	return out
}
