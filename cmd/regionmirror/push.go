package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/regionmirror/regionmirror/internal/config"
	"github.com/regionmirror/regionmirror/internal/human"
	"github.com/regionmirror/regionmirror/internal/model"

	"github.com/spf13/cobra"

	"github.com/regionmirror/regionmirror/pusher"
)

// errRunFailed is returned when a run did its reporting but failed somewhere: exit 1.
var errRunFailed = errors.New("failed")

func (a *app) pushCmd() *cobra.Command {
	var (
		regions   []string
		paths     []string
		scheduled bool
		dryRun    bool
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "push [--region R]... [--path SUBTREE]... [--scheduled] [--dry-run] [--json]",
		Short: "Sync the origin into the regions: packages first, repodata next, repomd.xml last",
		Long: `Take the inventory of the origin (hashing only what changed), plan per region what it
lacks, and upload in three phases, each finished before the next: everything outside
repodata/, then repodata/ except repomd.xml, then repomd.xml and its signature. A region's
repository becomes fresh only once its repomd.xml has been read back and matches.
One push per region at a time; every run is recorded.

--path pushes only a subtree of the origin (repeatable; absolute under origin.path or
relative to it; a directory inside a repository is widened to the whole repository):
only its files are walked, planned and uploaded, and only its repositories verified.
What a publisher runs after changing one repository. A path outside the origin, not a
directory, or reached through a symlink exits 2 and changes nothing.

--scheduled is what cron's tick runs (for system-cron users): when a live
'regionmirror watch' has seen every change since the last full walk, which is younger
than push.full_inventory_interval, and every region is synced, it ends at once without
walking the origin or reading any region's records; regions not synced are pushed from
the recorded inventory. Otherwise it walks the origin and pushes the regions not synced
at the result. Without flags, push walks the whole origin and plans every region.`,
		Example: `  regionmirror push
  regionmirror push --region eu-central-1 --dry-run
  regionmirror push --path demo/1/x86_64/os        # after createrepo_c of one repository
  regionmirror push --path /srv/origin/demo/2 --path demo/3
  regionmirror push --scheduled --json              # from system cron
  regionmirror push --json   # for cron and scripts`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if scheduled && len(paths) > 0 {
				return usagef("push: --scheduled covers the whole origin; it takes no --path")
			}
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			opts := pusher.Options{Scheduled: scheduled, OriginRoot: cfg.Origin.Path,
				FullInventoryInterval: cfg.Push.FullInventoryInterval.Std()}
			if len(paths) > 0 {
				if cfg.Origin.Path == "" {
					return usagef("origin.path is not set (config file, or REGIONMIRROR_ORIGIN_PATH)")
				}
				scope, err := pusher.ResolveScope(cfg.Origin.Path, paths)
				if err != nil {
					var se *pusher.ScopeError
					if errors.As(err, &se) {
						return usagef("push --path: %v", se)
					}
					return err
				}
				opts.Scope = scope
			}
			p, targets, err := a.pusherFor(ctx, splitList(regions))
			if err != nil {
				return err
			}
			if len(targets) == 0 {
				return usagef("push: no regions; add one with 'regionmirror region add'")
			}
			p.Config.DryRun = dryRun
			progress := a.newProgress()
			if progress != nil {
				p.Progress = progress
				// The display says what logs would; keep only warnings and errors.
				p.Log = newLogger(a.stderr, a.quietLogConfig())
				defer progress.stop()
			}
			res, err := p.PushWith(ctx, targets, opts)
			if progress != nil {
				progress.stop()
			}
			if err != nil {
				return err
			}
			if asJSON {
				if err := printJSON(a.stdout, res); err != nil {
					return err
				}
			} else if dryRun && res.Inventory != nil {
				printPlan(a, res)
			} else {
				printPushSummary(a, res)
			}
			if res.Failed() {
				return fmt.Errorf("push %w in %s", errRunFailed, failedRegions(res))
			}
			return nil
		}),
	}
	cmd.Flags().StringArrayVarP(&regions, "region", "r", nil, "push only this region (repeatable; default: all)")
	cmd.Flags().StringArrayVar(&paths, "path", nil, "push only this origin subtree (repeatable; absolute under origin.path or relative to it)")
	cmd.Flags().BoolVar(&scheduled, "scheduled", false, "what cron's tick runs: nothing when a live watcher has seen every change and every region is synced")
	cmd.Flags().BoolVarP(&dryRun, "dry-run", "n", false, "show what would be uploaded, per region and phase; change nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// newPusher wires a pusher from the configuration.
func (a *app) newPusher(ctx context.Context) (*pusher.Pusher, error) {
	d, err := a.openDB(ctx, true)
	if err != nil {
		return nil, err
	}
	cfg := a.cfg
	if cfg.Origin.Path == "" {
		return nil, usagef("origin.path is not set (config file, or REGIONMIRROR_ORIGIN_PATH)")
	}
	return &pusher.Pusher{
		DB:     d,
		Origin: pusher.OSOrigin{Root: cfg.Origin.Path, Log: a.log},
		Log:    a.log,
		Config: pusher.NewConfig(cfg.Push),
	}, nil
}

// pusherFor wires a pusher and resolves the regions it works on (all when none is named).
func (a *app) pusherFor(ctx context.Context, names []string) (*pusher.Pusher, []*model.Region, error) {
	p, err := a.newPusher(ctx)
	if err != nil {
		return nil, nil, err
	}
	regions, err := p.DB.ResolveRegions(ctx, names)
	if err != nil {
		return nil, nil, err
	}
	return p, regions, nil
}

func failedRegions(res *pusher.Result) string {
	return strings.Join(regionsWhere(res.Regions, func(rr *pusher.RegionResult) (string, bool) {
		return rr.Region, rr.Status != model.RunOK
	}), ", ")
}

// regionsWhere names the regions of the results that pick selects.
func regionsWhere[T any](results []T, pick func(T) (string, bool)) []string {
	var names []string
	for _, r := range results {
		if name, ok := pick(r); ok {
			names = append(names, name)
		}
	}
	return names
}

func printPlan(a *app, res *pusher.Result) {
	rows := [][]string{}
	for _, rr := range res.Regions {
		for ph := range pusher.NumPhases {
			rows = append(rows, []string{rr.Region, strconv.Itoa(ph+1) + " " + pusher.PhaseNames[ph],
				strconv.Itoa(rr.PhaseFiles[ph]), human.Bytes(rr.PhaseBytes[ph]), strconv.Itoa(rr.UpToDate), rr.Error})
		}
	}
	printPushHead(a, res, false)
	printTable(a.stdout, []string{"REGION", "PHASE", "FILES", "BYTES", "UP-TO-DATE", "ERROR"}, rows)
	printPushNotes(a, res)
}

// printPushHead says what the push covered: its scope, its scheduled note and (with
// withInventory) the inventory.
func printPushHead(a *app, res *pusher.Result, withInventory bool) {
	if len(res.Scope) > 0 {
		fmt.Fprintf(a.stdout, "scope: %s\n", strings.Join(res.Scope, ", "))
	}
	if res.Note != "" {
		fmt.Fprintf(a.stdout, "scheduled: %s\n", res.Note)
	}
	if inv := res.Inventory; inv != nil && withInventory {
		how := ""
		if inv.FromRecords {
			how = " (as recorded; not walked)"
		}
		fmt.Fprintf(a.stdout, "origin%s: %d files, %s; %d hashed, %d added, %d changed, %d deleted, %d new repomd.xml (%s)\n",
			how, inv.Files, human.Bytes(inv.Bytes), inv.Hashed, inv.Changes.Added, inv.Changes.Changed, inv.Changes.Deleted, inv.Repomds, roundDuration(inv.Duration))
	}
}

func printPushSummary(a *app, res *pusher.Result) {
	printPushHead(a, res, true)
	rows := [][]string{}
	for _, rr := range res.Regions {
		if rr.Skipped {
			rows = append(rows, []string{rr.Region, "skipped", "0", human.Bytes(0), "-", "0", "synced", "-", ""})
			continue
		}
		states := map[string]int{}
		for _, r := range rr.Repos {
			states[r.State]++
		}
		var repos []string
		for _, s := range []string{model.RepoFresh, model.RepoAlternate, model.RepoStale, model.RepoMissing, model.RepoUnreachable} {
			if states[s] > 0 {
				repos = append(repos, fmt.Sprintf("%d %s", states[s], s))
			}
		}
		rows = append(rows, []string{rr.Region, rr.Status, strconv.Itoa(rr.Uploaded), human.Bytes(rr.Bytes), strconv.Itoa(rr.UpToDate),
			strconv.Itoa(rr.Failed), strings.Join(repos, ", "), roundDuration(rr.Duration), rr.Error})
	}
	printTable(a.stdout, []string{"REGION", "STATUS", "UPLOADED", "BYTES", "UP-TO-DATE", "FAILED", "REPOSITORIES", "TOOK", "ERROR"}, rows)
	printPushNotes(a, res)
}

// printPushNotes says, per region, what a push deliberately did not do or did differently.
func printPushNotes(a *app, res *pusher.Result) {
	for _, rr := range res.Regions {
		if rr.TwinsSkipped > 0 {
			fmt.Fprintf(a.stdout, "note: %s: %d paths with '+' have a space twin that is a real origin file; those twins were not written\n",
				rr.Region, rr.TwinsSkipped)
		}
		if len(rr.RewrittenInPlace) > 0 {
			fmt.Fprintf(a.stdout, "note: %s: files rewritten under the same name in %s: out of the answers there until verified again\n",
				rr.Region, strings.Join(rr.RewrittenInPlace, ", "))
		}
		for _, w := range rr.Withheld {
			fmt.Fprintf(a.stdout, "note: %s: metadata withheld: %s\n", rr.Region, w.Reason)
		}
	}
}

func (a *app) quietLogConfig() config.Log {
	c := a.cfg.Log
	if lvl := strings.ToLower(c.Level); lvl == "debug" || lvl == "info" {
		c.Level = "warn"
	}
	return c
}
