package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/regionmirror/regionmirror/internal/model"
)

// Queries of the pusher.

// AnnounceWait is how long until the newest repomd.xml version has been in the database
// for delay, measured on the database's clock (the one first_seen was written with): a
// pusher whose clock runs ahead must not cut the wait short. 0 when it is past, or when
// no version is recorded.
func (d *DB) AnnounceWait(ctx context.Context, delay time.Duration) (time.Duration, error) {
	var micros int64
	err := d.pool.QueryRow(ctx, `SELECT coalesce(greatest(0,
			(extract(epoch FROM max(first_seen) + $1::interval - clock_timestamp()) * 1000000)::bigint), 0)
		FROM repomd_versions`, delay).Scan(&micros)
	if err != nil {
		return 0, fmt.Errorf("announce wait: %w", err)
	}
	return time.Duration(micros) * time.Microsecond, nil
}

// TakeOut records a region's repository as out of the answers (state stale with reason,
// keeping the repomd.xml it serves), if fence still holds, unless that would take away the
// last enabled region serving the repository (fresh or alternate) while other regions
// that carry it are out: then it records nothing and returns false. The transaction is
// serializable, so two pushes of different regions never both take out the last two.
func (d *DB) TakeOut(ctx context.Context, fence Fence, rr model.RegionRepo) (bool, error) {
	taken := false
	err := d.Transact(ctx, func(tx pgx.Tx) error {
		taken = false
		if err := fence.check(ctx, tx); err != nil {
			return err
		}
		var others, serving int
		if err := tx.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE rr.state IN ('fresh', 'alternate') AND r.enabled)
			FROM region_repos rr JOIN regions r ON r.id = rr.region_id
			WHERE rr.repository_id = $1 AND rr.region_id <> $2`, rr.RepositoryID, rr.RegionID).Scan(&others, &serving); err != nil {
			return err
		}
		if others > 0 && serving == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE region_repos SET state = 'stale', error = $3, verified_at = now()
			WHERE region_id = $1 AND repository_id = $2`, rr.RegionID, rr.RepositoryID, rr.Error); err != nil {
			return err
		}
		taken = true
		return notify(ctx, tx, "region_repos")
	})
	if err != nil {
		return false, fmt.Errorf("take repository %d out in region %d: %w", rr.RepositoryID, rr.RegionID, err)
	}
	return taken, nil
}

// RegionMoveWait is how long until the region's last move has been in the database for
// delay, on the database's clock; 0 when it is past or the region never moved.
func (d *DB) RegionMoveWait(ctx context.Context, regionID int64, delay time.Duration) (time.Duration, error) {
	var micros int64
	err := d.pool.QueryRow(ctx, `SELECT coalesce(greatest(0,
			(extract(epoch FROM moved_at + $2::interval - clock_timestamp()) * 1000000)::bigint), 0)
		FROM regions WHERE id = $1`, regionID, delay).Scan(&micros)
	if err != nil {
		return 0, fmt.Errorf("region %d edit wait: %w", regionID, err)
	}
	return time.Duration(micros) * time.Microsecond, nil
}
