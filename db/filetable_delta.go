package db

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/regionmirror/regionmirror/internal/filetable"
)

// ErrFileTableStale means a file table is too old to bring up to date from the changes the
// database keeps (migration 0004 keeps removals for a day); read it whole.
var ErrFileTableStale = errors.New("file table cannot be updated: too old, or a table was truncated")

// maxUpdateAge is how old a table may be and still be updated: half of the day for which
// removals are kept, so clock skew between readers cannot lose one.
const maxUpdateAge = 12 * time.Hour

// FileTableChanges counts what UpdateFileTable applied.
type FileTableChanges struct {
	Files   int // files added or changed
	Removed int // files and verified copies whose rows were deleted
	Copies  int // copies that became verified or stopped being verified
}

// Empty reports whether nothing changed.
func (c FileTableChanges) Empty() bool { return c.Files == 0 && c.Removed == 0 && c.Copies == 0 }

func (c FileTableChanges) String() string {
	return fmt.Sprintf("%d files, %d removals, %d copies", c.Files, c.Removed, c.Copies)
}

// UpdateFileTable returns base brought up to date: only the rows changed by transactions
// that base's read did not see are read, and applied to a new table that shares with base
// everything they leave alone. base itself is not modified and stays valid; without
// changes it is returned as is. Updates must be applied one at a time along a chain of
// tables (the new table is the next base).
func (d *DB) UpdateFileTable(ctx context.Context, base *filetable.Table) (*filetable.Table, FileTableChanges, error) {
	var (
		out *filetable.Table
		ch  FileTableChanges
	)
	err := pgx.BeginTxFunc(ctx, d.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		p, err := readPointOf(ctx, tx)
		if err != nil {
			return err
		}
		out, ch, err = applyChanges(ctx, tx, base, p)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrFileTableStale) {
			return nil, FileTableChanges{}, err
		}
		return nil, FileTableChanges{}, fmt.Errorf("update file table: %w", err)
	}
	return out, ch, nil
}

// readPointOf reads where the transaction's read stands: the database snapshot it sees
// (pg_snapshot text, "xmin:xmax:xip,..."), the database's clock, and which database history
// it is in (the origin: the cluster's system identifier, its timeline and the database's
// OID; a restore into another cluster, a point-in-time recovery or a failover changes it).
// It must be the transaction's first statement, which fixes the snapshot of a
// repeatable-read transaction.
func readPointOf(ctx context.Context, tx pgx.Tx) (filetable.ReadPoint, error) {
	var (
		p          filetable.ReadPoint
		xmin       string
		inRecovery bool
	)
	if err := tx.QueryRow(ctx, `SELECT pg_current_snapshot()::text, now(), pg_is_in_recovery(),
		pg_snapshot_xmin(pg_current_snapshot())::text, regionmirror_origin()`).Scan(&p.Seen, &p.ReadAt, &inRecovery, &xmin, &p.Origin); err != nil {
		return p, err
	}
	if inRecovery {
		// A standby's snapshot does not list the primary's running transactions the way
		// pg_current_snapshot reports them: take nothing at or above xmin as seen, and
		// read those rows again next time (applying a row twice is harmless).
		p.Seen = xmin + ":" + xmin + ":"
	}
	return p, nil
}

// xmaxOf returns the xmax of a pg_snapshot text.
func xmaxOf(seen string) (uint64, bool) {
	parts := strings.SplitN(seen, ":", 3)
	if len(parts) < 2 {
		return 0, false
	}
	x, err := strconv.ParseUint(parts[1], 10, 64)
	return x, err == nil
}

