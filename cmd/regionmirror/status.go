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
	"github.com/regionmirror/regionmirror/pusher"
	"github.com/regionmirror/regionmirror/server"
	"github.com/regionmirror/regionmirror/server/selection"
)

// statusCell is one repository in one region.
type statusCell struct {
	State      string     `json:"state"` // fresh, alternate, stale, missing, unreachable, unverified, excluded
	VerifiedAt *time.Time `json:"verified_at,omitempty"`
	Error      string     `json:"error,omitempty"`
}

type statusRepo struct {
	Repo      string `json:"repo"`
	Arch      string `json:"arch"`
	Kind      string `json:"kind"`            // yum or apt
	Suite     string `json:"suite,omitempty"` // APT
	Directory string `json:"directory"`
	Current   string `json:"current_sha256,omitempty"`
	Timestamp int64  `json:"timestamp,omitempty"`
	// ValidUntil is the current APT revision's Valid-Until; Warning is set while it is less
	// than a day away or past (apt then refuses the repository).
	ValidUntil *time.Time            `json:"valid_until,omitempty"`
	Warning    string                `json:"warning,omitempty"`
	Regions    map[string]statusCell `json:"regions"`
}

type statusRegion struct {
	Name    string        `json:"name"`
	Enabled bool          `json:"enabled"`
	Access  string        `json:"access"`
	Fill    string        `json:"fill"` // push or on-demand
	Health  *model.Health `json:"health,omitempty"`
	// OnDemand is an on-demand region's filling: bytes held against its cap, jobs.
	OnDemand *statusFill `json:"on_demand,omitempty"`
	// Synced: the region holds what a full push at the origin's current generation writes;
	// a scheduled push skips it.
	Synced   bool       `json:"synced"`
	SyncedAt *time.Time `json:"synced_at,omitempty"`
}

// statusOrigin is what scheduled pushes decide from: the origin's generation, the last
// full walk, and the watchers vouching for the changes since.
type statusOrigin struct {
	Generation      int64      `json:"generation"`
	FullInventoryAt *time.Time `json:"full_inventory_at,omitempty"`
	Watchers        int        `json:"live_watchers"`
	WatchingSince   *time.Time `json:"watching_since,omitempty"` // nil: no live watcher has seen every change
	Pending         int        `json:"pending_changes"`
}

// statusFill is an on-demand region's copies and fill jobs as status shows them.
type statusFill struct {
	HeldBytes int64 `json:"held_bytes"`
	HeldFiles int64 `json:"held_files"`
	MaxBytes  int64 `json:"max_bytes"` // 0: no cap
	Queued    int64 `json:"queued"`
	Running   int64 `json:"running"`
	Failed    int64 `json:"failed"`
	// OldestQueued is when the oldest queued job was queued; OldestQueuedAge its age in
	// seconds at the time of the report.
	OldestQueued    *time.Time `json:"oldest_queued,omitempty"`
	OldestQueuedAge float64    `json:"oldest_queued_age_seconds,omitempty"`
}

