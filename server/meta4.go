package server

import (
	"bytes"
	"strconv"
	"time"
)

// Meta4File is one file of a Metalink 4 document (RFC 5854).
type Meta4File struct {
	Name   string // the base name clients save the file as
	Size   int64
	SHA256 string // hex
	Origin string // this document's own URL (<origin dynamic="true">)
	URLs   []Meta4URL
}

// Meta4URL is one place to download the file from, in priority order.
type Meta4URL struct {
	URL      string
	Location string // ISO 3166-1 alpha-2, lower case; "" if unknown
	Priority int    // 1 is tried first
}

// generator names the software in every Metalink 4 document.
const generator = "regionmirror"

// WriteMeta4 renders a Metalink 4 document. Every name and URL is escaped for XML, and
// characters XML cannot carry at all (control characters) are replaced (see xmlEscape).
func WriteMeta4(b *bytes.Buffer, f Meta4File, now time.Time) {
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
		`<metalink xmlns="urn:ietf:params:xml:ns:metalink">` + "\n" +
		"  <generator>" + generator + "</generator>\n")
	if f.Origin != "" {
		b.WriteString(`  <origin dynamic="true">`)
		xmlEscape(b, f.Origin)
		b.WriteString("</origin>\n")
	}
	b.WriteString("  <published>")
	b.WriteString(now.UTC().Format(time.RFC3339))
	b.WriteString("</published>\n")
	b.WriteString(`  <file name="`)
	xmlEscape(b, f.Name)
	b.WriteString("\">\n    <size>")
	b.WriteString(strconv.FormatInt(f.Size, 10))
	b.WriteString("</size>\n    <hash type=\"sha-256\">")
	b.WriteString(f.SHA256)
	b.WriteString("</hash>\n")
	for _, u := range f.URLs {
		b.WriteString("    <url")
		if u.Location != "" {
			b.WriteString(` location="`)
			xmlEscape(b, u.Location)
			b.WriteString(`"`)
		}
		b.WriteString(` priority="`)
		b.WriteString(strconv.Itoa(u.Priority))
		b.WriteString(`">`)
		xmlEscape(b, u.URL)
		b.WriteString("</url>\n")
	}
	b.WriteString("  </file>\n</metalink>\n")
}
