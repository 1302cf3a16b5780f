package db_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

// regionWithCopy is a region holding one verified copy of one file, and a repository state.
func regionWithCopy(t *testing.T, d *db.DB, name string) (*model.Region, model.File) {
	t.Helper()
	ctx := context.Background()
	r := sampleRegion(name)
	if err := d.CreateRegion(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Upsert: []model.File{file("fedora/a.rpm", "a")}}); err != nil {
		t.Fatal(err)
	}
	f, err := d.GetFile(ctx, "fedora/a.rpm")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.RecordObjects(ctx, db.NoFence, r.ID, []db.ObjectUpdate{{FileID: f.ID, Size: f.Size, SHA256: f.SHA256, State: model.ObjectPresent, Pushed: true, Verified: true}}); err != nil {
		t.Fatal(err)
	}
	repo := &model.Repository{Name: "fedora-40", Arch: "x86_64", Directory: "fedora"}
	if err := d.CreateRepository(ctx, repo); err != nil {
		t.Fatal(err)
	}
	if err := d.SetRegionRepo(ctx, db.NoFence, model.RegionRepo{RegionID: r.ID, RepositoryID: repo.ID, State: model.RepoMissing}); err != nil {
		t.Fatal(err)
	}
	return r, *f
}

func present(f model.File) []db.ObjectUpdate {
	return []db.ObjectUpdate{{FileID: f.ID, Size: f.Size, SHA256: f.SHA256, State: model.ObjectPresent, Verified: true}}
}

// holderPID is the backend holding an advisory lock of this database, found as an
// operator would find it.
func holderPID(t *testing.T, url string) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var pid int
	if err := conn.QueryRow(context.Background(), `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) LIMIT 1`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	return pid
}

// waitUnlocked waits until no advisory lock of this database is held: a terminated
// backend takes a moment to exit.
func waitUnlocked(t *testing.T, url string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for range 500 {
		var n int
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the terminated session still holds its lock after 5 s")
}

func terminate(t *testing.T, url string, pid int) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var ok bool
	if err := conn.QueryRow(context.Background(), "SELECT pg_terminate_backend($1)", pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminate %d: %v %v", pid, ok, err)
	}
}

// A lock whose connection is cut is noticed, the run's context ends with the loss as
// cause, and nothing can be recorded under it any more (issue 12, defect 2: Lock.Alive was
// never called, so a push went on and reported ok).
func TestHeldNoticesLostConnectionAndFences(t *testing.T) {
	ctx := context.Background()
	d, url := testenv.NewDB(t)
	r, f := regionWithCopy(t, d, "eu-west-1")
	h, err := d.Hold(ctx, db.WriteLock(r.Name))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	if err := d.RecordObjects(ctx, h.Fence(), r.ID, present(f)); err != nil {
		t.Fatalf("write under a held lock: %v", err)
	}
	terminate(t, url, holderPID(t, url))
	waitUnlocked(t, url)
	// Once the session is gone, the fence refuses whether or not the keeper noticed yet.
	if err := d.RecordObjects(ctx, h.Fence(), r.ID, present(f)); !errors.Is(err, db.ErrLockLost) {
		t.Fatalf("write after the lock's session died = %v, want ErrLockLost", err)
	}
	select {
	case <-h.Context().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the loss was not noticed within 5 s")
	}
	if !errors.Is(context.Cause(h.Context()), db.ErrLockLost) || !errors.Is(h.Err(), db.ErrLockLost) || !errors.Is(h.Check(ctx), db.ErrLockLost) {
		t.Errorf("cause %v, Err %v", context.Cause(h.Context()), h.Err())
	}
	for name, err := range map[string]error{
		"SetRegionRepo": d.SetRegionRepo(ctx, h.Fence(), model.RegionRepo{RegionID: r.ID, RepositoryID: 1, State: model.RepoFresh}),
	} {
		if !errors.Is(err, db.ErrLockLost) {
			t.Errorf("%s after the loss = %v", name, err)
		}
	}
	if _, err := d.MarkExpiredDeleting(ctx, h.Fence(), r.ID, []db.GCMark{{FileID: f.ID, DeletedAt: time.Now()}}, 0); !errors.Is(err, db.ErrLockLost) {
		t.Errorf("MarkExpiredDeleting after the loss = %v", err)
	}
	if _, err := d.ForgetDeletingCopies(ctx, h.Fence(), r.ID, []int64{f.ID}); !errors.Is(err, db.ErrLockLost) {
		t.Errorf("ForgetDeletingCopies after the loss = %v", err)
	}
	objs, _ := d.RegionObjects(ctx, r.ID)
	if len(objs) != 1 || objs[0].State != model.ObjectPresent {
		t.Errorf("a fenced write changed the records: %+v", objs)
	}
}

