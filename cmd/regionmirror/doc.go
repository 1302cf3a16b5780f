// Command regionmirror mirrors yum/dnf repositories and download trees into per-region
// buckets and sends every client to the nearest verified copy.
package main
