package filetable

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// updated is sample after an update: appended files, a purged one, a new region, so that
// every part of the format holds something.
func updated(t *testing.T) *Table {
	t.Helper()
	u := NewUpdate(sample(t))
	if err := u.File(70, []byte("new/7.rpm"), 7, sum("7"), false); err != nil {
		t.Fatal(err)
	}
	if err := u.File(1<<35, []byte("new/far.rpm"), 8, sum("far"), true); err != nil { // a sparse ID
		t.Fatal(err)
	}
	u.RemoveFile(30)
	u.SetCopy(12, 70, true)
	return u.Table()
}

func written(t *testing.T, tab *Table) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, tab); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestWriteRead: a table written and read back is the same table, with its read point,
// and can be updated.
func TestWriteRead(t *testing.T) {
	for name, tab := range map[string]*Table{"built": sample(t), "updated": updated(t)} {
		raw := written(t, tab)
		back, err := Read(bytes.NewReader(raw), int64(len(raw)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sameTable(t, name+", read back", describe(back), describe(tab))
		if !back.ReadPoint.ReadAt.Equal(tab.ReadPoint.ReadAt) || back.ReadPoint.Seen != tab.ReadPoint.Seen || back.ReadPoint.Origin != tab.ReadPoint.Origin {
			t.Errorf("%s: read point %+v, want %+v", name, back.ReadPoint, tab.ReadPoint)
		}
		if back.Len() != tab.Len() || back.Gone.Count() != tab.Gone.Count() || len(back.Dirs) != len(tab.Dirs) {
			t.Errorf("%s: %d files, %d purged, %d dirs", name, back.Len(), back.Gone.Count(), len(back.Dirs))
		}
		for i := range tab.Len() {
			if d, ok := back.DirIndex(tab.Dirs[tab.Dir(i)]); !ok || d != back.Dir(i) {
				t.Errorf("%s: file %d: directory index %d %v", name, i, d, ok)
			}
		}
		for _, id := range tab.ids.byIndex(tab.Len()) {
			want, _ := tab.Index(id)
			if got, ok := back.Index(id); !ok || got != want {
				t.Errorf("%s: Index(%d) = %d, %v; want %d", name, id, got, ok, want)
			}
		}
		// Written again, it is the same bytes.
		if again := written(t, back); !bytes.Equal(again, raw) {
			t.Errorf("%s: written again, %d bytes differ from %d", name, len(again), len(raw))
		}
		u := NewUpdate(back)
		if err := u.File(80, []byte("a/8.rpm"), 8, sum("8"), false); err != nil {
			t.Fatal(err)
		}
		u.SetCopy(7, 80, true)
		if i, ok := u.Table().Index(80); !ok || !u.Table().Verified[7].Has(i) || u.Table().Path(i) != "a/8.rpm" {
			t.Errorf("%s: the table read back does not take updates", name)
		}
	}
}

// TestReadDamaged: whatever does not check out is ErrBadFile, never a panic or a huge
// allocation: every truncation, bit flips, another version, a length over the file, and
// tables whose parts disagree though the checksum holds.
func TestReadDamaged(t *testing.T) {
	raw := written(t, updated(t))
	bad := func(name string, b []byte) {
		t.Helper()
		if _, err := Read(bytes.NewReader(b), int64(len(b))); !errors.Is(err, ErrBadFile) {
			t.Errorf("%s: %v, want ErrBadFile", name, err)
		}
	}
	for n := range len(raw) {
		bad("truncated", raw[:n])
	}
	for _, at := range []int{0, len(tableMagic), len(tableMagic) + 9, len(raw) / 3, len(raw) / 2, len(raw) - 1} {
		flipped := bytes.Clone(raw)
		flipped[at] ^= 1
		bad("bit flipped", flipped)
	}
	bad("other version", append([]byte("regionmirror file table 0\n"), raw[len(tableMagic):]...))
	bad("huge length", append([]byte(tableMagic), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f))

	// Inconsistent tables with a valid checksum: written from tables broken by hand.
	for name, breakIt := range map[string]func(*Table){
		"no read point":      func(t *Table) { t.ReadPoint = ReadPoint{} },
		"short column":       func(t *Table) { t.dirOf = t.dirOf[:len(t.dirOf)-1] },
		"short name ends":    func(t *Table) { t.nameEnd = t.nameEnd[:len(t.nameEnd)-1] },
		"long column":        func(t *Table) { t.dirOf = append(t.dirOf, 0) },
		"directory of none":  func(t *Table) { t.dirOf = append([]int32{int32(len(t.Dirs))}, t.dirOf[1:]...) },
		"negative directory": func(t *Table) { t.dirOf = append([]int32{-1}, t.dirOf[1:]...) },
		"names backwards":    func(t *Table) { t.nameEnd = append([]uint32{t.nameEnd[1], t.nameEnd[0]}, t.nameEnd[2:]...) },
		"arena longer":       func(t *Table) { t.names = append(t.names, 'x') },
		"deleted set longer": func(t *Table) { t.Deleted = make(Bitset, 5) },
		"purged set longer":  func(t *Table) { t.Gone = make(Bitset, 5) },
		"region set longer":  func(t *Table) { t.Verified[7] = make(Bitset, 5) },
		// Files without an ID in the index are written as ID 0, twice here.
		"an ID twice (dense)": func(t *Table) { t.ids = newIDIndex([]int64{10, 20}) },
		"an ID twice (map)":   func(t *Table) { t.ids = newIDIndex([]int64{1, 1 << 40}) },
	} {
		tab := sample(t)
		tab.Verified = map[int64]Bitset{7: tab.Verified[7]}
		breakIt(tab)
		bad(name, written(t, tab))
	}
}

// TestWriteFile: the file is written through a temporary file renamed into place, read
// back with its time, and a missing or damaged file is an error.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "files.table")
	tab := updated(t)
	if err := os.WriteFile(path+".tmp", []byte("left by a crash"), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Second)
	if err := WriteFile(path, tab); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the temporary file stayed: %v", err)
	}
	back, at, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sameTable(t, "read from the file", describe(back), describe(tab))
	if at.Before(start) || at.After(time.Now().Add(time.Second)) {
		t.Errorf("written at %v", at)
	}
	if _, _, err := ReadFile(filepath.Join(dir, "none")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	raw, _ := os.ReadFile(path)
	if err := os.WriteFile(path, raw[:len(raw)-1], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadFile(path); !errors.Is(err, ErrBadFile) {
		t.Errorf("damaged file: %v, want ErrBadFile", err)
	}
	if err := WriteFile(filepath.Join(dir, "no", "such", "dir"), tab); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}
