package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/human"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/server/selection"
)

// statusCell is one repository in one region.
type statusCell struct {
	State      string     `json:"state"` // fresh, alternate, stale, missing, unreachable, unverified, excluded
	VerifiedAt *time.Time `json:"verified_at,omitempty"`
	Error      string     `json:"error,omitempty"`
}

type statusRepo struct {
	Repo      string                `json:"repo"`
	Arch      string                `json:"arch"`
	Directory string                `json:"directory"`
	Current   string                `json:"current_sha256,omitempty"`
	Timestamp int64                 `json:"timestamp,omitempty"`
	Regions   map[string]statusCell `json:"regions"`
}

type statusRegion struct {
	Name    string        `json:"name"`
	Enabled bool          `json:"enabled"`
	Access  string        `json:"access"`
	Health  *model.Health `json:"health,omitempty"`
}

type statusReport struct {
	Regions      []statusRegion `json:"regions"`
	Repositories []statusRepo   `json:"repositories"`
	Runs         []model.Run    `json:"recent_runs"`
}

func (a *app) statusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [--json]",
		Short: "Show every repository in every region (fresh, alternate, stale, missing, unreachable) and the last runs",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			d, err := a.openDB(cmd.Context(), true)
			if err != nil {
				return err
			}
			rep, err := loadStatus(cmd.Context(), d, servePolicy(a.cfg))
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(a.stdout, rep)
			}
			printStatus(a, rep, time.Now())
			return nil
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// loadStatus reads what the server reads, one snapshot of the database (and the recent
// runs), and judges it with the server's policy.
func loadStatus(ctx context.Context, d *db.DB, policy selection.Policy) (*statusReport, error) {
	data, err := d.LoadSnapshot(ctx)
	if err != nil {
		return nil, err
	}
	runs, err := d.RecentRuns(ctx, "", 10)
	if err != nil {
		return nil, err
	}
	// As serve judges: its clock against the database's first_seen.
	return buildStatus(data, runs, policy, time.Now()), nil
}

// buildStatus classifies every repository in every region with the freshness cells of the
// server's dashboard and API (selection.Cell). The recorded errors are shown in full, not
// as the public reasons the snapshot keeps: this is the CLI, not a public answer.
func buildStatus(data *model.SnapshotData, runs []model.Run, policy selection.Policy, now time.Time) *statusReport {
	snap := selection.BuildSnapshot(data, nil, policy, nil)
	regions := map[int64]*model.Region{}
	for i := range data.Regions {
		regions[data.Regions[i].ID] = &data.Regions[i]
	}
	health := map[int64]*model.Health{}
	for i := range data.Health {
		health[data.Health[i].RegionID] = &data.Health[i]
	}
	type regionRepo struct{ region, repo int64 }
	recordedErr := map[regionRepo]string{}
	for _, rr := range data.RegionRepos {
		recordedErr[regionRepo{rr.RegionID, rr.RepositoryID}] = rr.Error
	}
	rep := &statusReport{Runs: runs}
	for _, r := range snap.Regions {
		rep.Regions = append(rep.Regions, statusRegion{Name: r.Name, Enabled: r.Enabled, Access: regions[r.ID].Access, Health: health[r.ID]})
	}
	for _, repo := range snap.Repos {
		row := statusRepo{Repo: repo.Name, Arch: repo.Arch, Directory: repo.Directory, Regions: map[string]statusCell{}}
		if len(repo.Versions) > 0 {
			row.Current, row.Timestamp = repo.Versions[0].SHA256Hex, repo.Versions[0].Timestamp
		}
		for _, c := range snap.Cells(repo, now) {
			row.Regions[c.Region.Name] = statusCellOf(c, recordedErr[regionRepo{c.Region.ID, repo.ID}])
		}
		rep.Repositories = append(rep.Repositories, row)
	}
	return rep
}

// statusCellOf is a freshness cell as status shows it, with the recorded error in full; a
// region recorded fresh or alternate that the clock or the versions made stale says why.
func statusCellOf(c selection.Cell, recordedErr string) statusCell {
	if c.State == model.RepoExcluded {
		return statusCell{State: c.State}
	}
	sc := statusCell{State: c.State}
	if rec := c.Recorded; rec.Known {
		if !rec.VerifiedAt.IsZero() {
			t := rec.VerifiedAt
			sc.VerifiedAt = &t
		}
		sc.Error = recordedErr
		if sc.Error == "" && !c.Offered() && (rec.State == model.RepoFresh || rec.State == model.RepoAlternate) {
			sc.Error = c.Reason // stale by the clock or the versions: say why
		}
	}
	return sc
}

func printStatus(a *app, rep *statusReport, now time.Time) {
	header := []string{"REPOSITORY"}
	for _, r := range rep.Regions {
		header = append(header, r.Name)
	}
	rows := [][]string{}
	for _, repo := range rep.Repositories {
		row := []string{repo.Repo + "/" + repo.Arch}
		for _, r := range rep.Regions {
			c := repo.Regions[r.Name]
			cell := c.State
			if c.VerifiedAt != nil {
				cell += " (" + human.Age(now.Sub(*c.VerifiedAt)) + ")"
			}
			row = append(row, cell)
		}
		rows = append(rows, row)
	}
	if len(rep.Repositories) == 0 {
		fmt.Fprintln(a.stdout, "no repositories; add one with 'regionmirror repo add'")
	} else {
		printTable(a.stdout, header, rows)
	}
	fmt.Fprintln(a.stdout)
	rows = [][]string{}
	for _, r := range rep.Regions {
		health, probe, lastErr := "unknown", "", ""
		if h := r.Health; h != nil {
			health, lastErr = h.State, h.LastError
			if h.LastProbeAt != nil {
				probe = human.Age(now.Sub(*h.LastProbeAt)) + " ago"
			}
		}
		rows = append(rows, []string{r.Name, yesNo(r.Enabled), r.Access, health, probe, lastErr})
	}
	printTable(a.stdout, []string{"REGION", "ENABLED", "ACCESS", "HEALTH", "LAST PROBE", "LAST ERROR"}, rows)
	fmt.Fprintln(a.stdout)
	rows = [][]string{}
	for _, r := range rep.Runs {
		rows = append(rows, []string{strconv.FormatInt(r.ID, 10), r.Kind, r.RegionName, human.Age(now.Sub(r.StartedAt)) + " ago",
			roundDuration(r.Duration()), r.Status, strconv.FormatInt(r.Files, 10), human.Bytes(r.Bytes), r.Error})
	}
	printTable(a.stdout, []string{"RUN", "KIND", "REGION", "STARTED", "TOOK", "STATUS", "FILES", "BYTES", "ERROR"}, rows)
}
