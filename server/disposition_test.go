package server

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// quotedString matches an RFC 9110 quoted-string (qdtext and quoted-pairs, no controls).
var quotedString = regexp.MustCompile(`^"((?:[\t !#-\[\]-~]|\\[\t -~])*)"$`)

// TestContentDisposition: the ASCII fallback keeps ASCII characters (quotes and
// backslashes as quoted-pairs) and replaces each other character by one "_"; filename* is
// the exact name. Failed before: quotes, backslashes, "%" and ";" became "_", and a
// non-ASCII character one "_" per byte.
func TestContentDisposition(t *testing.T) {
	for _, tt := range []struct {
		name, fallback, ext string // ext "" when there is no filename*
	}{
		{"hello-1.0-1.noarch.rpm", "hello-1.0-1.noarch.rpm", ""},
		{"with space.rpm", "with space.rpm", ""},
		{"libc++-compat.rpm", "libc++-compat.rpm", ""},
		{"a;b,c=d.rpm", "a;b,c=d.rpm", ""},
		{`say "hi".rpm`, `say \"hi\".rpm`, "say%20%22hi%22.rpm"},
		{`back\slash.rpm`, `back\\slash.rpm`, "back%5Cslash.rpm"},
		{"100%.rpm", "100%.rpm", "100%25.rpm"},
		{"café.rpm", "caf_.rpm", "caf%C3%A9.rpm"},
		{"中文 包.rpm", "__ _.rpm", "%E4%B8%AD%E6%96%87%20%E5%8C%85.rpm"},
		{"tab\there\x7f.rpm", "tab_here_.rpm", "tab%09here%7F.rpm"},
		{"bad\xffbyte.rpm", "bad_byte.rpm", "bad%EF%BF%BDbyte.rpm"},
		{`a&b <c> "q" 'x' ünï+cödé name.rpm.meta4`, `a&b <c> \"q\" 'x' _n_+c_d_ name.rpm.meta4`,
			"a%26b%20%3Cc%3E%20%22q%22%20%27x%27%20%C3%BCn%C3%AF%2Bc%C3%B6d%C3%A9%20name.rpm.meta4"},
	} {
		got := contentDisposition(tt.name)
		want := `attachment; filename="` + tt.fallback + `"`
		if tt.ext != "" {
			want += "; filename*=UTF-8''" + tt.ext
		}
		if got != want {
			t.Errorf("%q:\n got %s\nwant %s", tt.name, got, want)
			continue
		}
		fallback, ext, _ := strings.Cut(strings.TrimPrefix(got, "attachment; filename="), "; filename*=UTF-8''")
		m := quotedString.FindStringSubmatch(fallback)
		if m == nil {
			t.Errorf("%q: filename= is no quoted-string: %s", tt.name, fallback)
			continue
		}
		if unq := regexp.MustCompile(`\\(.)`).ReplaceAllString(m[1], "$1"); len(unq) != len([]rune(strings.ToValidUTF8(tt.name, "_"))) {
			t.Errorf("%q: fallback %q is not one character per character", tt.name, unq)
		}
		if ext != "" {
			if name, err := url.PathUnescape(ext); err != nil || name != strings.ToValidUTF8(tt.name, "\uFFFD") {
				t.Errorf("%q: filename* decodes to %q %v", tt.name, name, err)
			}
		}
	}
}