// Someone who takes the lock after the first holder's session died fences the first
// holder off, even if it never noticed; its own writes go through.
func TestFenceRefusesTheHolderBeforeATakeover(t *testing.T) {
	ctx := context.Background()
	d, url := testenv.NewDB(t)
	r, f := regionWithCopy(t, d, "eu-west-2")
	first, err := d.Hold(ctx, db.WriteLock(r.Name))
	if err != nil {
		t.Fatal(err)
	}
	defer first.Release()
	if _, err := d.Hold(ctx, db.WriteLock(r.Name)); !errors.Is(err, db.ErrLocked) {
		t.Fatalf("second holder while the first holds: %v", err)
	}
	terminate(t, url, holderPID(t, url))
	waitUnlocked(t, url)
	second, err := d.Hold(ctx, db.WriteLock(r.Name))
	if err != nil {
		t.Fatalf("take over: %v", err)
	}
	defer second.Release()
	if err := d.RecordObjects(ctx, first.Fence(), r.ID, present(f)); !errors.Is(err, db.ErrLockLost) {
		t.Errorf("old holder's write = %v, want ErrLockLost", err)
	}
	if err := d.RecordObjects(ctx, second.Fence(), r.ID, present(f)); err != nil {
		t.Errorf("new holder's write: %v", err)
	}
}

