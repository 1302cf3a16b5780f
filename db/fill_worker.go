package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/regionmirror/regionmirror/internal/model"
)

// ClaimFillsIn is ClaimFills limited to the jobs of regionIDs (all regions when empty):
// a fill worker started with --region takes only those regions' jobs. Same rules as
// ClaimFills: ready queued jobs and running jobs whose lease passed, oldest first, each
// under a new token; dead jobs (file deleted, region no longer on demand, copy already
// verified) are dropped, and a job whose copy is being removed waits.
func (d *DB) ClaimFillsIn(ctx context.Context, worker string, n int, lease time.Duration, regionIDs []int64) ([]model.FillJob, error) {
	if len(regionIDs) == 0 {
		return d.ClaimFills(ctx, worker, n, lease)
	}
	var out []model.FillJob
	err := pgx.BeginTxFunc(ctx, d.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		out = out[:0]
		if _, err := tx.Exec(ctx, `
			DELETE FROM fill_jobs j USING files f, regions r
			WHERE f.id = j.file_id AND r.id = j.region_id AND j.region_id = ANY($1)
				AND (j.state <> 'running' OR j.lease_until < now())
				AND (f.deleted_at IS NOT NULL OR r.fill <> 'on-demand' OR EXISTS (
					SELECT 1 FROM region_objects o WHERE o.region_id = j.region_id AND o.file_id = j.file_id
						AND o.state = 'present' AND o.current))`, regionIDs); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `
			WITH ready AS (
				SELECT j.region_id, j.file_id FROM fill_jobs j JOIN regions r ON r.id = j.region_id
				WHERE r.enabled AND j.region_id = ANY($4) AND ((j.state = 'queued' AND j.not_before <= now())
					OR (j.state = 'running' AND j.lease_until < now()))
					AND NOT EXISTS (SELECT 1 FROM region_objects o WHERE o.region_id = j.region_id
						AND o.file_id = j.file_id AND o.state = 'deleting')
				ORDER BY j.queued_at LIMIT $2
				FOR UPDATE OF j SKIP LOCKED
			)
			UPDATE fill_jobs j SET state = 'running', attempts = j.attempts + 1, worker = $1,
				token = nextval('fill_job_tokens'), started_at = now(), lease_until = now() + $3::interval
			FROM ready, files f, regions r
			WHERE j.region_id = ready.region_id AND j.file_id = ready.file_id AND f.id = j.file_id AND r.id = j.region_id
			RETURNING `+fillJobColumns, worker, n, lease, regionIDs)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (model.FillJob, error) { return scanFillJob(row) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim fills: %w", err)
	}
	return out, nil
}
