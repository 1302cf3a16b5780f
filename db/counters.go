package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/regionmirror/regionmirror/internal/model"
)

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
