package db_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/filetable"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

// describe renders what a file table says about every file that exists, by path.
func describe(ft *filetable.Table) map[string]string {
	out := map[string]string{}
	regions := slices.Sorted(maps.Keys(ft.Verified))
	for i := range ft.Len() {
		if ft.Gone.Has(i) {
			continue
		}
		var in []string
		for _, r := range regions {
			if ft.Verified[r].Has(i) {
				in = append(in, fmt.Sprint(r))
			}
		}
		out[ft.Path(i)] = fmt.Sprintf("size %d sha %s deleted %v in [%s]", ft.Size(i), hex.EncodeToString(ft.SHA256(i))[:8], ft.Deleted.Has(i), strings.Join(in, " "))
	}
	return out
}

func sameTables(t *testing.T, what string, got, want *filetable.Table) {
	t.Helper()
	g, w := describe(got), describe(want)
	for p, wv := range w {
		if gv, ok := g[p]; !ok {
			t.Errorf("%s: %s missing from the updated table", what, p)
		} else if gv != wv {
			t.Errorf("%s: %s: updated %q, full read %q", what, p, gv, wv)
		}
	}
	for p := range g {
		if _, ok := w[p]; !ok {
			t.Errorf("%s: %s in the updated table only", what, p)
		}
	}
}

