package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/regionmirror/regionmirror/internal/model"
)

// AddRedirectCounts adds deltas to the totals in one statement. The server calls it in
// the background, never on a request's path.
func (d *DB) AddRedirectCounts(ctx context.Context, deltas []model.RedirectCount) error {
	if len(deltas) == 0 {
		return nil
	}
	names := make([]string, len(deltas))
	reqs := make([]int64, len(deltas))
	bytes := make([]int64, len(deltas))
	misses := make([]int64, len(deltas))
	for i, c := range deltas {
		names[i], reqs[i], bytes[i], misses[i] = c.Region, c.Requests, c.Bytes, c.Misses
	}
	_, err := d.pool.Exec(ctx, `INSERT INTO redirect_counters AS c (region, requests, bytes, misses)
		SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])
		ON CONFLICT (region) DO UPDATE SET requests = c.requests + excluded.requests,
			bytes = c.bytes + excluded.bytes, misses = c.misses + excluded.misses, updated_at = now()`, names, reqs, bytes, misses)
	if err != nil {
		return fmt.Errorf("add redirect counts: %w", err)
	}
	return nil
}

// RedirectCounts returns the totals, ordered by region name (the origin first).
func (d *DB) RedirectCounts(ctx context.Context) ([]model.RedirectCount, error) {
	rows, err := d.pool.Query(ctx, "SELECT region, requests, bytes, misses, updated_at FROM redirect_counters ORDER BY region")
	if err != nil {
		return nil, fmt.Errorf("redirect counts: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (model.RedirectCount, error) {
		var c model.RedirectCount
		err := r.Scan(&c.Region, &c.Requests, &c.Bytes, &c.Misses, &c.UpdatedAt)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("redirect counts: %w", err)
	}
	return out, nil
}

// LastRuns returns, for every region and kind (push, scan, gc), its newest finished run and
// when the newest successful one finished.
func (d *DB) LastRuns(ctx context.Context) ([]model.LastRun, error) {
	rows, err := d.pool.Query(ctx, `
		SELECT DISTINCT ON (region_id, kind) region_id, kind, status, finished_at,
			max(finished_at) FILTER (WHERE status = 'ok') OVER (PARTITION BY region_id, kind)
		FROM runs WHERE region_id IS NOT NULL AND finished_at IS NOT NULL
		ORDER BY region_id, kind, finished_at DESC, id DESC`)
	if err != nil {
		return nil, fmt.Errorf("last runs: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (model.LastRun, error) {
		var (
			l  model.LastRun
			ok *time.Time
		)
		err := r.Scan(&l.RegionID, &l.Kind, &l.Status, &l.FinishedAt, &ok)
		if ok != nil {
			l.LastOKAt = *ok
		}
		return l, err
	})
	if err != nil {
		return nil, fmt.Errorf("last runs: %w", err)
	}
	return out, nil
}
