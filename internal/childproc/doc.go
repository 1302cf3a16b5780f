// Package childproc runs the servers regionmirror starts for itself (a private PostgreSQL
// for the demo, test servers): they write their output to a file and die with this process.
package childproc
