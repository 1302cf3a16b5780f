package filetable

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

// Table is the origin inventory and, per region, which files are verified there, in a
// compact form: paths are split into a shared directory table and one arena of base
// names, hashes sit in one byte slice, and each region's verified files are a Bitset over
// file indexes. About 60 bytes plus the base name per file, however many regions.
type Table struct {
	Dirs    []string // distinct directories ("" for the root)
	dirIdx  map[string]int32
	dirOf   []int32  // per file: index into Dirs
	names   []byte   // base names, concatenated
	nameEnd []uint32 // per file: end offset of its base name in names
	// pages holds the sizes and hashes, 64 files a page: an update copies the pages of
	// the files it changes, not every file's (400 MB at 10 million files).
	pages []*filePage
	ids   *idIndex
	// Deleted holds files the origin no longer has (still served during their grace period).
	Deleted Bitset
	// Gone holds files whose row was removed after the table was read (purged): they are
	// no longer files at all. A full read leaves them out.
	Gone Bitset
	// Verified holds, by region ID, the files whose copy there is present with the size
	// and sha256 the origin has now.
	Verified map[int64]Bitset
	// ReadPoint is the database read the table reflects; db.UpdateFileTable reads what
	// changed since. A table file keeps it.
	ReadPoint ReadPoint
}

// ReadPoint is where the database read behind a table stood. db fills it in and compares
// it; this package only keeps it and writes it to the table file.
type ReadPoint struct {
	Seen   string    // the database snapshot the read saw (pg_current_snapshot)
	ReadAt time.Time // the database's clock then
	Origin string    // the database history it was read from
}

// Len returns the number of files.
func (t *Table) Len() int { return len(t.dirOf) }

// pageBits is log2 of the files of a page.
const pageBits = 6

// filePage holds the sizes and sha256s of 64 consecutive files.
type filePage struct {
	size [1 << pageBits]int64
	sum  [1 << pageBits][32]byte
}

// pagesFor returns the pages that hold n files.
func pagesFor(n int) int { return (n + 1<<pageBits - 1) >> pageBits }

// DirIndex returns the index in Dirs of a directory.
func (t *Table) DirIndex(dir string) (int, bool) {
	d, ok := t.dirIdx[dir]
	return int(d), ok
}

// Dir returns the index of file i's directory in Dirs.
func (t *Table) Dir(i int) int { return int(t.dirOf[i]) }

// Name returns file i's base name; the bytes belong to the table.
func (t *Table) Name(i int) []byte {
	start := uint32(0)
	if i > 0 {
		start = t.nameEnd[i-1]
	}
	return t.names[start:t.nameEnd[i]]
}

// Path returns file i's path.
func (t *Table) Path(i int) string {
	if d := t.Dirs[t.dirOf[i]]; d != "" {
		return d + "/" + string(t.Name(i))
	}
	return string(t.Name(i))
}

// hasPath reports whether file i's path is path.
func (t *Table) hasPath(i int, path []byte) bool {
	var dir []byte
	name := path
	if j := lastSlash(path); j >= 0 {
		dir, name = path[:j], path[j+1:]
	}
	return bytes.Equal(t.Name(i), name) && t.Dirs[t.dirOf[i]] == string(dir)
}

// Size returns file i's size.
func (t *Table) Size(i int) int64 { return t.pages[i>>pageBits].size[i&(1<<pageBits-1)] }

// SHA256 returns file i's sha256; the bytes belong to the table.
func (t *Table) SHA256(i int) []byte {
	return t.pages[i>>pageBits].sum[i&(1<<pageBits-1)][:32:32]
}

// Index returns the index of the file with that ID (the files row's).
func (t *Table) Index(id int64) (int, bool) { return t.ids.lookup(id) }

// appendFile adds a file at the end and returns its index. The arenas and pages only
// grow, so a table derived by applying changes shares them with its base: writes land
// beyond the base's lengths, where its readers never look.
func (t *Table) appendFile(id int64, path []byte, size int64, sum []byte) (int, error) {
	if len(sum) != 32 {
		return 0, fmt.Errorf("file %d: sha256 of %d bytes", id, len(sum))
	}
	var dirPart, name []byte
	if i := lastSlash(path); i >= 0 {
		dirPart, name = path[:i], path[i+1:]
	} else {
		name = path
	}
	// A map lookup keyed by string(bytes) does not allocate; only new directories do.
	d, ok := t.dirIdx[string(dirPart)]
	if !ok {
		dir := string(dirPart)
		d = int32(len(t.Dirs))
		t.Dirs = append(t.Dirs, dir)
		t.dirIdx[dir] = d
	}
	t.dirOf = append(t.dirOf, d)
	t.names = append(t.names, name...)
	t.nameEnd = append(t.nameEnd, uint32(len(t.names)))
	i := len(t.dirOf) - 1
	if i&(1<<pageBits-1) == 0 {
		t.pages = append(t.pages, new(filePage))
	}
	// A base's last page may be shared, but only up to the base's length.
	p := t.pages[i>>pageBits]
	p.size[i&(1<<pageBits-1)] = size
	copy(p.sum[i&(1<<pageBits-1)][:], sum)
	return i, nil
}

func lastSlash(p []byte) int {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return i
		}
	}
	return -1
}

// SplitPath splits a path into directory and base name as Table stores it.
func SplitPath(p string) (dir, name string) {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i], p[i+1:]
	}
	return "", p
}
