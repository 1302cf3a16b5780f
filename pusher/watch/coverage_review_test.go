package watch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/pusher"
)

// Adversarial review of issue 15: a watcher must never claim coverage while a directory
// under the origin is unwatched.

// TestReviewWatchLimitReachedLaterDropsCoverage: the limit is reached not at start but
// when new directories appear (an rsync of a tree into the origin). Tree.addAll sets
// limited and logs "this watcher claims no coverage", yet the daemon keeps the since it
// took at registration: its beats go on vouching for the origin, scheduled pushes skip
// the walk, and files written into the unwatched directories are never pushed until the
// 6 h walk. inotify_add_watch is replaced to fail with ENOSPC once the start is done (the
// real limit is machine-wide; see TestWatchLimitClaimsNoCoverage).
func TestReviewWatchLimitReachedLaterDropsCoverage(t *testing.T) {
	f := newFixture(t)
	var full atomic.Bool
	f.daemon(true, func(d *Daemon) {
		d.addWatch = func(fw *fsnotify.Watcher, path string) error {
			if full.Load() {
				return fmt.Errorf("inotify_add_watch: %w", syscall.ENOSPC)
			}
			return fw.Add(path)
		}
	})
	f.waitStartPush()
	waitFor(t, 10*time.Second, "coverage is claimed", func() bool { return f.coverage().Since != nil })

	full.Store(true)
	if err := os.MkdirAll(filepath.Join(f.origin, "new", "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The new directory's push runs and ends; then the beats are what a scheduled push
	// reads.
	waitFor(t, 60*time.Second, "the new directory was pushed", func() bool {
		calls, done := f.pusher.finished()
		return len(calls) >= 2 && done
	})
	time.Sleep(time.Second) // several beats (BeatInterval 200ms)
	if cov := f.coverage(); cov.Since != nil {
		t.Errorf("directories under the origin are unwatched (watch limit), yet the watcher claims coverage since %v: a file written into new/a/b is never seen and scheduled pushes do not walk", cov.Since)
	}
}

// TestReviewDirectoryMovedInWithSubdirsIsWatched: a tree renamed into the origin from
// outside arrives as one Create; its subdirectories must be watched too, and a file
// written later deep inside must be pushed. (A hole tried and found closed.)
func TestReviewDirectoryMovedInWithSubdirsIsWatched(t *testing.T) {
	f := newFixture(t)
	f.daemon(true, nil)
	f.waitStartPush()
	outside := filepath.Join(filepath.Dir(f.origin), "staging-review")
	if err := os.MkdirAll(filepath.Join(outside, "x", "y", "z"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(outside) })
	if err := os.Rename(outside, filepath.Join(f.origin, "moved")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the moved-in tree was pushed", func() bool {
		calls, done := f.pusher.finished()
		return len(calls) >= 2 && done
	})
	n, _ := f.pusher.finished()
	if err := os.WriteFile(filepath.Join(f.origin, "moved", "x", "y", "z", "late.txt"), []byte("late\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the late file deep in the moved-in tree was pushed", func() bool {
		calls, done := f.pusher.finished()
		if len(calls) <= len(n) || !done {
			return false
		}
		for _, c := range calls[len(n):] {
			for _, s := range c.scope {
				if s == "moved/x/y/z" || s == "moved" || s == "moved/x" || s == "moved/x/y" {
					return true
				}
			}
		}
		return false
	})
}

// TestReviewSwappedOriginSymlinkDropsCoverage: origin.path is a symlink (followed since
// 32669d9) and the operator points it at a new tree (ln -sfn, the usual atomic switch of
// a release tree). The tree watcher resolved the link once and keeps watching the old
// target; pushes follow the link to the new one. Nothing under the new target is
// watched, yet the watcher keeps vouching for origin.path: scheduled pushes skip the
// walk, and a file published into the new tree afterwards is never pushed until the 6 h
// walk.
func TestReviewSwappedOriginSymlinkDropsCoverage(t *testing.T) {
	f := newFixture(t)
	base := t.TempDir()
	newTree := filepath.Join(base, "b")
	if err := os.CopyFS(newTree, os.DirFS(f.origin)); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "origin")
	if err := os.Symlink(f.origin, link); err != nil {
		t.Fatal(err)
	}
	f.pusher.p.Origin = pusher.OSOrigin{Root: link}
	f.daemon(true, func(d *Daemon) { d.Root = link })
	f.waitStartPush()
	coverage := func() model.WatchCoverage {
		cov, err := f.db.WatchCoverage(context.Background(), link, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return cov
	}
	waitFor(t, 10*time.Second, "coverage of origin.path is claimed", func() bool { return coverage().Since != nil })

	tmp := filepath.Join(base, "origin.new")
	if err := os.Symlink(newTree, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
	before, _ := f.pusher.finished()
	if err := os.WriteFile(filepath.Join(newTree, filepath.FromSlash(repo1), "LATE.txt"), []byte("published into the new tree\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if coverage().Since == nil {
			return // the watcher stopped vouching: scheduled pushes walk
		}
		if calls, _ := f.pusher.finished(); len(calls) > len(before) {
			return // it saw the change and pushed
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("origin.path now points at %s; a file was published there, not pushed, and the watcher (watching the old target) still claims coverage since %v", newTree, coverage().Since)
}

// TestReviewUnmountedOriginDropsCoverage: origin.path is a mounted volume (NFS, a
// separate disk). When it is unmounted, the kernel sends IN_UNMOUNT and drops every
// watch; fsnotify removes them silently (no event, no error), so the tree still lists
// every directory as watched and the watcher keeps vouching. Once the volume is mounted
// again and a package is published, nothing sees it: scheduled pushes skip the walk
// until the 6 h walk. A real tmpfs mount (needs CAP_SYS_ADMIN; the review machine runs
// as root).
func TestReviewUnmountedOriginDropsCoverage(t *testing.T) {
	f := newFixture(t)
	mnt := filepath.Join(t.TempDir(), "origin")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	mount := func() {
		t.Helper()
		if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=64m"); err != nil {
			if errors.Is(err, syscall.EPERM) {
				t.Skip("mounting a tmpfs needs CAP_SYS_ADMIN")
			}
			t.Fatal(err)
		}
		if err := os.CopyFS(mnt, os.DirFS(f.origin)); err != nil {
			t.Fatal(err)
		}
	}
	mount()
	t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) })
	f.pusher.p.Origin = pusher.OSOrigin{Root: mnt}
	f.daemon(true, func(d *Daemon) { d.Root = mnt })
	f.waitStartPush()
	coverage := func() model.WatchCoverage {
		cov, err := f.db.WatchCoverage(context.Background(), mnt, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return cov
	}
	waitFor(t, 10*time.Second, "coverage is claimed", func() bool { return coverage().Since != nil })

	if err := syscall.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
	mount() // mounted again, as after maintenance
	before, _ := f.pusher.finished()
	if err := os.WriteFile(filepath.Join(mnt, filepath.FromSlash(repo1), "LATE.txt"), []byte("published after the remount\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if coverage().Since == nil {
			return
		}
		if calls, _ := f.pusher.finished(); len(calls) > len(before) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("the origin was unmounted and mounted again; a file published since was not pushed, and the watcher (its watches dropped by IN_UNMOUNT) still claims coverage since %v", coverage().Since)
}

// TestReviewUnwatchableNewDirectoryDropsCoverage: a new directory whose watch cannot be
// added for another reason than the limit (EACCES: created 0700 by another user, for a
// daemon not running as root; injected here, the review runs as root) is logged ("watch
// a new directory") and left unwatched, while the watcher keeps vouching. When the
// publisher then opens it up (chmod: a Chmod event, which never adds a watch) and writes
// into it, nothing is seen: scheduled pushes skip the walk until the 6 h walk.
func TestReviewUnwatchableNewDirectoryDropsCoverage(t *testing.T) {
	f := newFixture(t)
	denied := filepath.Join(f.origin, "incoming")
	f.daemon(true, func(d *Daemon) {
		d.addWatch = func(fw *fsnotify.Watcher, path string) error {
			if path == denied {
				if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 == 0 {
					return fmt.Errorf("inotify_add_watch %s: %w", path, syscall.EACCES)
				}
			}
			return fw.Add(path)
		}
	})
	f.waitStartPush()
	waitFor(t, 10*time.Second, "coverage is claimed", func() bool { return f.coverage().Since != nil })
	if err := os.Mkdir(denied, 0o700); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the new directory was pushed", func() bool {
		calls, done := f.pusher.finished()
		return len(calls) >= 2 && done
	})
	if err := os.Chmod(denied, 0o755); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the chmod was pushed", func() bool {
		calls, done := f.pusher.finished()
		return len(calls) >= 3 && done
	})
	before, _ := f.pusher.finished()
	if err := os.WriteFile(filepath.Join(denied, "pkg.rpm"), []byte("a package\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if f.coverage().Since == nil {
			return
		}
		if calls, _ := f.pusher.finished(); len(calls) > len(before) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("incoming/ was never watched (its watch failed), a file written there was not pushed, and the watcher still claims coverage since %v", f.coverage().Since)
}
