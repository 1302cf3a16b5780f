// Package selection decides, for one client request, which regions may serve a
// repository's metadata or a file and in which order, with a reason for every region left
// out. It works on an immutable Snapshot built from what the database holds
// (model.SnapshotData) and the in-memory file table (internal/filetable); it imports
// neither echo nor pgx nor db, so every decision is a pure function with table tests
// (go list -deps ./server/selection | grep -E 'echo|pgx|regionmirror/db' is empty). The server renders the
// decisions (metalinks, mirror lists, redirects, pages), `regionmirror explain` prints
// them, and `regionmirror status` and the dashboard share its freshness cells.
package selection
