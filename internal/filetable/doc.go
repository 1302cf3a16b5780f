// Package filetable holds the server's in-memory per-file data: the origin inventory and,
// per region, which files are verified there, in a compact form (a Table of about 60 bytes
// plus the base name per file, a Bitset of files per region). A Builder makes a table, an
// Update derives a new table from one by copy-on-write, sharing everything the changes
// leave alone, a Reconciler compares one with a full read, and Write and Read keep a table
// in a file so that a server can start without reading every row.
//
// The package knows nothing of the database: db reads the rows and drives the builder,
// the updates and the reconciliations; a table only carries the ReadPoint db gives it.
package filetable
