package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/pusher/fill"
)

func (a *app) fillCmd() *cobra.Command {
	var (
		workers int
		regions []string
		once    bool
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "fill [--workers N] [--region R]... [--once [--json]]",
		Short: "Copy files into on-demand regions as clients ask for them (a daemon; run any number)",
		Long: `Work the fill queue: every file a client asked an on-demand region for and the region
lacks is copied into it, server-side from the nearest region of the same S3 service that holds
it verified (CopyObject, or UploadPartCopy above fill.multipart_copy_threshold, the source
pinned by its ETag), else from origin.path, checked against the inventory's SHA-256. A copy is
recorded only once verified, and servers then send clients to it. Each job is leased for
fill.lease and the lease extended while the copy runs: any number of fill processes on any
number of machines share the queue, and a job whose worker died is taken over once its lease
has passed. Failures are retried after fill.retry_backoff, doubled each time, at most
fill.max_attempts times. SIGTERM gives back the jobs not started and aborts copies in flight.
--once works the jobs that are ready and exits.`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			if workers < 0 {
				return usagef("--workers %d: must be positive", workers)
			}
			if asJSON && !once {
				return usagef("--json needs --once (the daemon prints no summary)")
			}
			ctx := cmd.Context()
			d, err := a.openDB(ctx, true)
			if err != nil {
				return err
			}
			ids, err := onDemandRegionIDs(ctx, d, splitList(regions))
			if err != nil {
				return err
			}
			w := a.newFillWorker(d, ids)
			if workers > 0 {
				w.Config.Workers = workers
			}
			if a.cfg.Origin.Path == "" {
				a.log.Warn("origin.path is not set: only server-side copies can be made; copies from the origin fail")
			}
			a.log.Info("fill starting", slog.String("worker", w.ID), slog.Int("workers", w.Config.Workers), slog.Bool("once", once))
			s, err := w.Run(ctx, once)
			if err != nil {
				return err
			}
			a.log.Info("fill stopped", slog.Int64("copied", s.Copied), slog.Int64("failed", s.Failed), slog.Int64("bytes", s.Bytes))
			if once {
				if asJSON {
					return printJSON(a.stdout, s)
				}
				fmt.Fprintf(a.stdout, "copied %d (%d server-side, %d from the origin), %d bytes; %d failed, %d lost\n",
					s.Copied, s.ServerSide, s.FromOrigin, s.Bytes, s.Failed, s.Lost)
			}
			return nil
		}),
	}
	cmd.Flags().IntVarP(&workers, "workers", "w", 0, "copies at once (default fill.workers, 4 when that is 0)")
	cmd.Flags().StringArrayVarP(&regions, "region", "r", nil, "work only this on-demand region's jobs (repeatable; default: all)")
	cmd.Flags().BoolVar(&once, "once", false, "work the jobs that are ready, then exit")
	cmd.Flags().BoolVar(&asJSON, "json", false, "with --once, print the summary as JSON")
	return cmd
}

// newFillWorker wires a fill worker from the configuration (fill.*, origin.path).
func (a *app) newFillWorker(d *db.DB, regionIDs []int64) *fill.Worker {
	return &fill.Worker{DB: d, Config: fill.NewConfig(a.cfg.Fill, a.cfg.Push), OriginRoot: a.cfg.Origin.Path,
		Regions: regionIDs, Log: a.log, ID: fill.NewWorkerID()}
}

// onDemandRegionIDs resolves --region names; each must be an on-demand region. None
// named: nil, every region's jobs (only on-demand regions have any).
func onDemandRegionIDs(ctx context.Context, d *db.DB, names []string) ([]int64, error) {
	if len(names) == 0 {
		return nil, nil
	}
	regions, err := d.ResolveRegions(ctx, names)
	if err != nil {
		return nil, err
	}
	ids := make([]int64, 0, len(regions))
	for _, r := range regions {
		if !r.OnDemand() {
			return nil, usagef("region %s fills by push, not on demand: it has no fill jobs (region edit --fill on-demand)", r.Name)
		}
		ids = append(ids, r.ID)
	}
	return ids, nil
}
