package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/model"
)

// TestClaimFillsIn: a worker limited to some regions claims only their jobs, under the
// same rules as ClaimFills (a new token on every claim, a running job only once its
// lease has passed); with no region it is ClaimFills.
func TestClaimFillsIn(t *testing.T) {
	ctx := context.Background()
	d, od, _, _ := onDemandWorld(t)
	od2 := sampleRegion("od-2")
	od2.Includes, od2.Fill, od2.Netblocks = nil, model.FillOnDemand, nil
	if err := od2.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateRegion(ctx, od2); err != nil {
		t.Fatal(err)
	}
	if n, err := d.QueueFills(ctx, []model.FillMiss{{RegionID: od.ID, Path: "p/a.rpm"}, {RegionID: od2.ID, Path: "p/a.rpm"},
		{RegionID: od2.ID, Path: "p/b.rpm"}}); err != nil || n != 3 {
		t.Fatalf("queue: %d %v", n, err)
	}
	jobs, err := d.ClaimFillsIn(ctx, "w1", 10, time.Minute, []int64{od2.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 || jobs[0].RegionID != od2.ID || jobs[1].RegionID != od2.ID || jobs[0].Token == jobs[1].Token {
		t.Fatalf("claimed %+v, want od-2's two jobs", jobs)
	}
	// Held under a live lease: not claimed again.
	if again, err := d.ClaimFillsIn(ctx, "w2", 10, time.Minute, []int64{od2.ID}); err != nil || len(again) != 0 {
		t.Fatalf("claimed held jobs again: %+v %v", again, err)
	}
	all, err := d.ClaimFillsIn(ctx, "w3", 10, time.Minute, nil)
	if err != nil || len(all) != 1 || all[0].RegionID != od.ID {
		t.Fatalf("all regions: %+v %v, want od-1's job", all, err)
	}
	// The first holder's token is stale once another claim took the job over.
	if err := d.ReleaseFill(ctx, &jobs[0]); err != nil {
		t.Fatal(err)
	}
	taken, err := d.ClaimFillsIn(ctx, "w4", 10, time.Minute, []int64{od2.ID})
	if err != nil || len(taken) != 1 || taken[0].Token == jobs[0].Token {
		t.Fatalf("reclaim %+v %v", taken, err)
	}
	if err := d.CompleteFill(ctx, &jobs[0], 1, nil); err == nil {
		t.Fatal("a stale token completed a job")
	}
	// A running job whose lease passed (its worker died) is taken over.
	short, err := d.ClaimFillsIn(ctx, "dies", 10, time.Millisecond, []int64{od.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(short) != 0 {
		t.Fatalf("od-1's job is held by w3: claimed %+v", short)
	}
	if err := d.ReleaseFill(ctx, &all[0]); err != nil {
		t.Fatal(err)
	}
	if short, err = d.ClaimFillsIn(ctx, "dies", 10, time.Millisecond, []int64{od.ID}); err != nil || len(short) != 1 {
		t.Fatalf("claim: %+v %v", short, err)
	}
	time.Sleep(50 * time.Millisecond)
	heir, err := d.ClaimFillsIn(ctx, "heir", 10, time.Minute, []int64{od.ID})
	if err != nil || len(heir) != 1 || heir[0].Worker != "heir" || heir[0].Token == short[0].Token {
		t.Fatalf("takeover after the lease: %+v %v", heir, err)
	}
}
