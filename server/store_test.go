package server

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/localpg"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
	"github.com/regionmirror/regionmirror/server/selection"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func dbFile(path, content string) model.File {
	s := sha256.Sum256([]byte(content))
	m := md5.Sum([]byte(content))
	return model.File{Path: path, Size: int64(len(content)), SHA256: s[:], MD5: m[:], Mtime: time.Unix(1700000000, 0)}
}

func createRegion(t *testing.T, d *db.DB, name string) *model.Region {
	t.Helper()
	r := &model.Region{Name: name, Kind: model.KindS3, Bucket: "bucket-" + name, PublicURL: "https://" + name + ".example", Weight: 100, Enabled: true}
	if err := r.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateRegion(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestStoreFollowsNotifications: the snapshot follows the database through LISTEN/NOTIFY,
// per-file data included, without any request touching the database.
func TestStoreFollowsNotifications(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, _ := testenv.NewDB(t)
	a := createRegion(t, d, "eu-a")
	store := NewStore(d, StoreOptions{LoadFiles: true, Debounce: 20 * time.Millisecond, Interval: time.Hour, FilesMinInterval: 50 * time.Millisecond})
	go store.Run(ctx)
	waitFor(t, "the first snapshot", func() bool { s := store.Snapshot(); return s != nil && s.Files != nil })
	if st := store.Status(); !st.Ready || st.DBError != "" {
		t.Errorf("status %+v", st)
	}

	createRegion(t, d, "eu-b")
	waitFor(t, "the new region", func() bool { return store.Snapshot().Region("eu-b") != nil })

	f := dbFile("demo/Packages/libc++-1.rpm", "x")
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Upsert: []model.File{f}}); err != nil {
		t.Fatal(err)
	}
	got, _ := d.GetFile(ctx, f.Path)
	if err := d.RecordObjects(ctx, db.NoFence, a.ID, []db.ObjectUpdate{{FileID: got.ID, Size: f.Size, SHA256: f.SHA256, State: model.ObjectPresent, Verified: true}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the verified file", func() bool {
		dec := selection.SelectFile(store.Snapshot(), f.Path, selection.Request{Now: time.Now()})
		return len(dec.Chosen) == 1 && dec.Chosen[0].Region.Name == "eu-a"
	})
	dec := selection.SelectFile(store.Snapshot(), f.Path, selection.Request{Now: time.Now()})
	if len(dec.Excluded) != 1 || dec.Excluded[0].Reason != "holds no verified copy of the file" {
		t.Errorf("excluded %+v", dec.Excluded)
	}
	if u := dec.Chosen[0].Region.URL(f.Path); u != "https://eu-a.example/demo/Packages/libc%2B%2B-1.rpm" {
		t.Errorf("URL %s", u)
	}
	if dec := selection.SelectFile(store.Snapshot(), "demo/nope.rpm", selection.Request{}); len(dec.Chosen) != 0 || dec.Excluded[0].Reason != "the origin has no such file" {
		t.Errorf("unknown file: %+v", dec.Excluded)
	}
}

