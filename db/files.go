package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/regionmirror/regionmirror/internal/model"
)

const fileColumns = "id, path, size, sha256, md5, mtime, first_seen, updated_at, deleted_at"

func scanFile(row pgx.Row) (model.File, error) {
	var f model.File
	err := row.Scan(&f.ID, &f.Path, &f.Size, &f.SHA256, &f.MD5, &f.Mtime, &f.FirstSeen, &f.UpdatedAt, &f.DeletedAt)
	return f, err
}

// ListFiles returns the inventory ordered by path: live files, and deleted ones too when
// withDeleted is set.
func (d *DB) ListFiles(ctx context.Context, withDeleted bool) ([]model.File, error) {
	q := "SELECT " + fileColumns + " FROM files"
	if !withDeleted {
		q += " WHERE deleted_at IS NULL"
	}
	rows, err := d.pool.Query(ctx, q+" ORDER BY path")
	if err != nil {
		return nil, fmt.Errorf("list files: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (model.File, error) { return scanFile(r) })
	if err != nil {
		return nil, fmt.Errorf("list files: %w", err)
	}
	return out, nil
}

// GetFile returns the file at path, deleted or not.
func (d *DB) GetFile(ctx context.Context, path string) (*model.File, error) {
	f, err := scanFile(d.pool.QueryRow(ctx, "SELECT "+fileColumns+" FROM files WHERE path = $1", path))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("file %q: %w", path, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get file %s: %w", path, err)
	}
	return &f, nil
}

// InventoryChanges is what an origin walk found different from the database.
type InventoryChanges struct {
	Upsert  []model.File // new or changed files (Path, Size, SHA256, MD5, Mtime); a deleted path that reappears is live again
	Deleted []string     // paths the origin no longer has
	// Scope are the directories the walk covered (nil: the whole origin): the change is
	// recorded against them.
	Scope []string
}

// InventoryResult counts what ApplyInventory changed.
type InventoryResult struct {
	Added, Changed, Deleted int
	// Generation is the origin's generation this change made (0 when nothing changed).
	Generation int64
}

// ApplyInventory writes an inventory diff in one transaction. Unchanged rows are not
// touched, so a no-op walk writes nothing.
func (d *DB) ApplyInventory(ctx context.Context, ch InventoryChanges) (InventoryResult, error) {
	var res InventoryResult
	if len(ch.Upsert) == 0 && len(ch.Deleted) == 0 {
		return res, nil
	}
	err := d.Transact(ctx, func(tx pgx.Tx) error {
		res = InventoryResult{}
		if len(ch.Upsert) > 0 {
			if _, err := tx.Exec(ctx, `CREATE TEMP TABLE inventory_in (path text, size bigint, sha256 bytea, md5 bytea, mtime timestamptz) ON COMMIT DROP`); err != nil {
				return err
			}
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"inventory_in"}, []string{"path", "size", "sha256", "md5", "mtime"},
				pgx.CopyFromSlice(len(ch.Upsert), func(i int) ([]any, error) {
					f := ch.Upsert[i]
					return []any{f.Path, f.Size, f.SHA256, f.MD5, f.Mtime}, nil
				}))
			if err != nil {
				return fmt.Errorf("copy inventory: %w", err)
			}
			// xmax = 0 tells an insert from an update.
			rows, err := tx.Query(ctx, `
				INSERT INTO files AS f (path, size, sha256, md5, mtime)
				SELECT path, size, sha256, md5, mtime FROM inventory_in
				ON CONFLICT (path) DO UPDATE SET size = excluded.size, sha256 = excluded.sha256,
					md5 = excluded.md5, mtime = excluded.mtime, updated_at = now(), deleted_at = NULL
				WHERE (f.size, f.sha256, f.md5, f.mtime) IS DISTINCT FROM (excluded.size, excluded.sha256, excluded.md5, excluded.mtime)
					OR f.deleted_at IS NOT NULL
				RETURNING id, (xmax = 0)`)
			if err != nil {
				return err
			}
			var (
				id       int64
				inserted bool
				changed  []int64
			)
			if _, err := pgx.ForEachRow(rows, []any{&id, &inserted}, func() error {
				if inserted {
					res.Added++
				} else {
					res.Changed++
					changed = append(changed, id)
				}
				return nil
			}); err != nil {
				return err
			}
			// Copies of a changed file are current only if they hold its new bytes.
			if len(changed) > 0 {
				if _, err := tx.Exec(ctx, `UPDATE region_objects o SET current = (o.size = f.size AND o.sha256 = f.sha256)
					FROM files f WHERE f.id = o.file_id AND f.id = ANY($1)`, changed); err != nil {
					return err
				}
			}
		}
		if len(ch.Deleted) > 0 {
			tag, err := tx.Exec(ctx, `UPDATE files SET deleted_at = now() WHERE path = ANY($1) AND deleted_at IS NULL`, ch.Deleted)
			if err != nil {
				return err
			}
			res.Deleted = int(tag.RowsAffected())
		}
		if res == (InventoryResult{}) {
			return nil
		}
		var err error
		if res.Generation, err = bumpGeneration(ctx, tx, ch.Scope); err != nil {
			return err
		}
		return notify(ctx, tx, "files")
	})
	if err != nil {
		return InventoryResult{}, fmt.Errorf("apply inventory: %w", err)
	}
	return res, nil
}

// ExpiredFiles returns deleted files whose grace period has passed.
func (d *DB) ExpiredFiles(ctx context.Context, grace time.Duration) ([]model.File, error) {
	rows, err := d.pool.Query(ctx, "SELECT "+fileColumns+" FROM files WHERE deleted_at < now() - $1::interval ORDER BY path", grace)
	if err != nil {
		return nil, fmt.Errorf("expired files: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (model.File, error) { return scanFile(r) })
	if err != nil {
		return nil, fmt.Errorf("expired files: %w", err)
	}
	return out, nil
}

// PurgeFiles removes deleted files that no region holds any more.
func (d *DB) PurgeFiles(ctx context.Context, ids []int64) (int, error) {
	var n int
	err := d.Transact(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM files f WHERE f.id = ANY($1) AND f.deleted_at IS NOT NULL
			AND NOT EXISTS (SELECT 1 FROM region_objects o WHERE o.file_id = f.id)`, ids)
		if err != nil {
			return err
		}
		n = int(tag.RowsAffected())
		return notify(ctx, tx, "files")
	})
	if err != nil {
		return 0, fmt.Errorf("purge files: %w", err)
	}
	return n, nil
}
