package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/regionmirror/regionmirror/internal/model"
)

// RecordProbe applies one probe result (probeErr "" means it succeeded) and returns the
// new health.
func (d *DB) RecordProbe(ctx context.Context, regionID int64, probeErr string, downAfter, upAfter int) (*model.Health, error) {
	var h model.Health
	err := d.Transact(ctx, func(tx pgx.Tx) error {
		h = model.Health{RegionID: regionID, State: model.HealthUnknown}
		err := tx.QueryRow(ctx, `SELECT state, consecutive_failures, consecutive_successes FROM region_health WHERE region_id = $1 FOR UPDATE`,
			regionID).Scan(&h.State, &h.ConsecutiveFailures, &h.ConsecutiveSuccesses)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		old := h.State
		h.State, h.ConsecutiveFailures, h.ConsecutiveSuccesses = model.NextHealthState(h.State, h.ConsecutiveFailures, h.ConsecutiveSuccesses, probeErr == "", downAfter, upAfter)
		err = tx.QueryRow(ctx, `
			INSERT INTO region_health AS h (region_id, state, consecutive_failures, consecutive_successes, last_probe_at, last_ok_at, last_error, changed_at)
			VALUES ($1, $2, $3, $4, now(), CASE WHEN $5 = '' THEN now() END, $5, now())
			ON CONFLICT (region_id) DO UPDATE SET state = excluded.state,
				consecutive_failures = excluded.consecutive_failures, consecutive_successes = excluded.consecutive_successes,
				last_probe_at = now(), last_ok_at = coalesce(excluded.last_ok_at, h.last_ok_at),
				last_error = CASE WHEN $5 = '' THEN h.last_error ELSE $5 END,
				changed_at = CASE WHEN h.state = excluded.state THEN h.changed_at ELSE now() END
			RETURNING last_probe_at, last_ok_at, last_error, changed_at`,
			regionID, h.State, h.ConsecutiveFailures, h.ConsecutiveSuccesses, probeErr).Scan(&h.LastProbeAt, &h.LastOKAt, &h.LastError, &h.ChangedAt)
		if err != nil {
			return err
		}
		if old != h.State || probeErr != "" {
			return notify(ctx, tx, "health")
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record probe of region %d: %w", regionID, err)
	}
	return &h, nil
}

// RegionHealth returns every region's health record.
func (d *DB) RegionHealth(ctx context.Context) ([]model.Health, error) {
	rows, err := d.pool.Query(ctx, `SELECT region_id, state, consecutive_failures, consecutive_successes, last_probe_at, last_ok_at, last_error, changed_at
		FROM region_health ORDER BY region_id`)
	if err != nil {
		return nil, fmt.Errorf("region health: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (model.Health, error) {
		var h model.Health
		err := r.Scan(&h.RegionID, &h.State, &h.ConsecutiveFailures, &h.ConsecutiveSuccesses, &h.LastProbeAt, &h.LastOKAt, &h.LastError, &h.ChangedAt)
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("region health: %w", err)
	}
	return out, nil
}