type statusReport struct {
	Origin       *statusOrigin  `json:"origin,omitempty"`
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
			rep, err := loadStatus(cmd.Context(), d, servePolicy(a.cfg), a.cfg.Origin.Path)
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
func loadStatus(ctx context.Context, d *db.DB, policy selection.Policy, originRoot string) (*statusReport, error) {
	data, err := d.LoadSnapshot(ctx)
	if err != nil {
		return nil, err
	}
	runs, err := d.RecentRuns(ctx, "", 10)
	if err != nil {
		return nil, err
	}
	fills, err := d.FillStats(ctx)
	if err != nil {
		return nil, err
	}
	// As serve judges: its clock against the database's first_seen.
	now := time.Now()
	rep := buildStatus(data, runs, policy, now)
	addFillStats(rep, data, fills, now)
	if err := addOriginStatus(ctx, d, rep, data, originRoot); err != nil {
		return nil, err
	}
	return rep, nil
}

// addOriginStatus fills in the origin's generation, its watchers and which regions are
// synced.
func addOriginStatus(ctx context.Context, d *db.DB, rep *statusReport, data *model.SnapshotData, root string) error {
	st, err := d.OriginState(ctx)
	if err != nil {
		return err
	}
	o := &statusOrigin{Generation: st.Generation, FullInventoryAt: st.FullInventoryAt}
	if root != "" {
		cov, err := d.WatchCoverage(ctx, root, pusher.DefaultWatchStale)
		if err != nil {
			return err
		}
		o.Watchers, o.WatchingSince, o.Pending = cov.Watchers, cov.Since, cov.Pending
	}
	rep.Origin = o
	syncs, err := d.RegionSyncs(ctx)
	if err != nil {
		return err
	}
	byName := map[string]*model.Region{}
	for i := range data.Regions {
		byName[data.Regions[i].Name] = &data.Regions[i]
	}
	for i := range rep.Regions {
		if r := byName[rep.Regions[i].Name]; r != nil {
			if s := syncs[r.ID]; s.SyncedWith(r, st.Generation) {
				rep.Regions[i].Synced, rep.Regions[i].SyncedAt = true, s.SyncedAt
			}
		}
	}
	return nil
}

// addFillStats fills in the on-demand regions' copies and jobs.
func addFillStats(rep *statusReport, data *model.SnapshotData, fills []model.FillStats, now time.Time) {
	byID := map[int64]*model.FillStats{}
	for i := range fills {
		byID[fills[i].RegionID] = &fills[i]
	}
	names := map[string]*model.Region{}
	for i := range data.Regions {
		names[data.Regions[i].Name] = &data.Regions[i]
	}
	for i := range rep.Regions {
		r := names[rep.Regions[i].Name]
		if r == nil || !r.OnDemand() {
			continue
		}
		sf := &statusFill{MaxBytes: r.MaxBytes}
		if fs := byID[r.ID]; fs != nil {
			sf.HeldBytes, sf.HeldFiles, sf.Queued, sf.Running, sf.Failed = fs.HeldBytes, fs.HeldFiles, fs.Queued, fs.Running, fs.Failed
			if fs.OldestQueued != nil {
				sf.OldestQueued = fs.OldestQueued
				sf.OldestQueuedAge = max(now.Sub(*fs.OldestQueued), 0).Seconds()
			}
		}
		rep.Regions[i].OnDemand = sf
	}
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
		fill := regions[r.ID].Fill
		if fill == "" {
			fill = model.FillPush
		}
		rep.Regions = append(rep.Regions, statusRegion{Name: r.Name, Enabled: r.Enabled, Access: regions[r.ID].Access, Fill: fill, Health: health[r.ID]})
	}
	for _, repo := range snap.Repos {
		row := statusRepo{Repo: repo.Name, Arch: repo.Arch, Kind: repo.Kind, Suite: repo.Suite, Directory: repo.Directory, Regions: map[string]statusCell{}}
		if len(repo.Versions) > 0 {
			cur := repo.Versions[0]
			row.Current, row.Timestamp = cur.SHA256Hex, cur.Timestamp
			if !cur.ValidUntil.IsZero() {
				t := cur.ValidUntil
				row.ValidUntil, row.Warning = &t, server.ValidUntilWarning(t, now)
			}
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
		name := repo.Repo + "/" + repo.Arch
		if repo.Kind == model.RepoApt {
			name = repo.Repo + " (apt " + repo.Suite + ")"
		}
		row := []string{name}
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
	for _, repo := range rep.Repositories {
		if repo.Warning != "" {
			fmt.Fprintf(a.stdout, "warning: %s: %s\n", repo.Repo, repo.Warning)
		}
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
		synced := "no"
		if r.Synced {
			synced = "yes"
		}
		rows = append(rows, []string{r.Name, yesNo(r.Enabled), r.Access, r.Fill, synced, health, probe, lastErr})
	}
	printTable(a.stdout, []string{"REGION", "ENABLED", "ACCESS", "FILL", "SYNCED", "HEALTH", "LAST PROBE", "LAST ERROR"}, rows)
	fmt.Fprintln(a.stdout)
	if o := rep.Origin; o != nil {
		walk := "never"
		if o.FullInventoryAt != nil {
			walk = human.Age(now.Sub(*o.FullInventoryAt)) + " ago"
		}
		watch := "no live watcher: every scheduled push walks the origin"
		switch {
		case o.Watchers > 0 && o.WatchingSince == nil:
			watch = fmt.Sprintf("%d live watcher(s), not vouching for every change (starting, or after an overflow or a watch limit)", o.Watchers)
		case o.Watchers > 0:
			watch = fmt.Sprintf("%d live watcher(s), every change seen since %s ago, %d not pushed yet", o.Watchers, human.Age(now.Sub(*o.WatchingSince)), o.Pending)
		}
		fmt.Fprintf(a.stdout, "origin: generation %d, last full walk %s; %s\n\n", o.Generation, walk, watch)
	}
	rows = [][]string{}
	for _, r := range rep.Regions {
		od := r.OnDemand
		if od == nil {
			continue
		}
		held := human.Bytes(od.HeldBytes) + " (no cap)"
		if od.MaxBytes > 0 {
			held = fmt.Sprintf("%s of %s (%.0f%%)", human.Bytes(od.HeldBytes), human.Bytes(od.MaxBytes), 100*float64(od.HeldBytes)/float64(od.MaxBytes))
		}
		oldest := ""
		if od.OldestQueued != nil {
			oldest = human.Age(time.Duration(od.OldestQueuedAge*float64(time.Second))) + " ago"
		}
		rows = append(rows, []string{r.Name, held, strconv.FormatInt(od.HeldFiles, 10), strconv.FormatInt(od.Queued, 10),
			strconv.FormatInt(od.Running, 10), strconv.FormatInt(od.Failed, 10), oldest})
	}
	if len(rows) > 0 {
		printTable(a.stdout, []string{"ON-DEMAND REGION", "HELD", "FILES", "QUEUED", "RUNNING", "FAILED", "OLDEST QUEUED"}, rows)
		fmt.Fprintln(a.stdout)
	}
	rows = [][]string{}
	for _, r := range rep.Runs {
		rows = append(rows, []string{strconv.FormatInt(r.ID, 10), r.Kind, r.RegionName, human.Age(now.Sub(r.StartedAt)) + " ago",
			roundDuration(r.Duration()), r.Status, strconv.FormatInt(r.Files, 10), human.Bytes(r.Bytes), r.Error})
	}
	printTable(a.stdout, []string{"RUN", "KIND", "REGION", "STARTED", "TOOK", "STATUS", "FILES", "BYTES", "ERROR"}, rows)
}
