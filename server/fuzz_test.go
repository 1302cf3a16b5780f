package server

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/regionmirror/regionmirror/internal/geo"
)

// The fuzz targets run as ordinary tests over their seeds and testdata/fuzz corpora;
// `make fuzz` runs each with -fuzz for a fixed time.

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"repo=fedora-40&arch=x86_64", "repo=a&repo=b&arch=x", "repo=libc%2B%2B&arch=x86%5F64&countme=1",
		"repo=a&arch=x&location=$location", "country=de,Us,,global,ZZ", "protocol=HTTPS,http", "&&=&%zz=1",
		"repo=%FF%FE&arch=%00", "location=" + strings.Repeat("a", 300), "country=" + strings.Repeat("de,", 20),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := ParseQuery(raw)
		if len(raw) > maxQueryLen && err == nil {
			t.Fatalf("accepted a %d-byte query", len(raw))
		}
		if err != nil {
			return
		}
		for _, v := range []string{q.Repo, q.Arch, q.Location} {
			if len(v) > maxValueLen {
				t.Fatalf("value of %d bytes accepted", len(v))
			}
		}
		if len(q.Countries) > maxListItems || len(q.Protocols) > maxListItems {
			t.Fatalf("lists too long: %d countries, %d protocols", len(q.Countries), len(q.Protocols))
		}
		for _, c := range q.Countries {
			if cc, ok := geo.NormalizeCountry(c); !ok || cc != c {
				t.Fatalf("country %q is not a normalised ISO code", c)
			}
		}
		for _, p := range q.Protocols {
			if len(p) > 64 || !utf8.ValidString(p) {
				t.Fatalf("protocol %q", p)
			}
		}
		for _, n := range q.Notes {
			if !utf8.ValidString(n) || strings.ContainsAny(n, "\r\n") {
				t.Fatalf("note %q would break the answer's header", n)
			}
		}
	})
}

func FuzzClientAddr(f *testing.F) {
	f.Add("10.0.0.1:1234", "6.6.6.6, 198.51.100.1, 10.0.0.2")
	f.Add("192.0.2.1:1234", "198.51.100.1")
	f.Add("[fe80::1%eth0]:443", "[2001:db8::7]:555")
	f.Add("[::ffff:10.0.0.1]:80", "::ffff:1.2.3.4,garbage")
	f.Add("10.0.0.1", ",,,")
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ffff::/48")}
	f.Fuzz(func(t *testing.T, remote, xff string) {
		got := ClientAddr(remote, []string{xff}, trusted)
		peer := ClientAddr(remote, nil, trusted)
		if !isTrusted(peer, trusted) && got != peer {
			t.Fatalf("peer %q is not trusted, yet X-Forwarded-For %q made the client %v", remote, xff, got)
		}
		if got.IsValid() && (got.Zone() != "" || got.Is4In6()) {
			t.Fatalf("client %v keeps a zone or a mapped form", got)
		}
	})
}

// FuzzDownloadPath: every path the server accepts stays inside the origin tree.
func FuzzDownloadPath(f *testing.F) {
	for _, s := range []string{
		"demo/1/x86_64/os/Packages/hello-1.0-1.noarch.rpm", "a/../b", "%2e%2e/etc/passwd", "%252e%252e/x", "a//b", "a/./b",
		"a%2fb", "a%5c..%5cb", "a\\..\\b", "%00", "%C0%AE%C0%AE/x", "..%2F..%2Fx", "%ff", "x/%2e", "libc%2B%2B.rpm",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rest string) {
		p, err := downloadPath(rest)
		if err != nil {
			return
		}
		if !utf8.ValidString(p) || strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\\\x00") {
			t.Fatalf("%q: accepted %q", rest, p)
		}
		for seg := range strings.SplitSeq(p, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("%q: accepted %q with segment %q", rest, p, seg)
			}
		}
	})
}

var (
	fuzzServerOnce sync.Once
	fuzzServer     *Server
)

// FuzzHandler sends arbitrary paths, queries and headers through the whole echo
// application: every answer is below 500 or a documented 503, and nothing panics.
func FuzzHandler(f *testing.F) {
	for _, s := range [][4]string{
		{"/metalink", "repo=demo-1&arch=x86_64", "", ""},
		{"/mirrorlist", "repo=demo-1&arch=x86_64&country=de", "6.6.6.6", ""},
		{"/pub/demo/1/x86_64/os/Packages/hello-1.0-1.noarch.rpm", "meta4", "", "application/metalink4+xml"},
		{"/pub/demo/1/x86_64/os/Packages/hello-1.0-1.noarch.rpm", "mirrorlist", "", "text/html"},
		{"/pub/%2e%2e/%2e%2e/etc/passwd", "", "", ""},
		{"/api/v1/locate", "path=demo/1/x86_64/os/Packages/hello-1.0-1.noarch.rpm", "", ""},
		{"/api/v1/regions", "", "", ""},
		{"/r/us-east-1/demo/1/x86_64/os/Packages/hello-1.0-1.noarch.rpm", "location=eu-central-1", "", ""},
		{"/r/us-east-1/demo/1/x86_64/os/repodata/repomd.xml", "", "", ""},
		{"/r/%2e%2e/demo/1/x86_64/os/repodata/repomd.xml", "", "", ""},
		{"/", "", "", "text/html"},
		{"/apt/demo-1.list", "location=us-east-1", "", ""},
		{"/apt/demo-1/eu-central-1.list", "", "", ""},
		{"/metalink", "repo=demo-1&arch=x86_64&location=%FF", "1.2.3.4, ::1, fe80::1%eth0", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, path, rawQuery, xff, accept string) {
		fuzzServerOnce.Do(func() { fuzzServer = fileServer(t, "https://dl.example.org/pub", nil) })
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		u := &url.URL{Path: path, RawQuery: rawQuery}
		if unesc, err := url.PathUnescape(path); err == nil {
			u.Path, u.RawPath = unesc, path
		}
		req := &http.Request{Method: http.MethodGet, URL: u, RequestURI: u.RequestURI(), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{}, Host: "dl.example.org", RemoteAddr: "127.0.0.1:5555"}
		req = req.WithContext(t.Context())
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		rec := httptest.NewRecorder()
		fuzzServer.Handler().ServeHTTP(rec, req)
		// 503 is a documented answer for a request no region can serve (protocol=ftp, a
		// repository without a recorded repomd.xml); every other 5xx is a bug.
		if rec.Code >= 500 && (rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "# ")) {
			t.Fatalf("GET %s?%s (X-Forwarded-For %q, Accept %q): %d\n%s", path, rawQuery, xff, accept, rec.Code, rec.Body.String())
		}
	})
}
