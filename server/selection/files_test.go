package selection_test

import (
	"crypto/sha256"
	"fmt"
	"runtime"
	"testing"

	"github.com/regionmirror/regionmirror/internal/filetable"
	"github.com/regionmirror/regionmirror/server/selection"
)

// table builds a file table of paths, in order.
func table(t *testing.T, paths ...string) *filetable.Table {
	t.Helper()
	b := filetable.NewBuilder(len(paths), 64*len(paths))
	for _, p := range paths {
		sum := sha256.Sum256([]byte(p))
		if _, err := b.Add(p, int64(len(p)), sum[:], false); err != nil {
			t.Fatal(err)
		}
	}
	return b.Table()
}

func lookups(t *testing.T, x *selection.FileIndex, want map[string]int) {
	t.Helper()
	for p, i := range want {
		got, ok := x.Lookup(p)
		if i < 0 && ok {
			t.Errorf("Lookup(%q) = %d, want not found", p, got)
		}
		if i >= 0 && (!ok || got != i) {
			t.Errorf("Lookup(%q) = %d, %v, want %d", p, got, ok, i)
		}
	}
}

func TestFileIndexLookup(t *testing.T) {
	x := selection.NewFileIndex(table(t, "a/b/c.rpm", "a/b/d.rpm", "top.txt", "a/c.rpm", "a/b+c/d.rpm"))
	lookups(t, x, map[string]int{
		"a/b/c.rpm": 0, "a/b/d.rpm": 1, "top.txt": 2, "a/c.rpm": 3, "a/b+c/d.rpm": 4,
		"a/b/e.rpm": -1, // known directory, unknown name
		"x/c.rpm":   -1, // unknown directory
		"c.rpm":     -1, // a known name at the root
		"a/b":       -1, // a directory is not a file
		"":          -1,
	})
	if x.Len() != 5 {
		t.Errorf("Len %d", x.Len())
	}
}

// TestFileIndexPurged: a purged file (Gone) is not found and not counted; the same path
// added again later is found as the new file.
func TestFileIndexPurged(t *testing.T) {
	tb := table(t, "a/x.rpm", "a/y.rpm", "a/x.rpm")
	tb.Gone = filetable.NewBitset(tb.Len())
	tb.Gone.Set(0)
	x := selection.NewFileIndex(tb)
	lookups(t, x, map[string]int{"a/x.rpm": 2, "a/y.rpm": 1})
	if x.Len() != 2 {
		t.Errorf("Len %d, want 2", x.Len())
	}
	tb.Gone.Set(2)
	lookups(t, x, map[string]int{"a/x.rpm": -1})
}

// TestFileIndexUpdate: an index of a table that only grew shares or extends the slots and
// finds every file; the old index keeps answering for its own table.
func TestFileIndexUpdate(t *testing.T) {
	var paths []string
	for i := range 300 { // past what 256 slots, the fewest, may hold
		paths = append(paths, fmt.Sprintf("d%d/f%d.rpm", i%3, i))
	}
	small, same, grown, huge := table(t, paths[:10]...), table(t, paths[:10]...), table(t, paths[:14]...), table(t, paths...)
	x := selection.NewFileIndex(small)
	for _, tt := range []struct {
		name string
		t    *filetable.Table
		n    int
	}{
		{"the same table", small, 10},
		{"an equal table", same, 10},
		{"a few files more", grown, 14},
		{"more files than the slots hold", huge, 300},
		{"a smaller table", table(t, paths[:3]...), 3},
	} {
		u := x.Update(tt.t)
		if u.Table() != tt.t || u.Len() != tt.n {
			t.Errorf("%s: table %p (want %p), %d files (want %d)", tt.name, u.Table(), tt.t, u.Len(), tt.n)
		}
		want := map[string]int{}
		for i, p := range paths {
			want[p] = -1
			if i < tt.n {
				want[p] = i
			}
		}
		lookups(t, u, want)
		if tt.t == small && u != x {
			t.Errorf("%s: a new index", tt.name)
		}
	}
	// x still indexes small alone.
	want := map[string]int{}
	for i, p := range paths {
		want[p] = -1
		if i < 10 {
			want[p] = i
		}
	}
	lookups(t, x, want)
}

// TestFileIndexUpdateCopiesPages adds 10 files to an index of 100,000: the new index
// copies the slot pages the new files land in and the page pointers, not every slot (1 MB
// here, 64 MB at 10 million files). Both indexes answer for their own tables.
func TestFileIndexUpdateCopiesPages(t *testing.T) {
	var paths []string
	for i := range 100_010 {
		paths = append(paths, fmt.Sprintf("d%d/f%d.rpm", i%300, i))
	}
	b := filetable.NewBuilder(100_000, 100_000*12)
	for _, p := range paths[:100_000] {
		sum := sha256.Sum256([]byte(p))
		if _, err := b.Add(p, 1, sum[:], false); err != nil {
			t.Fatal(err)
		}
	}
	base := b.Table()
	x := selection.NewFileIndex(base)
	u := filetable.NewUpdate(base)
	for i, p := range paths[100_000:] {
		sum := sha256.Sum256([]byte(p))
		if err := u.File(int64(100_001+i), []byte(p), 1, sum[:], false); err != nil {
			t.Fatal(err)
		}
	}
	grown := u.Table()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	y := x.Update(grown)
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<10 {
		t.Errorf("indexing 10 new files allocated %d bytes", got)
	}
	wantX, wantY := map[string]int{}, map[string]int{}
	for i := 0; i < len(paths); i += 997 {
		wantX[paths[i]], wantY[paths[i]] = i, i
	}
	for i := 100_000; i < len(paths); i++ {
		wantX[paths[i]], wantY[paths[i]] = -1, i
	}
	lookups(t, x, wantX)
	lookups(t, y, wantY)
}
