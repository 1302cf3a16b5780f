package db

import (
	"bytes"
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
	// Was are the rows the inventory read before walking, by path (an absent path: no
	// row). When set, a change is applied only where the row is still as read, and the
	// others are counted in InventoryResult.Skipped.
	Was map[string]*model.File
}

// InventoryResult counts what ApplyInventory changed.
type InventoryResult struct {
	Added, Changed, Deleted int
	// Generation is the origin's generation this change made (0 when nothing changed).
	Generation int64
	// Skipped are changes not applied: another inventory changed their row since this one
	// read it. The inventory is then not the origin as walked.
	Skipped int
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
		ups, dels := ch.Upsert, ch.Deleted
		if ch.Was != nil {
			var err error
			if ups, dels, res.Skipped, err = stillAsRead(ctx, tx, ch); err != nil {
				return err
			}
		}
		if len(ups) > 0 {
			if _, err := tx.Exec(ctx, `CREATE TEMP TABLE inventory_in (path text, size bigint, sha256 bytea, md5 bytea, mtime timestamptz) ON COMMIT DROP`); err != nil {
				return err
			}
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"inventory_in"}, []string{"path", "size", "sha256", "md5", "mtime"},
				pgx.CopyFromSlice(len(ups), func(i int) ([]any, error) {
					f := ups[i]
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
		if len(dels) > 0 {
			tag, err := tx.Exec(ctx, `UPDATE files SET deleted_at = now() WHERE path = ANY($1) AND deleted_at IS NULL`, dels)
			if err != nil {
				return err
			}
			res.Deleted = int(tag.RowsAffected())
		}
		if res.Added+res.Changed+res.Deleted == 0 {
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

// stillAsRead keeps of an inventory's changes those whose file is still as the inventory
// read it (ch.Was), under a lock every conditional inventory takes: a slow walk that read a
// file before a faster one (a watcher's push of its directory) recorded a newer state must
// not overwrite it with what it saw, nor mark deleted a file brought back meanwhile. It
// returns the changes kept and how many it dropped.
func stillAsRead(ctx context.Context, tx pgx.Tx, ch InventoryChanges) ([]model.File, []string, int, error) {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey("inventory")); err != nil {
		return nil, nil, 0, fmt.Errorf("inventory lock: %w", err)
	}
	paths := make([]string, 0, len(ch.Upsert)+len(ch.Deleted))
	for _, f := range ch.Upsert {
		paths = append(paths, f.Path)
	}
	paths = append(paths, ch.Deleted...)
	rows, err := tx.Query(ctx, "SELECT "+fileColumns+" FROM files WHERE path = ANY($1)", paths)
	if err != nil {
		return nil, nil, 0, err
	}
	now, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (model.File, error) { return scanFile(r) })
	if err != nil {
		return nil, nil, 0, err
	}
	cur := make(map[string]*model.File, len(now))
	for i := range now {
		cur[now[i].Path] = &now[i]
	}
	same := func(p string) bool {
		a, b := cur[p], ch.Was[p]
		if a == nil || b == nil {
			return a == nil && b == nil
		}
		return a.Size == b.Size && bytes.Equal(a.SHA256, b.SHA256) && a.Mtime.Equal(b.Mtime) && a.UpdatedAt.Equal(b.UpdatedAt) &&
			(a.DeletedAt == nil) == (b.DeletedAt == nil) && (a.DeletedAt == nil || a.DeletedAt.Equal(*b.DeletedAt))
	}
	var ups []model.File
	var dels []string
	skipped := 0
	for _, f := range ch.Upsert {
		if same(f.Path) {
			ups = append(ups, f)
		} else {
			skipped++
		}
	}
	for _, p := range ch.Deleted {
		if same(p) {
			dels = append(dels, p)
		} else {
			skipped++
		}
	}
	return ups, dels, skipped, nil
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
