package db_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

func TestLoadSnapshot(t *testing.T) {
	ctx := context.Background()
	d, _ := testenv.NewDB(t)
	a, b := sampleRegion("eu-a"), sampleRegion("eu-b")
	for _, r := range []*model.Region{a, b} {
		if err := d.CreateRegion(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	repo := &model.Repository{Name: "demo-1", Arch: "x86_64", Directory: "demo/1/x86_64/os"}
	if err := d.CreateRepository(ctx, repo); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"old", "new"} {
		f := file("repomd.xml", name)
		v := &model.RepomdVersion{RepositoryID: repo.ID, MD5: f.MD5, SHA1: make([]byte, 20), SHA256: f.SHA256, SHA512: make([]byte, 64), Size: f.Size, Timestamp: 1}
		if _, err := d.RecordRepomdVersion(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.SetRegionRepo(ctx, db.NoFence, model.RegionRepo{RegionID: a.ID, RepositoryID: repo.ID, RepomdSHA256: file("", "new").SHA256, State: model.RepoFresh}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.RecordProbe(ctx, b.ID, "timeout", 1, 1); err != nil {
		t.Fatal(err)
	}
	s, err := d.LoadSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Regions) != 2 || s.Regions[0].Name != "eu-a" || len(s.Regions[0].Netblocks) != 2 || s.ReadAt.IsZero() {
		t.Errorf("regions %+v", s.Regions)
	}
	if len(s.Repositories) != 1 || len(s.RepomdVersions) != 2 || !bytes.Equal(s.RepomdVersions[0].SHA256, file("", "new").SHA256) {
		t.Errorf("repositories %+v versions %+v (newest must come first)", s.Repositories, s.RepomdVersions)
	}
	if len(s.RegionRepos) != 1 || s.RegionRepos[0].State != model.RepoFresh || len(s.Health) != 1 || s.Health[0].State != model.HealthDown {
		t.Errorf("region repos %+v health %+v", s.RegionRepos, s.Health)
	}
}

func TestLoadFileTable(t *testing.T) {
	ctx := context.Background()
	d, _ := testenv.NewDB(t)
	a, b := sampleRegion("eu-a"), sampleRegion("eu-b")
	for _, r := range []*model.Region{a, b} {
		if err := d.CreateRegion(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	var files []model.File
	for i := range 200 {
		files = append(files, file(fmt.Sprintf("fedora/%d/p%d.rpm", i%3, i), fmt.Sprint(i)))
	}
	files = append(files, file("README", "top"), file("Packages/libc++-1.rpm", "plus"))
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Upsert: files}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Deleted: []string{"fedora/0/p0.rpm"}}); err != nil {
		t.Fatal(err)
	}
	all, _ := d.ListFiles(ctx, true)
	byPath := map[string]model.File{}
	var upA, upB []db.ObjectUpdate
	for _, f := range all {
		byPath[f.Path] = f
		upA = append(upA, db.ObjectUpdate{FileID: f.ID, Size: f.Size, SHA256: f.SHA256, State: model.ObjectPresent, Verified: true})
	}
	// Region b: one present copy, one of an older version of the file, one missing.
	p1, p2, p3 := byPath["fedora/1/p1.rpm"], byPath["fedora/2/p2.rpm"], byPath["README"]
	upB = []db.ObjectUpdate{
		{FileID: p1.ID, Size: p1.Size, SHA256: p1.SHA256, State: model.ObjectPresent},
		{FileID: p2.ID, Size: p2.Size, SHA256: file("", "stale").SHA256, State: model.ObjectPresent},
		{FileID: p3.ID, Size: p3.Size, SHA256: p3.SHA256, State: model.ObjectMissing},
	}
	if err := d.RecordObjects(ctx, db.NoFence, a.ID, upA); err != nil {
		t.Fatal(err)
	}
	if err := d.RecordObjects(ctx, db.NoFence, b.ID, upB); err != nil {
		t.Fatal(err)
	}
	ft, err := d.LoadFileTable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ft.Len() != len(all) {
		t.Fatalf("%d files, want %d", ft.Len(), len(all))
	}
	seen := map[string]bool{}
	for i := range ft.Len() {
		p := ft.Path(i)
		f, ok := byPath[p]
		if !ok || seen[p] || ft.Size(i) != f.Size || !bytes.Equal(ft.SHA256(i), f.SHA256) || ft.Deleted.Has(i) != (f.DeletedAt != nil) {
			t.Errorf("file %d: %q size %d deleted %v", i, p, ft.Size(i), ft.Deleted.Has(i))
		}
		seen[p] = true
		if !ft.Verified[a.ID].Has(i) {
			t.Errorf("%s not verified in region a", p)
		}
		if want := p == "fedora/1/p1.rpm"; ft.Verified[b.ID].Has(i) != want {
			t.Errorf("%s verified in region b: %v, want %v", p, !want, want)
		}
	}
	if n := ft.Verified[b.ID].Count(); n != 1 {
		t.Errorf("region b holds %d verified files, want 1", n)
	}
	if got := len(ft.Dirs); got != 5 { // fedora/0..2, "", Packages
		t.Errorf("%d directories: %q", got, ft.Dirs)
	}

	// The origin changes p1: region b's copy is of the old bytes now, until it gets the new.
	changed := file("fedora/1/p1.rpm", "p1 version 2")
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Upsert: []model.File{changed}}); err != nil {
		t.Fatal(err)
	}
	if ft, _ := d.LoadFileTable(ctx); ft.Verified[b.ID].Count() != 0 || ft.Verified[a.ID].Count() != len(all)-1 {
		t.Errorf("after the origin changed p1: b %d, a %d verified", ft.Verified[b.ID].Count(), ft.Verified[a.ID].Count())
	}
	if err := d.RecordObjects(ctx, db.NoFence, b.ID, []db.ObjectUpdate{{FileID: p1.ID, Size: changed.Size, SHA256: changed.SHA256, State: model.ObjectPresent}}); err != nil {
		t.Fatal(err)
	}
	if ft, _ := d.LoadFileTable(ctx); ft.Verified[b.ID].Count() != 1 {
		t.Errorf("after pushing the new p1: b %d verified", ft.Verified[b.ID].Count())
	}
}
