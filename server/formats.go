package server

import (
	"bytes"
	"encoding/xml"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/server/selection"
)

// Content types of the answers.
const (
	ContentTypeMetalink   = "application/metalink+xml"
	ContentTypeMirrorlist = "text/plain; charset=utf-8"
)

// metalinkHead opens every metalink, answers and errors alike. librepo parses without
// namespaces, so the mm0 prefix and element names must be exactly these.
func metalinkHead(b *bytes.Buffer, now time.Time) {
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?>` + "\n" +
		`<metalink version="3.0" xmlns="http://www.metalinker.org/" type="dynamic" pubdate="`)
	b.WriteString(now.UTC().Format(http.TimeFormat))
	b.WriteString(`" generator="regionmirror" xmlns:mm0="http://fedorahosted.org/mirrormanager">` + "\n")
}

// WriteMetalink renders a yum Metalink 3.0 document for repo's repomd.xml: the current
// hashes, the alternates (newest first), and one URL per region of d, then the origin.
func WriteMetalink(b *bytes.Buffer, repo *selection.Repository, d *selection.Decision, alternates []*selection.Version, now time.Time) {
	cur := repo.Versions[0]
	metalinkHead(b, now)
	b.WriteString(" <files>\n  <file name=\"repomd.xml\">\n")
	writeVersion(b, cur, "   ")
	if len(alternates) > 0 {
		b.WriteString("   <mm0:alternates>\n")
		for _, v := range alternates {
			b.WriteString("    <mm0:alternate>\n")
			writeVersion(b, v, "     ")
			b.WriteString("    </mm0:alternate>\n")
		}
		b.WriteString("   </mm0:alternates>\n")
	}
	b.WriteString("   <resources maxconnections=\"1\">\n")
	for i, r := range d.Regions() {
		// 100 for the first region, one less for each next one, never below 1.
		pref := max(1, 100-i)
		b.WriteString(`    <url protocol="`)
		xmlEscape(b, r.ListScheme())
		b.WriteString(`" type="`)
		xmlEscape(b, r.ListScheme())
		if r.Country != "" {
			b.WriteString(`" location="`)
			xmlEscape(b, r.Country)
		}
		b.WriteString(`" preference="`)
		b.WriteString(strconv.Itoa(pref))
		b.WriteString(`">`)
		xmlEscape(b, r.ListBase()) // on-demand regions: this server's /r/<region>/
		xmlEscape(b, repo.EscapedRepomdPath())
		b.WriteString("</url>\n")
	}
	b.WriteString("   </resources>\n  </file>\n </files>\n</metalink>\n")
}

func writeVersion(b *bytes.Buffer, v *selection.Version, indent string) {
	b.WriteString(indent)
	b.WriteString("<mm0:timestamp>")
	b.WriteString(strconv.FormatInt(v.Timestamp, 10))
	b.WriteString("</mm0:timestamp>\n")
	b.WriteString(indent)
	b.WriteString("<size>")
	b.WriteString(strconv.FormatInt(v.Size, 10))
	b.WriteString("</size>\n")
	b.WriteString(indent)
	b.WriteString("<verification>\n")
	for _, h := range [...]struct{ typ, sum string }{{"md5", v.MD5}, {"sha1", v.SHA1}, {"sha256", v.SHA256Hex}, {"sha512", v.SHA512}} {
		b.WriteString(indent)
		b.WriteString(` <hash type="`)
		b.WriteString(h.typ)
		b.WriteString(`">`)
		b.WriteString(h.sum)
		b.WriteString("</hash>\n")
	}
	b.WriteString(indent)
	b.WriteString("</verification>\n")
}

// WriteMirrorlist renders the plain mirror list: a comment header, then one base URL
// (the repository directory, ending in /) per line.
func WriteMirrorlist(b *bytes.Buffer, repo *selection.Repository, d *selection.Decision, header string) {
	b.WriteString(header)
	b.WriteString("\n")
	for _, n := range d.Notes {
		b.WriteString("# ")
		b.WriteString(safeText(n, 512))
		b.WriteString("\n")
	}
	dir := listDir(repo)
	for _, r := range d.Regions() {
		writeListBase(b, r, dir)
		b.WriteString("\n")
	}
}

// listDir is the repository directory as list lines append it to a region's base URL:
// escaped, without slashes at its ends, "" at the origin's root.
func listDir(repo *selection.Repository) string {
	dir := model.EscapePath(strings.Trim(repo.Directory, "/"))
	if dir == "." {
		return ""
	}
	return dir
}

// writeListBase writes the base URL of the repository directory dir (listDir) in region
// r, ending in "/": a line of the plain mirror list and of apt's.
func writeListBase(b *bytes.Buffer, r *selection.Region, dir string) {
	b.WriteString(r.ListBase())
	if dir != "" {
		b.WriteString(dir)
		b.WriteString("/")
	}
}

// MirrorlistHeader is the comment line that starts a mirror list: what was asked and how
// the order was chosen.
func MirrorlistHeader(repo, arch string, d *selection.Decision, countries []string) string {
	var b strings.Builder
	b.WriteString("# repo = ")
	b.WriteString(safeText(repo, 128))
	b.WriteString(" arch = ")
	b.WriteString(safeText(arch, 64))
	switch d.Tier {
	case selection.TierLocation:
		b.WriteString(" location = ")
		b.WriteString(d.Chosen[0].Region.Name)
	case selection.TierCountry:
		for _, c := range d.Chosen {
			if c.Region.Country != "" && containsString(countries, c.Region.Country) {
				b.WriteString(" country = ")
				b.WriteString(c.Region.Country)
				break
			}
		}
	}
	b.WriteString(" ")
	return b.String()
}

// WriteMetalinkError renders an error as the metalink header and an XML comment, the way
// MirrorManager does; dnf reports the HTTP status.
func WriteMetalinkError(b *bytes.Buffer, lines []string, now time.Time) {
	metalinkHead(b, now)
	b.WriteString("<!--\n")
	for _, l := range lines {
		// "--" may not appear inside an XML comment.
		b.WriteString(strings.ReplaceAll(l, "--", "- -"))
		b.WriteString("\n")
	}
	b.WriteString("-->\n</metalink>\n")
}

// WriteMirrorlistError renders an error as comment lines.
func WriteMirrorlistError(b *bytes.Buffer, lines []string) {
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString("\n")
	}
}

// unknownRepo is the 404 of a repository the snapshot lacks; it lists what exists, so
// that a typo is easy to spot.
func unknownRepo(s *selection.Snapshot, q Query) *Error {
	e := &Error{Status: http.StatusNotFound, About: repoAbout(q), Msg: "invalid repo or arch",
		Details: []string{"following repositories are available:"}}
	for _, r := range s.Repos {
		e.Details = append(e.Details, "repo="+r.Name+"&arch="+r.Arch)
	}
	return e
}

// safeText makes client-supplied text harmless in a comment line: printable ASCII only,
// bounded in length.
func safeText(s string, limit int) string {
	if len(s) > limit {
		s = s[:limit]
	}
	ok := true
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}

// xmlEscape writes s escaped for XML character data and attribute values with
// encoding/xml, which also replaces what XML cannot carry (control characters, invalid
// UTF-8, U+FFFE) with U+FFFD. Plain printable ASCII, which every URL here is, is written
// as it is, without the []byte copy EscapeText needs.
func xmlEscape(b *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '&' || c == '<' || c == '>' || c == '"' || c == '\'' {
			_ = xml.EscapeText(b, []byte(s)) // writing to a bytes.Buffer does not fail
			return
		}
	}
	b.WriteString(s)
}
