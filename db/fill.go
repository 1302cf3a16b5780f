package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/regionmirror/regionmirror/internal/model"
)

// FillChannel carries "a fill job was queued" to fill workers. It is not Channel: servers
// rebuild their snapshot on Channel, and a burst of misses must not make them do that.
const FillChannel = "regionmirror_fill"

// ErrJobLost: the fill job is no longer the caller's (its lease passed and another worker
// took it, or a purge, an expiry, a region edit removed it). The caller records nothing.
var ErrJobLost = errors.New("fill job no longer held")

// errFillRegionEdited: the region was edited after the job was claimed (it may have moved
// to another bucket), so a copy made where the claim's version pointed is not recorded.
// It is ErrJobLost and ErrRegionChanged; the worker gives the job back to be claimed again.
var errFillRegionEdited = fmt.Errorf("%w: %w since the claim", ErrJobLost, ErrRegionChanged)

// ErrCopyDeleting: the copy is marked deleting (a purge or expiry is removing it); a fill
// may not revive it until that removal is finished.
var ErrCopyDeleting = errors.New("copy is being removed")

// QueueFills makes a fill job for every miss whose path is a live file of the origin
// inventory and whose region is enabled, fills on demand, and does not hold the file
// verified; one job per (region, file), however many misses name it. A job that failed
// is queued again once its retry time has passed. Only paths the origin has are ever
// queued: a client cannot make a worker fetch anything else. It returns the jobs queued.
func (d *DB) QueueFills(ctx context.Context, misses []model.FillMiss) (int, error) {
	if len(misses) == 0 {
		return 0, nil
	}
	regions := make([]int64, len(misses))
	paths := make([]string, len(misses))
	for i, m := range misses {
		regions[i], paths[i] = m.RegionID, m.Path
	}
	var n int
	err := pgx.BeginTxFunc(ctx, d.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			INSERT INTO fill_jobs AS j (region_id, file_id)
			SELECT DISTINCT r.id, f.id
			FROM unnest($1::bigint[], $2::text[]) AS m(region_id, path)
			JOIN regions r ON r.id = m.region_id AND r.fill = 'on-demand' AND r.enabled
			JOIN files f ON f.path = m.path AND f.deleted_at IS NULL
			WHERE NOT EXISTS (SELECT 1 FROM region_objects o WHERE o.region_id = r.id AND o.file_id = f.id
				AND o.state = 'present' AND o.current)
			ON CONFLICT (region_id, file_id) DO UPDATE SET state = 'queued', attempts = 0,
				not_before = now(), queued_at = now(), error = '', token = nextval('fill_job_tokens')
			WHERE j.state = 'failed' AND j.not_before <= now()
			RETURNING j.region_id, j.file_id`, regions, paths)
		if err != nil {
			return err
		}
		type key struct{ region, file int64 }
		queued, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (key, error) {
			var k key
			err := row.Scan(&k.region, &k.file)
			return k, err
		})
		if err != nil {
			return err
		}
		if len(queued) == 0 {
			return nil
		}
		// The INSERT's NOT EXISTS saw the statement's snapshot: a CompleteFill that
		// committed while the INSERT waited on the job it deleted is not in it, so the
		// INSERT made a new job for a copy just recorded. This statement's snapshot is
		// later and sees that copy: such jobs go again.
		qr, qf := make([]int64, len(queued)), make([]int64, len(queued))
		for i, k := range queued {
			qr[i], qf[i] = k.region, k.file
		}
		tag, err := tx.Exec(ctx, `
			DELETE FROM fill_jobs j USING unnest($1::bigint[], $2::bigint[]) AS q(region_id, file_id)
			WHERE j.region_id = q.region_id AND j.file_id = q.file_id AND EXISTS (
				SELECT 1 FROM region_objects o WHERE o.region_id = j.region_id AND o.file_id = j.file_id
					AND o.state = 'present' AND o.current)`, qr, qf)
		if err != nil {
			return err
		}
		n = len(queued) - int(tag.RowsAffected())
		if n == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, "SELECT pg_notify($1, 'queued')", FillChannel)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("queue fills: %w", err)
	}
	return n, nil
}

const fillJobColumns = `j.region_id, r.name, j.file_id, f.path, f.size, f.sha256, f.md5, j.state,
	j.attempts, j.token, j.queued_at, j.not_before, j.started_at, j.lease_until, j.worker, j.error, r.updated_at`

func scanFillJob(row pgx.Row) (model.FillJob, error) {
	var j model.FillJob
	err := row.Scan(&j.RegionID, &j.RegionName, &j.FileID, &j.Path, &j.Size, &j.SHA256, &j.MD5, &j.State,
		&j.Attempts, &j.Token, &j.QueuedAt, &j.NotBefore, &j.StartedAt, &j.LeaseUntil, &j.Worker, &j.Error, &j.RegionUpdatedAt)
	return j, err
}

// ClaimFills leases up to n ready jobs to worker until lease from now: queued jobs whose
// time has come, oldest first, and running jobs whose lease has passed (their worker
// died). Each claim takes a new token, so the previous holder can record nothing. Jobs
// whose file the origin deleted, whose region no longer fills on demand, or that the
// region already holds verified are dropped; a job whose copy is being removed waits.
func (d *DB) ClaimFills(ctx context.Context, worker string, n int, lease time.Duration) ([]model.FillJob, error) {
	return d.ClaimFillsIn(ctx, worker, n, lease, nil)
}

// fillReady is SQL for "job j may be claimed now" (regions $1: all when empty).
const fillReady = `(cardinality($1::bigint[]) = 0 OR j.region_id = ANY($1))
	AND ((j.state = 'queued' AND j.not_before <= now()) OR (j.state = 'running' AND j.lease_until < now()))`

// ClaimFillsIn is ClaimFills limited to the jobs of regionIDs (all regions when empty):
// a fill worker started with --region takes only those regions' jobs.
func (d *DB) ClaimFillsIn(ctx context.Context, worker string, n int, lease time.Duration, regionIDs []int64) ([]model.FillJob, error) {
	if regionIDs == nil {
		regionIDs = []int64{}
	}
	var out []model.FillJob
	err := pgx.BeginTxFunc(ctx, d.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		out = out[:0]
		// Dead jobs at the head of the queue go first; only the head is looked at, so a
		// claim costs the same however long the queue is.
		if _, err := tx.Exec(ctx, `
			DELETE FROM fill_jobs d USING (
				SELECT j.region_id, j.file_id FROM fill_jobs j WHERE `+fillReady+`
				ORDER BY j.queued_at LIMIT $2 FOR UPDATE SKIP LOCKED) AS head, files f, regions r
			WHERE d.region_id = head.region_id AND d.file_id = head.file_id AND f.id = d.file_id AND r.id = d.region_id
				AND (f.deleted_at IS NOT NULL OR r.fill <> 'on-demand' OR EXISTS (
					SELECT 1 FROM region_objects o WHERE o.region_id = d.region_id AND o.file_id = d.file_id
						AND o.state = 'present' AND o.current))`, regionIDs, 4*n+16); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `
			WITH ready AS (
				SELECT j.region_id, j.file_id FROM fill_jobs j JOIN regions r ON r.id = j.region_id
					JOIN files f ON f.id = j.file_id
				-- A dead job the head cleanup has not reached yet (it sits behind a disabled
				-- region's) is never taken: only live files, only on-demand regions.
				WHERE r.enabled AND r.fill = 'on-demand' AND f.deleted_at IS NULL AND `+fillReady+`
					AND NOT EXISTS (SELECT 1 FROM region_objects o WHERE o.region_id = j.region_id
						AND o.file_id = j.file_id AND (o.state = 'deleting' OR (o.state = 'present' AND o.current)))
				ORDER BY j.queued_at LIMIT $3
				FOR UPDATE OF j SKIP LOCKED
			)
			UPDATE fill_jobs j SET state = 'running', attempts = j.attempts + 1, worker = $2,
				token = nextval('fill_job_tokens'), started_at = now(), lease_until = now() + $4::interval
			FROM ready, files f, regions r
			WHERE j.region_id = ready.region_id AND j.file_id = ready.file_id AND f.id = j.file_id AND r.id = j.region_id
			RETURNING `+fillJobColumns, regionIDs, worker, n, lease)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (model.FillJob, error) { return scanFillJob(row) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim fills: %w", err)
	}
	return out, nil
}

// ExtendFill moves a held job's lease to lease from now; ErrJobLost when it is not held.
func (d *DB) ExtendFill(ctx context.Context, job *model.FillJob, lease time.Duration) error {
	var until time.Time
	err := d.pool.QueryRow(ctx, `UPDATE fill_jobs SET lease_until = now() + $4::interval
		WHERE region_id = $1 AND file_id = $2 AND token = $3 AND state = 'running' RETURNING lease_until`,
		job.RegionID, job.FileID, job.Token, lease).Scan(&until)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("extend fill %s in %s: %w", job.Path, job.RegionName, ErrJobLost)
	}
	if err != nil {
		return fmt.Errorf("extend fill %s in %s: %w", job.Path, job.RegionName, err)
	}
	job.LeaseUntil = &until
	return nil
}

// CompleteFill records, in one transaction, that the job's copy is verified in its region
// with size and sha256 (present, pushed and verified now, requested now) and removes the
// job; servers are notified. It fails with ErrJobLost when the job is no longer held under
// its token, ErrRegionChanged (and ErrJobLost) when the region's updated_at is no longer the job's
// RegionUpdatedAt (the copy went where an older version of the region pointed), and
// ErrCopyDeleting when the copy is marked deleting: in all cases nothing is recorded.
func (d *DB) CompleteFill(ctx context.Context, job *model.FillJob, size int64, sha256 []byte) error {
	err := d.Transact(ctx, func(tx pgx.Tx) error {
		// The region row is locked (FOR SHARE) so that no edit can move it between this
		// check and the commit.
		var same bool
		err := tx.QueryRow(ctx, `SELECT updated_at = $2 FROM regions WHERE id = $1 FOR SHARE`,
			job.RegionID, job.RegionUpdatedAt).Scan(&same)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrJobLost
		}
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM fill_jobs WHERE region_id = $1 AND file_id = $2 AND token = $3 AND state = 'running'`,
			job.RegionID, job.FileID, job.Token)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrJobLost
		}
		if !same {
			return errFillRegionEdited
		}
		tag, err = tx.Exec(ctx, `
			INSERT INTO region_objects AS o (region_id, file_id, size, sha256, state, pushed_at, verified_at, last_requested_at, current)
			SELECT $1, f.id, $3, $4, 'present', now(), now(), now(), $3 = f.size AND $4 = f.sha256
			FROM files f WHERE f.id = $2
			ON CONFLICT (region_id, file_id) DO UPDATE SET size = excluded.size, sha256 = excluded.sha256,
				state = 'present', current = excluded.current, pushed_at = excluded.pushed_at,
				verified_at = excluded.verified_at, last_requested_at = excluded.last_requested_at
			WHERE o.state <> 'deleting'`, job.RegionID, job.FileID, size, sha256)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrCopyDeleting
		}
		return notify(ctx, tx, "objects")
	})
	if err != nil {
		return fmt.Errorf("complete fill %s in %s: %w", job.Path, job.RegionName, err)
	}
	return nil
}

