// Package templates holds the server's HTML pages (html/template), embedded in the binary.
// The pages carry their own CSS and SVG: no external assets, so they work air-gapped.
package templates
