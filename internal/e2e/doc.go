// Package e2e holds end-to-end tests that run regionmirror as it runs in production: the
// real binary for push, scan, serve and cron, several versitygw regions, a private
// PostgreSQL, and clients that check every byte they are sent to. TestFaultInjection
// injects faults (a region's S3 killed, a push killed, PostgreSQL restarted);
// TestConcurrencySoak runs two cron instances with push, scan and gc every second while
// the origin changes the ways real trees do. RELIABILITY.md says what is promised and
// which test proves it. E2E_KEEP_LOGS=DIR keeps the processes' logs.
package e2e
