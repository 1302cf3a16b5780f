package db

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/regionmirror/regionmirror/internal/model"
)

// lockWait is how long TryLock waits for a lock held by someone else.
const lockWait = 2 * time.Second

// ErrLocked: another process holds the lock.
var ErrLocked = errors.New("locked")

// Lock is a PostgreSQL session advisory lock, held on a connection of its own. It is
// released by Release, or by PostgreSQL when the holder's connection dies (a killed
// process never leaves a lock behind).
type Lock struct {
	conn *pgx.Conn
	key  int64
}

// LockKey names what a lock protects: "push/us-east-1", "cron/scan/eu-west-1".
func lockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("regionmirror/" + name))
	return int64(h.Sum64())
}

// heldAdvisoryKey is the condition on pg_locks l for a granted advisory lock of this
// database on the bigint key $1: such a lock appears as (classid, objid) = (high, low), and
// pg_locks lists every database's locks.
const heldAdvisoryKey = `l.locktype = 'advisory' AND l.granted
	AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
	AND l.classid = ($1::bigint >> 32)::bit(32)::int::oid AND l.objid = ($1::bigint & 4294967295)::bit(32)::int::oid
	AND l.objsubid = 1`

// LockHolder describes who holds a lock, for the message of the one who waits.
type LockHolder struct {
	PID         int        // backend process of the holder's connection
	Application string     // application_name
	Client      string     // client address
	Since       time.Time  // when the holder's connection started
	Run         *model.Run // the running run of that kind and region, when there is one
}

func (h LockHolder) String() string {
	s := fmt.Sprintf("%s from %s (connected %s)", h.Application, h.Client, h.Since.UTC().Format(time.RFC3339))
	if h.Run != nil {
		s = fmt.Sprintf("%s run %d on %s pid %d, started %s", h.Run.Kind, h.Run.ID, h.Run.Host, h.Run.PID, h.Run.StartedAt.UTC().Format(time.RFC3339))
	}
	return s
}

// LockedError says who holds a lock.
type LockedError struct {
	Name   string
	Holder LockHolder
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("%s is locked by %s", e.Name, e.Holder)
}

func (e *LockedError) Unwrap() error { return ErrLocked }

// TryLock takes the named lock, waiting at most lockWait, or fails with a *LockedError
// that says who holds it.
func (d *DB) TryLock(ctx context.Context, name string) (*Lock, error) {
	// A dedicated connection, not a pooled one: the lock lives as long as the session.
	conn, err := pgx.ConnectConfig(ctx, d.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	key := lockKey(name)
	// A short wait rather than none: a holder that was just killed keeps its lock until
	// PostgreSQL notices the closed connection, a few milliseconds later.
	_, err = conn.Exec(ctx, fmt.Sprintf("SET lock_timeout = '%dms'", lockWait.Milliseconds()))
	if err == nil {
		_, err = conn.Exec(ctx, "SELECT pg_advisory_lock($1)", key)
	}
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		if _, err := conn.Exec(ctx, "RESET lock_timeout"); err != nil {
			conn.Close(ctx)
			return nil, fmt.Errorf("lock %s: %w", name, err)
		}
		return &Lock{conn: conn, key: key}, nil
	case !errors.As(err, &pgErr) || pgErr.Code != "55P03": // lock_not_available
		conn.Close(ctx)
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	defer conn.Close(ctx)
	le := &LockedError{Name: name}
	err = conn.QueryRow(ctx, `
		SELECT a.pid, a.application_name, coalesce(host(a.client_addr), 'local socket'), a.backend_start
		FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE `+heldAdvisoryKey+` LIMIT 1`, key).Scan(&le.Holder.PID, &le.Holder.Application, &le.Holder.Client, &le.Holder.Since)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("lock %s: find holder: %w", name, err)
	}
	return nil, le
}

// Release frees the lock and closes its connection.
func (l *Lock) Release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = l.conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", l.key)
	_ = l.conn.Close(ctx)
}
