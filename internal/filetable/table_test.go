package filetable

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

func sum(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// describe renders what a table says about every file that exists (purged ones left
// out), by path, with its ID.
func describe(t *Table) map[string]string {
	out := map[string]string{}
	regions := slices.Sorted(maps.Keys(t.Verified))
	ids := t.ids.byIndex(t.Len())
	for i := range t.Len() {
		if t.Gone.Has(i) {
			continue
		}
		var in []string
		for _, r := range regions {
			if t.Verified[r].Has(i) {
				in = append(in, fmt.Sprint(r))
			}
		}
		out[t.Path(i)] = fmt.Sprintf("id %d size %d sha %s deleted %v in [%s]", ids[i], t.Size(i), hex.EncodeToString(t.SHA256(i))[:8], t.Deleted.Has(i), strings.Join(in, " "))
	}
	return out
}

func sameTable(t *testing.T, what string, got map[string]string, want map[string]string) {
	t.Helper()
	for _, p := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[p]; !ok {
			t.Errorf("%s: %s missing", what, p)
		} else if g != want[p] {
			t.Errorf("%s: %s: %q, want %q", what, p, g, want[p])
		}
	}
	for _, p := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: %s should not be there (%q)", what, p, got[p])
		}
	}
}

// sample builds a table of files in three directories and the root, with IDs 10, 20, ...
// (file i has ID 10*(i+1)): file 1 deleted, region 7 holding the even files, region 9
// file 2.
func sample(t *testing.T) *Table {
	t.Helper()
	b := NewBuilder(4, 64)
	for i, p := range []string{"a/1.rpm", "a/2.rpm", "b/c/3.rpm", "README"} {
		if err := b.AddID(int64(10*(i+1)), []byte(p), int64(100+i), sum(p), i == 1); err != nil {
			t.Fatal(err)
		}
	}
	b.Verify(7, 0)
	b.Verify(7, 2)
	b.Verify(9, 2)
	tab := b.Table()
	tab.ReadPoint = ReadPoint{Seen: "100:105:101", ReadAt: time.Unix(1700000000, 123), Origin: "sys-1-db-2"}
	return tab
}

func TestBuilder(t *testing.T) {
	b := NewBuilder(2, 10) // fewer files than added: the hints only size the arenas
	paths := []string{"fedora/41/x86_64/os/Packages/a.rpm", "fedora/41/x86_64/os/repodata/repomd.xml", "README", "fedora/41/x86_64/os/Packages/b.rpm", "Packages/libc++-1.rpm"}
	for i, p := range paths {
		got, err := b.Add(p, int64(i*1000), sum(p), p == "README")
		if err != nil || got != i {
			t.Fatalf("Add(%s) = %d, %v", p, got, err)
		}
	}
	if _, err := b.Add("short.rpm", 1, []byte("not 32 bytes"), false); err == nil || !strings.Contains(err.Error(), "short.rpm") {
		t.Errorf("a short sha256 was taken: %v", err)
	}
	b.Verify(3, 1)
	b.Verify(3, 4) // beyond the capacity hint: the set grows
	b.Verify(5, 0)
	tab := b.Table()
	if tab.Len() != len(paths) {
		t.Fatalf("%d files, want %d", tab.Len(), len(paths))
	}
	for i, p := range paths {
		dir, name := SplitPath(p)
		d, ok := tab.DirIndex(dir)
		if tab.Path(i) != p || string(tab.Name(i)) != name || !ok || tab.Dir(i) != d || tab.Dirs[d] != dir {
			t.Errorf("file %d: path %q name %q dir %d (%q %v), want %q", i, tab.Path(i), tab.Name(i), tab.Dir(i), dir, ok, p)
		}
		if tab.Size(i) != int64(i*1000) || string(tab.SHA256(i)) != string(sum(p)) || len(tab.SHA256(i)) != 32 {
			t.Errorf("file %d: size %d sha %x", i, tab.Size(i), tab.SHA256(i))
		}
		if tab.Deleted.Has(i) != (p == "README") {
			t.Errorf("file %d deleted: %v", i, tab.Deleted.Has(i))
		}
		// Add numbers the files 1, 2, ... in order.
		if j, ok := tab.Index(int64(i + 1)); !ok || j != i {
			t.Errorf("Index(%d) = %d, %v; want %d", i+1, j, ok, i)
		}
	}
	if got := len(tab.Dirs); got != 4 { // Packages and repodata of fedora, "", Packages
		t.Errorf("%d directories: %q", got, tab.Dirs)
	}
	if _, ok := tab.DirIndex("fedora/41"); ok {
		t.Error("a directory that holds no file directly has an index")
	}
	for _, id := range []int64{0, -1, int64(len(paths) + 1), 1 << 40} {
		if i, ok := tab.Index(id); ok {
			t.Errorf("Index(%d) = %d for an unknown ID", id, i)
		}
	}
	if !tab.Verified[3].Has(1) || !tab.Verified[3].Has(4) || tab.Verified[3].Count() != 2 || !tab.Verified[5].Has(0) || tab.Verified[5].Count() != 1 {
		t.Errorf("verified sets: %v", tab.Verified)
	}
	if tab.Gone.Count() != 0 {
		t.Errorf("a new table has %d purged files", tab.Gone.Count())
	}
	// Appending to a name arena must not corrupt the names before it.
	if got := string(tab.Name(0)); got != "a.rpm" {
		t.Errorf("first name %q", got)
	}
}