// TestStoreSurvivesDatabaseOutage: with the database down the last snapshot keeps serving
// and /readyz says so; when it returns, rebuilds resume.
func TestStoreSurvivesDatabaseOutage(t *testing.T) {
	ctx := context.Background()
	pg, err := localpg.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	d, err := db.Open(ctx, pg.URL("postgres"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	createRegion(t, d, "eu-a")
	store := NewStore(d, StoreOptions{LoadFiles: true})
	if err := store.Refresh(ctx, true); err != nil {
		t.Fatal(err)
	}
	srv := New(Options{Store: store})

	pg.Stop()
	if err := store.Refresh(ctx, true); err == nil {
		t.Fatal("refresh with the database down succeeded")
	}
	if store.Snapshot() == nil || store.Snapshot().Region("eu-a") == nil {
		t.Fatal("the last snapshot was dropped")
	}
	res, body := get(t, srv, "/readyz")
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(body, "degraded: database unreachable since") {
		t.Errorf("readyz during the outage: %d %q", res.StatusCode, body)
	}

	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := store.Refresh(ctx, true); err != nil {
		t.Fatalf("refresh after the outage: %v", err)
	}
	if res, body := get(t, srv, "/readyz"); res.StatusCode != http.StatusOK || !strings.HasPrefix(body, "ok") {
		t.Errorf("readyz after the outage: %d %q", res.StatusCode, body)
	}
}

// TestStoreUpdatesFiles: the per-file data follows the database by updates, not full
// reads: files added past the index's capacity, a purged file, and the same path pushed
// again as a new file. Every snapshot's lookups agree with the database.
func TestStoreUpdatesFiles(t *testing.T) {
	ctx := context.Background()
	d, _ := testenv.NewDB(t)
	a := createRegion(t, d, "eu-a")
	var loads []string
	store := NewStore(d, StoreOptions{LoadFiles: true, OnBuild: func(kind string, _ time.Duration, err error) {
		if err != nil {
			t.Errorf("%s build: %v", kind, err)
		}
		loads = append(loads, kind)
	}})
	verify := func(files ...model.File) {
		t.Helper()
		var ups []db.ObjectUpdate
		for _, f := range files {
			got, err := d.GetFile(ctx, f.Path)
			if err != nil {
				t.Fatal(err)
			}
			ups = append(ups, db.ObjectUpdate{FileID: got.ID, Size: f.Size, SHA256: f.SHA256, State: model.ObjectPresent, Verified: true})
		}
		if err := d.RecordObjects(ctx, db.NoFence, a.ID, ups); err != nil {
			t.Fatal(err)
		}
	}
	served := func(path string) bool {
		dec := selection.SelectFile(store.Snapshot(), path, selection.Request{Now: time.Now()})
		return len(dec.Chosen) == 1 && dec.Chosen[0].Region == store.Snapshot().Region("eu-a")
	}
	first := dbFile("pub/first.rpm", "1")
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Upsert: []model.File{first}}); err != nil {
		t.Fatal(err)
	}
	verify(first)
	if err := store.Refresh(ctx, true); err != nil {
		t.Fatal(err)
	}
	old := store.Snapshot()
	var more []model.File
	for i := range 50 {
		more = append(more, dbFile(fmt.Sprintf("pub/%d/more.rpm", i), fmt.Sprint(i)))
	}
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Upsert: more, Deleted: []string{first.Path}}); err != nil {
		t.Fatal(err)
	}
	verify(more...)
	if _, err := d.ForgetObject(ctx, first.Path, 0); err != nil {
		t.Fatal(err)
	}
	if n, err := d.PurgeFiles(ctx, []int64{mustFileID(t, d, first.Path)}); err != nil || n != 1 {
		t.Fatalf("purge: %d %v", n, err)
	}
	if err := store.Refresh(ctx, true); err != nil {
		t.Fatal(err)
	}
	if served(first.Path) || !served("pub/49/more.rpm") || store.Snapshot().Files.Len() != 50 {
		t.Errorf("after the update: first served %v, more served %v, %d files", served(first.Path), served("pub/49/more.rpm"), store.Snapshot().Files.Len())
	}
	// The old snapshot is untouched by the update.
	if dec := selection.SelectFile(old, first.Path, selection.Request{Now: time.Now()}); len(dec.Chosen) != 1 || old.Files.Len() != 1 {
		t.Errorf("the previous snapshot changed: %+v, %d files", dec.Chosen, old.Files.Len())
	}
	again := dbFile(first.Path, "pushed again")
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Upsert: []model.File{again}}); err != nil {
		t.Fatal(err)
	}
	verify(again)
	if err := store.Refresh(ctx, true); err != nil {
		t.Fatal(err)
	}
	idx, ok := store.Snapshot().Files.Lookup(first.Path)
	if !ok || !served(first.Path) || store.Snapshot().Files.Table().Size(idx) != again.Size {
		t.Errorf("the path pushed again: found %v, served %v", ok, served(first.Path))
	}
	if want := []string{"files", "snapshot", "files_update", "snapshot", "files_update", "snapshot"}; !slices.Equal(loads, want) {
		t.Errorf("builds %q, want %q (one full read, then updates)", loads, want)
	}
	// Once a tenth of the table is purged files, the next build reads it whole, without them.
	var gone []string
	var ids []int64
	for _, f := range more[:10] {
		gone = append(gone, f.Path)
		ids = append(ids, mustFileID(t, d, f.Path))
		if _, err := d.ForgetObject(ctx, f.Path, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Deleted: gone}); err != nil {
		t.Fatal(err)
	}
	if n, err := d.PurgeFiles(ctx, ids); err != nil || n != 10 {
		t.Fatalf("purge: %d %v", n, err)
	}
	loads = nil
	for range 2 {
		if err := store.Refresh(ctx, true); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"files_update", "snapshot", "files", "snapshot"}; !slices.Equal(loads, want) {
		t.Errorf("builds %q, want %q (the purge applied, then a full read)", loads, want)
	}
	if tab := store.Snapshot().Files.Table(); tab.Len() != 41 || tab.Gone.Count() != 0 || !served(first.Path) {
		t.Errorf("after the full read: %d files, %d purged, first served %v", tab.Len(), tab.Gone.Count(), served(first.Path))
	}
}

