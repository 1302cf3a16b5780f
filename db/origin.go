package db

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/regionmirror/regionmirror/internal/model"
)

// scopeRanges are the byte-order path ranges of a scope's directories: dir/ up to dir0
// ('0' follows '/'). nil for the whole origin.
func scopeRanges(scope []string) (lo, hi []string, whole bool) {
	if len(scope) == 0 {
		return nil, nil, true
	}
	for _, d := range scope {
		if d == "" {
			return nil, nil, true
		}
		lo, hi = append(lo, d+"/"), append(hi, d+"0")
	}
	return lo, hi, false
}

// inScopeSQL restricts the files f to the ranges $n (lo) and $n+1 (hi).
func inScopeSQL(n int) string {
	return fmt.Sprintf(`EXISTS (SELECT 1 FROM unnest($%d::text[], $%d::text[]) AS r(lo, hi)
		WHERE f.path COLLATE "C" >= r.lo COLLATE "C" AND f.path COLLATE "C" < r.hi COLLATE "C")`, n, n+1)
}

// ListFilesUnder is ListFiles restricted to the files under the scope's directories (nil:
// every file).
func (d *DB) ListFilesUnder(ctx context.Context, scope []string, withDeleted bool) ([]model.File, error) {
	lo, hi, whole := scopeRanges(scope)
	if whole {
		return d.ListFiles(ctx, withDeleted)
	}
	q := "SELECT " + fileColumns + " FROM files f WHERE " + inScopeSQL(1)
	if !withDeleted {
		q += " AND deleted_at IS NULL"
	}
	rows, err := d.pool.Query(ctx, q+" ORDER BY path", lo, hi)
	if err != nil {
		return nil, fmt.Errorf("list files under %v: %w", scope, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (model.File, error) { return scanFile(r) })
	if err != nil {
		return nil, fmt.Errorf("list files under %v: %w", scope, err)
	}
	return out, nil
}

// RegionObjectsUnder is RegionObjects restricted to the copies of files under the scope's
// directories (nil: every copy).
func (d *DB) RegionObjectsUnder(ctx context.Context, regionID int64, scope []string) ([]model.RegionObject, error) {
	lo, hi, whole := scopeRanges(scope)
	if whole {
		return d.RegionObjects(ctx, regionID)
	}
	rows, err := d.pool.Query(ctx, `SELECT `+objectColumns+`
		FROM region_objects o JOIN files f ON f.id = o.file_id
		WHERE o.region_id = $1 AND `+inScopeSQL(2)+` ORDER BY f.path`, regionID, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("region objects under %v: %w", scope, err)
	}
	out, err := pgx.CollectRows(rows, scanObject)
	if err != nil {
		return nil, fmt.Errorf("region objects under %v: %w", scope, err)
	}
	return out, nil
}

// bumpGeneration records a change to what pushes are planned from, in tx: the origin's
// generation grows by one under the row's lock (so generations commit in order) and the
// change's directories are kept. It returns the new generation.
func bumpGeneration(ctx context.Context, tx pgx.Tx, scope []string) (int64, error) {
	if len(scope) == 0 {
		scope = []string{""}
	}
	var g int64
	if err := tx.QueryRow(ctx, `UPDATE origin_state SET generation = generation + 1 RETURNING generation`).Scan(&g); err != nil {
		return 0, fmt.Errorf("origin generation: %w", err)
	}
	// A month of changes is kept; a region synced longer ago than that is pushed in full.
	if _, err := tx.Exec(ctx, `DELETE FROM origin_changes WHERE changed_at < now() - interval '30 days'`); err != nil {
		return 0, fmt.Errorf("origin changes: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO origin_changes (generation, scope) VALUES ($1, $2)`, g, scope); err != nil {
		return 0, fmt.Errorf("origin changes: %w", err)
	}
	return g, nil
}

// OriginState reads the origin's generation and last full walk.
func (d *DB) OriginState(ctx context.Context) (model.OriginState, error) {
	var s model.OriginState
	if err := d.pool.QueryRow(ctx, `SELECT generation, full_inventory_at, linked_files FROM origin_state`).Scan(&s.Generation, &s.FullInventoryAt, &s.LinkedFiles); err != nil {
		return s, fmt.Errorf("origin state: %w", err)
	}
	return s, nil
}

// MarkFullInventory records that a full walk of the origin, started at startedAt (the
// database's clock, DB.Now), was recorded, and found linked files reached through a
// symlink or a hard link.
func (d *DB) MarkFullInventory(ctx context.Context, startedAt time.Time, linked int) error {
	if _, err := d.pool.Exec(ctx, `UPDATE origin_state SET full_inventory_at = greatest(full_inventory_at, $1), linked_files = $2`, startedAt, linked); err != nil {
		return fmt.Errorf("record full inventory: %w", err)
	}
	return nil
}

// NoteLinkedFiles records that a walk of part of the origin found linked files: at least
// that many are there until the next full walk counts them all.
func (d *DB) NoteLinkedFiles(ctx context.Context, linked int) error {
	if _, err := d.pool.Exec(ctx, `UPDATE origin_state SET linked_files = greatest(linked_files, $1)`, linked); err != nil {
		return fmt.Errorf("record linked files: %w", err)
	}
	return nil
}

// ForgetFullInventory makes the next scheduled push walk the whole origin: an inventory
// could not read some files, so the records are not the origin and no watcher will report
// them again.
func (d *DB) ForgetFullInventory(ctx context.Context) error {
	if _, err := d.pool.Exec(ctx, `UPDATE origin_state SET full_inventory_at = NULL`); err != nil {
		return fmt.Errorf("forget the full inventory: %w", err)
	}
	return nil
}

// OriginChanges returns the changes after generation after, up to upTo, in order. Fewer
// than upTo-after rows means some were forgotten (older than a month).
func (d *DB) OriginChanges(ctx context.Context, after, upTo int64) ([]model.OriginChange, error) {
	rows, err := d.pool.Query(ctx, `SELECT generation, scope, changed_at FROM origin_changes
		WHERE generation > $1 AND generation <= $2 ORDER BY generation`, after, upTo)
	if err != nil {
		return nil, fmt.Errorf("origin changes: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (model.OriginChange, error) {
		var c model.OriginChange
		err := r.Scan(&c.Generation, &c.Scope, &c.ChangedAt)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("origin changes: %w", err)
	}
	return out, nil
}

const syncColumns = `region_id, epoch, generation, region_updated_at, synced_at`

func scanSync(row pgx.Row) (*model.RegionSync, error) {
	var s model.RegionSync
	err := row.Scan(&s.RegionID, &s.Epoch, &s.Generation, &s.RegionUpdatedAt, &s.SyncedAt)
	return &s, err
}

// RegionSyncs returns every region's sync record by region ID (a region without one has
// none).
func (d *DB) RegionSyncs(ctx context.Context) (map[int64]*model.RegionSync, error) {
	rows, err := d.pool.Query(ctx, `SELECT `+syncColumns+` FROM region_sync`)
	if err != nil {
		return nil, fmt.Errorf("region syncs: %w", err)
	}
	syncs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*model.RegionSync, error) { return scanSync(r) })
	if err != nil {
		return nil, fmt.Errorf("region syncs: %w", err)
	}
	out := make(map[int64]*model.RegionSync, len(syncs))
	for _, s := range syncs {
		out[s.RegionID] = s
	}
	return out, nil
}

// RegionSyncOf returns a region's sync record; a region without one gets the zero record
// (epoch 0, not synced).
func (d *DB) RegionSyncOf(ctx context.Context, regionID int64) (*model.RegionSync, error) {
	s, err := scanSync(d.pool.QueryRow(ctx, `SELECT `+syncColumns+` FROM region_sync WHERE region_id = $1`, regionID))
	if errors.Is(err, pgx.ErrNoRows) {
		return &model.RegionSync{RegionID: regionID}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("region %d sync: %w", regionID, err)
	}
	return s, nil
}

// MarkRegionSynced records that the region holds what a full push at generation writes,
// as configured at regionUpdatedAt, if fence still holds and the region's epoch is still
// epoch (what was read before planning). It reports whether it was recorded.
func (d *DB) MarkRegionSynced(ctx context.Context, fence Fence, regionID, epoch, generation int64, regionUpdatedAt time.Time) (bool, error) {
	var ok bool
	err := d.Transact(ctx, func(tx pgx.Tx) error {
		if err := fence.check(ctx, tx); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `
			INSERT INTO region_sync AS s (region_id, epoch, generation, region_updated_at, synced_at)
			VALUES ($1, $2, $3, $4, now())
			ON CONFLICT (region_id) DO UPDATE SET generation = excluded.generation,
				region_updated_at = excluded.region_updated_at, synced_at = excluded.synced_at
			WHERE s.epoch = excluded.epoch AND (s.generation IS NULL OR s.generation <= excluded.generation)`,
			regionID, epoch, generation, regionUpdatedAt)
		ok = err == nil && tag.RowsAffected() == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("record region %d synced: %w", regionID, err)
	}
	return ok, nil
}

// invalidateRegions records, in tx, that something took from what the regions were
// recorded to hold: they are synced at no generation until a push says so again.
func invalidateRegions(ctx context.Context, tx pgx.Tx, regionIDs []int64) error {
	if len(regionIDs) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `INSERT INTO region_sync AS s (region_id, epoch)
		SELECT DISTINCT u.rid, 1 FROM unnest($1::bigint[]) AS u(rid) WHERE EXISTS (SELECT 1 FROM regions r WHERE r.id = u.rid)
		ON CONFLICT (region_id) DO UPDATE SET epoch = s.epoch + 1, generation = NULL`, regionIDs)
	if err != nil {
		return fmt.Errorf("invalidate region sync: %w", err)
	}
	return nil
}

