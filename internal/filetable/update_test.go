package filetable

import (
	"encoding/hex"
	"errors"
	"maps"
	"runtime"
	"strconv"
	"testing"
)

// TestUpdate applies every kind of change to a table and checks the result, that the base
// reads as it did, and that what the changes leave alone is shared, not copied.
func TestUpdate(t *testing.T) {
	base := sample(t)
	before := describe(base)
	baseLen, baseDirs := base.Len(), len(base.Dirs)

	u := NewUpdate(base)
	steps := []struct {
		name string
		do   func() error
	}{
		{"a new file in a new directory", func() error { return u.File(50, []byte("new/dir/5.rpm"), 500, sum("5"), false) }},
		{"a new file at the root", func() error { return u.File(60, []byte("ROOT"), 600, sum("6"), true) }},
		{"new bytes", func() error { return u.File(10, []byte("a/1.rpm"), 111, sum("1 v2"), false) }},
		{"undeleted", func() error { return u.File(20, []byte("a/2.rpm"), 101, sum("a/2.rpm"), false) }},
		{"deleted", func() error { return u.File(40, []byte("README"), 103, sum("README"), true) }},
		{"purged", func() error { u.RemoveFile(30); return nil }},
		{"purged, unknown", func() error { u.RemoveFile(999); return nil }},
		{"copy verified", func() error { u.SetCopy(9, 10, true); return nil }},
		{"copy of the new file", func() error { u.SetCopy(9, 50, true); return nil }},
		{"copy gone", func() error { u.SetCopy(7, 10, false); return nil }},
		{"copy in a new region", func() error { u.SetCopy(11, 40, true); return nil }},
		{"copy of an unknown file", func() error { u.SetCopy(7, 999, true); return nil }},
		{"copy unchanged", func() error { u.SetCopy(7, 30, true); return nil }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	got := u.Table()
	sameTable(t, "updated", describe(got), map[string]string{
		"a/1.rpm":       "id 10 size 111 sha " + hexOf("1 v2") + " deleted false in [9]",
		"a/2.rpm":       "id 20 size 101 sha " + hexOf("a/2.rpm") + " deleted false in []",
		"README":        "id 40 size 103 sha " + hexOf("README") + " deleted true in [11]",
		"new/dir/5.rpm": "id 50 size 500 sha " + hexOf("5") + " deleted false in [9]",
		"ROOT":          "id 60 size 600 sha " + hexOf("6") + " deleted true in []",
	})
	if got.Len() != 6 || !got.Gone.Has(2) || got.Gone.Count() != 1 {
		t.Errorf("%d files, purged %v", got.Len(), got.Gone)
	}
	if d, ok := got.DirIndex("new/dir"); !ok || got.Dirs[d] != "new/dir" {
		t.Errorf("new directory: %d %v", d, ok)
	}
	if got.ReadPoint != base.ReadPoint {
		t.Errorf("the update changed the read point: %+v", got.ReadPoint)
	}

	// The base is as it was, for readers that still hold it.
	sameTable(t, "base after the update", describe(base), before)
	if base.Len() != baseLen || len(base.Dirs) != baseDirs || base.Gone.Count() != 0 || len(base.Verified) != 2 {
		t.Errorf("base changed: %d files, %d dirs, %d purged, %d regions", base.Len(), len(base.Dirs), base.Gone.Count(), len(base.Verified))
	}
	if _, ok := base.DirIndex("new/dir"); ok {
		t.Error("the update added a directory to the base's index")
	}
	if _, ok := base.Index(50); ok {
		t.Error("the update added an ID to the base's index")
	}

	// A second update along the chain, changing only copies, shares the file columns.
	u2 := NewUpdate(got)
	u2.SetCopy(7, 60, true)
	next := u2.Table()
	if &next.pages[0] != &got.pages[0] || &next.names[0] != &got.names[0] || next.ids != got.ids {
		t.Error("an update of copies only copied the file columns")
	}
	if &next.Verified[9][0] != &got.Verified[9][0] {
		t.Error("an update of region 7 copied region 9's set")
	}
	if got.Verified[7].Has(5) || !next.Verified[7].Has(5) {
		t.Error("the copy was recorded in the wrong table")
	}
}

func hexOf(s string) string { return hex.EncodeToString(sum(s))[:8] }

// TestUpdateRefusesRewrites: a change that renames a file or revives a purged one means
// the rows were rewritten behind change tracking; so is a short sha256 an error.
func TestUpdateRefusesRewrites(t *testing.T) {
	base := sample(t)
	u := NewUpdate(base)
	if err := u.File(10, []byte("a/renamed.rpm"), 1, sum("x"), false); !errors.Is(err, ErrRewritten) {
		t.Errorf("rename: %v, want ErrRewritten", err)
	}
	if err := u.File(10, []byte("b/1.rpm"), 1, sum("x"), false); !errors.Is(err, ErrRewritten) {
		t.Errorf("move to another directory: %v, want ErrRewritten", err)
	}
	u.RemoveFile(20)
	if err := u.File(20, []byte("a/2.rpm"), 1, sum("x"), false); !errors.Is(err, ErrRewritten) {
		t.Errorf("revival: %v, want ErrRewritten", err)
	}
	for _, id := range []int64{10, 70} { // known and new
		if err := u.File(id, []byte("a/1.rpm"), 1, []byte("short"), false); err == nil || errors.Is(err, ErrRewritten) {
			t.Errorf("short sha256 of file %d: %v", id, err)
		}
	}
	if got := describe(base); !maps.Equal(got, describe(sample(t))) {
		t.Errorf("refused changes reached the base: %v", got)
	}
}

// TestReconciler: a full read that agrees with the table changes nothing and shares the
// columns; one that differs is applied (a changed file, a new one, a missing one, copies
// that differ) and counted, and the base stays as it was.
func TestReconciler(t *testing.T) {
	base := sample(t)
	before := describe(base)
	type row struct {
		id      int64
		path    string
		size    int64
		sum     []byte
		deleted bool
	}
	same := []row{
		{10, "a/1.rpm", 100, sum("a/1.rpm"), false},
		{20, "a/2.rpm", 101, sum("a/2.rpm"), true},
		{30, "b/c/3.rpm", 102, sum("b/c/3.rpm"), false},
		{40, "README", 103, sum("README"), false},
	}
	feed := func(r *Reconciler, rows []row) int {
		t.Helper()
		n := 0
		for _, x := range rows {
			changed, err := r.File(x.id, []byte(x.path), x.size, x.sum, x.deleted)
			if err != nil {
				t.Fatalf("file %d: %v", x.id, err)
			}
			if changed {
				n++
			}
		}
		return n
	}

	r := NewReconciler(base)
	if n := feed(r, same); n != 0 {
		t.Errorf("%d files differ in an exact read", n)
	}
	if n := r.RemoveMissing(); n != 0 {
		t.Errorf("%d files missing from an exact read", n)
	}
	if n := r.SetVerified(map[int64]Bitset{7: bitsetOf(4, 0, 2), 9: bitsetOf(4, 2)}); n != 0 {
		t.Errorf("%d copies differ in an exact read", n)
	}
	exact := r.Table()
	sameTable(t, "exact", describe(exact), before)
	if &exact.pages[0] != &base.pages[0] || exact.ids != base.ids || &exact.Deleted[0] != &base.Deleted[0] {
		t.Error("an exact reconciliation copied the file columns")
	}

	r = NewReconciler(base)
	rows := []row{
		same[0],
		{20, "a/2.rpm", 101, sum("a/2.rpm"), false}, // undeleted
		// 30 missing: purged behind the triggers
		{40, "README", 999, sum("README v2"), false}, // new bytes
		{50, "c/5.rpm", 5, sum("5"), false},          // new
	}
	if n := feed(r, rows); n != 3 {
		t.Errorf("%d files differ, want 3", n)
	}
	if n := r.RemoveMissing(); n != 1 {
		t.Errorf("%d files missing, want 1", n)
	}
	// Region 7 lost file 0 and gained the new file 4, region 9 is gone (1 copy), region 11 new.
	if n := r.SetVerified(map[int64]Bitset{7: bitsetOf(5, 2, 4), 11: bitsetOf(5, 1)}); n != 2+1+1 {
		t.Errorf("%d copies differ, want 4", n)
	}
	sameTable(t, "reconciled", describe(r.Table()), map[string]string{
		"a/1.rpm": "id 10 size 100 sha " + hexOf("a/1.rpm") + " deleted false in []",
		"a/2.rpm": "id 20 size 101 sha " + hexOf("a/2.rpm") + " deleted false in [11]",
		"README":  "id 40 size 999 sha " + hexOf("README v2") + " deleted false in []",
		"c/5.rpm": "id 50 size 5 sha " + hexOf("5") + " deleted false in [7]",
	})
	sameTable(t, "base after reconciling", describe(base), before)

	// A purged file that comes back, or a file under another path: not patchable.
	purged := r.Table()
	for _, x := range []row{{30, "b/c/3.rpm", 102, sum("b/c/3.rpm"), false}, {10, "a/other.rpm", 100, sum("a/1.rpm"), false}} {
		if _, err := NewReconciler(purged).File(x.id, []byte(x.path), x.size, x.sum, x.deleted); !errors.Is(err, ErrRewritten) {
			t.Errorf("file %d as %s: %v, want ErrRewritten", x.id, x.path, err)
		}
	}
}

func bitsetOf(n int, members ...int) Bitset {
	b := NewBitset(n)
	for _, i := range members {
		b.Set(i)
	}
	return b
}

// TestUpdateGrowsInPlace adds files one by one, as a push's transactions do, verified in
// every region: each region's set and the ID index are copied from the base once and then
// grown within their room, not copied again every 64 files (at 10 million files x 20
// regions that was 25 MB per 64 new files). The base reads as it did.
func TestUpdateGrowsInPlace(t *testing.T) {
	b := NewBuilder(1000, 1000*10)
	for i := range 1000 {
		if _, err := b.Add("d/"+strconv.Itoa(i), 1, sum(strconv.Itoa(i)), false); err != nil {
			t.Fatal(err)
		}
		for r := range int64(3) {
			b.Verify(r+1, i)
		}
	}
	base := b.Table()
	before := describe(base)
	u := NewUpdate(base)
	copies := map[int64]int{}
	last := map[int64]*uint64{}
	for i := 1000; i < 3000; i++ {
		if err := u.File(int64(i+1), []byte("d/"+strconv.Itoa(i)), 1, sum(strconv.Itoa(i)), false); err != nil {
			t.Fatal(err)
		}
		if i == 1000 && &u.Table().ids.dense[0] != &base.ids.dense[0] {
			t.Error("ID index copied for an ID above the base's")
		}
		for r := range int64(3) {
			u.SetCopy(r+1, int64(i+1), true)
			if p := &u.Table().Verified[r+1][0]; p != last[r+1] {
				copies[r+1]++
				last[r+1] = p
			}
		}
	}
	got := u.Table()
	for r := range int64(3) {
		if n := got.Verified[r+1].Count(); n != 3000 {
			t.Errorf("region %d: %d files verified, want 3000", r+1, n)
		}
		if copies[r+1] > 6 {
			t.Errorf("region %d: set copied %d times for 2000 new files", r+1, copies[r+1])
		}
		if &got.Verified[r+1][0] == &base.Verified[r+1][0] {
			t.Errorf("region %d: set shared with the base", r+1)
		}
	}
	for i := range 3000 {
		if j, ok := got.Index(int64(i + 1)); !ok || j != i {
			t.Fatalf("ID %d: index %d, %v", i+1, j, ok)
		}
	}
	sameTable(t, "base after the update", describe(base), before)
}

// TestUpdateIDBelowBase adds a file whose ID is below the base's highest (transactions
// commit out of ID order): the shared ID index is copied first, so the base does not
// learn the ID.
func TestUpdateIDBelowBase(t *testing.T) {
	b := NewBuilder(4, 40)
	for _, id := range []int64{1, 2, 4, 5} {
		if err := b.AddID(id, []byte("d/"+strconv.Itoa(int(id))), 1, sum("x"), false); err != nil {
			t.Fatal(err)
		}
	}
	base := b.Table()
	u := NewUpdate(base)
	if err := u.File(6, []byte("d/6"), 1, sum("x"), false); err != nil {
		t.Fatal(err)
	}
	if err := u.File(3, []byte("d/3"), 1, sum("x"), false); err != nil {
		t.Fatal(err)
	}
	if _, ok := base.Index(3); ok {
		t.Error("the base knows ID 3, added by the update")
	}
	if _, ok := base.Index(6); ok {
		t.Error("the base knows ID 6, added by the update")
	}
	if i, ok := u.Table().Index(3); !ok || i != 5 {
		t.Errorf("ID 3: index %d, %v; want 5", i, ok)
	}
}

// TestUpdateCopiesOnlyChangedPages changes one file of 100,000: the update copies the
// page holding it (64 files) and the page pointers, not every size and hash (4 MB here,
// 400 MB at 10 million files). The base keeps the old size and hash.
func TestUpdateCopiesOnlyChangedPages(t *testing.T) {
	const n = 100_000
	b := NewBuilder(n, n*8)
	for i := range n {
		if _, err := b.Add("d/"+strconv.Itoa(i), int64(i), sum("x"), false); err != nil {
			t.Fatal(err)
		}
	}
	base := b.Table()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	u := NewUpdate(base)
	if err := u.File(5001, []byte("d/5000"), 1, sum("y"), false); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<10 {
		t.Errorf("changing one file allocated %d bytes", got)
	}
	got := u.Table()
	if got.Size(5000) != 1 || hex.EncodeToString(got.SHA256(5000)) != hex.EncodeToString(sum("y")) {
		t.Error("the update did not change file 5000")
	}
	if base.Size(5000) != 5000 || hex.EncodeToString(base.SHA256(5000)) != hex.EncodeToString(sum("x")) {
		t.Error("the update changed the base's file 5000")
	}
	for p := range got.pages {
		if (got.pages[p] == base.pages[p]) != (p != 5000>>pageBits) {
			t.Errorf("page %d: shared %v", p, got.pages[p] == base.pages[p])
		}
	}
}
