package db

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/regionmirror/regionmirror/internal/filetable"
	"github.com/regionmirror/regionmirror/internal/model"
)

// LoadSnapshot reads everything but the per-file data (see LoadFileTable).
func (d *DB) LoadSnapshot(ctx context.Context) (*model.SnapshotData, error) {
	var out model.SnapshotData
	err := pgx.BeginTxFunc(ctx, d.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue("SELECT now()").QueryRow(func(row pgx.Row) error { return row.Scan(&out.ReadAt) })
		b.Queue("SELECT " + regionColumns + " FROM regions ORDER BY name").Query(func(rows pgx.Rows) error {
			for rows.Next() {
				r, err := scanRegion(rows)
				if err != nil {
					return err
				}
				out.Regions = append(out.Regions, *r)
			}
			return rows.Err()
		})
		b.Queue("SELECT " + repositoryColumns + " FROM repositories ORDER BY name, arch").Query(func(rows pgx.Rows) error {
			var err error
			out.Repositories, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (model.Repository, error) {
				var r model.Repository
				err := row.Scan(scanRepository(&r)...)
				return r, err
			})
			return err
		})
		b.Queue(`SELECT ` + repomdColumns + `
			FROM repomd_versions ORDER BY repository_id, first_seen DESC, id DESC`).Query(func(rows pgx.Rows) error {
			var err error
			out.RepomdVersions, err = pgx.CollectRows(rows, scanRepomdVersion)
			return err
		})
		b.Queue(`SELECT region_id, repository_id, repomd_sha256, state, coalesce(http_status, 0), error, verified_at
			FROM region_repos ORDER BY region_id, repository_id`).Query(func(rows pgx.Rows) error {
			var err error
			out.RegionRepos, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (model.RegionRepo, error) {
				var rr model.RegionRepo
				err := r.Scan(&rr.RegionID, &rr.RepositoryID, &rr.RepomdSHA256, &rr.State, &rr.HTTPStatus, &rr.Error, &rr.VerifiedAt)
				return rr, err
			})
			return err
		})
		b.Queue(`SELECT region_id, state, consecutive_failures, consecutive_successes, last_probe_at, last_ok_at, last_error, changed_at
			FROM region_health ORDER BY region_id`).Query(func(rows pgx.Rows) error {
			var err error
			out.Health, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (model.Health, error) {
				var h model.Health
				err := r.Scan(&h.RegionID, &h.State, &h.ConsecutiveFailures, &h.ConsecutiveSuccesses, &h.LastProbeAt, &h.LastOKAt, &h.LastError, &h.ChangedAt)
				return h, err
			})
			return err
		})
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return nil, fmt.Errorf("load snapshot: %w", err)
	}
	return &out, nil
}

// LoadFileTable reads the whole inventory (deleted files too: clients may still need them
// during the grace period) and every region's verified copies.
func (d *DB) LoadFileTable(ctx context.Context) (*filetable.Table, error) {
	var t *filetable.Table
	err := pgx.BeginTxFunc(ctx, d.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		// The snapshot first: it is the transaction's, so it names exactly what this read sees.
		p, err := readPointOf(ctx, tx)
		if err != nil {
			return err
		}
		// Exact sizes up front: growing arenas by doubling would briefly need twice the
		// memory, on top of the table still serving. The arena holds base names only (the
		// directories are shared): whole paths would reserve ~50 bytes more per file, which
		// the garbage collector counts as live heap.
		var n, nameBytes int
		if err := tx.QueryRow(ctx, `SELECT count(*), coalesce(sum(CASE WHEN strpos(reverse(path), '/') = 0 THEN octet_length(path)
			ELSE octet_length(right(path, strpos(reverse(path), '/') - 1)) END), 0) FROM files`).Scan(&n, &nameBytes); err != nil {
			return err
		}
		b := filetable.NewBuilder(n, nameBytes)
		if err := scanFiles(ctx, tx, "", nil, b.AddID); err != nil {
			return err
		}
		t = b.Table()
		t.ReadPoint = p
		t.Verified, err = scanVerified(ctx, tx, t)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("load file table: %w", err)
	}
	return t, nil
}

// scanFiles reads the files rows matching where (all for ""), ordered by ID, as raw binary
// values rather than scanned Go values, which keeps a million files well under a second.
// path and sum belong to the row and are only valid during fn.
func scanFiles(ctx context.Context, tx pgx.Tx, where string, args []any, fn func(id int64, path []byte, size int64, sum []byte, deleted bool) error) error {
	if where != "" {
		where = " WHERE " + where
	}
	rows, err := tx.Query(ctx, "SELECT id, path, size, sha256, deleted_at IS NOT NULL FROM files"+where+" ORDER BY id",
		append([]any{pgx.QueryResultFormats{pgx.BinaryFormatCode, pgx.TextFormatCode, pgx.BinaryFormatCode, pgx.BinaryFormatCode, pgx.BinaryFormatCode}}, args...)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		v := rows.RawValues()
		if len(v[0]) != 8 || len(v[2]) != 8 || len(v[4]) != 1 {
			return fmt.Errorf("files: unexpected binary row layout")
		}
		if err := fn(int64(binary.BigEndian.Uint64(v[0])), v[1], int64(binary.BigEndian.Uint64(v[2])), v[3], v[4][0] == 1); err != nil {
			return err
		}
	}
	return rows.Err()
}

// scanVerified reads every verified copy into a set per region over t's files.
func scanVerified(ctx context.Context, tx pgx.Tx, t *filetable.Table) (map[int64]filetable.Bitset, error) {
	// Only copies of the file's current bytes: the writers keep region_objects.current,
	// so this reads one partial index instead of joining with files.
	rows, err := tx.Query(ctx, `SELECT region_id, file_id FROM region_objects
		WHERE state = 'present' AND current ORDER BY region_id, file_id`,
		pgx.QueryResultFormats{pgx.BinaryFormatCode, pgx.BinaryFormatCode})
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var (
		sets             = map[int64]filetable.Bitset{}
		lastRegion int64 = -1
		set        filetable.Bitset
	)
	for rows.Next() {
		v := rows.RawValues()
		if len(v[0]) != 8 || len(v[1]) != 8 {
			return nil, fmt.Errorf("region objects: unexpected binary row layout")
		}
		if region := int64(binary.BigEndian.Uint64(v[0])); region != lastRegion {
			set = filetable.NewBitset(t.Len())
			sets[region], lastRegion = set, region
		}
		if i, ok := t.Index(int64(binary.BigEndian.Uint64(v[1]))); ok && !t.Gone.Has(i) {
			set.Set(i)
		}
	}
	return sets, rows.Err()
}
