package db_test

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

func file(path, content string) model.File {
	s := sha256.Sum256([]byte(content))
	m := md5.Sum([]byte(content))
	return model.File{Path: path, Size: int64(len(content)), SHA256: s[:], MD5: m[:], Mtime: time.Unix(1700000000, 0)}
}

func TestInventory(t *testing.T) {
	ctx := context.Background()
	d, _ := testenv.NewDB(t)
	res, err := d.ApplyInventory(ctx, db.InventoryChanges{Upsert: []model.File{file("a.rpm", "a"), file("b/c.rpm", "c")}})
	if err != nil || res.Added != 2 || res.Changed != 0 {
		t.Fatalf("first inventory: %+v %v", res, err)
	}
	// The same rows again change nothing.
	res, err = d.ApplyInventory(ctx, db.InventoryChanges{Upsert: []model.File{file("a.rpm", "a")}})
	if err != nil || res != (db.InventoryResult{}) {
		t.Fatalf("no-op inventory: %+v %v", res, err)
	}
	res, err = d.ApplyInventory(ctx, db.InventoryChanges{Upsert: []model.File{file("a.rpm", "a2")}, Deleted: []string{"b/c.rpm", "never/was"}})
	if err != nil || res.Changed != 1 || res.Deleted != 1 {
		t.Fatalf("change and delete: %+v %v", res, err)
	}
	live, _ := d.ListFiles(ctx, false)
	all, _ := d.ListFiles(ctx, true)
	if len(live) != 1 || len(all) != 2 || live[0].Size != 2 {
		t.Fatalf("live %v all %v", live, all)
	}
	deleted, err := d.GetFile(ctx, "b/c.rpm")
	if err != nil || deleted.DeletedAt == nil {
		t.Fatalf("deleted file: %+v %v", deleted, err)
	}
	if exp, _ := d.ExpiredFiles(ctx, time.Hour); len(exp) != 0 {
		t.Errorf("expired within grace: %v", exp)
	}
	if exp, _ := d.ExpiredFiles(ctx, 0); len(exp) != 1 {
		t.Errorf("expired with zero grace: %v", exp)
	}
	// A deleted file that comes back is live again.
	res, err = d.ApplyInventory(ctx, db.InventoryChanges{Upsert: []model.File{file("b/c.rpm", "c")}})
	if err != nil || res.Changed != 1 {
		t.Fatalf("undelete: %+v %v", res, err)
	}
	if f, _ := d.GetFile(ctx, "b/c.rpm"); f.DeletedAt != nil {
		t.Error("reappeared file still deleted")
	}
	if _, err := d.GetFile(ctx, "nope"); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("GetFile(unknown) = %v", err)
	}
}

func TestObjectsRepomdRegionReposRunsHealth(t *testing.T) {
	ctx := context.Background()
	d, _ := testenv.NewDB(t)
	r := sampleRegion("us-west-2")
	if err := d.CreateRegion(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Upsert: []model.File{file("x/a.rpm", "a")}}); err != nil {
		t.Fatal(err)
	}
	f, _ := d.GetFile(ctx, "x/a.rpm")
	if err := d.RecordObjects(ctx, db.NoFence, r.ID, []db.ObjectUpdate{{FileID: f.ID, Size: f.Size, SHA256: f.SHA256, State: model.ObjectPresent, Pushed: true, Verified: true}}); err != nil {
		t.Fatal(err)
	}
	objs, err := d.RegionObjects(ctx, r.ID)
	if err != nil || len(objs) != 1 || objs[0].Path != "x/a.rpm" || objs[0].VerifiedAt == nil || objs[0].PushedAt == nil {
		t.Fatalf("objects: %+v %v", objs, err)
	}
	// A scan finding it missing keeps pushed_at.
	if err := d.RecordObjects(ctx, db.NoFence, r.ID, []db.ObjectUpdate{{FileID: f.ID, Size: f.Size, SHA256: f.SHA256, State: model.ObjectMissing, Verified: true}}); err != nil {
		t.Fatal(err)
	}
	objs, _ = d.RegionObjects(ctx, r.ID)
	if objs[0].State != model.ObjectMissing || objs[0].PushedAt == nil {
		t.Errorf("after scan: %+v", objs[0])
	}
	if n, err := d.ForgetObject(ctx, "x/a.rpm", r.ID); err != nil || n != 1 {
		t.Errorf("forget: %d %v", n, err)
	}

	repo := &model.Repository{Name: "demo-1", Arch: "x86_64", Directory: "demo"}
	if err := d.CreateRepository(ctx, repo); err != nil {
		t.Fatal(err)
	}
	v1 := &model.RepomdVersion{RepositoryID: repo.ID, MD5: make([]byte, 16), SHA1: make([]byte, 20), SHA256: []byte(strings.Repeat("1", 32)), SHA512: make([]byte, 64), Size: 10, Timestamp: 100}
	v2 := *v1
	v2.SHA256, v2.Timestamp = []byte(strings.Repeat("2", 32)), 200
	for i, v := range []*model.RepomdVersion{v1, v1, &v2, v1} {
		changed, err := d.RecordRepomdVersion(ctx, v)
		if err != nil {
			t.Fatal(err)
		}
		if want := i != 1; changed != want {
			t.Errorf("record %d: changed = %v, want %v", i, changed, want)
		}
	}
	vs, err := d.RepomdVersions(ctx, repo.ID)
	if err != nil || len(vs) != 2 || vs[0].Timestamp != 100 {
		t.Fatalf("after going back to v1, v1 must be current: %+v %v", vs, err)
	}
	// Every reader gets the same superseded time: the newer version's first_seen.
	if !vs[0].SupersededAt.IsZero() || !vs[1].SupersededAt.Equal(vs[0].FirstSeen) {
		t.Errorf("superseded_at: current %v, older %v (want zero, %v)", vs[0].SupersededAt, vs[1].SupersededAt, vs[0].FirstSeen)
	}
	snap, err := d.LoadSnapshot(ctx)
	if err != nil || len(snap.RepomdVersions) != 2 || !snap.RepomdVersions[1].SupersededAt.Equal(vs[0].FirstSeen) {
		t.Fatalf("snapshot versions: %+v %v", snap, err)
	}

	if err := d.SetRegionRepo(ctx, db.NoFence, model.RegionRepo{RegionID: r.ID, RepositoryID: repo.ID, RepomdSHA256: v1.SHA256, State: model.RepoFresh, HTTPStatus: 200}); err != nil {
		t.Fatal(err)
	}
	rrs, err := d.RegionRepos(ctx)
	if err != nil || len(rrs) != 1 || rrs[0].State != model.RepoFresh || rrs[0].VerifiedAt == nil || rrs[0].HTTPStatus != 200 {
		t.Fatalf("region repos: %+v %v", rrs, err)
	}

	run, err := d.StartRun(ctx, model.RunPush, r)
	if err != nil {
		t.Fatal(err)
	}
	run.Files, run.Bytes, run.Counts["uploaded"] = 3, 300, 3
	if err := d.FinishRun(ctx, run, errors.New("s3 down")); err != nil {
		t.Fatal(err)
	}
	runs, err := d.RecentRuns(ctx, model.RunPush, 5)
	if err != nil || len(runs) != 1 || runs[0].Status != model.RunFailed || runs[0].Error != "s3 down" || runs[0].Counts["uploaded"] != 3 || runs[0].FinishedAt == nil {
		t.Fatalf("runs: %+v %v", runs, err)
	}
	// Runs outlive their region.
	if err := d.DeleteRegion(ctx, "us-west-2"); err != nil {
		t.Fatal(err)
	}
	if runs, _ := d.RecentRuns(ctx, "", 5); len(runs) != 1 || runs[0].RegionName != "us-west-2" || runs[0].RegionID != nil {
		t.Errorf("run after region removal: %+v", runs)
	}
}

