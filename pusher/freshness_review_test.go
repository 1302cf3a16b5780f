package pusher

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
)

// Adversarial review of issue 15 (promise 10: pushing less never hides a change).

// liveWatcher registers a watcher of the fixture's origin that has seen every change
// since now and has nothing pending, as a healthy `regionmirror watch` leaves it.
func (f *fixture) liveWatcher() {
	f.t.Helper()
	ctx := context.Background()
	since, err := f.db.Now(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	w, err := f.db.RegisterWatcher(ctx, f.origin, "review", os.Getpid())
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { w.Release() })
	if err := w.Beat(ctx, &since, 0); err != nil {
		f.t.Fatal(err)
	}
}

// fullPushWouldWriteNothing checks the definition of "synced": when r is recorded synced
// at the origin's generation, a full push (walking everything) must upload nothing to it.
func (f *fixture) fullPushWouldWriteNothing(r *model.Region, when string) {
	f.t.Helper()
	synced := f.syncOf(r).SyncedWith(r, f.generation())
	res := f.push(r)
	if synced && (res.Regions[0].Uploaded > 0 || res.Inventory.Changes != (db.InventoryResult{})) {
		f.t.Errorf("%s: %s was recorded synced at generation, yet a full push uploaded %d files and recorded %+v: every scheduled push in between was a no-op hiding that",
			when, r.Name, res.Regions[0].Uploaded, res.Inventory.Changes)
	}
}

// TestReviewSymlinkedFileTargetChangeIsNotHidden: the walk follows symlinks to files
// (OSOrigin.WalkUnder: os.Stat). A repository whose file is a symlink into a shared pool
// directory (pool/ layouts are common) changes when the pool's file is rewritten; the
// watcher sees a Write under pool/ only, and pushes scope "pool" (scopeKey: the
// directory of the path). That scoped push re-stats only pool/, claims the region synced
// (every change since M lay in "pool"), and every scheduled push after is a no-op,
// while a full push would upload the symlink's new content.
func TestReviewSymlinkedFileTargetChangeIsNotHidden(t *testing.T) {
	f := newFixture(t)
	c, _ := f.fileRegion("us-east-1")
	if err := os.MkdirAll(filepath.Join(f.origin, "pool"), 0o755); err != nil {
		t.Fatal(err)
	}
	f.write("pool/blob.txt", "first version\n")
	if err := os.Symlink(filepath.Join(f.origin, "pool", "blob.txt"), filepath.Join(f.origin, filepath.FromSlash(repoDir), "blob.txt")); err != nil {
		t.Fatal(err)
	}
	f.liveWatcher()
	checkOK(t, f.push(c))
	f.checkRegionHasOrigin(c)

	// The publisher rewrites the pool's file; the watcher pushes what it saw change.
	f.write("pool/blob.txt", "second, longer version\n")
	checkOK(t, f.pushWith([]*model.Region{c}, Options{Scope: []string{"pool"}}))

	res := f.pushWith([]*model.Region{c}, Options{Scheduled: true, OriginRoot: f.origin, FullInventoryInterval: time.Hour})
	checkOK(t, res)
	if res.Noop {
		t.Logf("the scheduled push was a no-op: %s", res.Note)
	}
	// What the region serves at the symlink's path must be what the origin holds.
	f.checkRegionHasOrigin(c)
	f.fullPushWouldWriteNothing(c, "after the pool's file changed")
}

// raceOrigin runs during once, when the inventory opens path to hash it, after it has
// read the bytes it will hash: the file changes under a slow inventory.
type raceOrigin struct {
	OSOrigin
	path   string
	during func()
	once   sync.Once
}

