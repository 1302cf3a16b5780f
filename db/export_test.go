package db

// Internals for the external tests of this package.

var XmaxOf = xmaxOf

// WithSeen returns a copy of t that claims to have been read at the snapshot seen.
func WithSeen(t *FileTable, seen string) *FileTable {
	c := *t
	c.seen = seen
	return &c
}
