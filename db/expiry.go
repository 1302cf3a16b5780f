package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/regionmirror/regionmirror/internal/model"
)

// LiveCopies reads, in one repeatable-read transaction, the database's clock and a
// region's recorded copies of live origin files (every state, deleting ones too; with
// onlyDeleting only those, which is all a push region needs and spares reading its whole
// tree), by path: what expiry, eviction and the end of a purge judge the region by.
// Copies of deleted files are gc's (GCState).
func (d *DB) LiveCopies(ctx context.Context, regionID int64, onlyDeleting bool) (time.Time, []model.RegionObject, error) {
	var now time.Time
	var out []model.RegionObject
	err := pgx.BeginTxFunc(ctx, d.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&now); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+objectColumns+`
			FROM region_objects o JOIN files f ON f.id = o.file_id
			WHERE o.region_id = $1 AND f.deleted_at IS NULL AND (NOT $2 OR o.state = 'deleting') ORDER BY f.path`, regionID, onlyDeleting)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, scanObject)
		return err
	})
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("live copies of region %d: %w", regionID, err)
	}
	return now, out, nil
}