func TestHealthHysteresis(t *testing.T) {
	ctx := context.Background()
	d, _ := testenv.NewDB(t)
	r := sampleRegion("eu-north-1")
	if err := d.CreateRegion(ctx, r); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		err  string
		want string
	}{
		{"", model.HealthUp},
		{"timeout", model.HealthUp}, {"timeout", model.HealthUp}, {"timeout", model.HealthDown},
		{"", model.HealthDown}, {"timeout", model.HealthDown}, {"", model.HealthDown}, {"", model.HealthUp},
	}
	for i, s := range steps {
		h, err := d.RecordProbe(ctx, r.ID, s.err, 3, 2)
		if err != nil {
			t.Fatal(err)
		}
		if h.State != s.want {
			t.Fatalf("step %d (%q): state %s, want %s", i, s.err, h.State, s.want)
		}
	}
	hs, err := d.RegionHealth(ctx)
	if err != nil || len(hs) != 1 || hs[0].LastError != "timeout" || hs[0].LastOKAt == nil {
		t.Fatalf("health: %+v %v", hs, err)
	}
}

func TestTryLock(t *testing.T) {
	ctx := context.Background()
	d, _ := testenv.NewDB(t)
	l, err := d.TryLock(ctx, "push/eu-west-1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.TryLock(ctx, "push/eu-west-1")
	var le *db.LockedError
	if !errors.As(err, &le) || !errors.Is(err, db.ErrLocked) || le.Holder.PID == 0 || le.Holder.Application != "regionmirror" {
		t.Fatalf("second lock: %v (%+v)", err, le)
	}
	other, err := d.TryLock(ctx, "push/eu-west-2")
	if err != nil {
		t.Fatalf("another name must not conflict: %v", err)
	}
	other.Release()
	l.Release()
	l2, err := d.TryLock(ctx, "push/eu-west-1")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	l2.Release()
}

func TestRecordObjectsLastUpdateWins(t *testing.T) {
	ctx := context.Background()
	d, _ := testenv.NewDB(t)
	r := sampleRegion("sa-east-1")
	if err := d.CreateRegion(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Upsert: []model.File{file("a", "a")}}); err != nil {
		t.Fatal(err)
	}
	f, _ := d.GetFile(ctx, "a")
	err := d.RecordObjects(ctx, db.NoFence, r.ID, []db.ObjectUpdate{
		{FileID: f.ID, Size: f.Size, SHA256: f.SHA256, State: model.ObjectPresent, Pushed: true, Verified: true},
		{FileID: f.ID, Size: f.Size, SHA256: f.SHA256, State: model.ObjectCorrupt, Verified: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	objs, _ := d.RegionObjects(ctx, r.ID)
	if len(objs) != 1 || objs[0].State != model.ObjectCorrupt {
		t.Errorf("objects: %+v", objs)
	}
}
