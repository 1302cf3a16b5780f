// Package localpg runs a private PostgreSQL server from the system's binaries: for the
// demo and for tests. As root, PostgreSQL runs as the postgres user, because it refuses root.
package localpg
