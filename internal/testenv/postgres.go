package testenv

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/localpg"
)

var (
	pgOnce   sync.Once
	pgShared *localpg.Postgres
	pgErr    error
	dbSeq    atomic.Int64
)

// SharedPostgres returns this test binary's PostgreSQL server, starting it on first use.
func SharedPostgres(t testing.TB) *localpg.Postgres {
	t.Helper()
	pgOnce.Do(func() {
		dir, err := os.MkdirTemp("", "regionmirror-pg-")
		if err != nil {
			pgErr = err
			return
		}
		pgShared, pgErr = localpg.Start(dir)
		if pgErr != nil {
			os.RemoveAll(dir)
			return
		}
		addStopper(func() {
			pgShared.Stop()
			os.RemoveAll(dir)
		})
	})
	if pgErr != nil {
		t.Fatalf("testenv: PostgreSQL: %v", pgErr)
	}
	return pgShared
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9_]+`)

// NewDatabase creates an empty database for this test, dropped when the test ends, and
// returns its URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	pg := SharedPostgres(t)
	name := unsafeChars.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	name = fmt.Sprintf("t%d_%s", dbSeq.Add(1), name)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.AdminURL())
	if err != nil {
		t.Fatalf("testenv: connect to PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("testenv: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, pg.AdminURL())
		if err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	return pg.URL(name)
}

// NewDB creates a fresh database, applies the migrations and returns it open, with its
// URL. The pool is closed when the test ends.
func NewDB(t testing.TB) (*db.DB, string) {
	t.Helper()
	url := NewDatabase(t)
	ctx := context.Background()
	d, err := db.Open(ctx, url, nil)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(d.Close)
	if _, err := d.Migrate(ctx); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return d, url
}
