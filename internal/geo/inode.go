package geo

import (
	"os"
	"syscall"
)

// inode returns the file's inode number, so that a database replaced by rename is noticed
// even when its size and modification time happen to match the old one.
func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