// TestIndexByID: IDs from a dense identity column index through a slice, a sparse history
// through a map; both find every file and no other, and so does an update that turns a
// dense index sparse.
func TestIndexByID(t *testing.T) {
	for name, ids := range map[string][]int64{
		"dense":       {5, 6, 7, 9, 12},
		"sparse":      {1, 1 << 20, 1 << 33, 1<<33 + 1},
		"empty":       nil,
		"one":         {42},
		"big offsets": {1 << 40, 1<<40 + 3},
	} {
		b := NewBuilder(len(ids), 0)
		for i, id := range ids {
			if err := b.AddID(id, fmt.Appendf(nil, "d/%d", i), 1, sum("x"), false); err != nil {
				t.Fatal(err)
			}
		}
		tab := b.Table()
		for i, id := range ids {
			if j, ok := tab.Index(id); !ok || j != i {
				t.Errorf("%s: Index(%d) = %d, %v; want %d", name, id, j, ok, i)
			}
			for _, near := range []int64{id - 1, id + 1} {
				if !slices.Contains(ids, near) {
					if _, ok := tab.Index(near); ok {
						t.Errorf("%s: Index(%d) found an unknown ID", name, near)
					}
				}
			}
		}
		if got := tab.ids.byIndex(tab.Len()); !slices.Equal(got, ids) && len(ids) > 0 {
			t.Errorf("%s: byIndex %v, want %v", name, got, ids)
		}
	}

	// A dense index that an update extends far away becomes a map, and keeps what it had.
	b := NewBuilder(3, 0)
	for _, id := range []int64{1, 2, 3} {
		if err := b.AddID(id, fmt.Appendf(nil, "f%d", id), 1, sum("x"), false); err != nil {
			t.Fatal(err)
		}
	}
	base := b.Table()
	u := NewUpdate(base)
	for _, id := range []int64{4, 1 << 30} {
		if err := u.File(id, fmt.Appendf(nil, "f%d", id), 1, sum("x"), false); err != nil {
			t.Fatal(err)
		}
	}
	up := u.Table()
	if up.ids.m == nil {
		t.Error("a far ID did not turn the index into a map")
	}
	for i, id := range []int64{1, 2, 3, 4, 1 << 30} {
		if j, ok := up.Index(id); !ok || j != i {
			t.Errorf("after the update, Index(%d) = %d, %v; want %d", id, j, ok, i)
		}
	}
	if _, ok := base.Index(4); ok || base.ids.m != nil {
		t.Error("the update changed the base's index")
	}
}

// TestBuilderIDOrder: IDs out of order are refused (the ID index assumed the order, and
// the table panicked or lost files).
func TestBuilderIDOrder(t *testing.T) {
	for _, ids := range [][]int64{{5, 3}, {5, 5}, {1, 1 << 40, 2}} {
		b := NewBuilder(len(ids), 0)
		var err error
		for i, id := range ids {
			if err = b.AddID(id, fmt.Appendf(nil, "f%d", i), 1, sum("x"), false); err != nil {
				break
			}
		}
		if err == nil {
			t.Errorf("IDs %v taken", ids)
			continue
		}
		// What was taken before the refusal still makes a usable table.
		tab := b.Table()
		for i := range tab.Len() {
			if j, ok := tab.Index(ids[i]); !ok || j != i {
				t.Errorf("IDs %v: Index(%d) = %d, %v", ids, ids[i], j, ok)
			}
		}
	}
}
