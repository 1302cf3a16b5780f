package db_test

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

func TestOriginGenerationAndScopedReads(t *testing.T) {
	ctx := context.Background()
	d, _ := testenv.NewDB(t)
	s0, err := d.OriginState(ctx)
	if err != nil || s0.Generation != 0 || s0.FullInventoryAt != nil {
		t.Fatalf("fresh origin state %+v, %v", s0, err)
	}
	// "a_b" and "a%b" must not match "a/b"'s range, nor "a.b" (sorts between "a" and "a/"
	// in some collations) nor "a/b0".
	paths := []string{"a/b/x.rpm", "a/b/sub/y.rpm", "a/b0/z.rpm", "a/bc/w.rpm", "a_b/v.rpm", "a.b/u.rpm", "a/b.rpm"}
	var up []model.File
	for _, p := range paths {
		up = append(up, file(p, p))
	}
	res, err := d.ApplyInventory(ctx, db.InventoryChanges{Upsert: up})
	if err != nil || res.Generation != 1 {
		t.Fatalf("first inventory: %+v, %v", res, err)
	}
	// Nothing changed: no generation.
	if res, err = d.ApplyInventory(ctx, db.InventoryChanges{Upsert: up[:1], Scope: []string{"a/b"}}); err != nil || res.Generation != 0 {
		t.Fatalf("no-op inventory: %+v, %v", res, err)
	}
	under, err := d.ListFilesUnder(ctx, []string{"a/b"}, false)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range under {
		got = append(got, f.Path)
	}
	if want := []string{"a/b/sub/y.rpm", "a/b/x.rpm"}; !slices.Equal(got, want) {
		t.Fatalf("files under a/b: %v, want %v", got, want)
	}
	if res, err = d.ApplyInventory(ctx, db.InventoryChanges{Deleted: []string{"a/b/x.rpm"}, Scope: []string{"a/b"}}); err != nil || res.Generation != 2 {
		t.Fatalf("scoped delete: %+v, %v", res, err)
	}
	repo := &model.Repository{Name: "r", Arch: "x86_64", Directory: "a/bc"}
	if err := d.CreateRepository(ctx, repo); err != nil {
		t.Fatal(err)
	}
	changes, err := d.OriginChanges(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var scopes [][]string
	for _, c := range changes {
		scopes = append(scopes, c.Scope)
	}
	if len(scopes) != 3 || !slices.Equal(scopes[0], []string{""}) || !slices.Equal(scopes[1], []string{"a/b"}) || !slices.Equal(scopes[2], []string{"a/bc"}) {
		t.Fatalf("changes %v", scopes)
	}
	start, err := d.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.MarkFullInventory(ctx, start, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.MarkFullInventory(ctx, start.Add(-time.Hour), 0); err != nil { // an older walk that finished later
		t.Fatal(err)
	}
	if s, err := d.OriginState(ctx); err != nil || s.Generation != 3 || s.FullInventoryAt == nil || !s.FullInventoryAt.Equal(start) {
		t.Fatalf("origin state %+v, %v", s, err)
	}
}

func TestRegionSyncIsRefusedAfterAnInvalidation(t *testing.T) {
	ctx := context.Background()
	d, _ := testenv.NewDB(t)
	r := sampleRegion("sync-1")
	r.Netblocks = nil
	if err := r.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateRegion(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Upsert: []model.File{file("p/a.rpm", "a")}}); err != nil {
		t.Fatal(err)
	}
	f, err := d.GetFile(ctx, "p/a.rpm")
	if err != nil {
		t.Fatal(err)
	}
	s, err := d.RegionSyncOf(ctx, r.ID)
	if err != nil || s.Epoch != 0 || s.SyncedWith(r, 1) {
		t.Fatalf("fresh sync %+v, %v", s, err)
	}
	// A scan finds the copy missing while a push runs: the push's record is refused.
	if err := d.RecordObjects(ctx, db.NoFence, r.ID, []db.ObjectUpdate{{FileID: f.ID, Size: f.Size, SHA256: f.SHA256, State: model.ObjectMissing, Verified: true}}); err != nil {
		t.Fatal(err)
	}
	if ok, err := d.MarkRegionSynced(ctx, db.NoFence, r.ID, s.Epoch, 1, r.UpdatedAt); err != nil || ok {
		t.Fatalf("synced over an invalidation: %v, %v", ok, err)
	}
	s, _ = d.RegionSyncOf(ctx, r.ID)
	if ok, err := d.MarkRegionSynced(ctx, db.NoFence, r.ID, s.Epoch, 1, r.UpdatedAt); err != nil || !ok {
		t.Fatalf("sync refused: %v, %v", ok, err)
	}
	// Recording copies present does not invalidate; a purge does.
	if err := d.RecordObjects(ctx, db.NoFence, r.ID, []db.ObjectUpdate{{FileID: f.ID, Size: f.Size, SHA256: f.SHA256, State: model.ObjectPresent, Verified: true}}); err != nil {
		t.Fatal(err)
	}
	syncs, err := d.RegionSyncs(ctx)
	if err != nil || !syncs[r.ID].SyncedWith(r, 1) {
		t.Fatalf("present copy invalidated the sync: %+v, %v", syncs[r.ID], err)
	}
	// A repository read back stale (a scan through the public URL) is work for a push.
	repo := &model.Repository{Name: "r", Arch: "x86_64", Directory: "p"}
	if err := d.CreateRepository(ctx, repo); err != nil {
		t.Fatal(err)
	}
	s, _ = d.RegionSyncOf(ctx, r.ID)
	if ok, err := d.MarkRegionSynced(ctx, db.NoFence, r.ID, s.Epoch, 2, r.UpdatedAt); err != nil || !ok {
		t.Fatalf("sync refused: %v, %v", ok, err)
	}
	if err := d.SetRegionRepo(ctx, db.NoFence, model.RegionRepo{RegionID: r.ID, RepositoryID: repo.ID, State: model.RepoUnreachable}); err != nil {
		t.Fatal(err)
	}
	if s, _ := d.RegionSyncOf(ctx, r.ID); s.SyncedWith(r, 2) {
		t.Fatalf("synced after its repository was found unreachable: %+v", s)
	}
	s, _ = d.RegionSyncOf(ctx, r.ID)
	if ok, err := d.MarkRegionSynced(ctx, db.NoFence, r.ID, s.Epoch, 2, r.UpdatedAt); err != nil || !ok {
		t.Fatalf("sync refused: %v, %v", ok, err)
	}
	if n, err := d.ForgetObject(ctx, "p/a.rpm", 0); err != nil || n != 1 {
		t.Fatalf("forget: %d, %v", n, err)
	}
	if s, _ := d.RegionSyncOf(ctx, r.ID); s.SyncedWith(r, 2) {
		t.Fatalf("synced after a purge: %+v", s)
	}
}

func TestWatchCoverageNeedsALiveLockHolder(t *testing.T) {
	ctx := context.Background()
	d, _ := testenv.NewDB(t)
	w, err := d.RegisterWatcher(ctx, "/srv/origin", "host", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	since, _ := d.Now(ctx)
	if err := w.Beat(ctx, &since, 2); err != nil {
		t.Fatal(err)
	}
	cov, err := d.WatchCoverage(ctx, "/srv/origin", time.Minute)
	if err != nil || cov.Watchers != 1 || cov.Since == nil || !cov.Since.Equal(since) || cov.Pending != 2 {
		t.Fatalf("coverage %+v, %v", cov, err)
	}
	if cov, _ := d.WatchCoverage(ctx, "/srv/other", time.Minute); cov.Watchers != 0 {
		t.Fatalf("another root is covered: %+v", cov)
	}
	// The record stays but the lock is gone (as when the process dies): not live.
	w.Release()
	if cov, _ := d.WatchCoverage(ctx, "/srv/origin", time.Minute); cov.Watchers != 0 || cov.Since != nil {
		t.Fatalf("dead watcher covers: %+v", cov)
	}
}
