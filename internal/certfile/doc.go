// Package certfile serves a TLS certificate from files and picks up new files (a renewal
// by certbot or an operator) without a restart.
package certfile