// The keeper uses the connection, so a server's idle_session_timeout (or a proxy cutting
// idle connections) never takes the lock away from a run that is busy elsewhere.
func TestHeldSurvivesIdleSessionTimeout(t *testing.T) {
	ctx := context.Background()
	_, url := testenv.NewDB(t)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	d, err := db.Open(ctx, url+sep+"options=-c%20idle_session_timeout%3D1500", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	h, err := d.Hold(ctx, db.WriteLock("ap-south-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	time.Sleep(3500 * time.Millisecond)
	if err := h.Check(ctx); err != nil {
		t.Fatalf("lock lost to the idle timeout: %v", err)
	}
}

// Moving a region (issue 12, defect 6) forgets what was verified at the old place in the
// same transaction, and fences off a push still writing there; other edits keep the records.
func TestRegionMoveForgetsCopiesAndFencesItsWriter(t *testing.T) {
	ctx := context.Background()
	d, _ := testenv.NewDB(t)
	r, f := regionWithCopy(t, d, "us-east-2")
	h, err := d.Hold(ctx, db.WriteLock(r.Name))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	_, move, err := d.UpdateRegion(ctx, r.Name, func(r *model.Region) error { r.Weight = 5; return nil })
	if err != nil || move.Moved {
		t.Fatalf("weight edit: %+v %v", move, err)
	}
	if objs, _ := d.RegionObjects(ctx, r.ID); len(objs) != 1 {
		t.Fatalf("a weight edit forgot copies: %+v", objs)
	}
	for _, edit := range []func(*model.Region){
		func(r *model.Region) { r.PublicURL = "http://127.0.0.2:9000/" + r.Bucket },
		func(r *model.Region) { r.Bucket = "other-bucket" },
		func(r *model.Region) { r.Endpoint = "http://127.0.0.3:9000" },
		func(r *model.Region) { r.Prefix = "mirror" },
	} {
		if err := d.RecordObjects(ctx, db.NoFence, r.ID, present(f)); err != nil {
			t.Fatal(err)
		}
		_, move, err := d.UpdateRegion(ctx, r.Name, func(r *model.Region) error { edit(r); return r.Normalize() })
		if err != nil || !move.Moved || move.Copies != 1 {
			t.Fatalf("move: %+v %v", move, err)
		}
		if objs, _ := d.RegionObjects(ctx, r.ID); len(objs) != 0 {
			t.Errorf("copies survive the move: %+v", objs)
		}
	}
	if rr, _ := d.RegionRepos(ctx); len(rr) != 0 {
		t.Errorf("repository states survive the move: %+v", rr)
	}
	if err := d.RecordObjects(ctx, h.Fence(), r.ID, present(f)); !errors.Is(err, db.ErrLockLost) {
		t.Errorf("a push of the old place could still record: %v", err)
	}
}

// db.NoFence exists for tests' setup only: production code records under a held lock.
func TestNoFenceOnlyInTests(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() && (strings.HasPrefix(e.Name(), ".") || e.Name() == "testdata") {
			return filepath.SkipDir
		}
		if e.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") || strings.HasSuffix(p, filepath.Join("db", "held.go")) {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.Contains(string(src), "NoFence") {
			t.Errorf("%s writes without a lock's fence (db.NoFence)", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TakeOut never takes away the last region serving a repository while others that carry
// it are out; a region alone may always be taken out.
func TestTakeOutKeepsTheLastServingRegion(t *testing.T) {
	ctx := context.Background()
	d, _ := testenv.NewDB(t)
	repo := &model.Repository{Name: "r", Arch: "x86_64", Directory: "r"}
	if err := d.CreateRepository(ctx, repo); err != nil {
		t.Fatal(err)
	}
	var regions []*model.Region
	for _, n := range []string{"eu-1", "eu-2", "eu-3"} {
		r := sampleRegion(n)
		r.Aliases = []string{n + "-x"}
		if err := d.CreateRegion(ctx, r); err != nil {
			t.Fatal(err)
		}
		regions = append(regions, r)
	}
	set := func(r *model.Region, state string) {
		if err := d.SetRegionRepo(ctx, db.NoFence, model.RegionRepo{RegionID: r.ID, RepositoryID: repo.ID, State: state}); err != nil {
			t.Fatal(err)
		}
	}
	takeOut := func(r *model.Region) bool {
		taken, err := d.TakeOut(ctx, db.NoFence, model.RegionRepo{RegionID: r.ID, RepositoryID: repo.ID, Error: "being rewritten in place"})
		if err != nil {
			t.Fatal(err)
		}
		return taken
	}
	set(regions[0], model.RepoFresh)
	if !takeOut(regions[0]) {
		t.Error("a region alone must be taken out")
	}
	set(regions[0], model.RepoStale)
	set(regions[1], model.RepoFresh)
	set(regions[2], model.RepoAlternate)
	if !takeOut(regions[1]) {
		t.Error("eu-2 refused while eu-3 serves")
	}
	if takeOut(regions[2]) {
		t.Error("eu-3, the last serving region, was taken out")
	}
	states, _ := d.RegionRepos(ctx)
	for _, s := range states {
		if s.RegionID == regions[2].ID && s.State != model.RepoAlternate {
			t.Errorf("eu-3 is %s", s.State)
		}
	}
}

// A run that read the region before a move, and locks it after, is refused: it would push
// or verify the old place and record it for the new one (found by review: the move's
// generation bump came before the run's Hold, so its fence held).
func TestBeginRegionRunRefusesARegionMovedSinceRead(t *testing.T) {
	ctx := context.Background()
	d, _ := testenv.NewDB(t)
	r, _ := regionWithCopy(t, d, "eu-south-2")
	stale := *r
	if _, _, err := d.UpdateRegion(ctx, r.Name, func(m *model.Region) error { m.PublicURL = "http://127.0.0.9:9000/x"; return m.Normalize() }); err != nil {
		t.Fatal(err)
	}
	if _, err := d.BeginRegionRun(ctx, model.RunPush, &stale); !errors.Is(err, db.ErrRegionChanged) {
		t.Fatalf("run of the region as read before the move: %v", err)
	}
	cur, _ := d.GetRegion(ctx, r.Name)
	run, err := d.BeginRegionRun(ctx, model.RunPush, cur)
	if err != nil {
		t.Fatalf("run of the region as it is: %v", err)
	}
	if err := run.Finish(ctx, nil); err != nil {
		t.Fatal(err)
	}
}