// pushedFile adds a file to the inventory and records its copy in a region as verified.
func pushedFile(t *testing.T, d *db.DB, regionID int64, path, content string) model.File {
	t.Helper()
	ctx := context.Background()
	f := dbFile(path, content)
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Upsert: []model.File{f}}); err != nil {
		t.Fatal(err)
	}
	if err := d.RecordObjects(ctx, db.NoFence, regionID, []db.ObjectUpdate{{FileID: mustFileID(t, d, path), Size: f.Size, SHA256: f.SHA256, State: model.ObjectPresent, Verified: true}}); err != nil {
		t.Fatal(err)
	}
	return f
}

func mustFileID(t *testing.T, d *db.DB, path string) int64 {
	t.Helper()
	f, err := d.GetFile(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return f.ID
}

// TestStoreReconciles: a change written around change tracking (triggers disabled) is not
// seen by updates, and is corrected by the periodic reconciling read.
func TestStoreReconciles(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, url := testenv.NewDB(t)
	a := createRegion(t, d, "eu-a")
	f := pushedFile(t, d, a.ID, "pub/a.rpm", "a")
	var reconciled atomic.Int32
	store := NewStore(d, StoreOptions{LoadFiles: true, Interval: 50 * time.Millisecond, FilesMaxAge: 300 * time.Millisecond, FilesMinInterval: 10 * time.Millisecond,
		OnBuild: func(kind string, _ time.Duration, _ error) {
			if kind == "files_reconcile" {
				reconciled.Add(1)
			}
		}})
	served := func() bool {
		return len(selection.SelectFile(store.Snapshot(), f.Path, selection.Request{Now: time.Now()}).Chosen) == 1
	}
	if err := store.Refresh(ctx, true); err != nil || !served() {
		t.Fatalf("first read: %v, served %v", err, served())
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SET session_replication_role = replica; UPDATE region_objects SET state = 'missing'"); err != nil {
		t.Fatal(err)
	}
	if err := store.Refresh(ctx, true); err != nil || !served() {
		t.Fatalf("an update saw the untracked change: %v, served %v", err, served())
	}
	go store.Run(ctx)
	waitFor(t, "the reconciling read", func() bool { return reconciled.Load() > 0 && !served() })
}

// TestStoreTableFile: a store writes its table file after a full read; the next store
// starts from it and an update instead of a full read, and serves the same; a damaged file
// or one of another database means a full read.
func TestStoreTableFile(t *testing.T) {
	ctx := context.Background()
	d, _ := testenv.NewDB(t)
	a := createRegion(t, d, "eu-a")
	f := pushedFile(t, d, a.ID, "pub/a.rpm", "a")
	path := filepath.Join(t.TempDir(), "files.table")
	start := func(d *db.DB) (*Store, []string) {
		t.Helper()
		var kinds []string
		s := NewStore(d, StoreOptions{LoadFiles: true, TableFile: path, OnBuild: func(kind string, _ time.Duration, err error) {
			if err != nil {
				t.Errorf("%s: %v", kind, err)
			}
			kinds = append(kinds, kind)
		}})
		if err := s.Refresh(ctx, true); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the table file write", func() bool { return !s.saving.Load() })
		return s, kinds
	}
	served := func(s *Store, p string) bool {
		return len(selection.SelectFile(s.Snapshot(), p, selection.Request{Now: time.Now()}).Chosen) == 1
	}
	if _, kinds := start(d); !slices.Equal(kinds, []string{"files", "snapshot"}) {
		t.Errorf("first start: %q", kinds)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no table file after a full read: %v", err)
	}
	// A change while no server runs: the next start reads the file and the change.
	g := pushedFile(t, d, a.ID, "pub/g.rpm", "g")
	s, kinds := start(d)
	if !slices.Equal(kinds, []string{"files_table_file", "snapshot"}) || !served(s, f.Path) || !served(s, g.Path) {
		t.Errorf("start from the table file: %q; served %v %v", kinds, served(s, f.Path), served(s, g.Path))
	}
	// Another database: the file is refused.
	other, _ := testenv.NewDB(t)
	if _, kinds := start(other); !slices.Equal(kinds, []string{"files", "snapshot"}) {
		t.Errorf("start against another database: %q", kinds)
	}
	// A damaged file: refused too.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0xff
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, kinds := start(d); !slices.Equal(kinds, []string{"files", "snapshot"}) || !served(s, g.Path) {
		t.Errorf("start from a damaged file: %q", kinds)
	}
}

// TestStoreNeverShowsMetadataAheadOfItsFiles: a push records a repository's new files,
// then flips the region to the repomd.xml that names them. A server answering /r/ for that
// region sends clients to those files only when its per-file data says they are verified
// there, so no snapshot may show the flip without the files: not when the per-file update
// is held back by FilesMinInterval, nor when the flip commits while the files are read.
func TestStoreNeverShowsMetadataAheadOfItsFiles(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, _ := testenv.NewDB(t)
	a := createRegion(t, d, "eu-a")
	repo := createDemoRepo(ctx, t, d)
	sum := func(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }
	version := func(s string) *model.RepomdVersion {
		m, s1, s5 := md5.Sum([]byte(s)), sha1.Sum([]byte(s)), sha512.Sum512([]byte(s))
		v := &model.RepomdVersion{RepositoryID: repo.ID, MD5: m[:], SHA1: s1[:], SHA256: sum(s), SHA512: s5[:], Size: int64(len(s)), Timestamp: 1}
		if _, err := d.RecordRepomdVersion(ctx, v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	version("repomd 0")
	store := NewStore(d, StoreOptions{LoadFiles: true, Debounce: 20 * time.Millisecond, Interval: time.Hour, FilesMinInterval: 2 * time.Second})
	var bad atomic.Int64
	var example atomic.Value
	store.onInstall(func(snap *selection.Snapshot) {
		r, rp := snap.Region("eu-a"), snap.Repository("demo-1", "x86_64")
		if r == nil || rp == nil || snap.Files == nil {
			return
		}
		st := rp.InRegion[r.Index]
		if st.State != model.RepoFresh || !bytes.Equal(st.SHA256, sum("repomd 1")) {
			return
		}
		idx, ok := snap.Files.Lookup("demo/repodata/new-primary.xml.gz")
		if !ok || !snap.Verified(r, idx) {
			bad.Add(1)
			example.Store(snap.Stats())
		}
	})
	go store.Run(ctx)
	waitFor(t, "the first snapshot", func() bool { s := store.Snapshot(); return s != nil && s.Files != nil })
	pushedFile(t, d, a.ID, "demo/Packages/a.rpm", "a")
	waitFor(t, "a per-file update", func() bool {
		s := store.Snapshot()
		idx, ok := s.Files.Lookup("demo/Packages/a.rpm")
		return ok && s.Verified(s.Region("eu-a"), idx)
	})
	// Just after a per-file update: the next one is held back for FilesMinInterval.
	pushedFile(t, d, a.ID, "demo/repodata/new-primary.xml.gz", "primary")
	v1 := version("repomd 1")
	if err := d.SetRegionRepo(ctx, db.NoFence, model.RegionRepo{RegionID: a.ID, RepositoryID: repo.ID, RepomdSHA256: v1.SHA256, State: model.RepoFresh, HTTPStatus: 200}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the flip and its files", func() bool {
		s := store.Snapshot()
		rp := s.Repository("demo-1", "x86_64")
		idx, ok := s.Files.Lookup("demo/repodata/new-primary.xml.gz")
		return ok && s.Verified(s.Region("eu-a"), idx) && rp.InRegion[s.Region("eu-a").Index].State == model.RepoFresh
	})
	if n := bad.Load(); n > 0 {
		t.Errorf("%d snapshots showed the region serving repomd 1 without its files verified (%v)", n, example.Load())
	}
}

// TestStoreNeverOffersAMovedRegionItsOldCopies: a region edit that moves a region forgets
// its copies in the same transaction. While the per-file data waits for its next read
// (FilesMinInterval), no snapshot may show the region at its new place with the copies
// verified at the old one: it stays at the old place until both are read.
func TestStoreNeverOffersAMovedRegionItsOldCopies(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, _ := testenv.NewDB(t)
	a := createRegion(t, d, "eu-a")
	store := NewStore(d, StoreOptions{LoadFiles: true, Debounce: 20 * time.Millisecond, Interval: time.Hour, FilesMinInterval: 2 * time.Second})
	const moved = "https://eu-a-new.example"
	var bad atomic.Int64
	store.onInstall(func(snap *selection.Snapshot) {
		r := snap.Region("eu-a")
		if r == nil || snap.Files == nil || !strings.HasPrefix(r.Base(), moved) {
			return
		}
		if idx, ok := snap.Files.Lookup("demo/Packages/a.rpm"); ok && snap.Verified(r, idx) {
			bad.Add(1)
		}
	})
	go store.Run(ctx)
	waitFor(t, "the first snapshot", func() bool { s := store.Snapshot(); return s != nil && s.Files != nil })
	pushedFile(t, d, a.ID, "demo/Packages/a.rpm", "a")
	waitFor(t, "a per-file update", func() bool {
		s := store.Snapshot()
		idx, ok := s.Files.Lookup("demo/Packages/a.rpm")
		return ok && s.Verified(s.Region("eu-a"), idx)
	})
	// Just after a per-file update: the next one is held back for FilesMinInterval.
	if _, _, err := d.UpdateRegion(ctx, "eu-a", func(r *model.Region) error { r.PublicURL = moved; return r.Normalize() }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the move and its forgotten copies", func() bool {
		s := store.Snapshot()
		r := s.Region("eu-a")
		idx, _ := s.Files.Lookup("demo/Packages/a.rpm")
		return strings.HasPrefix(r.Base(), moved) && !s.Verified(r, idx)
	})
	if n := bad.Load(); n > 0 {
		t.Errorf("%d snapshots offered eu-a at its new place with the copy verified at the old one", n)
	}
}

// TestStoreTakesARegionOutAtOnceWhileFilesWait: a push about to rewrite files in place takes
// the region's repository out (recorded stale) and waits push.announce_delay for the servers
// to read it, then overwrites; it brings the region back once the new repomd.xml is verified
// there, and only then takes out the next region. Per-file updates are rate-limited
// (FilesMinInterval, an hour here); a repository state change must not wait for that
// limit. Before, every old state was kept until the held per-file read: the taken-out region
// stayed offered (the soak saw a client of the old repomd.xml get rewritten repodata), and,
// once removals applied at once, a region brought back stayed out, so a push taking regions
// out one after another left none serving (503 metalinks).
func TestStoreTakesARegionOutAtOnceWhileFilesWait(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, _ := testenv.NewDB(t)
	a := createRegion(t, d, "eu-a")
	repo := createDemoRepo(ctx, t, d)
	version := func(s string) *model.RepomdVersion {
		m, s1, s2, s5 := md5.Sum([]byte(s)), sha1.Sum([]byte(s)), sha256.Sum256([]byte(s)), sha512.Sum512([]byte(s))
		v := &model.RepomdVersion{RepositoryID: repo.ID, MD5: m[:], SHA1: s1[:], SHA256: s2[:], SHA512: s5[:], Size: int64(len(s)), Timestamp: 1}
		if _, err := d.RecordRepomdVersion(ctx, v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	v0 := version("repomd 0")
	pushedFile(t, d, a.ID, "demo/repodata/primary.xml.gz", "primary")
	if err := d.SetRegionRepo(ctx, db.NoFence, model.RegionRepo{RegionID: a.ID, RepositoryID: repo.ID, RepomdSHA256: v0.SHA256, State: model.RepoFresh, HTTPStatus: 200}); err != nil {
		t.Fatal(err)
	}
	store := NewStore(d, StoreOptions{LoadFiles: true, Debounce: 20 * time.Millisecond, Interval: time.Hour, FilesMinInterval: time.Hour})
	go store.Run(ctx)
	offered := func(snap *selection.Snapshot, v *model.RepomdVersion) bool {
		r, rp := snap.Region("eu-a"), snap.Repository("demo-1", "x86_64")
		return r != nil && rp != nil && rp.InRegion[r.Index].State == model.RepoFresh && bytes.Equal(rp.InRegion[r.Index].SHA256, v.SHA256)
	}
	waitFor(t, "the region offered", func() bool { s := store.Snapshot(); return s != nil && s.Files != nil && offered(s, v0) })
	// The push's copies keep coming (per-file changes pending, held for the hour), and it
	// takes the region out.
	pushedFile(t, d, a.ID, "demo/Packages/b.rpm", "b")
	if _, err := d.TakeOut(ctx, db.NoFence, model.RegionRepo{RegionID: a.ID, RepositoryID: repo.ID, RepomdSHA256: v0.SHA256,
		State: model.RepoStale, HTTPStatus: 200, Error: "being rewritten in place"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the region taken out", func() bool { return !offered(store.Snapshot(), v0) })
	// The rewrite is verified: the region serves the new repomd.xml, and is offered again
	// with the files it names.
	pushedFile(t, d, a.ID, "demo/repodata/new-primary.xml.gz", "new primary")
	v1 := version("repomd 1")
	if err := d.SetRegionRepo(ctx, db.NoFence, model.RegionRepo{RegionID: a.ID, RepositoryID: repo.ID, RepomdSHA256: v1.SHA256, State: model.RepoFresh, HTTPStatus: 200}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the region back with the new repomd.xml", func() bool { return offered(store.Snapshot(), v1) })
	snap := store.Snapshot()
	if idx, ok := snap.Files.Lookup("demo/repodata/new-primary.xml.gz"); !ok || !snap.Verified(snap.Region("eu-a"), idx) {
		t.Fatal("the region is offered with a repomd.xml whose files the snapshot does not know it holds")
	}
}

// createDemoRepo registers the repository demo-1/x86_64 in the directory demo.
func createDemoRepo(ctx context.Context, t *testing.T, d *db.DB) *model.Repository {
	t.Helper()
	repo := &model.Repository{Name: "demo-1", Arch: "x86_64", Directory: "demo"}
	if err := repo.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateRepository(ctx, repo); err != nil {
		t.Fatal(err)
	}
	return repo
}
