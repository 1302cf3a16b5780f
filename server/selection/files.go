package selection

import (
	"hash/maphash"
	"math/bits"
	"slices"

	"github.com/regionmirror/regionmirror/internal/filetable"
)

// FileIndex finds files of a filetable.Table by path. The table is shared, not copied, and
// the index is one open-addressing table of int32 (8 MB per million files), so a snapshot
// of a million files stays far below the memory a map of strings would take.
type FileIndex struct {
	t     *filetable.Table
	slots []int32 // file index + 1; 0 is empty
	mask  uint64
}

var fileSeed = maphash.MakeSeed()

func fileHash(dir int32, name string) uint64 {
	return maphash.String(fileSeed, name) ^ (uint64(dir)+1)*0x9E3779B97F4A7C15
}

// NewFileIndex indexes t.
func NewFileIndex(t *filetable.Table) *FileIndex {
	// A load factor of at most one half keeps probe sequences short.
	size := 1 << bits.Len(uint(2*t.Len()+1))
	x := &FileIndex{t: t, slots: make([]int32, size), mask: uint64(size - 1)}
	x.insert(0, t.Len())
	return x
}

func (x *FileIndex) insert(from, to int) {
	for i := from; i < to; i++ {
		h := fileHash(int32(x.t.Dir(i)), string(x.t.Name(i)))
		for j := h & x.mask; ; j = (j + 1) & x.mask {
			if x.slots[j] == 0 {
				x.slots[j] = int32(i + 1)
				break
			}
		}
	}
}

// Update returns an index of t, a table db.UpdateFileTable derived from x's. Such tables
// only ever append files, so the slots are copied and the new files added, unless the
// table outgrew them. x stays valid.
func (x *FileIndex) Update(t *filetable.Table) *FileIndex {
	old := x.t.Len()
	switch {
	case t == x.t:
		return x
	case t.Len() < old || len(x.slots) < 2*t.Len():
		return NewFileIndex(t)
	case t.Len() == old:
		return &FileIndex{t: t, slots: x.slots, mask: x.mask}
	}
	n := &FileIndex{t: t, slots: slices.Clone(x.slots), mask: x.mask}
	n.insert(old, t.Len())
	return n
}

// Len returns the number of files (purged ones left out).
func (x *FileIndex) Len() int { return x.t.Len() - x.t.Gone.Count() }

// Table returns the indexed table.
func (x *FileIndex) Table() *filetable.Table { return x.t }

// Lookup returns the index of the file at path.
func (x *FileIndex) Lookup(path string) (int, bool) {
	dirName, name := filetable.SplitPath(path)
	dir, ok := x.t.DirIndex(dirName)
	if !ok {
		return 0, false
	}
	d := int32(dir)
	for j := fileHash(d, name) & x.mask; ; j = (j + 1) & x.mask {
		v := x.slots[j]
		if v == 0 {
			return 0, false
		}
		// A purged file keeps its slot until the next full read; the path may be live
		// again further on, as a new file.
		if i := int(v - 1); int32(x.t.Dir(i)) == d && string(x.t.Name(i)) == name && !x.t.Gone.Has(i) {
			return i, true
		}
	}
}
