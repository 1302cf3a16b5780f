package db_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/testenv"
)

// TestReviewKilledWatcherDoesNotCountThroughAnotherDatabase: advisory locks are per
// database, but pg_locks lists every database's. WatchCoverage asks pg_locks whether
// "watch/<id>" is held without naming the database, and watcher ids start at 1 in every
// database: a watcher of another deployment on the same PostgreSQL server (staging next
// to production, or another test) holding watch/1 makes this database's killed watcher 1
// count as live, vouching for changes nobody watches, until its heartbeat goes stale.
func TestReviewKilledWatcherDoesNotCountThroughAnotherDatabase(t *testing.T) {
	ctx := context.Background()
	prod, _ := testenv.NewDB(t)
	staging, _ := testenv.NewDB(t)
	root := "/srv/origin"
	mine, err := prod.RegisterWatcher(ctx, root, "prod", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := staging.RegisterWatcher(ctx, root, "staging", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer theirs.Release()
	if mine.ID != theirs.ID {
		t.Fatalf("ids %d and %d: the collision needs equal ids (both start at 1)", mine.ID, theirs.ID)
	}
	now := time.Now()
	if err := mine.Beat(ctx, &now, 0); err != nil {
		t.Fatal(err)
	}
	mine.Release() // killed: its record stays, its lock is gone
	cov, err := prod.WatchCoverage(ctx, root, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if cov.Watchers != 0 {
		t.Errorf("the killed watcher counts as live (%d watchers, since %v): the lock found is the other database's", cov.Watchers, cov.Since)
	}
}
