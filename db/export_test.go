package db

import "github.com/regionmirror/regionmirror/internal/filetable"

// Internals for the external tests of this package.

var XmaxOf = xmaxOf

// WithSeen returns a copy of t that claims to have been read at the snapshot seen.
func WithSeen(t *filetable.Table, seen string) *filetable.Table {
	c := *t
	c.ReadPoint.Seen = seen
	return &c
}
