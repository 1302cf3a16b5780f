package filetable

import (
	"fmt"
	"maps"
	"slices"
)

// idIndex maps file IDs to indexes. IDs come from an identity column, so they are dense
// enough for a slice; a sparse history falls back to a map.
type idIndex struct {
	dense []int32 // ID -> index+1 (0: unknown)
	// shared is how much of dense belongs to the index this one was cloned from.
	shared int
	min    int64
	m      map[int64]int32
	n      int
}

func newIDIndex(ids []int64) *idIndex {
	if len(ids) == 0 {
		return &idIndex{}
	}
	lo, hi := ids[0], ids[len(ids)-1] // ordered by ID
	if span := hi - lo + 1; span <= int64(4*len(ids)+1024) {
		x := &idIndex{dense: make([]int32, span, span+int64(headroom(int(span)))), min: lo, n: len(ids)}
		for i, id := range ids {
			x.dense[id-lo] = int32(i + 1)
		}
		return x
	}
	x := &idIndex{m: make(map[int64]int32, len(ids)), n: len(ids)}
	for i, id := range ids {
		x.m[id] = int32(i)
	}
	return x
}

// clone returns an index that add may change without changing x. The dense slice is
// shared: new IDs land beyond x's length, where x never looks (as the table's arenas do),
// and add copies it before writing inside x's part. Copying it whole here would cost 4
// bytes per file for every update that adds a file.
func (x *idIndex) clone() *idIndex {
	return &idIndex{dense: x.dense, shared: len(x.dense), min: x.min, m: maps.Clone(x.m), n: x.n}
}

// add maps id to index i; id must be new.
func (x *idIndex) add(id int64, i int) {
	x.n++
	if x.m == nil && len(x.dense) == 0 {
		x.min = id
	}
	if x.m == nil && id >= x.min && id-x.min < int64(4*x.n+1024) {
		if off := int(id - x.min); off >= len(x.dense) {
			x.dense = append(x.dense, make([]int32, off+1-len(x.dense))...)
		} else if off < x.shared {
			// An ID below the highest known (transactions commit out of ID order).
			x.dense, x.shared = slices.Clone(x.dense), 0
		}
		x.dense[id-x.min] = int32(i + 1)
		return
	}
	if x.m == nil { // too sparse now: a map from here on
		x.m = make(map[int64]int32, x.n)
		for off, v := range x.dense {
			if v != 0 {
				x.m[x.min+int64(off)] = v - 1
			}
		}
		x.dense = nil
	}
	x.m[id] = int32(i)
}

func (x *idIndex) lookup(id int64) (int, bool) {
	if x.m != nil {
		i, ok := x.m[id]
		return int(i), ok
	}
	if id < x.min || id-x.min >= int64(len(x.dense)) {
		return 0, false
	}
	i := x.dense[id-x.min]
	return int(i) - 1, i != 0
}

// byIndex returns the file ID of every index below n.
func (x *idIndex) byIndex(n int) []int64 {
	out := make([]int64, n)
	if x.m != nil {
		for id, i := range x.m {
			if int(i) < n {
				out[i] = id
			}
		}
		return out
	}
	for off, v := range x.dense {
		if v != 0 && int(v) <= n {
			out[v-1] = x.min + int64(off)
		}
	}
	return out
}

// idIndexOf indexes IDs given by file index, in any order; an ID given twice is an error.
func idIndexOf(ids []int64) (*idIndex, error) {
	if len(ids) == 0 {
		return &idIndex{}, nil
	}
	lo, hi := slices.Min(ids), slices.Max(ids)
	if span := hi - lo + 1; span <= int64(4*len(ids)+1024) {
		x := &idIndex{dense: make([]int32, span), min: lo, n: len(ids)}
		for i, id := range ids {
			if x.dense[id-lo] != 0 {
				return nil, fmt.Errorf("file ID %d twice", id)
			}
			x.dense[id-lo] = int32(i + 1)
		}
		return x, nil
	}
	x := &idIndex{m: make(map[int64]int32, len(ids)), n: len(ids)}
	for i, id := range ids {
		if _, dup := x.m[id]; dup {
			return nil, fmt.Errorf("file ID %d twice", id)
		}
		x.m[id] = int32(i)
	}
	return x, nil
}