// watcherLock names the advisory lock a watcher holds while it runs.
func watcherLock(id int64) string { return "watch/" + strconv.FormatInt(id, 10) }

// Watcher is a registered watcher of the origin: it holds its lock (freed by PostgreSQL
// when the process dies) until Close.
type Watcher struct {
	ID   int64
	d    *DB
	held *Held
}

// RegisterWatcher records a watcher of root and takes its lock.
func (d *DB) RegisterWatcher(ctx context.Context, root, host string, pid int) (*Watcher, error) {
	// Records of watchers dead for a day go here, not on the scheduled push's read.
	if _, err := d.pool.Exec(ctx, `DELETE FROM origin_watchers WHERE heartbeat_at < now() - interval '1 day'`); err != nil {
		return nil, fmt.Errorf("register watcher: %w", err)
	}
	var id int64
	if err := d.pool.QueryRow(ctx, `INSERT INTO origin_watchers (root, host, pid) VALUES ($1, $2, $3) RETURNING id`,
		root, host, pid).Scan(&id); err != nil {
		return nil, fmt.Errorf("register watcher: %w", err)
	}
	h, err := d.Hold(ctx, watcherLock(id))
	if err != nil {
		return nil, fmt.Errorf("register watcher: %w", err)
	}
	return &Watcher{ID: id, d: d, held: h}, nil
}

