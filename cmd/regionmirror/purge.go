package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/pusher"
)

func (a *app) purgeCmd() *cobra.Command {
	var (
		region string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "purge PATH [--region R] [--json]",
		Short: "Remove a region's on-demand copy of a path, or forget a pushed one so the next push writes it again",
		Long: `Purge a path's copy in one region (or in every region), each by its fill mode.

An on-demand copy (a file an on-demand region copies when a client first asks for it) is
removed database-first, before the command returns: under the region's gc lock it is marked
deleting (servers stop sending clients there, and any fill job for it is dropped), then after
ondemand.stale_after plus push.announce_delay on the database's clock the object (and its
"+" space twin) is deleted, then its record. The next request from the region queues a new copy.

A copy a push writes (a push region's, or an on-demand region's metadata and pins) is
forgotten: servers stop sending clients there for it, and the next push writes it again; the
object stays until then. Every purge is recorded as a run of kind purge.`,
		Example: `  regionmirror purge ci/build-1234/app.tar.gz --region eu-ci
  regionmirror purge demo/1/x86_64/os/Packages/hello-1.0-1.noarch.rpm`,
		Args: cobra.ExactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			d, f, err := a.originFile(ctx, args[0])
			if err != nil {
				return err
			}
			var names []string
			if region != "" {
				names = []string{region}
			}
			regions, err := d.ResolveRegions(ctx, names)
			if err != nil {
				return err
			}
			p := &pusher.Pusher{DB: d, Log: a.log, Config: pusher.NewConfig(a.cfg.Push)}
			if a.cfg.Origin.Path != "" {
				// Only to tell whether a "+" twin key is a real file not yet recorded.
				p.Origin = pusher.OSOrigin{Root: a.cfg.Origin.Path, Log: a.log}
			}
			var results []*pusher.PurgeResult
			var failed []string
			for _, r := range regions {
				res, err := p.Purge(ctx, r, f, a.onDemandDelay())
				if res == nil {
					res = &pusher.PurgeResult{Region: r.Name, Fill: r.Fill}
				}
				if err != nil {
					res.Error = err.Error()
					failed = append(failed, r.Name)
				}
				results = append(results, res)
			}
			if asJSON {
				if err := printJSON(a.stdout, map[string]any{"path": f.Path, "regions": results}); err != nil {
					return err
				}
			} else {
				forgot := 0
				for _, res := range results {
					fmt.Fprintf(a.stdout, "%s (%s): %s\n", res.Region, res.Fill, purgeSays(res, f.Path))
					if res.Action == pusher.PurgeForgotten {
						forgot++
					}
				}
				if forgot > 0 {
					fmt.Fprintf(a.stdout, "forgot %d copies of %s; the next push writes them again\n", forgot, f.Path)
				}
			}
			if len(failed) > 0 {
				return fmt.Errorf("purge %w in %s", errRunFailed, strings.Join(failed, ", "))
			}
			return nil
		}),
	}
	cmd.Flags().StringVarP(&region, "region", "r", "", "only this region (default: every region)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// purgeSays is one region's line of purge's output.
func purgeSays(res *pusher.PurgeResult, p string) string {
	if res.Error != "" {
		return "failed: " + res.Error
	}
	switch res.Action {
	case pusher.PurgeRemoved:
		return "removed the on-demand copy of " + p + " (marked deleting, deleted after the servers' update delay, forgotten)"
	case pusher.PurgeForgotten:
		return "forgot the copy of " + p + "; the next push writes it again"
	case pusher.PurgeNotHeld:
		if res.Fill == model.FillOnDemand {
			return "holds no copy of " + p + " (any queued fill of it was dropped)"
		}
		return "holds no copy of " + p
	case pusher.PurgeNotCarried:
		return "does not carry " + p
	}
	return res.Action
}
