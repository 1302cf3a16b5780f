package selection

import (
	"hash/maphash"
	"math/bits"
	"slices"

	"github.com/regionmirror/regionmirror/internal/filetable"
)

// FileIndex finds files of a filetable.Table by path. The table is shared, not copied, and
// the index is one open-addressing table of int32 (about 6.5 bytes per file), so a
// snapshot of ten million files stays far below the memory a map of strings would take.
// The slots sit in pages of 256, so that an update copies the pages its new files land in
// instead of every slot (64 MB at ten million files).
type FileIndex struct {
	t     *filetable.Table
	slots []*slotPage // file index + 1; 0 is empty
	mask  uint64
}

const slotBits = 8

type slotPage [1 << slotBits]int32

var fileSeed = maphash.MakeSeed()

func fileHash(dir int32, name string) uint64 {
	return maphash.String(fileSeed, name) ^ (uint64(dir)+1)*0x9E3779B97F4A7C15
}

// A new index is filled to at most 5/8 and rebuilt once updates fill it past 4/5: linear
// probing stays short, and a table grows by more than a quarter between rebuilds.
func slotsFor(n int) int { return max(1<<bits.Len(uint(n+n*3/5)), 1<<slotBits) }

func (x *FileIndex) full(n int) bool { return 5*n > 4*len(x.slots)<<slotBits }

// NewFileIndex indexes t.
func NewFileIndex(t *filetable.Table) *FileIndex {
	size := slotsFor(t.Len())
	x := &FileIndex{t: t, slots: make([]*slotPage, size>>slotBits), mask: uint64(size - 1)}
	for p := range x.slots {
		x.slots[p] = new(slotPage)
	}
	x.insert(0, t.Len(), nil)
	return x
}

// insert adds files from..to-1. With owned non-nil, it copies each page it writes to that
// owned does not hold yet (the pages are shared with another index).
func (x *FileIndex) insert(from, to int, owned []bool) {
	for i := from; i < to; i++ {
		h := fileHash(int32(x.t.Dir(i)), string(x.t.Name(i)))
		for j := h & x.mask; ; j = (j + 1) & x.mask {
			p := x.slots[j>>slotBits]
			if p[j&(1<<slotBits-1)] != 0 {
				continue
			}
			if owned != nil && !owned[j>>slotBits] {
				c := *p
				p = &c
				x.slots[j>>slotBits], owned[j>>slotBits] = p, true
			}
			p[j&(1<<slotBits-1)] = int32(i + 1)
			break
		}
	}
}

// Update returns an index of t, a table db.UpdateFileTable derived from x's. Such tables
// only ever append files, so the new files are added to copies of the pages they land in,
// unless the table outgrew the slots. x stays valid.
func (x *FileIndex) Update(t *filetable.Table) *FileIndex {
	old := x.t.Len()
	switch {
	case t == x.t:
		return x
	case t.Len() < old || x.full(t.Len()):
		return NewFileIndex(t)
	case t.Len() == old:
		return &FileIndex{t: t, slots: x.slots, mask: x.mask}
	}
	n := &FileIndex{t: t, slots: slices.Clone(x.slots), mask: x.mask}
	n.insert(old, t.Len(), make([]bool, len(n.slots)))
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
		v := x.slots[j>>slotBits][j&(1<<slotBits-1)]
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
