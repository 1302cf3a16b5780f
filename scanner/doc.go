// Package scanner verifies what every region really holds: it lists each region's storage
// and compares it with what is recorded, reads every repository's repomd.xml through the
// region's public URL as clients do, and keeps each region's health with hysteresis.
package scanner