// TestUpdateFileTable applies rounds of random writes through every writer (inventory
// changes, deletions and their undoing, copies recorded in every state, copies forgotten,
// files purged, a region removed) and checks after each round that updating the previous
// table gives what a full read gives, while the previous table stays as it was.
func TestUpdateFileTable(t *testing.T) {
	ctx := context.Background()
	d, _ := testenv.NewDB(t)
	var regions []*model.Region
	for _, name := range []string{"eu-a", "eu-b", "us-c"} {
		r := sampleRegion(name)
		if err := d.CreateRegion(ctx, r); err != nil {
			t.Fatal(err)
		}
		regions = append(regions, r)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	version := map[string]int{}
	path := func(i int) string { return fmt.Sprintf("pub/%d/f%d.rpm", i%7, i) }
	var seed []model.File
	for i := range 300 {
		seed = append(seed, file(path(i), "v0"))
		version[path(i)] = 0
	}
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Upsert: seed}); err != nil {
		t.Fatal(err)
	}
	cur, err := d.LoadFileTable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	next := 300
	removed := regions[len(regions)-1] // in round 8
	prevFull, err := d.LoadFileTable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 12 {
		before := describe(cur)
		var ups []model.File
		var dels []string
		for range 20 {
			switch p := path(rng.IntN(next)); rng.IntN(3) {
			case 0:
				version[p]++
				ups = append(ups, file(p, fmt.Sprint("v", version[p])))
			case 1:
				dels = append(dels, p)
			default:
				ups = append(ups, file(path(next), "v0")) // new, in a new directory now and then
				version[path(next)] = 0
				next++
			}
		}
		// One row once per statement: the last change of a path wins.
		slices.Reverse(ups)
		ups = slices.CompactFunc(slices.SortedStableFunc(slices.Values(ups), func(a, b model.File) int { return strings.Compare(a.Path, b.Path) }),
			func(a, b model.File) bool { return a.Path == b.Path })
		dels = slices.DeleteFunc(dels, func(p string) bool {
			return slices.ContainsFunc(ups, func(f model.File) bool { return f.Path == p })
		})
		if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Upsert: ups, Deleted: dels}); err != nil {
			t.Fatal(err)
		}
		all, err := d.ListFiles(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range regions {
			var recs []db.ObjectUpdate
			for range 60 {
				f := all[rng.IntN(len(all))]
				u := db.ObjectUpdate{FileID: f.ID, Size: f.Size, SHA256: f.SHA256, State: model.ObjectPresent, Verified: true}
				switch rng.IntN(5) {
				case 0:
					u.State = model.ObjectMissing
				case 1:
					u.SHA256 = file("", "other bytes").SHA256
				}
				recs = append(recs, u)
			}
			if err := d.RecordObjects(ctx, db.NoFence, r.ID, recs); err != nil {
				t.Fatal(err)
			}
			f := all[rng.IntN(len(all))]
			if _, err := d.ForgetObject(ctx, f.Path, r.ID); err != nil {
				t.Fatal(err)
			}
		}
		// Purge some deleted files: their copies go first, as gc does.
		if expired, err := d.ExpiredFiles(ctx, 0); err != nil {
			t.Fatal(err)
		} else if len(expired) > 0 {
			var ids []int64
			for _, f := range expired[:min(5, len(expired))] {
				ids = append(ids, f.ID)
				if _, err := d.ForgetObject(ctx, f.Path, 0); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := d.PurgeFiles(ctx, ids); err != nil {
				t.Fatal(err)
			}
		}
		if round == 8 {
			if err := d.DeleteRegion(ctx, removed.Name); err != nil {
				t.Fatal(err)
			}
			regions = regions[:len(regions)-1]
		}

		// Readers of the serving table go on while it is updated (go test -race checks
		// that the update writes nothing they read).
		stop := make(chan struct{})
		reading := make(chan int)
		go func() {
			n := 0
			for {
				select {
				case <-stop:
					reading <- n
					return
				default:
				}
				for i := range cur.Len() {
					n += len(cur.Path(i)) + int(cur.Size(i)) + int(cur.SHA256(i)[0])
					for _, set := range cur.Verified {
						if set.Has(i) {
							n++
						}
					}
				}
			}
		}()
		updated, ch, err := d.UpdateFileTable(ctx, cur)
		close(stop)
		<-reading
		if err != nil {
			t.Fatal(err)
		}
		if ch.Empty() || updated == cur {
			t.Errorf("round %d: no changes seen (%v)", round, ch)
		}
		full, err := d.LoadFileTable(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if round == 8 {
			if n := updated.Verified[removed.ID].Count(); n != 0 {
				t.Errorf("the removed region still holds %d files", n)
			}
		}
		if round >= 8 {
			// An empty set stays behind for a removed region; the server drops it with the region.
			delete(updated.Verified, removed.ID)
		}
		sameTables(t, fmt.Sprintf("round %d", round), updated, full)
		// A reconciling read of the previous round's full table (a chain of its own)
		// applies the changes since, then finds nothing that change tracking missed.
		reconciled, rch, err := d.ReconcileFileTable(ctx, prevFull)
		if err != nil {
			t.Fatal(err)
		}
		if round >= 8 {
			delete(reconciled.Verified, removed.ID)
		}
		sameTables(t, fmt.Sprintf("round %d, reconciled", round), reconciled, full)
		if !rch.Empty() {
			t.Errorf("round %d: reconciling found what change tracking missed: %v", round, rch)
		}
		prevFull = full
		if !maps.Equal(before, describe(cur)) {
			t.Fatalf("round %d: updating changed the table it started from", round)
		}
		cur = updated
	}
	// Nothing changed: the same table comes back, not a copy.
	if again, ch, err := d.UpdateFileTable(ctx, cur); err != nil || again != cur || !ch.Empty() {
		t.Errorf("update without changes: %v, %v, same table %v", ch, err, again == cur)
	}
}

// TestUpdateFileTableOutOfOrderCommit: a transaction that started before a read and commits
// after it is picked up by the next update, though a later transaction committed first.
func TestUpdateFileTableOutOfOrderCommit(t *testing.T) {
	ctx := context.Background()
	d, url := testenv.NewDB(t)
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Upsert: []model.File{file("a.rpm", "a")}}); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	slow, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f := file("slow.rpm", "slow")
	if _, err := slow.Exec(ctx, `INSERT INTO files (path, size, sha256, md5, mtime) VALUES ($1, $2, $3, $4, $5)`, f.Path, f.Size, f.SHA256, f.MD5, f.Mtime); err != nil {
		t.Fatal(err)
	}
	base, err := d.LoadFileTable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Upsert: []model.File{file("fast.rpm", "fast")}}); err != nil {
		t.Fatal(err)
	}
	mid, _, err := d.UpdateFileTable(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	if got := describe(mid); len(got) != 2 || got["fast.rpm"] == "" {
		t.Fatalf("after the fast commit: %v", got)
	}
	if err := slow.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	last, _, err := d.UpdateFileTable(ctx, mid)
	if err != nil {
		t.Fatal(err)
	}
	full, err := d.LoadFileTable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := describe(last); got["slow.rpm"] == "" {
		t.Errorf("the late commit was missed: %v", got)
	}
	sameTables(t, "after the late commit", last, full)
}

