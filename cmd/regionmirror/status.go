package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/human"
	"github.com/regionmirror/regionmirror/internal/model"
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
			policy := model.AlternatesPolicy{MaxAge: a.cfg.Metalink.AlternatesMaxAge.Std()}
			rep, err := loadStatus(cmd.Context(), d, policy)
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

func loadStatus(ctx context.Context, d *db.DB, policy model.AlternatesPolicy) (*statusReport, error) {
	regions, err := d.ListRegions(ctx)
	if err != nil {
		return nil, err
	}
	repos, err := d.ListRepositories(ctx)
	if err != nil {
		return nil, err
	}
	states, err := d.RegionRepos(ctx)
	if err != nil {
		return nil, err
	}
	health, err := d.RegionHealth(ctx)
	if err != nil {
		return nil, err
	}
	runs, err := d.RecentRuns(ctx, "", 10)
	if err != nil {
		return nil, err
	}
	now := time.Now() // as serve judges: its clock against the database's first_seen
	rep := &statusReport{Runs: runs}
	for i := range regions {
		sr := statusRegion{Name: regions[i].Name, Enabled: regions[i].Enabled, Access: regions[i].Access}
		for j := range health {
			if health[j].RegionID == regions[i].ID {
				sr.Health = &health[j]
			}
		}
		rep.Regions = append(rep.Regions, sr)
	}
	for _, repo := range repos {
		versions, err := d.RepomdVersions(ctx, repo.ID)
		if err != nil {
			return nil, err
		}
		row := statusRepo{Repo: repo.Name, Arch: repo.Arch, Directory: repo.Directory, Regions: map[string]statusCell{}}
		if len(versions) > 0 {
			row.Current, row.Timestamp = hex.EncodeToString(versions[0].SHA256), versions[0].Timestamp
		}
		history := versions
		for _, r := range regions {
			row.Regions[r.Name] = cellFor(&r, repo, history, states, policy, now)
		}
		rep.Repositories = append(rep.Repositories, row)
	}
	return rep, nil
}

// cellFor says what a region serves of a repository, by the rule the server's answers
// follow (model.Freshness): a region recorded fresh falls back to alternate once a newer
// version appears, and to stale once that one is older than metalink.alternates_max_age.
// The recorded error is shown in full: this is the CLI, not a public answer.
func cellFor(r *model.Region, repo model.Repository, versions []model.RepomdVersion, states []model.RegionRepo,
	policy model.AlternatesPolicy, now time.Time) statusCell {
	rec := model.RecordedRepo{}
	var c statusCell
	for _, s := range states {
		if s.RegionID == r.ID && s.RepositoryID == repo.ID {
			rec = model.RecordedRepo{Known: true, State: s.State, RepomdSHA256: s.RepomdSHA256}
			c.VerifiedAt, c.Error = s.VerifiedAt, s.Error
			break
		}
	}
	f := model.Freshness(r.CarriesRepository(repo.Directory), rec, versions, policy, now)
	if f.State == model.RepoExcluded {
		return statusCell{State: f.State}
	}
	c.State = f.State
	if c.Error == "" && !f.Offered() && rec.Known && (rec.State == model.RepoFresh || rec.State == model.RepoAlternate) {
		c.Error = f.Reason // stale by the clock or the versions: say why
	}
	return c
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
