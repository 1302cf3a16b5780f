package db

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
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
func (d *DB) UpdateFileTable(ctx context.Context, base *FileTable) (*FileTable, FileTableChanges, error) {
	var (
		out *FileTable
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

// readPoint is where a read stands: the database snapshot it sees, the database's clock,
// and which database history it is in.
type readPoint struct {
	seen   string // pg_snapshot text, "xmin:xmax:xip,..."
	readAt time.Time
	// origin is the cluster's system identifier, its timeline and the database's OID: a
	// restore into another cluster, a point-in-time recovery or a failover changes it.
	origin string
}

// readPointOf reads the transaction's point; it must be the transaction's first statement,
// which fixes the snapshot of a repeatable-read transaction.
func readPointOf(ctx context.Context, tx pgx.Tx) (readPoint, error) {
	var (
		p          readPoint
		xmin       string
		inRecovery bool
	)
	if err := tx.QueryRow(ctx, `SELECT pg_current_snapshot()::text, now(), pg_is_in_recovery(),
		pg_snapshot_xmin(pg_current_snapshot())::text, regionmirror_origin()`).Scan(&p.seen, &p.readAt, &inRecovery, &xmin, &p.origin); err != nil {
		return p, err
	}
	if inRecovery {
		// A standby's snapshot does not list the primary's running transactions the way
		// pg_current_snapshot reports them: take nothing at or above xmin as seen, and
		// read those rows again next time (applying a row twice is harmless).
		p.seen = xmin + ":" + xmin + ":"
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
func applyChanges(ctx context.Context, tx pgx.Tx, base *FileTable, p readPoint) (*FileTable, FileTableChanges, error) {
	var ch FileTableChanges
	if base.seen == "" || base.origin != p.origin || p.readAt.Sub(base.readAt) > maxUpdateAge {
		return nil, ch, ErrFileTableStale
	}
	// Transaction IDs only grow in one database's history. Fewer now means another
	// history: a failover to a replica that was behind, a restore, another cluster.
	if was, ok1 := xmaxOf(base.seen); !ok1 {
		return nil, ch, ErrFileTableStale
	} else if now, ok2 := xmaxOf(p.seen); !ok2 || now < was {
		return nil, ch, ErrFileTableStale
	}
	u := &tableUpdate{base: base, t: base.derive()}
	// Every transaction the earlier snapshot did not see is at or above its xmin: either
	// still running then (in its list) or started after it.
	const unseen = `>= pg_snapshot_xmin($1::pg_snapshot) AND NOT pg_visible_in_snapshot(%[1]s, $1::pg_snapshot)`
	if err := scanFiles(ctx, tx, "changed_xid "+fmt.Sprintf(unseen, "changed_xid"), []any{base.seen},
		func(id int64, path []byte, size int64, sum []byte, deleted bool) error {
			ch.Files++
			return u.file(id, path, size, sum, deleted)
		}); err != nil {
		return nil, ch, err
	}
	// Removals before the live rows: a copy deleted and recorded again since is live.
	rows, err := tx.Query(ctx, `SELECT file_id, coalesce(region_id, 0) FROM snapshot_removals
		WHERE xid `+fmt.Sprintf(unseen, "xid"), base.seen)
	if err != nil {
		return nil, ch, err
	}
	var file, region int64
	if _, err := pgx.ForEachRow(rows, []any{&file, &region}, func() error {
		if file == 0 { // a table was truncated
			return ErrFileTableStale
		}
		if region == 0 {
			u.removeFile(file)
		} else {
			u.setCopy(region, file, false)
		}
		ch.Removed++
		return nil
	}); err != nil {
		return nil, ch, err
	}
	rows, err = tx.Query(ctx, `SELECT region_id, file_id, state = 'present' AND current FROM region_objects
		WHERE changed_xid `+fmt.Sprintf(unseen, "changed_xid"), base.seen)
	if err != nil {
		return nil, ch, err
	}
	var verified bool
	if _, err := pgx.ForEachRow(rows, []any{&region, &file, &verified}, func() error {
		u.setCopy(region, file, verified)
		ch.Copies++
		return nil
	}); err != nil {
		return nil, ch, err
	}
	if ch.Empty() {
		return base, ch, nil // nothing to copy; the next update starts from the same snapshot
	}
	u.t.seen, u.t.readAt, u.t.origin = p.seen, p.readAt, p.origin
	return u.t, ch, nil
}

// derive returns a table sharing every part of t. tableUpdate copies a part before its
// first change in place.
func (t *FileTable) derive() *FileTable {
	n := *t
	n.Verified = maps.Clone(t.Verified)
	return &n
}

// tableUpdate applies changes to a table derived from base, copying each shared part once,
// before its first change in place.
type tableUpdate struct {
	base *FileTable
	t    *FileTable
	// Parts of t already copied from base.
	sizes, sums, dirs, ids, deleted, gone bool
	regions                               map[int64]bool
}

// grow returns set with room for n members, copied unless owned.
func grow(set Bitset, n int, owned bool) Bitset {
	words := (n + 63) / 64
	if owned && len(set) >= words {
		return set
	}
	// Grown with room: a push adds files in many small transactions.
	out := make(Bitset, max(words, len(set)), max(words, len(set))+words/4+1)
	copy(out, set)
	return out
}

func (u *tableUpdate) file(id int64, path []byte, size int64, sum []byte, deleted bool) error {
	t := u.t
	i, known := t.ids.lookup(id)
	if !known {
		if !u.dirs {
			t.dirIdx, u.dirs = maps.Clone(t.dirIdx), true
		}
		var err error
		if i, err = t.appendFile(id, path, size, sum); err != nil {
			return err
		}
		if !u.ids {
			t.ids, u.ids = t.ids.clone(), true
		}
		t.ids.add(id, i)
	} else {
		if len(sum) != 32 {
			return fmt.Errorf("file %d: sha256 of %d bytes", id, len(sum))
		}
		if !t.hasPath(i, path) || t.Gone.Has(i) {
			// Writers never rename a file or revive a removed one: something else rewrote
			// the table (an ID sequence reset, a manual edit).
			return ErrFileTableStale
		}
		if !u.sizes {
			t.sizes, u.sizes = slices.Clone(t.sizes), true
		}
		if !u.sums {
			t.sha256, u.sums = slices.Clone(t.sha256), true
		}
		t.sizes[i] = size
		copy(t.sha256[i*32:], sum)
	}
	if deleted != t.Deleted.Has(i) {
		t.Deleted, u.deleted = grow(t.Deleted, t.Len(), u.deleted), true
		if deleted {
			t.Deleted.Set(i)
		} else {
			t.Deleted.Clear(i)
		}
	}
	return nil
}

func (u *tableUpdate) removeFile(id int64) {
	if i, ok := u.t.ids.lookup(id); ok {
		u.removeIndex(i)
	}
}

func (u *tableUpdate) removeIndex(i int) {
	u.t.Gone, u.gone = grow(u.t.Gone, u.t.Len(), u.gone), true
	u.t.Gone.Set(i)
}

func (u *tableUpdate) setCopy(region, file int64, verified bool) {
	t := u.t
	i, ok := t.ids.lookup(file)
	if !ok || t.Verified[region].Has(i) == verified {
		return
	}
	if u.regions == nil {
		u.regions = map[int64]bool{}
	}
	set := grow(t.Verified[region], t.Len(), u.regions[region])
	t.Verified[region], u.regions[region] = set, true
	if verified {
		set.Set(i)
	} else {
		set.Clear(i)
	}
}

// ReconcileFileTable reads the per-file data whole, as LoadFileTable does, but compares it
// with base instead of building a second table: the result shares base's arenas unless
// something differs, and only the region sets are new. A full read next to the serving
// table would need the memory of both. In the same transaction it first applies the
// changes since base's read, as UpdateFileTable does, so what differs after that is what
// change tracking missed (something wrote around the triggers): those differences are
// what it returns, and they are corrected in the table.
func (d *DB) ReconcileFileTable(ctx context.Context, base *FileTable) (*FileTable, FileTableChanges, error) {
	var (
		out *FileTable
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
		u := &tableUpdate{base: cur, t: cur.derive()}
		present := NewBitset(cur.Len())
		err = scanFiles(ctx, tx, "", nil, func(id int64, path []byte, size int64, sum []byte, deleted bool) error {
			t := u.t
			i, known := t.ids.lookup(id)
			switch {
			case known && (t.Gone.Has(i) || !t.hasPath(i, path)):
				// Writers never revive a removed file nor rename one: the table was
				// rewritten behind the triggers (an ID sequence reset, a manual edit).
				return ErrFileTableStale
			case known && t.Size(i) == size && bytes.Equal(t.SHA256(i), sum) && t.Deleted.Has(i) == deleted:
			default:
				if err := u.file(id, path, size, sum, deleted); err != nil {
					return err
				}
				i, _ = t.ids.lookup(id)
				ch.Files++
			}
			if i < len(present)*64 {
				present.Set(i)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for i := range cur.Len() {
			if !present.Has(i) && !cur.Gone.Has(i) {
				u.removeIndex(i)
				ch.Removed++
			}
		}
		sets, err := scanVerified(ctx, tx, u.t)
		if err != nil {
			return err
		}
		for region, set := range sets {
			old := u.t.Verified[region]
			for w := range set {
				var o uint64
				if w < len(old) {
					o = old[w]
				}
				ch.Copies += bits.OnesCount64(set[w] ^ o)
			}
		}
		for region, old := range u.t.Verified {
			if _, ok := sets[region]; !ok {
				ch.Copies += old.Count()
			}
		}
		u.t.Verified = sets
		out = u.t
		out.seen, out.readAt, out.origin = p.seen, p.readAt, p.origin
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