// TestReconcileFileTable: changes that bypass change tracking (triggers disabled, as a
// restore might) are missed by updates and found by a reconciling read; a truncated table
// makes updates refuse.
func TestReconcileFileTable(t *testing.T) {
	ctx := context.Background()
	d, url := testenv.NewDB(t)
	r := sampleRegion("eu-a")
	if err := d.CreateRegion(ctx, r); err != nil {
		t.Fatal(err)
	}
	var files []model.File
	for i := range 50 {
		files = append(files, file(fmt.Sprintf("p/%d.rpm", i), fmt.Sprint(i)))
	}
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Upsert: files}); err != nil {
		t.Fatal(err)
	}
	all, _ := d.ListFiles(ctx, true)
	var ups []db.ObjectUpdate
	for _, f := range all {
		ups = append(ups, db.ObjectUpdate{FileID: f.ID, Size: f.Size, SHA256: f.SHA256, State: model.ObjectPresent, Verified: true})
	}
	if err := d.RecordObjects(ctx, db.NoFence, r.ID, ups); err != nil {
		t.Fatal(err)
	}
	base, err := d.LoadFileTable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if same, ch, err := d.ReconcileFileTable(ctx, base); err != nil || !ch.Empty() {
		t.Fatalf("reconciling an exact table: %v %v", ch, err)
	} else {
		sameTables(t, "exact", same, base)
	}

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, sql := range []string{
		"SET session_replication_role = replica", // no triggers
		"UPDATE region_objects SET state = 'missing' WHERE file_id IN (SELECT id FROM files WHERE path IN ('p/1.rpm', 'p/2.rpm'))",
		"UPDATE files SET size = size + 1 WHERE path = 'p/3.rpm'",
		"RESET session_replication_role",
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	full, err := d.LoadFileTable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if missed, ch, err := d.UpdateFileTable(ctx, base); err != nil || !ch.Empty() || missed != base {
		t.Fatalf("an update saw changes made without triggers: %v %v", ch, err)
	}
	fixed, ch, err := d.ReconcileFileTable(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Files != 1 || ch.Copies != 2 || ch.Removed != 0 {
		t.Errorf("reconcile found %v, want 1 file and 2 copies", ch)
	}
	sameTables(t, "reconciled", fixed, full)

	// A path rewritten behind the triggers, or through them: a table neither an update nor
	// a reconciliation can patch.
	if _, err := conn.Exec(ctx, "SET session_replication_role = replica; UPDATE files SET path = 'p/renamed.rpm' WHERE path = 'p/4.rpm'; RESET session_replication_role"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.ReconcileFileTable(ctx, fixed); !errors.Is(err, db.ErrFileTableStale) {
		t.Errorf("reconcile after a rename behind the triggers: %v, want ErrFileTableStale", err)
	}
	if _, err := conn.Exec(ctx, "UPDATE files SET path = 'p/renamed-again.rpm' WHERE path = 'p/renamed.rpm'"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.UpdateFileTable(ctx, fixed); !errors.Is(err, db.ErrFileTableStale) {
		t.Errorf("update after a rename: %v, want ErrFileTableStale", err)
	}
	if _, err := conn.Exec(ctx, "TRUNCATE region_objects"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.UpdateFileTable(ctx, fixed); !errors.Is(err, db.ErrFileTableStale) {
		t.Errorf("update after a TRUNCATE: %v, want ErrFileTableStale", err)
	}
}

// TestUpdateRefusesAnotherHistory: a table read at transaction IDs beyond what the
// database has now (a failover to a replica that was behind, a restore) is not updated.
func TestUpdateRefusesAnotherHistory(t *testing.T) {
	if x, ok := db.XmaxOf("100:105:101,103"); !ok || x != 105 {
		t.Errorf("xmaxOf: %d %v", x, ok)
	}
	if _, ok := db.XmaxOf("garbage"); ok {
		t.Error("xmaxOf read garbage")
	}
	ctx := context.Background()
	d, _ := testenv.NewDB(t)
	base, err := d.LoadFileTable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.UpdateFileTable(ctx, base); err != nil {
		t.Fatalf("update of a fresh table: %v", err)
	}
	if _, _, err := d.UpdateFileTable(ctx, db.WithSeen(base, "900000000:900000000:")); !errors.Is(err, db.ErrFileTableStale) {
		t.Errorf("update of a table from another history: %v, want ErrFileTableStale", err)
	}
	if _, _, err := d.ReconcileFileTable(ctx, db.WithSeen(base, "900000000:900000000:")); !errors.Is(err, db.ErrFileTableStale) {
		t.Errorf("reconcile of a table from another history: %v, want ErrFileTableStale", err)
	}
}

// TestFileTableFile: a table written to a file and read back is the same table and can be
// updated, but not in another database. (filetable's tests refuse damaged files.)
func TestFileTableFile(t *testing.T) {
	ctx := context.Background()
	d, _ := testenv.NewDB(t)
	r := sampleRegion("eu-a")
	if err := d.CreateRegion(ctx, r); err != nil {
		t.Fatal(err)
	}
	var files []model.File
	for i := range 40 {
		files = append(files, file(fmt.Sprintf("p/%d/%d.rpm", i%4, i), fmt.Sprint(i)))
	}
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Upsert: files, Deleted: nil}); err != nil {
		t.Fatal(err)
	}
	base, err := d.LoadFileTable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Updates give the table appended files, a purged one and verified copies.
	all, _ := d.ListFiles(ctx, true)
	var ups []db.ObjectUpdate
	for _, f := range all[:30] {
		ups = append(ups, db.ObjectUpdate{FileID: f.ID, Size: f.Size, SHA256: f.SHA256, State: model.ObjectPresent, Verified: true})
	}
	if err := d.RecordObjects(ctx, db.NoFence, r.ID, ups); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Upsert: []model.File{file("q/new.rpm", "new")}, Deleted: []string{all[35].Path}}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.PurgeFiles(ctx, []int64{all[35].ID}); err != nil {
		t.Fatal(err)
	}
	cur, _, err := d.UpdateFileTable(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := filetable.Write(&buf, cur); err != nil {
		t.Fatal(err)
	}
	raw := buf.Bytes()
	back, err := filetable.Read(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	sameTables(t, "read back", back, cur)
	if back.Gone.Count() != 1 || back.Verified[r.ID].Count() != 30 {
		t.Errorf("read back: %d purged, %d verified", back.Gone.Count(), back.Verified[r.ID].Count())
	}
	if again, ch, err := d.UpdateFileTable(ctx, back); err != nil || !ch.Empty() || again != back {
		t.Errorf("update of the table read back: %v %v", ch, err)
	}
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Upsert: []model.File{file("q/later.rpm", "later")}}); err != nil {
		t.Fatal(err)
	}
	later, _, err := d.UpdateFileTable(ctx, back)
	if err != nil {
		t.Fatal(err)
	}
	full, _ := d.LoadFileTable(ctx)
	sameTables(t, "read back and updated", later, full)

	other, _ := testenv.NewDB(t)
	if _, _, err := other.UpdateFileTable(ctx, back); !errors.Is(err, db.ErrFileTableStale) {
		t.Errorf("update in another database: %v, want ErrFileTableStale", err)
	}
}
