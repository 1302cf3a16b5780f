package db

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/regionmirror/regionmirror/internal/model"
)

// objectColumns are what scanObject reads: a copy (o) with its file's path (f).
const objectColumns = `o.region_id, o.file_id, f.path, o.size, o.sha256, o.state, o.pushed_at, o.verified_at, o.last_requested_at`

func scanObject(r pgx.CollectableRow) (model.RegionObject, error) {
	var o model.RegionObject
	err := r.Scan(&o.RegionID, &o.FileID, &o.Path, &o.Size, &o.SHA256, &o.State, &o.PushedAt, &o.VerifiedAt, &o.LastRequestedAt)
	return o, err
}

// RegionObjects returns every object recorded for a region, ordered by path.
func (d *DB) RegionObjects(ctx context.Context, regionID int64) ([]model.RegionObject, error) {
	rows, err := d.pool.Query(ctx, `SELECT `+objectColumns+`
		FROM region_objects o JOIN files f ON f.id = o.file_id
		WHERE o.region_id = $1 ORDER BY f.path`, regionID)
	if err != nil {
		return nil, fmt.Errorf("region objects: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanObject)
	if err != nil {
		return nil, fmt.Errorf("region objects: %w", err)
	}
	return out, nil
}

// ObjectUpdate records what a region holds of one file.
type ObjectUpdate struct {
	FileID   int64
	Size     int64
	SHA256   []byte
	State    string
	Pushed   bool // set pushed_at to now
	Verified bool // set verified_at to now
}

// RecordObjects upserts a batch of a region's objects in one statement and transaction,
// if fence still holds.
func (d *DB) RecordObjects(ctx context.Context, fence Fence, regionID int64, updates []ObjectUpdate) error {
	if len(updates) == 0 {
		return nil
	}
	// One row per file: an upsert may not touch a row twice, and the last update wins.
	seen := make(map[int64]bool, len(updates))
	var ids, sizes []int64
	var sums [][]byte
	var states []string
	var pushed, verified []bool
	// A copy recorded missing or corrupt is work for the next push: the region is no
	// longer synced.
	takes := false
	for i := len(updates) - 1; i >= 0; i-- {
		u := updates[i]
		if seen[u.FileID] {
			continue
		}
		seen[u.FileID] = true
		takes = takes || u.State != model.ObjectPresent
		ids, sizes, sums = append(ids, u.FileID), append(sizes, u.Size), append(sums, u.SHA256)
		states, pushed, verified = append(states, u.State), append(pushed, u.Pushed), append(verified, u.Verified)
	}
	err := d.Transact(ctx, func(tx pgx.Tx) error {
		if err := fence.check(ctx, tx); err != nil {
			return err
		}
		// One statement for the batch: a scan of a large region rewrites every row.
		if _, err := tx.Exec(ctx, `
			INSERT INTO region_objects AS o (region_id, file_id, size, sha256, state, pushed_at, verified_at, current)
			SELECT $1, u.file_id, u.size, u.sha256, u.state,
				CASE WHEN u.pushed THEN now() END, CASE WHEN u.verified THEN now() END,
				u.size = f.size AND u.sha256 = f.sha256
			FROM unnest($2::bigint[], $3::bigint[], $4::bytea[], $5::text[], $6::bool[], $7::bool[])
				AS u(file_id, size, sha256, state, pushed, verified)
			JOIN files f ON f.id = u.file_id
			ON CONFLICT (region_id, file_id) DO UPDATE SET size = excluded.size, sha256 = excluded.sha256,
				state = excluded.state, current = excluded.current,
				pushed_at = coalesce(excluded.pushed_at, o.pushed_at),
				verified_at = coalesce(excluded.verified_at, o.verified_at)
			-- A copy marked deleting (gc, expiry, purge) is on its way out: only a push,
			-- which writes the object again, brings it back; a scan that still sees it does not.
			WHERE o.state <> 'deleting' OR excluded.pushed_at IS NOT NULL`,
			regionID, ids, sizes, sums, states, pushed, verified); err != nil {
			return err
		}
		if takes {
			if err := invalidateRegions(ctx, tx, []int64{regionID}); err != nil {
				return err
			}
		}
		return notify(ctx, tx, "objects")
	})
	if err != nil {
		return fmt.Errorf("record objects: %w", err)
	}
	return nil
}

// ForgetObject removes the record of a path's copy in one region (regionID > 0) or in
// all, so the next push writes it again. It returns how many copies were forgotten.
func (d *DB) ForgetObject(ctx context.Context, path string, regionID int64) (int, error) {
	var n int
	err := d.Transact(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `DELETE FROM region_objects o USING files f
			WHERE f.id = o.file_id AND f.path = $1 AND ($2 = 0 OR o.region_id = $2) RETURNING o.region_id`, path, regionID)
		if err != nil {
			return err
		}
		regions, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		n = len(regions)
		if err := invalidateRegions(ctx, tx, regions); err != nil {
			return err
		}
		return notify(ctx, tx, "objects")
	})
	if err != nil {
		return 0, fmt.Errorf("forget %s: %w", path, err)
	}
	return n, nil
}

// ObjectsOfFile returns every region's record of one file, by region name.
func (d *DB) ObjectsOfFile(ctx context.Context, fileID int64) ([]model.RegionObject, error) {
	rows, err := d.pool.Query(ctx, `SELECT `+objectColumns+`
		FROM region_objects o JOIN files f ON f.id = o.file_id JOIN regions r ON r.id = o.region_id
		WHERE o.file_id = $1 ORDER BY r.name`, fileID)
	if err != nil {
		return nil, fmt.Errorf("objects of file %d: %w", fileID, err)
	}
	out, err := pgx.CollectRows(rows, scanObject)
	if err != nil {
		return nil, fmt.Errorf("objects of file %d: %w", fileID, err)
	}
	return out, nil
}