// applyChanges applies to a table derived from base the rows changed since base's read,
// as the transaction at p sees them.
func applyChanges(ctx context.Context, tx pgx.Tx, base *filetable.Table, p filetable.ReadPoint) (*filetable.Table, FileTableChanges, error) {
	var ch FileTableChanges
	if bp := base.ReadPoint; bp.Seen == "" || bp.Origin != p.Origin || p.ReadAt.Sub(bp.ReadAt) > maxUpdateAge {
		return nil, ch, ErrFileTableStale
	}
	// Transaction IDs only grow in one database's history. Fewer now means another
	// history: a failover to a replica that was behind, a restore, another cluster.
	if was, ok1 := xmaxOf(base.ReadPoint.Seen); !ok1 {
		return nil, ch, ErrFileTableStale
	} else if now, ok2 := xmaxOf(p.Seen); !ok2 || now < was {
		return nil, ch, ErrFileTableStale
	}
	u := filetable.NewUpdate(base)
	// Every transaction the earlier snapshot did not see is at or above its xmin: either
	// still running then (in its list) or started after it.
	const unseen = `>= pg_snapshot_xmin($1::pg_snapshot) AND NOT pg_visible_in_snapshot(%[1]s, $1::pg_snapshot)`
	if err := scanFiles(ctx, tx, "changed_xid "+fmt.Sprintf(unseen, "changed_xid"), []any{base.ReadPoint.Seen},
		func(id int64, path []byte, size int64, sum []byte, deleted bool) error {
			ch.Files++
			return stale(u.File(id, path, size, sum, deleted))
		}); err != nil {
		return nil, ch, err
	}
	// Removals before the live rows: a copy deleted and recorded again since is live.
	rows, err := tx.Query(ctx, `SELECT file_id, coalesce(region_id, 0) FROM snapshot_removals
		WHERE xid `+fmt.Sprintf(unseen, "xid"), base.ReadPoint.Seen)
	if err != nil {
		return nil, ch, err
	}
	var file, region int64
	if _, err := pgx.ForEachRow(rows, []any{&file, &region}, func() error {
		if file == 0 { // a table was truncated
			return ErrFileTableStale
		}
		if region == 0 {
			u.RemoveFile(file)
		} else {
			u.SetCopy(region, file, false)
		}
		ch.Removed++
		return nil
	}); err != nil {
		return nil, ch, err
	}
	rows, err = tx.Query(ctx, `SELECT region_id, file_id, state = 'present' AND current FROM region_objects
		WHERE changed_xid `+fmt.Sprintf(unseen, "changed_xid"), base.ReadPoint.Seen)
	if err != nil {
		return nil, ch, err
	}
	var verified bool
	if _, err := pgx.ForEachRow(rows, []any{&region, &file, &verified}, func() error {
		u.SetCopy(region, file, verified)
		ch.Copies++
		return nil
	}); err != nil {
		return nil, ch, err
	}
	if ch.Empty() {
		return base, ch, nil // nothing to copy; the next update starts from the same snapshot
	}
	t := u.Table()
	t.ReadPoint = p
	return t, ch, nil
}

// stale maps the table's refusal to patch a rewritten file to ErrFileTableStale.
func stale(err error) error {
	if errors.Is(err, filetable.ErrRewritten) {
		return fmt.Errorf("%w: %w", ErrFileTableStale, err)
	}
	return err
}

// ReconcileFileTable reads the per-file data whole, as LoadFileTable does, but compares it
// with base instead of building a second table: the result shares base's arenas unless
// something differs, and only the region sets are new. A full read next to the serving
// table would need the memory of both. In the same transaction it first applies the
// changes since base's read, as UpdateFileTable does, so what differs after that is what
// change tracking missed (something wrote around the triggers): those differences are
// what it returns, and they are corrected in the table.
func (d *DB) ReconcileFileTable(ctx context.Context, base *filetable.Table) (*filetable.Table, FileTableChanges, error) {
	var (
		out *filetable.Table
		ch  FileTableChanges
	)
	err := pgx.BeginTxFunc(ctx, d.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		ch = FileTableChanges{}
		p, err := readPointOf(ctx, tx)
		if err != nil {
			return err
		}
		cur, _, err := applyChanges(ctx, tx, base, p)
		if err != nil {
			return err
		}
		r := filetable.NewReconciler(cur)
		err = scanFiles(ctx, tx, "", nil, func(id int64, path []byte, size int64, sum []byte, deleted bool) error {
			changed, err := r.File(id, path, size, sum, deleted)
			if changed {
				ch.Files++
			}
			return stale(err)
		})
		if err != nil {
			return err
		}
		ch.Removed = r.RemoveMissing()
		sets, err := scanVerified(ctx, tx, r.Table())
		if err != nil {
			return err
		}
		ch.Copies = r.SetVerified(sets)
		out = r.Table()
		out.ReadPoint = p
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrFileTableStale) {
			return nil, FileTableChanges{}, err
		}
		return nil, FileTableChanges{}, fmt.Errorf("reconcile file table: %w", err)
	}
	return out, ch, nil
}
