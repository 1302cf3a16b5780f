package server

import (
	"hash/maphash"
	"math/bits"

	"github.com/regionmirror/regionmirror/db"
)

// FileIndex finds files of a db.FileTable by path. The table is shared, not copied, and
// the index is one open-addressing table of int32 (8 MB per million files), so a snapshot
// of a million files stays far below the memory a map of strings would take.
type FileIndex struct {
	t     *db.FileTable
	dirs  map[string]int32
	slots []int32 // file index + 1; 0 is empty
	mask  uint64
}

var fileSeed = maphash.MakeSeed()

func fileHash(dir int32, name string) uint64 {
	return maphash.String(fileSeed, name) ^ (uint64(dir)+1)*0x9E3779B97F4A7C15
}

// NewFileIndex indexes t.
func NewFileIndex(t *db.FileTable) *FileIndex {
	x := &FileIndex{t: t, dirs: make(map[string]int32, len(t.Dirs))}
	for i, d := range t.Dirs {
		x.dirs[d] = int32(i)
	}
	// A load factor of at most one half keeps probe sequences short.
	size := 1 << bits.Len(uint(2*t.Len()+1))
	x.slots = make([]int32, size)
	x.mask = uint64(size - 1)
	for i := range t.Len() {
		h := fileHash(int32(t.Dir(i)), string(t.Name(i)))
		for j := h & x.mask; ; j = (j + 1) & x.mask {
			if x.slots[j] == 0 {
				x.slots[j] = int32(i + 1)
				break
			}
		}
	}
	return x
}

// Len returns the number of files.
func (x *FileIndex) Len() int { return x.t.Len() }

// Table returns the indexed table.
func (x *FileIndex) Table() *db.FileTable { return x.t }

// Lookup returns the index of the file at path.
func (x *FileIndex) Lookup(path string) (int, bool) {
	dirName, name := db.SplitPath(path)
	d, ok := x.dirs[dirName]
	if !ok {
		return 0, false
	}
	for j := fileHash(d, name) & x.mask; ; j = (j + 1) & x.mask {
		v := x.slots[j]
		if v == 0 {
			return 0, false
		}
		if i := int(v - 1); int32(x.t.Dir(i)) == d && string(x.t.Name(i)) == name {
			return i, true
		}
	}
}
