package filetable

import "fmt"

// Builder appends files to a table under construction. db.LoadFileTable feeds it the rows
// through AddID; tests and benchmarks build synthetic inventories through Add.
type Builder struct {
	t        *Table
	capacity int
	ids      []int64 // by file index
	deleted  []int32
}

// NewBuilder returns a builder with room for capacity files whose paths add up to about
// nameBytes bytes (both hints).
func NewBuilder(capacity, nameBytes int) *Builder {
	// Room for updates to append files in place: an arena built to the byte would be
	// copied whole (and held twice, the old table still serving) by the first new file.
	capacity += headroom(capacity)
	nameBytes += headroom(nameBytes)
	return &Builder{
		t: &Table{
			dirIdx:   map[string]int32{},
			dirOf:    make([]int32, 0, capacity),
			nameEnd:  make([]uint32, 0, capacity),
			pages:    make([]*filePage, 0, pagesFor(capacity)),
			names:    make([]byte, 0, nameBytes),
			Verified: map[int64]Bitset{},
		},
		capacity: capacity,
		ids:      make([]int64, 0, capacity),
	}
}

// Add appends a file with the next ID (its index + 1) and returns its index. sum must be
// 32 bytes. A builder takes Add or AddID, not both.
func (b *Builder) Add(path string, size int64, sum []byte, deleted bool) (int, error) {
	i := len(b.ids)
	if err := b.AddID(int64(i+1), []byte(path), size, sum, deleted); err != nil {
		return 0, fmt.Errorf("add %s: %w", path, err)
	}
	return i, nil
}

// AddID appends the file with that ID (the files row's); files come in the order of their
// IDs. path and sum are copied. Its signature is that of db's row callback.
func (b *Builder) AddID(id int64, path []byte, size int64, sum []byte, deleted bool) error {
	if n := len(b.ids); n > 0 && id <= b.ids[n-1] {
		// The ID index takes the first and last IDs for the range of all.
		return fmt.Errorf("file %d after file %d: IDs out of order", id, b.ids[n-1])
	}
	i, err := b.t.appendFile(id, path, size, sum)
	if err != nil {
		return err
	}
	if deleted {
		b.deleted = append(b.deleted, int32(i))
	}
	b.ids = append(b.ids, id)
	return nil
}

// Verify marks file i as verified in the region with that ID.
func (b *Builder) Verify(regionID int64, i int) {
	set := b.t.Verified[regionID]
	if set == nil {
		set = NewBitset(b.capacity)
		b.t.Verified[regionID] = set
	}
	if i>>6 >= len(set) { // more files than the capacity hint
		grown := NewBitset(max(2*len(set)*64, i+1))
		copy(grown, set)
		set = grown
		b.t.Verified[regionID] = set
	}
	set.Set(i)
}

// Table finishes the table: it sets what depends on every file being added. The builder
// must not be used afterwards.
func (b *Builder) Table() *Table {
	t := b.t
	t.Deleted = NewBitset(t.Len())
	for _, i := range b.deleted {
		t.Deleted.Set(int(i))
	}
	t.Gone = NewBitset(0)
	for r, set := range t.Verified {
		// Sized for the capacity; a set is as long as the files (Read checks it).
		t.Verified[r] = set[:min(len(set), (t.Len()+63)/64)]
	}
	t.ids = newIDIndex(b.ids)
	b.ids = nil
	return t
}

// headroom is the room kept beyond n for files added by updates: 1/32 (312,500 files at
// 10 million), after which append grows an arena by copying it once.
func headroom(n int) int { return n/32 + 64 }
