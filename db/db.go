package db

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Channel is the LISTEN/NOTIFY channel every writer notifies after commit.
const Channel = "regionmirror_changed"

var (
	// ErrNotFound: the named record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: a record with that unique name exists already.
	ErrExists = errors.New("already exists")
)

// DB is a pool of connections to regionmirror's database.
type DB struct {
	pool *pgxpool.Pool
	log  *slog.Logger
}

// ConnectError says the database could not be reached. It names the host, port, database
// and user, never the password.
type ConnectError struct {
	Target string // host:port/database as user
	Err    error
}

func (e *ConnectError) Error() string {
	return fmt.Sprintf("cannot connect to database %s: %v", e.Target, e.Err)
}

func (e *ConnectError) Unwrap() error { return e.Err }

// Open connects to the database at url and checks that it answers.
func Open(ctx context.Context, url string, log *slog.Logger) (*DB, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if url == "" {
		return nil, &ConnectError{Target: "(none)", Err: errors.New("database_url is not set (config file, or REGIONMIRROR_DATABASE_URL)")}
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgconn's message quotes the connection string; keep only the reason.
		reason := err
		if u := errors.Unwrap(err); u != nil {
			reason = u
		}
		return nil, &ConnectError{Target: "(unparsable database_url)", Err: reason}
	}
	password := cfg.ConnConfig.Password
	target := fmt.Sprintf("%s:%d/%s as %s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, cfg.ConnConfig.User)
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "regionmirror"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, &ConnectError{Target: target, Err: scrub(err, password)}
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, &ConnectError{Target: target, Err: scrub(connectCause(err), password)}
	}
	return &DB{pool: pool, log: log}, nil
}

// connectCause picks the part of a connection error an operator acts on: pgconn repeats
// the attempt for every address and TLS mode, in one long message.
func connectCause(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return fmt.Errorf("%s: %s (SQLSTATE %s)", strings.ToLower(pgErr.Severity), pgErr.Message, pgErr.Code)
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return opErr
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return errors.New("timed out")
	}
	return errors.New(strings.Join(strings.Fields(err.Error()), " "))
}

// scrub removes a password from an error's text, in case a driver ever echoes it.
func scrub(err error, password string) error {
	if password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), password, "REDACTED"))
}

// Close closes every connection.
func (d *DB) Close() { d.pool.Close() }

// Transact runs fn in a serializable transaction and retries it when PostgreSQL reports a
// serialization failure or deadlock; fn must therefore be safe to run more than once.
func (d *DB) Transact(ctx context.Context, fn func(pgx.Tx) error) error {
	const attempts = 10
	var err error
	for i := range attempts {
		err = pgx.BeginTxFunc(ctx, d.pool, pgx.TxOptions{IsoLevel: pgx.Serializable}, fn)
		if !isRetryable(err) {
			return err
		}
		d.log.Debug("retrying transaction", slog.Int("attempt", i+1), slog.Any("err", err))
		// Jittered backoff so that two conflicting writers do not collide again.
		delay := time.Duration(1<<min(i, 6))*time.Millisecond + rand.N(5*time.Millisecond)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return fmt.Errorf("transaction failed after %d attempts: %w", attempts, err)
}

func isRetryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// notify queues a change notification in tx. PostgreSQL delivers it when, and only if,
// the transaction commits, so listeners never see a change before it is visible.
func notify(ctx context.Context, tx pgx.Tx, what string) error {
	if _, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", Channel, what); err != nil {
		return fmt.Errorf("notify %s: %w", what, err)
	}
	return nil
}

// Listen calls fn with the payload of every change notification until ctx ends or the
// connection fails. Callers that must not miss changes reload everything after Listen
// returns and before listening again.
func (d *DB) Listen(ctx context.Context, ready func(), fn func(payload string)) error {
	return d.listen(ctx, Channel, ready, fn)
}

func (d *DB) listen(ctx context.Context, channel string, ready func(), fn func(payload string)) error {
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer func() {
		// A pooled connection must not keep listening; on a broken one this fails harmlessly.
		uctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, _ = conn.Exec(uctx, "UNLISTEN *")
	}()
	if ready != nil {
		ready()
	}
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		fn(n.Payload)
	}
}