func (o *raceOrigin) Open(p string) (io.ReadSeekCloser, error) {
	if p != o.path {
		return o.OSOrigin.Open(p)
	}
	data, err := os.ReadFile(filepath.Join(o.Root, filepath.FromSlash(p)))
	if err != nil {
		return nil, err
	}
	o.once.Do(o.during)
	return nopCloser{bytes.NewReader(data)}, nil
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// TestReviewSlowFullWalkDoesNotUndoAWatcherPush: a full push (cron) hashes a file at v2;
// meanwhile the publisher writes v3 and the watcher's scoped push records and pushes v3.
// The full push then applies its v2 (ApplyInventory: last writer wins, no check that the
// row is still what it read), so the records say v2 while the origin holds v3. The
// watcher has nothing pending, so scheduled pushes do not walk: they push from the
// records and fail on every tick ("changed at the origin since the inventory; the next
// push takes it") until the 6 h walk, and the region stays unsynced.
func TestReviewSlowFullWalkDoesNotUndoAWatcherPush(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c, _ := f.fileRegion("us-east-1")
	news := repoDir + "/NEWS.txt"
	f.write(news, "v1\n")
	f.liveWatcher()
	checkOK(t, f.push(c))

	f.write(news, "v2 a bit longer\n")
	watcher := *f.pusher // another process: the watcher's pusher
	watcher.Origin = OSOrigin{Root: f.origin}
	f.pusher.Origin = &raceOrigin{OSOrigin: OSOrigin{Root: f.origin}, path: news, during: func() {
		f.write(news, "v3, the one the publisher meant to publish\n")
		res, err := watcher.PushWith(ctx, []*model.Region{c}, Options{Scope: []string{repoDir}})
		if err != nil {
			t.Errorf("the watcher's push: %v", err)
			return
		}
		checkOK(t, res)
	}}
	res, err := f.pusher.Push(ctx, []*model.Region{c})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the slow full push: %s %s", res.Regions[0].Status, res.Regions[0].Error)
	f.pusher.Origin = OSOrigin{Root: f.origin}

	rec, err := f.db.GetFile(ctx, news)
	if err != nil {
		t.Fatal(err)
	}
	onDisk, _ := os.ReadFile(filepath.Join(f.origin, filepath.FromSlash(news)))
	if rec.Size != int64(len(onDisk)) {
		t.Errorf("the records hold %s at %d bytes, the origin %d bytes: the slow walk overwrote the watcher's newer record", news, rec.Size, len(onDisk))
	}
	sched := Options{Scheduled: true, OriginRoot: f.origin, FullInventoryInterval: time.Hour}
	for i := range 2 {
		res := f.pushWith([]*model.Region{c}, sched)
		if rr := res.Regions[0]; rr.Status != model.RunOK {
			t.Errorf("scheduled push %d (note %q): %s: %s", i+1, res.Note, rr.Status, firstLine(rr.Error))
		}
	}
	f.checkRegionHasOrigin(c)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// afterWalkOrigin runs after once the walk has visited everything.
type afterWalkOrigin struct {
	OSOrigin
	after func()
	once  sync.Once
}

func (o *afterWalkOrigin) Walk(fn WalkFunc) error {
	return o.WalkUnder("", fn)
}

func (o *afterWalkOrigin) WalkUnder(dir string, fn WalkFunc) error {
	err := o.OSOrigin.WalkUnder(dir, fn)
	o.once.Do(o.after)
	return err
}

// TestReviewSlowFullWalkDoesNotDeleteARestoredFile: the same race as above with a
// delete. A full push walks while iso/boot.iso is briefly gone (replaced by a publisher
// that removes then writes); the file is back, the watcher's push of iso records it
// live; then the full push applies its stale "deleted" (ApplyInventory marks deleted
// whatever path it names, however the row changed since it was read). The file is not
// in any repository's metadata, so nothing is withheld: the full push ends ok and claims
// the region synced, every scheduled push after is a no-op, and the origin's file is
// recorded deleted (metalinks and /pub stop sending clients to it, gc removes the
// region's copies after the grace) until the 6 h walk finds it again.
func TestReviewSlowFullWalkDoesNotDeleteARestoredFile(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c, _ := f.fileRegion("us-east-1")
	if err := os.MkdirAll(filepath.Join(f.origin, "iso"), 0o755); err != nil {
		t.Fatal(err)
	}
	iso := "iso/boot.iso"
	f.write(iso, "an image\n")
	f.liveWatcher()
	checkOK(t, f.push(c))

	isoPath := filepath.Join(f.origin, "iso", "boot.iso")
	if err := os.Remove(isoPath); err != nil {
		t.Fatal(err)
	}
	watcher := *f.pusher
	watcher.Origin = OSOrigin{Root: f.origin}
	f.pusher.Origin = &afterWalkOrigin{OSOrigin: OSOrigin{Root: f.origin}, after: func() {
		f.write(iso, "an image, rebuilt\n")
		res, err := watcher.PushWith(ctx, []*model.Region{c}, Options{Scope: []string{"iso"}})
		if err != nil {
			t.Errorf("the watcher's push: %v", err)
			return
		}
		checkOK(t, res)
	}}
	res := f.push(c)
	t.Logf("the slow full push: %s %s", res.Regions[0].Status, res.Regions[0].Error)
	f.pusher.Origin = OSOrigin{Root: f.origin}

	rec, err := f.db.GetFile(ctx, iso)
	if err != nil {
		t.Fatal(err)
	}
	if rec.DeletedAt != nil {
		t.Errorf("%s is at the origin, yet recorded deleted at %v: the slow walk's stale delete overwrote the watcher's record", iso, rec.DeletedAt)
	}
	sched := f.pushWith([]*model.Region{c}, Options{Scheduled: true, OriginRoot: f.origin, FullInventoryInterval: time.Hour})
	t.Logf("the scheduled push: noop %v: %s", sched.Noop, sched.Note)
	f.fullPushWouldWriteNothing(c, "after the stale delete")
}

// TestReviewFileSymlinkOutOfTheOriginIsNotPublished: the README says "Pushes never follow
// directory symlinks, so nothing outside the origin is ever published", and the issue
// "Symlinks out of the origin are not followed". The walk follows symlinks to files
// (os.Stat), wherever they point: a file outside origin.path (here a secret next to it)
// is read, recorded and uploaded to every region.
func TestReviewFileSymlinkOutOfTheOriginIsNotPublished(t *testing.T) {
	f := newFixture(t)
	c, dir := f.fileRegion("us-east-1")
	secret := filepath.Join(t.TempDir(), "secret.key")
	if err := os.WriteFile(secret, []byte("not for the public\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	leak := repoDir + "/leak.txt"
	if err := os.Symlink(secret, filepath.Join(f.origin, filepath.FromSlash(leak))); err != nil {
		t.Fatal(err)
	}
	checkOK(t, f.push(c))
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(leak))); err == nil {
		t.Errorf("%s, a symlink to %s outside the origin, was published to %s", leak, secret, c.Name)
	}
}

// TestReviewTransientReadErrorIsNotDroppedByTheRecords: the watcher pushes iso/ after
// boot.iso was rewritten, and reading it fails once (EIO on a flaky disk or NFS: the
// fault is injected, failingOrigin). The push fails for every region; the daemon
// retries the scope for ten minutes and then gives up "the scheduled push will do it",
// with nothing pending. The scheduled push trusts the watcher, does not walk, and pushes
// from the records, which still hold the old boot.iso (an unread file is not recorded):
// the region already holds that, so the push ends ok and claims the region synced, and
// every scheduled push after is a no-op. The new image reaches no region until the 6 h
// walk.
func TestReviewTransientReadErrorIsNotDroppedByTheRecords(t *testing.T) {
	f := newFixture(t)
	c, _ := f.fileRegion("us-east-1")
	if err := os.MkdirAll(filepath.Join(f.origin, "iso"), 0o755); err != nil {
		t.Fatal(err)
	}
	iso := "iso/boot.iso"
	f.write(iso, "an image\n")
	f.liveWatcher()
	checkOK(t, f.push(c))

	f.write(iso, "an image, rebuilt and longer\n")
	f.pusher.Origin = failingOrigin{OSOrigin: OSOrigin{Root: f.origin}, bad: iso}
	res := f.pushWith([]*model.Region{c}, Options{Scope: []string{"iso"}})
	if res.Regions[0].Status != model.RunFailed {
		t.Fatalf("the watcher's push with an unreadable file: %+v", res.Regions[0])
	}
	f.pusher.Origin = OSOrigin{Root: f.origin}

	// The daemon gave up its retries: nothing pending. Two cron ticks.
	sched := Options{Scheduled: true, OriginRoot: f.origin, FullInventoryInterval: time.Hour}
	for i := range 2 {
		res := f.pushWith([]*model.Region{c}, sched)
		t.Logf("scheduled push %d: noop %v, %s: %s", i+1, res.Noop, res.Regions[0].Status, res.Note)
	}
	f.checkRegionHasOrigin(c)
	f.fullPushWouldWriteNothing(c, "after a transient read error")
}

// TestReviewResolveScopeHostilePaths: paths a hostile publisher may send, none of which
// may resolve outside the origin, and none of whose refusals may name the origin's
// directory (holes tried and found closed).
func TestReviewResolveScopeHostilePaths(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"a/b", "c"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "a", "out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "a"), filepath.Join(root, "loop")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		root + "/a/../../etc", root + "/../" + filepath.Base(root) + "x", root + "/a/out", root + "/a/out/..",
		"a/out", "a/out/", "./a/out", "loop", "loop/b", "a/./../..", "..", "../", ".../a",
		"a/%2e%2e/%2e%2e", "a\\..\\..", "a/b\n", "a/\u202eb", "d\u0301mo", strings.Repeat("a/", 600) + "b",
		root + "/" + strings.Repeat("x", 5000), "/", "//", "/proc/self/root" + root + "/a", outside, "a/b/\x7f",
	} {
		got, err := ResolveScope(root, []string{"a", p})
		if err == nil {
			for _, d := range got {
				real := filepath.Join(root, filepath.FromSlash(d))
				if ev, e := filepath.EvalSymlinks(real); e != nil || !strings.HasPrefix(ev+"/", root+"/") {
					t.Errorf("%q resolved to %q, outside the origin", p, d)
				}
			}
			continue
		}
		var se *ScopeError
		if !errors.As(err, &se) {
			t.Errorf("%q: %v is not a *ScopeError (a 400)", p, err)
		} else if !strings.Contains(p, root) && strings.Contains(se.Error(), root) {
			t.Errorf("%q: the refusal %q names the origin's directory", p, se.Error())
		}
	}
}

// TestReviewHardlinkedFileChangeIsNotHidden: as with a symlink, a file hard-linked into a
// repository from a pool (hardlink farms are how many mirrors save space) changes when
// it is rewritten in place through the pool's name; inotify reports the write on the
// pool's directory only, so the watcher pushes scope "pool", the region is claimed
// synced, and scheduled pushes no-op while a full push would upload the new content.
func TestReviewHardlinkedFileChangeIsNotHidden(t *testing.T) {
	f := newFixture(t)
	c, _ := f.fileRegion("us-east-1")
	if err := os.MkdirAll(filepath.Join(f.origin, "pool"), 0o755); err != nil {
		t.Fatal(err)
	}
	f.write("pool/blob.txt", "first version\n")
	if err := os.Link(filepath.Join(f.origin, "pool", "blob.txt"), filepath.Join(f.origin, filepath.FromSlash(repoDir), "blob.txt")); err != nil {
		t.Fatal(err)
	}
	f.liveWatcher()
	checkOK(t, f.push(c))

	f.write("pool/blob.txt", "second, longer version\n") // O_TRUNC: the same inode
	checkOK(t, f.pushWith([]*model.Region{c}, Options{Scope: []string{"pool"}}))
	res := f.pushWith([]*model.Region{c}, Options{Scheduled: true, OriginRoot: f.origin, FullInventoryInterval: time.Hour})
	checkOK(t, res)
	f.checkRegionHasOrigin(c)
	f.fullPushWouldWriteNothing(c, "after the pool's hard-linked file changed")
}

// TestReviewScanAndEditDuringAScopedPushLeaveTheRegionUnsynced: while a scoped push of
// repository 1 walks, a scan records a copy of repository 2 (outside the scope) missing,
// or the region is edited; the scoped push does not read or repair repository 2, so it
// must not claim the region synced, and the next scheduled push (watcher live) repairs
// it. (Holes tried and found closed: the invalidation clears the generation the scoped
// claim builds on, and the claim records the region as read at the push's start.)
func TestReviewScanAndEditDuringAScopedPushLeaveTheRegionUnsynced(t *testing.T) {
	for _, what := range []string{"scan", "edit"} {
		t.Run(what, func(t *testing.T) {
			f := newFixture(t)
			f.secondRepo()
			ctx := context.Background()
			c, dir := f.fileRegion("us-east-1")
			f.liveWatcher()
			checkOK(t, f.push(c))
			other, err := f.db.GetFile(ctx, repoDir2+"/repodata/repomd.xml")
			if err != nil {
				t.Fatal(err)
			}
			f.write(repoDir+"/NEWS.txt", "news\n")
			origin := &countingOrigin{OSOrigin: OSOrigin{Root: f.origin}}
			origin.during = func() {
				origin.during = nil
				switch what {
				case "scan":
					if err := os.Remove(filepath.Join(dir, filepath.FromSlash(other.Path))); err != nil {
						t.Error(err)
					}
					scan, err := f.db.BeginRegionRun(ctx, model.RunScan, c)
					if err != nil {
						t.Error(err)
						return
					}
					if err := f.db.RecordObjects(ctx, scan.Fence(), c.ID, []db.ObjectUpdate{{FileID: other.ID, Size: other.Size, SHA256: other.SHA256, State: model.ObjectMissing}}); err != nil {
						t.Error(err)
					}
					if err := scan.Finish(ctx, nil); err != nil {
						t.Error(err)
					}
				case "edit":
					if _, _, err := f.db.UpdateRegion(ctx, c.Name, func(r *model.Region) error { r.Weight++; return nil }); err != nil {
						t.Error(err)
					}
				}
			}
			f.pusher.Origin = origin
			checkOK(t, f.pushWith([]*model.Region{c}, Options{Scope: []string{repoDir}}))
			fresh, err := f.db.GetRegion(ctx, c.Name)
			if err != nil {
				t.Fatal(err)
			}
			if f.syncOf(fresh).SyncedWith(fresh, f.generation()) {
				t.Fatalf("%s during the scoped push: the region is recorded synced", what)
			}
			res := f.pushWith([]*model.Region{fresh}, Options{Scheduled: true, OriginRoot: f.origin, FullInventoryInterval: time.Hour})
			checkOK(t, res)
			if res.Noop {
				t.Fatalf("the scheduled push after the %s was a no-op", what)
			}
			f.checkRegionHasOrigin(fresh)
			f.fullPushWouldWriteNothing(fresh, "after the "+what)
		})
	}
}
