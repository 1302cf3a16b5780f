// Package testenv starts the real components that integration tests need: a private
// PostgreSQL server from the system's binaries and a versitygw S3 server. One server of
// each kind runs per test binary, started on first use; every test gets its own database
// or bucket. Main stops everything, also when tests fail; the servers also die with the
// test process (Pdeathsig), so a crashed test binary leaves nothing running.
//
// A missing binary fails the test with the command that installs it. Nothing is skipped.
package testenv