// Context ends when the watcher's lock is lost: it no longer counts as live then.
func (w *Watcher) Context() context.Context { return w.held.Context() }

// Beat says the watcher is alive, since when it has seen every change (nil: it does not
// now) and how many changes it has seen and not pushed yet.
func (w *Watcher) Beat(ctx context.Context, since *time.Time, pending int) error {
	if err := w.held.Err(); err != nil {
		return fmt.Errorf("watcher %d: %w", w.ID, err)
	}
	if _, err := w.d.pool.Exec(ctx, `UPDATE origin_watchers SET heartbeat_at = now(), since = $2, pending = $3 WHERE id = $1`,
		w.ID, since, pending); err != nil {
		return fmt.Errorf("watcher %d beat: %w", w.ID, err)
	}
	return nil
}

// Close removes the watcher's record and frees its lock.
func (w *Watcher) Close(ctx context.Context) error {
	_, err := w.d.pool.Exec(ctx, `DELETE FROM origin_watchers WHERE id = $1`, w.ID)
	w.held.Release()
	if err != nil {
		return fmt.Errorf("watcher %d: %w", w.ID, err)
	}
	return nil
}

// WatchCoverage says what the live watchers of root have seen: those that beat within
// stale and whose lock is held.
func (d *DB) WatchCoverage(ctx context.Context, root string, stale time.Duration) (model.WatchCoverage, error) {
	var cov model.WatchCoverage
	rows, err := d.pool.Query(ctx, `SELECT id, since, pending FROM origin_watchers
		WHERE root = $1 AND heartbeat_at > now() - $2::interval`, root, stale)
	if err != nil {
		return cov, fmt.Errorf("watch coverage: %w", err)
	}
	type rec struct {
		id      int64
		since   *time.Time
		pending int
	}
	var recs []rec
	var r rec
	if _, err := pgx.ForEachRow(rows, []any{&r.id, &r.since, &r.pending}, func() error { recs = append(recs, r); return nil }); err != nil {
		return cov, fmt.Errorf("watch coverage: %w", err)
	}
	for _, r := range recs {
		var held bool
		if err := d.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks l WHERE `+heldAdvisoryKey+`)`,
			lockKey(watcherLock(r.id))).Scan(&held); err != nil {
			return cov, fmt.Errorf("watch coverage: %w", err)
		}
		if !held {
			continue
		}
		cov.Watchers++
		cov.Pending += r.pending
		if r.since != nil && (cov.Since == nil || r.since.Before(*cov.Since)) {
			cov.Since = r.since
		}
	}
	return cov, nil
}

// Publications returns, for every repository, its last perRepo repomd.xml versions, each
// with the regions that served it verified (one row per version and region; RegionID 0
// for a version no region has served), oldest first.
func (d *DB) Publications(ctx context.Context, perRepo int) ([]model.Publication, error) {
	rows, err := d.pool.Query(ctx, `
		SELECT v.repository_id, v.id, v.timestamp, v.first_seen, coalesce(p.region_id, 0), p.verified_at
		FROM (SELECT id, repository_id, timestamp, first_seen,
				row_number() OVER (PARTITION BY repository_id ORDER BY first_seen DESC, id DESC) AS n
			FROM repomd_versions) v
		LEFT JOIN publications p ON p.repomd_version_id = v.id
		WHERE v.n <= $1
		ORDER BY v.repository_id, v.first_seen, v.id, p.region_id`, perRepo)
	if err != nil {
		return nil, fmt.Errorf("publications: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (model.Publication, error) {
		var p model.Publication
		err := r.Scan(&p.RepositoryID, &p.VersionID, &p.Timestamp, &p.FirstSeen, &p.RegionID, &p.VerifiedAt)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("publications: %w", err)
	}
	return out, nil
}

// Release frees the watcher's lock and leaves its record, as a killed process does.
func (w *Watcher) Release() { w.held.Release() }
