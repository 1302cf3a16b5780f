// Package templates holds the server's HTML pages (html/template), embedded in the binary.
// The pages carry their own CSS and SVG: no external assets, so they work air-gapped.
package templates

import "embed"

// FS holds the page templates: base.html (the shared head and style), dashboard.html,
// mirrorlist.html.
//
//go:embed *.html
var FS embed.FS
