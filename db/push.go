package db

import (
	"context"
	"fmt"
	"time"
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
