package db

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/regionmirror/regionmirror/internal/model"
)

// StartRun records the start of a run by this process.
func (d *DB) StartRun(ctx context.Context, kind string, region *model.Region) (*model.Run, error) {
	host, _ := os.Hostname()
	r := &model.Run{Kind: kind, Status: model.RunRunning, Host: host, PID: os.Getpid(), Counts: map[string]int64{}}
	if region != nil {
		r.RegionID, r.RegionName = &region.ID, region.Name
	}
	err := d.Transact(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO runs (kind, region_id, region_name, host, pid) VALUES ($1, $2, $3, $4, $5)
			RETURNING id, started_at`, r.Kind, r.RegionID, r.RegionName, r.Host, r.PID).Scan(&r.ID, &r.StartedAt); err != nil {
			return err
		}
		return notify(ctx, tx, "runs")
	})
	if err != nil {
		return nil, fmt.Errorf("start %s run: %w", kind, err)
	}
	return r, nil
}

// FinishRun records the end of a run: status failed when runErr is not nil.
func (d *DB) FinishRun(ctx context.Context, r *model.Run, runErr error) error {
	r.Status, r.Error = model.RunOK, ""
	if runErr != nil {
		r.Status, r.Error = model.RunFailed, runErr.Error()
	}
	err := d.Transact(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `UPDATE runs SET finished_at = now(), status = $2, files = $3, bytes = $4, counts = $5, error = $6
			WHERE id = $1 RETURNING finished_at`, r.ID, r.Status, r.Files, r.Bytes, r.Counts, r.Error).Scan(&r.FinishedAt); err != nil {
			return err
		}
		return notify(ctx, tx, "runs")
	})
	if err != nil {
		return fmt.Errorf("finish %s run %d: %w", r.Kind, r.ID, err)
	}
	return nil
}

// RecentRuns returns the newest runs, of one kind or ("" ) of all, newest first.
func (d *DB) RecentRuns(ctx context.Context, kind string, limit int) ([]model.Run, error) {
	rows, err := d.pool.Query(ctx, `
		SELECT id, kind, region_id, region_name, started_at, finished_at, status, files, bytes, counts, error, host, pid
		FROM runs WHERE ($1 = '' OR kind = $1) ORDER BY started_at DESC, id DESC LIMIT $2`, kind, limit)
	if err != nil {
		return nil, fmt.Errorf("recent runs: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (model.Run, error) {
		var r model.Run
		err := row.Scan(&r.ID, &r.Kind, &r.RegionID, &r.RegionName, &r.StartedAt, &r.FinishedAt, &r.Status,
			&r.Files, &r.Bytes, &r.Counts, &r.Error, &r.Host, &r.PID)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("recent runs: %w", err)
	}
	return out, nil
}

// AbandonRuns marks as failed the runs of the given kinds in a region still recorded as
// running, except exceptID. Called by the holder of the lock those kinds share: whoever
// ran them is dead, or it would hold the lock.
func (d *DB) AbandonRuns(ctx context.Context, kinds []string, regionID int64, exceptID int64) (int, error) {
	var n int
	err := d.Transact(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE runs SET status = 'failed', finished_at = now(),
			error = 'interrupted: the process ended before the run finished'
			WHERE kind = ANY($1) AND region_id = $2 AND status = 'running' AND id <> $3`, kinds, regionID, exceptID)
		if err != nil {
			return err
		}
		n = int(tag.RowsAffected())
		if n > 0 {
			return notify(ctx, tx, "runs")
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("abandon %s runs: %w", strings.Join(kinds, "/"), err)
	}
	return n, nil
}
