package db_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

// onDemandWorld is a database with one on-demand region, one push region and two files.
func onDemandWorld(t *testing.T) (*db.DB, *model.Region, *model.Region, map[string]model.File) {
	t.Helper()
	ctx := context.Background()
	d, _ := testenv.NewDB(t)
	od := sampleRegion("od-1")
	od.Includes, od.Fill = nil, model.FillOnDemand
	push := sampleRegion("push-1")
	push.Includes = nil
	push.Netblocks, od.Netblocks = nil, nil
	for _, r := range []*model.Region{od, push} {
		if err := r.Normalize(); err != nil {
			t.Fatal(err)
		}
		if err := d.CreateRegion(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Upsert: []model.File{file("p/a.rpm", "a"), file("p/b.rpm", "bb")}}); err != nil {
		t.Fatal(err)
	}
	files := map[string]model.File{}
	all, err := d.ListFiles(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range all {
		files[f.Path] = f
	}
	return d, od, push, files
}

func TestFillQueueCoalescesAndOnlyQueuesOriginFiles(t *testing.T) {
	ctx := context.Background()
	d, od, push, _ := onDemandWorld(t)
	// 200 concurrent misses of one file, in batches as servers flush them: one job.
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := make([]model.FillMiss, 10)
			for i := range batch {
				batch[i] = model.FillMiss{RegionID: od.ID, Path: "p/a.rpm"}
			}
			if _, err := d.QueueFills(ctx, batch); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// Not queued: a path the origin lacks, a push region, an unknown region.
	n, err := d.QueueFills(ctx, []model.FillMiss{{RegionID: od.ID, Path: "../etc/passwd"}, {RegionID: od.ID, Path: "p/none.rpm"},
		{RegionID: push.ID, Path: "p/a.rpm"}, {RegionID: 99999, Path: "p/a.rpm"}})
	if err != nil || n != 0 {
		t.Fatalf("queued %d (%v) for misses that must queue nothing", n, err)
	}
	jobs, err := d.FillJobs(ctx, 0, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 || jobs[0].Path != "p/a.rpm" || jobs[0].RegionName != "od-1" || jobs[0].State != model.FillQueued {
		t.Fatalf("jobs = %+v, want one queued job for p/a.rpm in od-1", jobs)
	}
}

func TestFillLeaseTokenFencesTheWorker(t *testing.T) {
	ctx := context.Background()
	d, od, _, files := onDemandWorld(t)
	a := files["p/a.rpm"]
	if _, err := d.QueueFills(ctx, []model.FillMiss{{RegionID: od.ID, Path: a.Path}}); err != nil {
		t.Fatal(err)
	}
	first, err := d.ClaimFills(ctx, "w1", 10, time.Second)
	if err != nil || len(first) != 1 {
		t.Fatalf("claim: %v %v", first, err)
	}
	// Leased: nobody else gets it.
	if again, err := d.ClaimFills(ctx, "w2", 10, time.Second); err != nil || len(again) != 0 {
		t.Fatalf("second claim while leased: %v %v", again, err)
	}
	time.Sleep(1100 * time.Millisecond)
	second, err := d.ClaimFills(ctx, "w2", 10, time.Minute)
	if err != nil || len(second) != 1 || second[0].Attempts != 2 {
		t.Fatalf("takeover after the lease: %+v %v", second, err)
	}
	// The first worker lost its job: it can neither extend nor record it.
	if err := d.ExtendFill(ctx, &first[0], time.Minute); !errors.Is(err, db.ErrJobLost) {
		t.Errorf("extend by the old holder: %v, want ErrJobLost", err)
	}
	if err := d.CompleteFill(ctx, &first[0], a.Size, a.SHA256); !errors.Is(err, db.ErrJobLost) {
		t.Errorf("complete by the old holder: %v, want ErrJobLost", err)
	}
	if objs, _ := d.RegionObjects(ctx, od.ID); len(objs) != 0 {
		t.Fatalf("the old holder recorded %+v", objs)
	}
	if err := d.CompleteFill(ctx, &second[0], a.Size, a.SHA256); err != nil {
		t.Fatal(err)
	}
	objs, err := d.RegionObjects(ctx, od.ID)
	if err != nil || len(objs) != 1 || objs[0].State != model.ObjectPresent || objs[0].LastRequestedAt == nil {
		t.Fatalf("after completion: %+v %v", objs, err)
	}
	// A held copy queues nothing more.
	if n, err := d.QueueFills(ctx, []model.FillMiss{{RegionID: od.ID, Path: a.Path}}); err != nil || n != 0 {
		t.Fatalf("a miss of a held copy queued %d (%v)", n, err)
	}
}

func TestFillNeverRevivesACopyBeingRemoved(t *testing.T) {
	ctx := context.Background()
	d, od, _, files := onDemandWorld(t)
	a := files["p/a.rpm"]
	if _, err := d.QueueFills(ctx, []model.FillMiss{{RegionID: od.ID, Path: a.Path}}); err != nil {
		t.Fatal(err)
	}
	jobs, err := d.ClaimFills(ctx, "w1", 1, time.Minute)
	if err != nil || len(jobs) != 1 {
		t.Fatal(jobs, err)
	}
	// A purge marks the copy while the worker copies: the job goes with the mark.
	if err := d.RecordObjects(ctx, db.Fence{}, od.ID, []db.ObjectUpdate{{FileID: a.ID, Size: a.Size, SHA256: a.SHA256, State: model.ObjectPresent, Verified: true}}); err != nil {
		t.Fatal(err)
	}
	marked, err := d.MarkCopiesDeleting(ctx, db.Fence{}, od.ID, []int64{a.ID})
	if err != nil || len(marked) != 1 {
		t.Fatalf("mark: %v %v", marked, err)
	}
	if err := d.CompleteFill(ctx, &jobs[0], a.Size, a.SHA256); !errors.Is(err, db.ErrJobLost) {
		t.Errorf("complete after the purge's mark: %v, want ErrJobLost", err)
	}
	// A scan that still lists the object does not bring it back either.
	if err := d.RecordObjects(ctx, db.Fence{}, od.ID, []db.ObjectUpdate{{FileID: a.ID, Size: a.Size, SHA256: a.SHA256, State: model.ObjectPresent, Verified: true}}); err != nil {
		t.Fatal(err)
	}
	// A new miss queues a job, but no worker takes it while the copy is being removed.
	if _, err := d.QueueFills(ctx, []model.FillMiss{{RegionID: od.ID, Path: a.Path}}); err != nil {
		t.Fatal(err)
	}
	if got, err := d.ClaimFills(ctx, "w2", 1, time.Minute); err != nil || len(got) != 0 {
		t.Fatalf("claimed %+v (%v) while the copy is deleting", got, err)
	}
	objs, _ := d.RegionObjects(ctx, od.ID)
	if len(objs) != 1 || objs[0].State != model.ObjectDeleting {
		t.Fatalf("copy = %+v, want it still deleting", objs)
	}
	if _, err := d.ForgetDeletingCopies(ctx, db.Fence{}, od.ID, []int64{a.ID}); err != nil {
		t.Fatal(err)
	}
	if got, err := d.ClaimFills(ctx, "w2", 1, time.Minute); err != nil || len(got) != 1 {
		t.Fatalf("after the removal finished: claimed %+v (%v), want the job", got, err)
	}
}

func TestFillFailureBacksOffAndGivesUp(t *testing.T) {
	ctx := context.Background()
	d, od, _, files := onDemandWorld(t)
	b := files["p/b.rpm"]
	if _, err := d.QueueFills(ctx, []model.FillMiss{{RegionID: od.ID, Path: b.Path}}); err != nil {
		t.Fatal(err)
	}
	jobs, _ := d.ClaimFills(ctx, "w1", 1, time.Minute)
	if err := d.FailFill(ctx, &jobs[0], "S3 said no", time.Hour, false); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.ClaimFills(ctx, "w1", 1, time.Minute); len(got) != 0 {
		t.Fatalf("claimed during the backoff: %+v", got)
	}
	all, _ := d.FillJobs(ctx, od.ID, 0, 10)
	if len(all) != 1 || all[0].State != model.FillQueued || all[0].Error != "S3 said no" {
		t.Fatalf("after a failure: %+v", all)
	}
	stats, err := d.FillStats(ctx)
	if err != nil || len(stats) != 1 || stats[0].Region != "od-1" || stats[0].Queued != 1 || stats[0].OldestQueued == nil {
		t.Fatalf("stats = %+v %v", stats, err)
	}
}

func TestFillStatsCountOnlyOnDemandCopies(t *testing.T) {
	ctx := context.Background()
	d, od, _, _ := onDemandWorld(t)
	if _, _, err := d.UpdateRegion(ctx, od.Name, func(r *model.Region) error {
		r.Pins = []string{"p/pinned"}
		return r.Normalize()
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Upsert: []model.File{file("p/repodata/repomd.xml", "metadata"),
		file("p/pinned/c.rpm", "pinned!"), file("p/pinnedx/d.rpm", "not pinned")}}); err != nil {
		t.Fatal(err)
	}
	all, err := d.ListFiles(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	var ups []db.ObjectUpdate
	for _, f := range all {
		ups = append(ups, db.ObjectUpdate{FileID: f.ID, Size: f.Size, SHA256: f.SHA256, State: model.ObjectPresent, Pushed: true, Verified: true})
	}
	if err := d.RecordObjects(ctx, db.Fence{}, od.ID, ups); err != nil {
		t.Fatal(err)
	}
	stats, err := d.FillStats(ctx)
	if err != nil || len(stats) != 1 {
		t.Fatal(stats, err)
	}
	// p/a.rpm (1), p/b.rpm (2), p/pinnedx/d.rpm (10): not the metadata, not the pin.
	if stats[0].HeldBytes != 13 || stats[0].HeldFiles != 3 {
		t.Errorf("held %d bytes in %d files, want 13 in 3", stats[0].HeldBytes, stats[0].HeldFiles)
	}
}

// TestFillCompleteRefusesAfterARegionEdit: a region edited after the claim (here without
// a move, which keeps the job) makes CompleteFill record nothing and say
// ErrRegionChanged, and the job, given back, is claimed again with the new version.
func TestFillCompleteRefusesAfterARegionEdit(t *testing.T) {
	ctx := context.Background()
	d, od, _, files := onDemandWorld(t)
	a := files["p/a.rpm"]
	if _, err := d.QueueFills(ctx, []model.FillMiss{{RegionID: od.ID, Path: a.Path}}); err != nil {
		t.Fatal(err)
	}
	jobs, err := d.ClaimFills(ctx, "w1", 1, time.Minute)
	if err != nil || len(jobs) != 1 || !jobs[0].RegionUpdatedAt.Equal(od.UpdatedAt) {
		t.Fatalf("claim: %+v %v (region version %v)", jobs, err, od.UpdatedAt)
	}
	edited, _, err := d.UpdateRegion(ctx, od.Name, func(r *model.Region) error { r.Country = "FR"; return nil })
	if err != nil {
		t.Fatal(err)
	}
	err = d.CompleteFill(ctx, &jobs[0], a.Size, a.SHA256)
	if !errors.Is(err, db.ErrRegionChanged) || !errors.Is(err, db.ErrJobLost) {
		t.Fatalf("complete after an edit: %v, want ErrRegionChanged and ErrJobLost", err)
	}
	if objs, _ := d.RegionObjects(ctx, od.ID); len(objs) != 0 {
		t.Fatalf("recorded after an edit: %+v", objs)
	}
	if err := d.ReleaseFill(ctx, &jobs[0]); err != nil {
		t.Fatal(err)
	}
	again, err := d.ClaimFills(ctx, "w1", 1, time.Minute)
	if err != nil || len(again) != 1 || !again[0].RegionUpdatedAt.Equal(edited.UpdatedAt) {
		t.Fatalf("claim after the release: %+v %v, want the region's new version %v", again, err, edited.UpdatedAt)
	}
	if err := d.CompleteFill(ctx, &again[0], a.Size, a.SHA256); err != nil {
		t.Fatal(err)
	}
}
