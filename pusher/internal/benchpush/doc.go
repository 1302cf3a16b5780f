// Command benchpush compares `regionmirror push` with `rclone sync` and `aws s3 sync` on a
// generated tree, against three private versitygw servers standing for three regions, and
// compares a no-op re-push of a 100k-file tree with rclone's no-op sync, and with
// `regionmirror push --scheduled` while a live watcher (registered and beating in the
// database, as `regionmirror watch` leaves it) has seen every change: a no-op that walks
// nothing. Run it from the
// module root with `make bench-push`; BENCHMARKS.md explains the figures.
//
// Everything runs in one temporary directory (a private PostgreSQL, the servers, the
// trees, the buckets), removed at the end, also on failure or interrupt. The servers also
// die with this process. Figures are wall seconds of each command as a child process, its
// user+system CPU seconds and its peak RSS (from wait4's rusage). Compare the ratios of one
// run, not absolute figures across runs or machines.
package main