// FailFill gives a held job back after a failed attempt: queued again from retryIn on,
// or failed for good when final (a later miss after retryIn queues it again). The error
// text is kept for logs and the CLI. ErrJobLost when the job is no longer held.
func (d *DB) FailFill(ctx context.Context, job *model.FillJob, errText string, retryIn time.Duration, final bool) error {
	state := model.FillQueued
	if final {
		state = model.FillFailed
	}
	tag, err := d.pool.Exec(ctx, `UPDATE fill_jobs SET state = $4, error = $5, not_before = now() + $6::interval,
			lease_until = NULL, worker = ''
		WHERE region_id = $1 AND file_id = $2 AND token = $3 AND state = 'running'`,
		job.RegionID, job.FileID, job.Token, state, errText, retryIn)
	if err != nil {
		return fmt.Errorf("fail fill %s in %s: %w", job.Path, job.RegionName, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("fail fill %s in %s: %w", job.Path, job.RegionName, ErrJobLost)
	}
	return nil
}

// ReleaseFill gives a held job back untried (a worker shutting down): queued at once,
// the attempt not counted.
func (d *DB) ReleaseFill(ctx context.Context, job *model.FillJob) error {
	_, err := d.pool.Exec(ctx, `UPDATE fill_jobs SET state = 'queued', attempts = greatest(attempts - 1, 0),
			lease_until = NULL, worker = '', not_before = now()
		WHERE region_id = $1 AND file_id = $2 AND token = $3 AND state = 'running'`, job.RegionID, job.FileID, job.Token)
	if err != nil {
		return fmt.Errorf("release fill %s in %s: %w", job.Path, job.RegionName, err)
	}
	return nil
}

// FillJobs returns the jobs of one region (regionID > 0) or of all, of one file
// (fileID > 0) or of all, oldest first, at most limit.
func (d *DB) FillJobs(ctx context.Context, regionID, fileID int64, limit int) ([]model.FillJob, error) {
	rows, err := d.pool.Query(ctx, `SELECT `+fillJobColumns+`
		FROM fill_jobs j JOIN files f ON f.id = j.file_id JOIN regions r ON r.id = j.region_id
		WHERE ($1 = 0 OR j.region_id = $1) AND ($2 = 0 OR j.file_id = $2)
		ORDER BY j.queued_at, r.name, f.path LIMIT $3`, regionID, fileID, limit)
	if err != nil {
		return nil, fmt.Errorf("fill jobs: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (model.FillJob, error) { return scanFillJob(row) })
	if err != nil {
		return nil, fmt.Errorf("fill jobs: %w", err)
	}
	return out, nil
}

// onDemandCopy is SQL for "the copy o of file f in region r is an on-demand copy": not
// metadata (a file directly in a repodata/ directory) and not under a pin; the SQL twin of
// model.Region.FillsOnDemand for the regions' usual includes (the cap counts these only).
const onDemandCopy = `f.path !~ '(^|/)repodata/[^/]+$'
	AND NOT EXISTS (SELECT 1 FROM unnest(r.pins) AS pin WHERE f.path = pin OR starts_with(f.path, pin || '/'))`

// FillStats returns, for every on-demand region by name, the bytes and files its present
// on-demand copies hold (what its cap counts: metadata and pins are left out) and its jobs
// by state with the oldest queued one's time.
func (d *DB) FillStats(ctx context.Context) ([]model.FillStats, error) {
	rows, err := d.pool.Query(ctx, `
		SELECT r.id, r.name, coalesce(h.bytes, 0)::bigint, coalesce(h.files, 0),
			(SELECT count(*) FROM fill_jobs j WHERE j.region_id = r.id AND j.state = 'queued'),
			(SELECT count(*) FROM fill_jobs j WHERE j.region_id = r.id AND j.state = 'running'),
			(SELECT count(*) FROM fill_jobs j WHERE j.region_id = r.id AND j.state = 'failed'),
			(SELECT min(j.queued_at) FROM fill_jobs j WHERE j.region_id = r.id AND j.state = 'queued')
		FROM regions r
		LEFT JOIN LATERAL (SELECT sum(o.size) AS bytes, count(*) AS files
			FROM region_objects o JOIN files f ON f.id = o.file_id
			WHERE o.region_id = r.id AND o.state = 'present' AND `+onDemandCopy+`) h ON true
		WHERE r.fill = 'on-demand' ORDER BY r.name`)
	if err != nil {
		return nil, fmt.Errorf("fill stats: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (model.FillStats, error) {
		var s model.FillStats
		err := row.Scan(&s.RegionID, &s.Region, &s.HeldBytes, &s.HeldFiles, &s.Queued, &s.Running, &s.Failed, &s.OldestQueued)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("fill stats: %w", err)
	}
	return out, nil
}

// RecordCopyRequests moves each copy's last-request time forward to the latest of reqs
// (servers flush these in batches; nothing on a request's path waits for it). Copies
// that are not recorded are skipped. The column has no trigger: the servers' snapshots do
// not reread anything for it.
func (d *DB) RecordCopyRequests(ctx context.Context, reqs []model.CopyRequest) error {
	if len(reqs) == 0 {
		return nil
	}
	regions := make([]int64, len(reqs))
	paths := make([]string, len(reqs))
	at := make([]time.Time, len(reqs))
	for i, r := range reqs {
		regions[i], paths[i], at[i] = r.RegionID, r.Path, r.At
	}
	_, err := d.pool.Exec(ctx, `
		UPDATE region_objects o SET last_requested_at = greatest(o.last_requested_at, m.at)
		FROM (SELECT u.region_id, f.id AS file_id, max(u.at) AS at
			FROM unnest($1::bigint[], $2::text[], $3::timestamptz[]) AS u(region_id, path, at)
			JOIN files f ON f.path = u.path GROUP BY u.region_id, f.id) AS m
		WHERE o.region_id = m.region_id AND o.file_id = m.file_id`, regions, paths, at)
	if err != nil {
		return fmt.Errorf("record copy requests: %w", err)
	}
	return nil
}

// MarkCopiesDeleting starts the removal of copies in a region, database-first: each
// recorded copy of fileIDs becomes 'deleting' (servers stop sending clients there once
// they read it) and any fill job for it is removed (its worker can record nothing), in
// one transaction that checks fence (the zero Fence checks nothing). It returns the copies
// it marked, including those already marked. The object goes only after the servers'
// update delay, and its record after that (ForgetDeletingCopies).
func (d *DB) MarkCopiesDeleting(ctx context.Context, fence Fence, regionID int64, fileIDs []int64) ([]int64, error) {
	if len(fileIDs) == 0 {
		return nil, nil
	}
	var marked []int64
	err := d.Transact(ctx, func(tx pgx.Tx) error {
		if err := fence.check(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM fill_jobs WHERE region_id = $1 AND file_id = ANY($2)`, regionID, fileIDs); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `UPDATE region_objects SET state = 'deleting'
			WHERE region_id = $1 AND file_id = ANY($2) RETURNING file_id`, regionID, fileIDs)
		if err != nil {
			return err
		}
		if marked, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
			return err
		}
		return notify(ctx, tx, "objects")
	})
	if err != nil {
		return nil, fmt.Errorf("mark copies deleting in region %d: %w", regionID, err)
	}
	return marked, nil
}

// MarkCopyDeleting is MarkCopiesDeleting for a caller that holds no region lock (the
// purge API): a mark only takes copies out of answers, and every writer that holds the
// lock respects it (a scan never revives a deleting copy, a fill never records over one)
// or finishes it (gc). Nothing else may write unfenced.
func (d *DB) MarkCopyDeleting(ctx context.Context, regionID, fileID int64) (bool, error) {
	marked, err := d.MarkCopiesDeleting(ctx, Fence{}, regionID, []int64{fileID})
	if err == nil && len(marked) > 0 {
		// The copy may be one a push writes (a pin, metadata): the region is not synced.
		err = d.Transact(ctx, func(tx pgx.Tx) error { return invalidateRegions(ctx, tx, []int64{regionID}) })
	}
	return len(marked) > 0, err
}

// ListenFill calls fn for every fill-queue notification until ctx ends or the connection
// fails (workers also poll, so a missed one only delays a job).
func (d *DB) ListenFill(ctx context.Context, ready func(), fn func()) error {
	return d.listen(ctx, FillChannel, ready, func(string) { fn() })
}
