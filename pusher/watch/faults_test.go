package watch

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
)

// TestBusyRegionIsRetriedAlone holds one region's push lock as another instance would:
// the triggered push reports it busy, and once the lock is free the daemon pushes the
// same scope again into that region only.
func TestBusyRegionIsRetriedAlone(t *testing.T) {
	f := newFixture(t)
	f.fileRegion("eu-west-1")
	ctx := context.Background()
	held, err := f.db.Hold(ctx, db.WriteLock("eu-west-1"))
	if err != nil {
		t.Fatal(err)
	}
	dm := f.daemon(false, nil)
	dm.Trigger([]string{repo1})
	waitFor(t, 60*time.Second, "the triggered push returned", func() bool {
		calls, done := f.pusher.finished()
		return len(calls) == 1 && done
	})
	calls, _ := f.pusher.finished()
	if got := calls[0].status; got["eu-west-1"] != model.RunBusy || got["us-east-1"] != model.RunOK {
		t.Fatalf("first push: %v; want eu-west-1 busy, us-east-1 ok", got)
	}
	held.Release()
	waitFor(t, 60*time.Second, "the busy region was pushed again", func() bool {
		calls, done := f.pusher.finished()
		return done && slices.ContainsFunc(calls[1:], func(c pushCall) bool { return c.status["eu-west-1"] == model.RunOK })
	})
	calls, _ = f.pusher.finished()
	for _, c := range calls[1:] {
		if !slices.Equal(c.regions, []string{"eu-west-1"}) || !slices.Equal(c.scope, []string{repo1}) {
			t.Errorf("retry into %v with scope %q; want only eu-west-1 with %s", c.regions, c.scope, repo1)
		}
	}
}

// TestLostLockDropsCoverageAndRegisters frees the watcher's lock as a lost database
// connection does: the record no longer counts, and the daemon registers again and
// claims coverage from a new since.
func TestLostLockDropsCoverageAndRegisters(t *testing.T) {
	f := newFixture(t)
	regs := make(chan *db.Watcher, 4)
	f.daemon(true, func(d *Daemon) { d.registered = func(w *db.Watcher) { regs <- w } })
	first := <-regs
	f.waitStartPush()
	waitFor(t, 10*time.Second, "coverage is claimed", func() bool { return f.coverage().Since != nil })
	before := *f.coverage().Since
	first.Release()
	var second *db.Watcher
	select {
	case second = <-regs:
	case <-time.After(20 * time.Second):
		t.Fatal("the daemon did not register again after losing its lock")
	}
	if second.ID == first.ID {
		t.Fatalf("registered again under the same record %d", first.ID)
	}
	waitFor(t, 10*time.Second, "coverage is claimed again", func() bool {
		cov := f.coverage()
		return cov.Watchers == 1 && cov.Since != nil && cov.Since.After(before)
	})
}

// TestWatchLimitClaimsNoCoverage: the kernel's watch limit cannot be reached on demand
// without changing fs.inotify.max_user_watches for the whole machine, so inotify_add_watch
// is replaced to fail with ENOSPC after two directories. The daemon logs the command
// that raises the limit, keeps running and pushing, and never claims coverage.
func TestWatchLimitClaimsNoCoverage(t *testing.T) {
	f := newFixture(t)
	var log strings.Builder
	var mu sync.Mutex
	added := 0
	dm := f.daemon(true, func(d *Daemon) {
		d.Log = slog.New(slog.NewTextHandler(&lockedWriter{mu: &mu, w: &log}, nil))
		d.addWatch = func(fw *fsnotify.Watcher, path string) error {
			if added >= 2 {
				return fmt.Errorf("inotify_add_watch: %w", syscall.ENOSPC)
			}
			added++
			return fw.Add(path)
		}
	})
	f.waitStartPush()
	waitFor(t, 10*time.Second, "the watcher beat after its start push", func() bool {
		cov := f.coverage()
		return cov.Watchers == 1 && cov.Pending == 0
	})
	if cov := f.coverage(); cov.Since != nil {
		t.Errorf("a watcher missing directories claims coverage since %v", cov.Since)
	}
	mu.Lock()
	out := log.String()
	mu.Unlock()
	if !strings.Contains(out, "sysctl -w fs.inotify.max_user_watches=") || !strings.Contains(out, "/etc/sysctl.d/") {
		t.Errorf("the limit is not explained:\n%s", out)
	}
	if v := gaugeValue(dm.Metrics.Covering); v != 0 {
		t.Errorf("covering %v", v)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
