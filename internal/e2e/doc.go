// Package e2e holds end-to-end tests that run regionmirror as it runs in production: the
// real binary for push, scan and serve, several versitygw regions, a private PostgreSQL,
// and clients that check every byte they are sent to, while faults are injected.
// RELIABILITY.md says what is promised and which test proves it.
package e2e
