package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/regionmirror/regionmirror/internal/model"
)

// DeletedCopy is a region's record of a file the origin deleted.
type DeletedCopy struct {
	FileID    int64
	Path      string
	DeletedAt time.Time
	State     string
}

// GCState is what gc judges a region by, read in one transaction: the region's copies of
// deleted files, every repository's repomd.xml versions (newest first, with SupersededAt as
// every reader gets it), which repositories the region serves fresh, and the database's clock.
type GCState struct {
	Now      time.Time
	Copies   []DeletedCopy
	Versions map[int64][]model.RepomdVersion // by repository ID, newest first
	Fresh    map[int64]bool                  // repository ID -> the region serves its current repomd.xml, fresh
}

// GCState reads a region's gc inputs in one repeatable-read transaction, so the copies,
// the versions and the freshness belong to one moment. regionID 0 reads every deleted
// file (as copies of no region) for the purge of files no region holds.
func (d *DB) GCState(ctx context.Context, regionID int64) (*GCState, error) {
	st := &GCState{Versions: map[int64][]model.RepomdVersion{}, Fresh: map[int64]bool{}}
	err := pgx.BeginTxFunc(ctx, d.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		*st = GCState{Versions: map[int64][]model.RepomdVersion{}, Fresh: map[int64]bool{}}
		if err := tx.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&st.Now); err != nil {
			return err
		}
		q := `SELECT o.file_id, f.path, f.deleted_at, o.state FROM region_objects o JOIN files f ON f.id = o.file_id
			WHERE o.region_id = $1 AND f.deleted_at IS NOT NULL ORDER BY f.path`
		if regionID == 0 {
			q = `SELECT f.id, f.path, f.deleted_at, '' FROM files f WHERE $1 = 0 AND f.deleted_at IS NOT NULL ORDER BY f.path`
		}
		rows, err := tx.Query(ctx, q, regionID)
		if err != nil {
			return err
		}
		st.Copies, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (DeletedCopy, error) {
			var c DeletedCopy
			err := r.Scan(&c.FileID, &c.Path, &c.DeletedAt, &c.State)
			return c, err
		})
		if err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT `+repomdColumns+` FROM repomd_versions ORDER BY repository_id, first_seen DESC, id DESC`)
		if err != nil {
			return err
		}
		versions, err := pgx.CollectRows(rows, scanRepomdVersion)
		if err != nil {
			return err
		}
		for _, v := range versions {
			st.Versions[v.RepositoryID] = append(st.Versions[v.RepositoryID], v)
		}
		var repo int64
		// Fresh: the region's record says fresh and names the current version.
		rows, err = tx.Query(ctx, `SELECT rr.repository_id FROM region_repos rr
			WHERE rr.region_id = $1 AND rr.state = 'fresh' AND rr.repomd_sha256 = (SELECT v.sha256 FROM repomd_versions v
				WHERE v.repository_id = rr.repository_id ORDER BY v.first_seen DESC, v.id DESC LIMIT 1)`, regionID)
		if err != nil {
			return err
		}
		_, err = pgx.ForEachRow(rows, []any{&repo}, func() error {
			st.Fresh[repo] = true
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("gc state of region %d: %w", regionID, err)
	}
	return st, nil
}

// RecordedPaths returns which of paths the inventory records, live or deleted.
func (d *DB) RecordedPaths(ctx context.Context, paths []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(paths) == 0 {
		return out, nil
	}
	rows, err := d.pool.Query(ctx, "SELECT path FROM files WHERE path = ANY($1)", paths)
	if err != nil {
		return nil, fmt.Errorf("recorded paths: %w", err)
	}
	var p string
	if _, err := pgx.ForEachRow(rows, []any{&p}, func() error { out[p] = true; return nil }); err != nil {
		return nil, fmt.Errorf("recorded paths: %w", err)
	}
	return out, nil
}

// GCMark is a copy gc chose to remove, with the deletion time its choice was based on.
type GCMark struct {
	FileID    int64
	DeletedAt time.Time
}

// MarkExpiredDeleting sets a region's copies to state 'deleting' (servers stop sending
// clients there once they read it) in one transaction that re-checks each file is still
// deleted, at the same time as gc judged, and that fence still holds (a file revived and deleted again since starts a
// new grace period), and longer than grace ago. It returns the copies it marked.
func (d *DB) MarkExpiredDeleting(ctx context.Context, fence Fence, regionID int64, marks []GCMark, grace time.Duration) ([]int64, error) {
	if len(marks) == 0 {
		return nil, nil
	}
	ids := make([]int64, len(marks))
	at := make([]time.Time, len(marks))
	for i, m := range marks {
		ids[i], at[i] = m.FileID, m.DeletedAt
	}
	var marked []int64
	err := d.Transact(ctx, func(tx pgx.Tx) error {
		if err := fence.check(ctx, tx); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `UPDATE region_objects o SET state = 'deleting'
			FROM files f, unnest($2::bigint[], $3::timestamptz[]) AS m(file_id, deleted_at)
			WHERE o.region_id = $1 AND o.file_id = m.file_id AND f.id = m.file_id
				AND f.deleted_at IS NOT NULL AND f.deleted_at = m.deleted_at AND f.deleted_at < now() - $4::interval
			RETURNING o.file_id`, regionID, ids, at, grace)
		if err != nil {
			return err
		}
		marked, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		return notify(ctx, tx, "objects")
	})
	if err != nil {
		return nil, fmt.Errorf("mark copies deleting in region %d: %w", regionID, err)
	}
	return marked, nil
}

// ForgetDeletingCopies removes a region's records of copies gc marked 'deleting' and has
// deleted; a copy a push wrote again since (state present) keeps its record.
func (d *DB) ForgetDeletingCopies(ctx context.Context, fence Fence, regionID int64, fileIDs []int64) (int, error) {
	var n int
	err := d.Transact(ctx, func(tx pgx.Tx) error {
		if err := fence.check(ctx, tx); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM region_objects WHERE region_id = $1 AND file_id = ANY($2) AND state = 'deleting'`, regionID, fileIDs)
		if err != nil {
			return err
		}
		n = int(tag.RowsAffected())
		return notify(ctx, tx, "objects")
	})
	if err != nil {
		return 0, fmt.Errorf("forget deleted copies in region %d: %w", regionID, err)
	}
	return n, nil
}
