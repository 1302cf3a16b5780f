// Package db is regionmirror's only door to PostgreSQL: the pool, the migrations, and all
// SQL, one file per aggregate. Every call takes a context; "not found" is ErrNotFound.
package db
