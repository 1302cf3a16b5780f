package db_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
)

// Review 2: ClaimFillsIn drops dead jobs (file deleted, region no longer on demand) only
// among the first 4n+16 ready jobs, and the claim itself does not exclude them. Jobs of a
// disabled region are ready but not dead: 20 of them at the head (n = 1) keep the
// cleanup from ever reaching further, and a worker claims the job of a file the origin
// deleted (CompleteFill would then record a copy of a deleted file present).
func TestClaimSkipsADeadJobBehindAStuckHead(t *testing.T) {
	ctx := context.Background()
	d, od, _, _ := onDemandWorld(t)
	other := sampleRegion("od-2")
	other.Includes, other.Fill, other.Netblocks = nil, model.FillOnDemand, nil
	if err := other.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateRegion(ctx, other); err != nil {
		t.Fatal(err)
	}
	var up []model.File
	var misses []model.FillMiss
	for i := range 30 {
		p := fmt.Sprintf("q/f%02d.rpm", i)
		up = append(up, file(p, p))
		misses = append(misses, model.FillMiss{RegionID: other.ID, Path: p})
	}
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Upsert: up}); err != nil {
		t.Fatal(err)
	}
	if n, err := d.QueueFills(ctx, misses); err != nil || n != 30 {
		t.Fatalf("queue: %d %v", n, err)
	}
	if n, err := d.QueueFills(ctx, []model.FillMiss{{RegionID: od.ID, Path: "p/a.rpm"}}); err != nil || n != 1 {
		t.Fatalf("queue: %d %v", n, err)
	}
	if _, _, err := d.UpdateRegion(ctx, other.Name, func(r *model.Region) error { r.Enabled = false; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Deleted: []string{"p/a.rpm"}}); err != nil {
		t.Fatal(err)
	}
	jobs, err := d.ClaimFillsIn(ctx, "w", 1, 60e9, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		if j.Path == "p/a.rpm" {
			t.Errorf("claimed the job of %s, which the origin deleted", j.Path)
		}
	}
}
