package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/regionmirror/regionmirror/internal/human"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/pusher"
)

func (a *app) gcCmd() *cobra.Command {
	var (
		regions []string
		dryRun  bool
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "gc [--region R]... [--dry-run] [--json]",
		Short: "Remove what the origin deleted (after push.delete_grace), expired and evicted on-demand copies, and stale uploads",
		Long: `Remove from regions the files the origin deleted (and their "+" twins, unless a twin is
a real file), then forget files no region holds. A file goes once push.delete_grace has passed
since the latest of its deletion and the moment the last repomd.xml that may name it left the
metalinks (metalink.alternates_max_age after it was superseded). gc never runs beside a push of
the same region, and leaves a region alone while any of its repositories is not fresh there:
older metadata it still serves may name those files. Copies are marked deleting first, so
servers stop sending clients there (push.announce_delay) before the objects go.

In on-demand regions gc also removes the copies made on demand that no client asked for in
ondemand.expire_after, then, while the region's on-demand copies hold more than its
--max-bytes, the least recently requested ones; never its metadata or pinned files. It finishes
copies a purge marked deleting, and in every S3 region aborts multipart uploads started more
than 24 hours ago (a worker killed mid-upload leaves them, and S3 bills their parts).`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			p, targets, err := a.pusherFor(ctx, splitList(regions))
			if err != nil {
				return err
			}
			results, purged, err := p.GC(ctx, targets, a.gcOptions(dryRun))
			if err != nil {
				return err
			}
			failed := regionsWhere(results, func(r *pusher.GCResult) (string, bool) { return r.Region, r.Status != model.RunOK })
			if asJSON {
				if err := printJSON(a.stdout, map[string]any{"regions": results, "purged_files": purged}); err != nil {
					return err
				}
			} else {
				rows := [][]string{}
				for _, r := range results {
					rows = append(rows, []string{r.Region, r.Status, strconv.Itoa(r.Expired), strconv.Itoa(r.Kept), strconv.Itoa(r.Deleted),
						strconv.Itoa(r.ExpiredOnDemand), strconv.Itoa(r.Evicted), strconv.Itoa(r.Purged), human.Bytes(r.FreedBytes),
						strconv.Itoa(r.AbortedUploads), roundDuration(r.Duration), r.Error})
				}
				printTable(a.stdout, []string{"REGION", "STATUS", "EXPIRED", "KEPT", "DELETED", "ON-DEMAND EXPIRED", "EVICTED", "PURGED", "FREED", "UPLOADS ABORTED", "TOOK", "ERROR"}, rows)
				for _, r := range results {
					for _, t := range r.Twins {
						fmt.Fprintf(a.stdout, "kept %s: %q, a real file, not deleted as a + twin\n", r.Region, t)
					}
				}
				if dryRun {
					for _, r := range results {
						for _, p := range r.Paths {
							fmt.Fprintf(a.stdout, "would delete %s: %s\n", r.Region, p)
						}
						for _, d := range r.OnDemand {
							used := "never requested"
							if !d.LastUsed.IsZero() {
								used = "last requested " + d.LastUsed.UTC().Format(time.RFC3339)
							}
							fmt.Fprintf(a.stdout, "would remove %s: %s (%s, %s; %s)\n", r.Region, d.Path, gcReason(d.Reason), human.Bytes(d.Size), used)
						}
						if r.AbortedUploads > 0 {
							fmt.Fprintf(a.stdout, "would abort %s: %d incomplete multipart uploads\n", r.Region, r.AbortedUploads)
						}
						for _, k := range r.KeptWhy {
							until := ""
							if !k.Until.IsZero() {
								until = " until " + k.Until.UTC().Format(time.RFC3339)
							}
							fmt.Fprintf(a.stdout, "would keep %s: %s (%s%s)\n", r.Region, k.Path, k.Reason, until)
						}
					}
				} else {
					fmt.Fprintf(a.stdout, "forgot %d deleted files no region holds\n", purged)
				}
			}
			if len(failed) > 0 {
				return fmt.Errorf("gc %w in %s", errRunFailed, strings.Join(failed, ", "))
			}
			return nil
		}),
	}
	cmd.Flags().StringArrayVarP(&regions, "region", "r", nil, "collect only in this region (repeatable; default: all)")
	cmd.Flags().BoolVarP(&dryRun, "dry-run", "n", false, "list what would be deleted; change nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// gcOptions are gc's settings from the configuration.
func (a *app) gcOptions(dryRun bool) pusher.GCOptions {
	return pusher.GCOptions{
		Grace:            a.cfg.Push.DeleteGrace.Std(),
		AlternatesMaxAge: a.cfg.Metalink.AlternatesMaxAge.Std(),
		UpdateDelay:      a.cfg.Push.AnnounceDelay.Std(),
		OnDemandDelay:    a.onDemandDelay(),
		ExpireAfter:      a.cfg.OnDemand.ExpireAfter.Std(),
		DryRun:           dryRun,
	}
}

// onDemandDelay is how long an on-demand copy stays marked deleting before its object
// goes: past ondemand.stale_after (a server cut off from the database stops using such
// copies then), and the announce delay on top.
func (a *app) onDemandDelay() time.Duration {
	return a.cfg.OnDemand.StaleAfter.Std() + a.cfg.Push.AnnounceDelay.Std()
}

// gcReason says in words why gc removes an on-demand copy.
func gcReason(reason string) string {
	switch reason {
	case pusher.RemoveExpired:
		return "expired: not requested for ondemand.expire_after"
	case pusher.RemoveEvicted:
		return "evicted: the region is above its --max-bytes, least recently requested first"
	case pusher.RemovePurged:
		return "purged: marked deleting"
	}
	return reason
}
