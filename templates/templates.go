package templates

import "embed"

// FS holds the page templates: base.html (the shared head and style), dashboard.html,
// mirrorlist.html.
//
//go:embed *.html
var FS embed.FS
