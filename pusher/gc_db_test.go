package pusher

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

// The mark is the last word on what may go: it checks again, in its transaction, that the
// file is still deleted since the time gc judged it by, past grace, and that gc still
// holds the region's lock.
func TestMarkExpiredDeletingChecksAgain(t *testing.T) {
	d, _ := testenv.NewDB(t)
	ctx := context.Background()
	r := &model.Region{Name: "eu-west-3", Kind: model.KindFile, Dir: t.TempDir(), PublicURL: "http://127.0.0.1:1", Enabled: true}
	if err := r.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateRegion(ctx, r); err != nil {
		t.Fatal(err)
	}
	file := func(p string) model.File {
		s, m := sha256.Sum256([]byte(p)), md5.Sum([]byte(p))
		return model.File{Path: p, Size: int64(len(p)), SHA256: s[:], MD5: m[:], Mtime: time.Unix(1e9, 0)}
	}
	paths := []string{"a/revived.rpm", "a/again.rpm", "a/recent.rpm", "a/gone.rpm"}
	var up []model.File
	for _, p := range paths {
		up = append(up, file(p))
	}
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Upsert: up}); err != nil {
		t.Fatal(err)
	}
	h, err := d.Hold(ctx, db.WriteLock(r.Name))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	ids := map[string]int64{}
	var rec []db.ObjectUpdate
	for _, p := range paths {
		f, err := d.GetFile(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		ids[p] = f.ID
		rec = append(rec, db.ObjectUpdate{FileID: f.ID, Size: f.Size, SHA256: f.SHA256, State: model.ObjectPresent, Verified: true})
	}
	if err := d.RecordObjects(ctx, h.Fence(), r.ID, rec); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Deleted: paths}); err != nil {
		t.Fatal(err)
	}
	// gc judges now; then the origin changes under it.
	st, err := d.GCState(ctx, r.ID)
	if err != nil || len(st.Copies) != len(paths) {
		t.Fatalf("gc state: %+v %v", st, err)
	}
	time.Sleep(20 * time.Millisecond)
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Upsert: []model.File{file("a/revived.rpm"), file("a/again.rpm")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Deleted: []string{"a/again.rpm"}}); err != nil {
		t.Fatal(err)
	}
	var marks []db.GCMark
	for _, c := range st.Copies {
		marks = append(marks, db.GCMark{FileID: c.FileID, DeletedAt: c.DeletedAt})
	}
	got, err := d.MarkExpiredDeleting(ctx, h.Fence(), r.ID, marks, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// revived is live again; again was deleted anew (its grace starts over); gone and
	// recent are still deleted since the time gc judged them by, more than grace ago.
	want := map[int64]bool{ids["a/gone.rpm"]: true, ids["a/recent.rpm"]: true}
	if len(got) != len(want) || !want[got[0]] || !want[got[1]] {
		t.Errorf("marked %v, want the files %v", got, want)
	}
	// Grace is checked again too: with an hour, nothing was deleted long enough ago.
	if again, err := d.MarkExpiredDeleting(ctx, h.Fence(), r.ID, marks, time.Hour); err != nil || len(again) != 0 {
		t.Fatalf("marked %v within an hour's grace (%v)", again, err)
	}
	objs, _ := d.RegionObjects(ctx, r.ID)
	for _, o := range objs {
		if wantDel := want[o.FileID]; (o.State == model.ObjectDeleting) != wantDel {
			t.Errorf("%s: %s", o.Path, o.State)
		}
	}
	// Only deleting copies are forgotten; a push that wrote one again keeps it.
	// (Only a push brings a deleting copy back: RecordObjects refuses anything else.)
	rewritten := rec[2]
	rewritten.Pushed = true
	if err := d.RecordObjects(ctx, h.Fence(), r.ID, []db.ObjectUpdate{rewritten}); err != nil { // recent.rpm written again
		t.Fatal(err)
	}
	n, err := d.ForgetDeletingCopies(ctx, h.Fence(), r.ID, []int64{ids["a/gone.rpm"], ids["a/recent.rpm"], ids["a/revived.rpm"]})
	if err != nil || n != 1 {
		t.Errorf("forgot %d copies (%v), want 1", n, err)
	}

	// Without the lock nothing is marked or forgotten.
	fence := h.Fence()
	h.Release()
	if _, err := d.MarkExpiredDeleting(ctx, fence, r.ID, marks, 0); !errors.Is(err, db.ErrLockLost) {
		t.Errorf("mark after the lock was released: %v", err)
	}
	if _, err := d.ForgetDeletingCopies(ctx, fence, r.ID, []int64{ids["a/recent.rpm"]}); !errors.Is(err, db.ErrLockLost) {
		t.Errorf("forget after the lock was released: %v", err)
	}
}
