// Package server answers yum/dnf clients (metalinks, mirror lists) from an immutable
// in-memory snapshot of the database, so that no request ever waits on PostgreSQL.
package server
