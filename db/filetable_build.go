package db

import "fmt"

// FileTableBuilder builds a FileTable without a database: tests and benchmarks use it for
// synthetic inventories. LoadFileTable builds the same structure from PostgreSQL.
type FileTableBuilder struct {
	b *fileTableBuilder
}

// NewFileTableBuilder returns a builder with room for capacity files whose paths add up to
// about nameBytes bytes (both hints).
func NewFileTableBuilder(capacity, nameBytes int) *FileTableBuilder {
	return &FileTableBuilder{b: newFileTableBuilder(capacity, nameBytes)}
}

// Add appends a file and returns its index. sum must be 32 bytes.
func (b *FileTableBuilder) Add(path string, size int64, sum []byte, deleted bool) (int, error) {
	i := len(b.b.ids)
	if err := b.b.add(int64(i+1), []byte(path), size, sum, deleted); err != nil {
		return 0, fmt.Errorf("add %s: %w", path, err)
	}
	return i, nil
}

// Verify marks file i as verified in the region with that ID.
func (b *FileTableBuilder) Verify(regionID int64, i int) {
	set := b.b.t.Verified[regionID]
	if set == nil {
		set = NewBitset(cap(b.b.t.sizes))
		b.b.t.Verified[regionID] = set
	}
	if i>>6 >= len(set) { // more files than the capacity hint
		grown := NewBitset(max(2*len(set)*64, i+1))
		copy(grown, set)
		set = grown
		b.b.t.Verified[regionID] = set
	}
	set.Set(i)
}

// Table finishes the table; the builder must not be used afterwards.
func (b *FileTableBuilder) Table() *FileTable {
	return b.b.finish()
}
