package pusher

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/objstore"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

const repoDir2 = "demo/2/x86_64/os"

func gen(g int64) *int64 { return &g }

func TestScopedClaim(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := &model.Region{ID: 7, UpdatedAt: t0}
	synced := func(m int64) *model.RegionSync {
		return &model.RegionSync{RegionID: 7, Epoch: 3, Generation: gen(m), RegionUpdatedAt: &t0}
	}
	ch := func(g int64, scope ...string) model.OriginChange {
		return model.OriginChange{Generation: g, Scope: scope}
	}
	a, b := []string{"a"}, []string{"b"}
	edited := t0.Add(time.Second)
	cases := []struct {
		name string
		in   ClaimInput
		want bool
	}{
		{"full push claims", ClaimInput{Region: r, Before: &model.RegionSync{}, Generation: 9}, true},
		{"full push claims without a record", ClaimInput{Region: r, Generation: 9}, true},
		{"scoped, changes all inside", ClaimInput{Region: r, Before: synced(5), Scope: a, Generation: 7,
			Changes: []model.OriginChange{ch(6, "a"), ch(7, "a/x")}}, true},
		{"scoped, nothing changed since", ClaimInput{Region: r, Before: synced(7), Scope: a, Generation: 7}, true},
		{"scoped, with linked files at the origin", ClaimInput{Region: r, Before: synced(7), Scope: a, Generation: 7, Linked: 1}, false},
		{"full push, with linked files at the origin", ClaimInput{Region: r, Generation: 9, Linked: 3}, true},
		{"scoped, a change outside", ClaimInput{Region: r, Before: synced(5), Scope: a, Generation: 7,
			Changes: []model.OriginChange{ch(6, "a"), ch(7, "b")}}, false},
		{"scoped, a change of the whole origin", ClaimInput{Region: r, Before: synced(5), Scope: a, Generation: 6,
			Changes: []model.OriginChange{ch(6, "")}}, false},
		{"scoped, a change spanning in and out", ClaimInput{Region: r, Before: synced(5), Scope: a, Generation: 6,
			Changes: []model.OriginChange{ch(6, "a", "b")}}, false},
		{"scoped, a change above the scope", ClaimInput{Region: r, Before: synced(5), Scope: []string{"a/x"}, Generation: 6,
			Changes: []model.OriginChange{ch(6, "a")}}, false},
		{"scoped, changes forgotten", ClaimInput{Region: r, Before: synced(5), Scope: a, Generation: 8,
			Changes: []model.OriginChange{ch(8, "a")}}, false},
		{"scoped, never synced", ClaimInput{Region: r, Before: &model.RegionSync{RegionID: 7, Epoch: 4}, Scope: a, Generation: 1}, false},
		{"scoped, no record", ClaimInput{Region: r, Scope: a, Generation: 1}, false},
		{"scoped, region edited since its claim", ClaimInput{Region: &model.Region{ID: 7, UpdatedAt: edited}, Before: synced(5), Scope: a, Generation: 6,
			Changes: []model.OriginChange{ch(6, "a")}}, false},
		{"scoped, synced later than the plan", ClaimInput{Region: r, Before: synced(9), Scope: a, Generation: 7}, false},
		{"scoped, several dirs cover", ClaimInput{Region: r, Before: synced(5), Scope: []string{"a", "b"}, Generation: 7,
			Changes: []model.OriginChange{ch(6, "b"), ch(7, "a", "b")}}, true},
		{"scoped, a change row out of range", ClaimInput{Region: r, Before: synced(5), Scope: b, Generation: 6,
			Changes: []model.OriginChange{ch(4, "b")}}, false},
	}
	for _, c := range cases {
		if got := ScopedClaim(c.in); got != c.want {
			t.Errorf("%s: ScopedClaim = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestDecideScheduled(t *testing.T) {
	now := time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)
	full := now.Add(-time.Hour)
	before, after := full.Add(-time.Minute), full.Add(time.Minute)
	upd := now.Add(-48 * time.Hour)
	r1, r2 := &model.Region{ID: 1, Name: "one", UpdatedAt: upd}, &model.Region{ID: 2, Name: "two", UpdatedAt: upd}
	live := model.WatchCoverage{Watchers: 1, Since: &before}
	syncedAt := func(g int64) *model.RegionSync { return &model.RegionSync{Generation: gen(g), RegionUpdatedAt: &upd} }
	allSynced := map[int64]*model.RegionSync{1: syncedAt(10), 2: syncedAt(10)}
	base := ScheduleInput{Now: now, State: model.OriginState{Generation: 10, FullInventoryAt: &full}, Coverage: live,
		Interval: 6 * time.Hour, Regions: []*model.Region{r1, r2}, Syncs: allSynced}
	with := func(f func(*ScheduleInput)) ScheduleInput { in := base; f(&in); return in }
	cases := []struct {
		name     string
		in       ScheduleInput
		walk     bool
		noop     bool
		push     []string
		noteHas  string
		noteHas2 string
	}{
		{"live watcher, all synced: no-op", base, false, true, nil, "nothing to do", "next full walk due at 2026-01-02T17:00:00Z"},
		{"no full walk yet", with(func(in *ScheduleInput) { in.State.FullInventoryAt = nil }), true, false, nil, "no full walk", ""},
		{"interval passed", with(func(in *ScheduleInput) { in.Interval = 30 * time.Minute }), true, false, nil, "older than push.full_inventory_interval", ""},
		{"interval exactly reached", with(func(in *ScheduleInput) { in.Interval = time.Hour }), true, false, nil, "older than", ""},
		{"no live watcher", with(func(in *ScheduleInput) { in.Coverage = model.WatchCoverage{} }), true, false, nil, "no live watcher", ""},
		{"linked files at the origin", with(func(in *ScheduleInput) { in.State.LinkedFiles = 2 }), true, false, nil, "symlinks or hard links", ""},
		{"watcher catching up (since nil)", with(func(in *ScheduleInput) { in.Coverage = model.WatchCoverage{Watchers: 1} }), true, false, nil, "catching up", ""},
		{"watcher since after the last full walk", with(func(in *ScheduleInput) { in.Coverage = model.WatchCoverage{Watchers: 1, Since: &after} }), true, false, nil, "started after the last full walk", ""},
		{"watcher since equal to the full walk", with(func(in *ScheduleInput) { in.Coverage = model.WatchCoverage{Watchers: 1, Since: &full} }), false, true, nil, "nothing to do", ""},
		{"pending changes", with(func(in *ScheduleInput) { in.Coverage.Pending = 3 }), true, false, nil, "3 changes not pushed", ""},
		{"a region unsynced (no record)", with(func(in *ScheduleInput) { in.Syncs = map[int64]*model.RegionSync{1: syncedAt(10)} }), false, false, []string{"two"}, "pushing two from the recorded inventory", "next full walk due"},
		{"a region synced at an older generation", with(func(in *ScheduleInput) { in.Syncs = map[int64]*model.RegionSync{1: syncedAt(9), 2: syncedAt(10)} }), false, false, []string{"one"}, "pushing one", ""},
		{"a region invalidated (generation NULL)", with(func(in *ScheduleInput) {
			in.Syncs = map[int64]*model.RegionSync{1: {Epoch: 2, RegionUpdatedAt: &upd}, 2: syncedAt(10)}
		}), false, false, []string{"one"}, "not synced at generation 10", ""},
		{"a region edited since its claim", with(func(in *ScheduleInput) {
			in.Regions = []*model.Region{{ID: 1, Name: "one", UpdatedAt: now}, r2}
		}), false, false, []string{"one"}, "pushing one", ""},
		{"both unsynced", with(func(in *ScheduleInput) { in.Syncs = nil }), false, false, []string{"one", "two"}, "pushing one, two", ""},
	}
	for _, c := range cases {
		d := DecideScheduled(c.in)
		var push []string
		for _, r := range d.Push {
			push = append(push, r.Name)
		}
		if d.Walk != c.walk || d.Noop != c.noop || !slices.Equal(push, c.push) {
			t.Errorf("%s: walk %v noop %v push %v, want walk %v noop %v push %v", c.name, d.Walk, d.Noop, push, c.walk, c.noop, c.push)
		}
		if !strings.Contains(d.Note, c.noteHas) || !strings.Contains(d.Note, c.noteHas2) {
			t.Errorf("%s: note %q, want it to say %q and %q", c.name, d.Note, c.noteHas, c.noteHas2)
		}
	}
}

func TestResolveScope(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"a/b", "c"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "a", "f.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "c"), filepath.Join(root, "a", "link")); err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	cases := []struct {
		name  string
		paths []string
		want  []string
		bad   string // the reason's words when an error is expected
	}{
		{"relative", []string{"a/b"}, []string{"a/b"}, ""},
		{"absolute", []string{filepath.Join(root, "a", "b")}, []string{"a/b"}, ""},
		{"absolute with a trailing slash", []string{root + "/c/"}, []string{"c"}, ""},
		{"several", []string{"a", "c"}, []string{"a", "c"}, ""},
		{"the root itself, absolute", []string{root}, nil, ""},
		{"the root itself, relative", []string{"."}, nil, ""},
		{"outside the origin", []string{outside}, nil, "not under the origin"},
		{"a sibling with the root's prefix", []string{root + "x"}, nil, "not under the origin"},
		{"dot-dot", []string{"a/../../etc"}, nil, ""},
		{"dot-dot inside", []string{"a/../c"}, nil, ""},
		{"a file", []string{"a/f.txt"}, nil, "not a directory"},
		{"a symlinked directory", []string{"a/link"}, nil, "symlink"},
		{"below a symlinked directory", []string{"a/link/x"}, nil, "symlink"},
		{"missing", []string{"a/nope"}, nil, "does not exist"},
		{"empty", []string{""}, nil, "empty"},
		{"none", nil, nil, "no path"},
		{"a NUL byte", []string{"a\x00b"}, nil, "NUL"},
	}
	for _, c := range cases {
		got, err := ResolveScope(root, c.paths)
		var se *ScopeError
		switch {
		case c.name == "dot-dot" || c.name == "dot-dot inside":
			// Either refused as a name, or never out of the origin.
			if err == nil && !slices.Equal(got, []string{"c"}) {
				t.Errorf("%s: %v, want an error or [c]", c.name, got)
			}
			if err != nil && !errors.As(err, &se) {
				t.Errorf("%s: %v is not a *ScopeError", c.name, err)
			}
		case c.bad != "":
			if !errors.As(err, &se) || !strings.Contains(se.Reason, c.bad) {
				t.Errorf("%s: %v, %v: want a *ScopeError saying %q", c.name, got, err, c.bad)
			} else if strings.Contains(se.Error(), root) && !strings.HasPrefix(c.paths[0], root) {
				t.Errorf("%s: %q names the origin's directory", c.name, se.Error())
			}
		case err != nil || !slices.Equal(got, c.want):
			t.Errorf("%s: %v, %v; want %v", c.name, got, err, c.want)
		}
	}
}

// countingOrigin is the real origin, counting what is asked of it; during runs at the
// start of each walk (another process acting while this push reads).
type countingOrigin struct {
	OSOrigin
	walks, opens atomic.Int64
	during       func()
}

func (c *countingOrigin) Open(p string) (io.ReadSeekCloser, error) {
	c.opens.Add(1)
	return c.OSOrigin.Open(p)
}

func (c *countingOrigin) Walk(fn WalkFunc) error {
	return c.WalkUnder("", fn)
}

func (c *countingOrigin) WalkUnder(dir string, fn WalkFunc) error {
	c.walks.Add(1)
	if c.during != nil {
		c.during()
	}
	return c.OSOrigin.WalkUnder(dir, fn)
}

func (c *countingOrigin) reset() { c.walks.Store(0); c.opens.Store(0) }

// secondRepo copies the sample repository to repoDir2 and registers it.
func (f *fixture) secondRepo() {
	f.t.Helper()
	if err := os.CopyFS(filepath.Join(f.origin, repoDir2), os.DirFS(filepath.Join(f.origin, repoDir))); err != nil {
		f.t.Fatal(err)
	}
	if err := f.db.CreateRepository(context.Background(), &model.Repository{Name: "demo-2", Arch: "x86_64", Directory: repoDir2}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) write(rel, content string) {
	f.t.Helper()
	if err := os.WriteFile(filepath.Join(f.origin, filepath.FromSlash(rel)), []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) pushWith(regions []*model.Region, opts Options) *Result {
	f.t.Helper()
	res, err := f.pusher.PushWith(context.Background(), regions, opts)
	if err != nil {
		f.t.Fatalf("push: %v", err)
	}
	return res
}

func (f *fixture) syncOf(r *model.Region) *model.RegionSync {
	f.t.Helper()
	s, err := f.db.RegionSyncOf(context.Background(), r.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func (f *fixture) generation() int64 {
	f.t.Helper()
	st, err := f.db.OriginState(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return st.Generation
}

func (f *fixture) runCount() int {
	f.t.Helper()
	runs, err := f.db.RecentRuns(context.Background(), "", 1000)
	if err != nil {
		f.t.Fatal(err)
	}
	return len(runs)
}

func (f *fixture) repoStateOf(r *model.Region, dir string) string {
	f.t.Helper()
	ctx := context.Background()
	repos, err := f.db.ListRepositories(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	states, err := f.db.RegionRepos(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, repo := range repos {
		for _, s := range states {
			if repo.Directory == dir && s.RepositoryID == repo.ID && s.RegionID == r.ID {
				return s.State
			}
		}
	}
	return "none"
}

func checkOK(t *testing.T, res *Result) {
	t.Helper()
	for _, rr := range res.Regions {
		if rr.Status != model.RunOK {
			t.Fatalf("%s: %s: %s", rr.Region, rr.Status, rr.Error)
		}
	}
}

func TestPushPathTouchesOnlyItsSubtree(t *testing.T) {
	f := newFixture(t)
	f.secondRepo()
	ctx := context.Background()
	srv := testenv.SharedS3(t)
	r := f.s3Region("eu-central-1", srv)
	checkOK(t, f.push(r))
	for _, dir := range []string{repoDir, repoDir2} {
		if s := f.repoStateOf(r, dir); s != model.RepoFresh {
			t.Fatalf("%s after the full push: %s", dir, s)
		}
	}
	if s := f.syncOf(r); !s.SyncedWith(r, f.generation()) {
		t.Fatalf("the full push did not record the region synced: %+v at generation %d", s, f.generation())
	}
	f.write(repoDir+"/NEWS.txt", "news of A\n")
	f.write(repoDir2+"/NEWS.txt", "news of B\n")

	scopeB := []string{repoDir2}
	bFiles, err := f.db.ListFilesUnder(ctx, scopeB, true)
	if err != nil {
		t.Fatal(err)
	}
	bObjects, err := f.db.RegionObjectsUnder(ctx, r.ID, scopeB)
	if err != nil {
		t.Fatal(err)
	}
	store, err := objstore.Open(ctx, r, f.pusher.Config.StoreOptions)
	if err != nil {
		t.Fatal(err)
	}
	listB := func() []objstore.Info {
		var out []objstore.Info
		if err := store.List(ctx, repoDir2+"/", "", func(i objstore.Info) error {
			out = append(out, objstore.Info{Key: i.Key, Size: i.Size, ETag: i.ETag})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	bKeys := listB()
	if len(bFiles) < 5 || len(bObjects) != len(bFiles) || len(bKeys) < len(bFiles) {
		t.Fatalf("B before: %d files, %d copies, %d objects", len(bFiles), len(bObjects), len(bKeys))
	}

	// A directory inside repository A: widened to A.
	res := f.pushWith([]*model.Region{r}, Options{Scope: []string{repoDir + "/Packages"}})
	checkOK(t, res)
	if !slices.Equal(res.Scope, []string{repoDir}) {
		t.Errorf("scope %v, want [%s]", res.Scope, repoDir)
	}
	rr := res.Regions[0]
	if rr.Uploaded != 1 || res.Inventory.Changes.Added != 1 || res.Inventory.Full {
		t.Errorf("scoped push: uploaded %d, inventory %+v", rr.Uploaded, res.Inventory.Changes)
	}
	news, err := f.db.GetFile(ctx, repoDir+"/NEWS.txt")
	if err != nil {
		t.Fatal(err)
	}
	copies, err := f.db.ObjectsOfFile(ctx, news.ID)
	if err != nil || len(copies) != 1 || !copies[0].Holds(news) || copies[0].VerifiedAt == nil {
		t.Errorf("A's new file in the region: %+v, %v", copies, err)
	}
	if s := f.repoStateOf(r, repoDir); s != model.RepoFresh {
		t.Errorf("A after the scoped push: %s", s)
	}
	if s := f.repoStateOf(r, repoDir2); s != model.RepoFresh {
		t.Errorf("B after the scoped push: %s", s)
	}
	// B: not inventoried, its records and objects untouched.
	if _, err := f.db.GetFile(ctx, repoDir2+"/NEWS.txt"); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("B's change was inventoried: %v", err)
	}
	bFiles2, _ := f.db.ListFilesUnder(ctx, scopeB, true)
	bObjects2, _ := f.db.RegionObjectsUnder(ctx, r.ID, scopeB)
	if !reflect.DeepEqual(bFiles, bFiles2) {
		t.Errorf("B's file records changed")
	}
	if !reflect.DeepEqual(bObjects, bObjects2) {
		t.Errorf("B's region_objects changed")
	}
	if got := listB(); !reflect.DeepEqual(bKeys, got) {
		t.Errorf("B's objects in the bucket changed:\n%v\n%v", bKeys, got)
	}
	// Everything since the full push lay in A: the region is synced at the generation.
	if s := f.syncOf(r); !s.SyncedWith(r, f.generation()) {
		t.Errorf("scoped push inside the changes did not claim: %+v at generation %d", s, f.generation())
	}

	// B's change is still there for the next push of B.
	res = f.pushWith([]*model.Region{r}, Options{Scope: scopeB})
	checkOK(t, res)
	if res.Regions[0].Uploaded != 1 {
		t.Errorf("push of B uploaded %d", res.Regions[0].Uploaded)
	}
}

func TestScopedWalkOfARemovedDirectoryDeletesItsFiles(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := os.MkdirAll(filepath.Join(f.origin, "extra", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	f.write("extra/sub/a.txt", "a")
	f.write("extra/b.txt", "b")
	if _, err := TakeInventory(ctx, f.db, f.pusher.Origin, 2, false, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(f.origin, "extra", "sub")); err != nil {
		t.Fatal(err)
	}
	inv, err := TakeInventoryUnder(ctx, f.db, f.pusher.Origin, []string{"extra/sub"}, 2, false, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if inv.Changes.Deleted != 1 || inv.Files != 0 {
		t.Errorf("scoped inventory of a removed directory: %+v, %d files", inv.Changes, inv.Files)
	}
	if fl, err := f.db.GetFile(ctx, "extra/b.txt"); err != nil || fl.DeletedAt != nil {
		t.Errorf("a file outside the scope: %+v, %v", fl, err)
	}
	if fl, err := f.db.GetFile(ctx, "extra/sub/a.txt"); err != nil || fl.DeletedAt == nil {
		t.Errorf("the removed file: %+v, %v", fl, err)
	}
	// A symlinked directory is not entered by a scoped walk either.
	if err := os.Symlink(filepath.Join(f.origin, "demo"), filepath.Join(f.origin, "extra", "link")); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := (OSOrigin{Root: f.origin}).WalkUnder("extra/link", func(string, int64, time.Time, bool) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("walk under a symlink: %d files, %v", n, err)
	}
	if err := (OSOrigin{Root: filepath.Join(f.origin, "nope")}).WalkUnder("extra", func(string, int64, time.Time, bool) error { return nil }); err == nil {
		t.Error("a missing root is an empty walk")
	}
}

// TestSymlinkedOriginRootIsWalked: origin.path may itself be a symlink. Before, the walk
// did not enter it and found an origin without files, which recorded every file deleted.
func TestSymlinkedOriginRootIsWalked(t *testing.T) {
	f := newFixture(t)
	link := filepath.Join(t.TempDir(), "origin")
	if err := os.Symlink(f.origin, link); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(f.origin, "extra", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	f.write("extra/sub/a.txt", "a")
	for _, dir := range []string{"", "extra"} {
		var got []string
		if err := (OSOrigin{Root: link}).WalkUnder(dir, func(p string, _ int64, _ time.Time, _ bool) error { got = append(got, p); return nil }); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(got, "extra/sub/a.txt") {
			t.Errorf("walk of %q under a symlinked root: %v", dir, got)
		}
	}
}

func TestScheduledNoopDoesNotWalk(t *testing.T) {
	f := newFixture(t)
	f.secondRepo()
	ctx := context.Background()
	origin := &countingOrigin{OSOrigin: OSOrigin{Root: f.origin}}
	f.pusher.Origin = origin
	srv := testenv.SharedS3(t)
	a := f.s3Region("eu-central-1", srv)
	c, _ := f.fileRegion("us-east-1")
	regions := []*model.Region{a, c}

	// What a live watcher leaves: registered before the full walk, seeing every change
	// since, beating.
	since, err := f.db.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w, err := f.db.RegisterWatcher(ctx, f.origin, "test", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Release() })
	if err := w.Beat(ctx, &since, 0); err != nil {
		t.Fatal(err)
	}
	checkOK(t, f.push(a, c))
	sched := Options{Scheduled: true, OriginRoot: f.origin, FullInventoryInterval: time.Hour}
	scheduledNoop := func(when string) {
		t.Helper()
		origin.reset()
		runs := f.runCount()
		res := f.pushWith(regions, sched)
		if !res.Noop || res.Inventory != nil || !strings.Contains(res.Note, "next full walk due") {
			t.Fatalf("%s: scheduled push not a no-op: %+v", when, res)
		}
		for _, rr := range res.Regions {
			if !rr.Skipped || rr.Status != model.RunOK {
				t.Errorf("%s: %s: %+v", when, rr.Region, rr)
			}
		}
		if n, o := origin.walks.Load(), origin.opens.Load(); n != 0 || o != 0 {
			t.Errorf("%s: the no-op walked %d times and opened %d files", when, n, o)
		}
		if got := f.runCount(); got != runs {
			t.Errorf("%s: the no-op recorded %d runs", when, got-runs)
		}
	}
	scheduledNoop("after a full push")

	// A watcher pushes the repository that changed: still a no-op after.
	f.write(repoDir+"/NEWS.txt", "news\n")
	checkOK(t, f.pushWith(regions, Options{Scope: []string{repoDir}}))
	scheduledNoop("after a scoped push")

	// A scan finds a copy missing in a: only a is pushed, from the records, and repaired.
	news, err := f.db.GetFile(ctx, repoDir+"/NEWS.txt")
	if err != nil {
		t.Fatal(err)
	}
	store, err := objstore.Open(ctx, a, f.pusher.Config.StoreOptions)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Delete(ctx, news.Path); err != nil {
		t.Fatal(err)
	}
	scan, err := f.db.BeginRegionRun(ctx, model.RunScan, a)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.db.RecordObjects(ctx, scan.Fence(), a.ID, []db.ObjectUpdate{{FileID: news.ID, Size: news.Size, SHA256: news.SHA256, State: model.ObjectMissing}}); err != nil {
		t.Fatal(err)
	}
	if err := scan.Finish(ctx, nil); err != nil {
		t.Fatal(err)
	}
	origin.reset()
	res := f.pushWith(regions, sched)
	checkOK(t, res)
	if res.Noop || origin.walks.Load() != 0 || res.Inventory == nil || !res.Inventory.FromRecords {
		t.Fatalf("repair: noop %v, %d walks, inventory %+v", res.Noop, origin.walks.Load(), res.Inventory)
	}
	if ra, rc := res.Regions[0], res.Regions[1]; ra.Skipped || ra.Uploaded != 1 || !rc.Skipped {
		t.Errorf("repair: a %+v; c %+v", ra, rc)
	}
	f.checkRegionHasOrigin(a)
	scheduledNoop("after the repair")

	// Without a live watcher the scheduled push walks; nothing changed, so every region
	// is skipped.
	w.Release()
	origin.reset()
	res = f.pushWith(regions, sched)
	checkOK(t, res)
	if res.Noop || origin.walks.Load() == 0 || !strings.Contains(res.Note, "no live watcher") || !res.Inventory.Full {
		t.Fatalf("without a watcher: noop %v, %d walks, note %q", res.Noop, origin.walks.Load(), res.Note)
	}
	for _, rr := range res.Regions {
		if !rr.Skipped {
			t.Errorf("without a watcher, nothing changed: %s not skipped: %+v", rr.Region, rr)
		}
	}
}

// TestChangeOutsideScopeDuringPushLeavesRegionUnsynced: another process's inventory of
// B runs while the scoped push of A walks (between its reads: the walk is the hook), so
// the generation the push reads holds a change its plan does not: no claim.
func TestChangeOutsideScopeDuringPushLeavesRegionUnsynced(t *testing.T) {
	f := newFixture(t)
	f.secondRepo()
	ctx := context.Background()
	c, _ := f.fileRegion("us-east-1")
	checkOK(t, f.push(c))
	m := f.generation()
	if !f.syncOf(c).SyncedWith(c, m) {
		t.Fatal("the full push did not claim")
	}
	f.write(repoDir+"/NEWS.txt", "news of A\n")
	f.write(repoDir2+"/NEWS.txt", "news of B\n")
	origin := &countingOrigin{OSOrigin: OSOrigin{Root: f.origin}}
	origin.during = func() {
		origin.during = nil
		if _, err := TakeInventoryUnder(ctx, f.db, OSOrigin{Root: f.origin}, []string{repoDir2}, 2, false, slog.New(slog.DiscardHandler)); err != nil {
			t.Error(err)
		}
	}
	f.pusher.Origin = origin
	res := f.pushWith([]*model.Region{c}, Options{Scope: []string{repoDir}})
	checkOK(t, res)
	if res.Regions[0].Uploaded != 1 {
		t.Errorf("uploaded %d", res.Regions[0].Uploaded)
	}
	s := f.syncOf(c)
	if s.Generation == nil || *s.Generation != m || s.SyncedWith(c, f.generation()) {
		t.Errorf("a change outside the scope came in between, yet the region is synced: %+v (generation now %d)", s, f.generation())
	}
	// The scheduled push (no watcher) pushes B then.
	res = f.pushWith([]*model.Region{c}, Options{Scheduled: true, OriginRoot: f.origin, FullInventoryInterval: time.Hour})
	checkOK(t, res)
	if res.Regions[0].Skipped || res.Regions[0].Uploaded != 1 {
		t.Errorf("the next scheduled push: %+v", res.Regions[0])
	}
	if !f.syncOf(c).SyncedWith(c, f.generation()) {
		t.Error("the full scheduled push did not claim")
	}
}
