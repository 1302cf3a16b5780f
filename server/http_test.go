package server

import (
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/geo"
	"github.com/regionmirror/regionmirror/server/selection"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fakeGeo places 192.0.2.0/24 in Sydney and knows nothing else.
type fakeGeo struct{}

func (fakeGeo) Lookup(a netip.Addr) (geo.Location, bool) {
	if netip.MustParsePrefix("192.0.2.0/24").Contains(a) {
		return geo.Location{Country: "AU", Continent: "OC", Lat: -33.9, Lon: 151.2, HasCoords: true}, true
	}
	return geo.Location{}, false
}

func testServer(t *testing.T, origin string) *Server {
	t.Helper()
	store := NewStore(nil, StoreOptions{})
	store.Swap(fixture(t, origin))
	return New(Options{
		Store: store, Metrics: NewMetrics(store), GeoIP: fakeGeo{},
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Now:            func() time.Time { return now },
	})
}

func get(t *testing.T, s *Server, target string, header ...string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	req.RemoteAddr = "203.0.113.9:4711"
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "RemoteAddr" {
			req.RemoteAddr = header[i+1]
			continue
		}
		req.Header.Add(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./server -run %s -update to create it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file; got:\n%s", name, got)
	}
}

func TestGoldenFormats(t *testing.T) {
	s := testServer(t, "https://dl.example.org/pub")
	tests := []struct {
		file, target, ctype string
		status              int
		header              []string
	}{
		{"metalink-location.xml", "/metalink?repo=demo-1&arch=x86_64&location=us-east-1&countme=1", ContentTypeMetalink, 200, nil},
		{"metalink-geoip.xml", "/metalink?repo=demo-1&arch=x86_64", ContentTypeMetalink, 200, []string{"RemoteAddr", "192.0.2.10:1234"}},
		{"metalink-unknown.xml", "/metalink?repo=nope&arch=x86_64", ContentTypeMetalink, 404, nil},
		{"metalink-protocol-http.xml", "/metalink?repo=demo-1&arch=x86_64&protocol=http&location=eu-central-1", ContentTypeMetalink, 200, nil},
		{"mirrorlist-location.txt", "/mirrorlist?repo=demo-1&arch=x86_64&location=us-east-1", ContentTypeMirrorlist, 200, nil},
		{"mirrorlist-country.txt", "/mirrorlist?repo=demo-1&arch=x86_64&country=de,$country", ContentTypeMirrorlist, 200, nil},
		{"mirrorlist-unknown.txt", "/mirrorlist?repo=demo-1&arch=ppc64le", ContentTypeMirrorlist, 404, nil},
		{"mirrorlist-protocol.txt", "/mirrorlist?repo=demo-1&arch=x86_64&protocol=ftp", ContentTypeMirrorlist, 400, nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			res, body := get(t, s, tt.target, tt.header...)
			if res.StatusCode != tt.status {
				t.Errorf("status %d, want %d", res.StatusCode, tt.status)
			}
			if ct := res.Header.Get("Content-Type"); ct != tt.ctype {
				t.Errorf("Content-Type %q, want %q", ct, tt.ctype)
			}
			golden(t, tt.file, body)
		})
	}
}

func TestNoRegionNoOrigin(t *testing.T) {
	s := testServer(t, "")
	// Only https regions: protocol=http is a fine request that nothing can serve now.
	store := NewStore(nil, StoreOptions{})
	store.Swap(selection.BuildSnapshot(fixtureData(t, world[:2]), nil, selection.Policy{AlternatesMaxAge: 72 * time.Hour}, nil))
	httpsOnly := New(Options{Store: store, Now: func() time.Time { return now }})
	res, body := get(t, httpsOnly, "/metalink?repo=demo-1&arch=x86_64&protocol=http")
	if res.StatusCode != http.StatusServiceUnavailable || strings.Contains(body, "<resources") ||
		!strings.Contains(body, "error: no region can serve this repository now") || !strings.Contains(body, "protocol=http matched no URL") {
		t.Errorf("status %d body:\n%s", res.StatusCode, body)
	}
	// A repository with no recorded repomd.xml cannot have a metalink at all.
	res, body = get(t, s, "/metalink?repo=empty-1&arch=x86_64")
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "has not been recorded yet") {
		t.Errorf("status %d body:\n%s", res.StatusCode, body)
	}
}

func TestOddInput(t *testing.T) {
	s := testServer(t, "")
	long := strings.Repeat("a", 300)
	tests := []struct {
		target string
		status int
		want   string
	}{
		{"/metalink?arch=x86_64", 400, "repo= and arch= must both be given"},
		{"/metalink?repo=demo-1&arch=x86_64&repo=" + long, 400, "parameter repo: longer than 256 bytes"},
		{"/metalink?repo=demo-1&arch=x86_64&location=%zz", 400, "bad percent-encoding"},
		{"/metalink?" + strings.Repeat("x=1&", 600), 400, "query string longer than"},
		// Percent-decoding, last value wins, unknown parameters and bad ones ignored.
		{"/metalink?repo=wrong&repo=demo%2D1&arch=x86%5F64&countme=4&%zz=1&foo", 200, "<resources"},
		{"/mirrorlist?repo=demo-1&arch=x86_64&location=%24location", 200, "# location= is an unexpanded variable; ignored"},
		{"/mirrorlist?repo=demo-1&arch=x86_64&location=mars-1", 200, "# location=mars-1 names no region; ignored"},
		{"/metalink?repo=%3C!--x--%3E%0a&arch=x", 404, "# repo = <!- -x- -> arch = x error"},
		{"/nope", 404, "# error: Not Found"},
	}
	for _, tt := range tests {
		res, body := get(t, s, tt.target)
		if res.StatusCode != tt.status || !strings.Contains(body, tt.want) {
			t.Errorf("%s: status %d body:\n%s\nwant %d and %q", tt.target, res.StatusCode, body, tt.status, tt.want)
		}
	}
}

func TestForwardedFor(t *testing.T) {
	s := testServer(t, "")
	// From a trusted proxy, the rightmost untrusted X-Forwarded-For address is the client:
	// 192.0.2.10 (Sydney), not the spoofed 10.1.2.3 left of it.
	_, body := get(t, s, "/mirrorlist?repo=demo-1&arch=x86_64", "RemoteAddr", "127.0.0.1:5000",
		"X-Forwarded-For", "10.1.2.3, 192.0.2.10", "X-Forwarded-For", "127.0.0.2")
	if lines := strings.Split(body, "\n"); len(lines) < 2 || !strings.HasPrefix(lines[1], "http://ap-southeast-2.example/") {
		t.Errorf("body:\n%s", body)
	}
	// From anyone else the header is ignored.
	_, body = get(t, s, "/mirrorlist?repo=demo-1&arch=x86_64", "X-Forwarded-For", "192.0.2.10")
	if lines := strings.Split(body, "\n"); len(lines) < 2 || !strings.HasPrefix(lines[1], "https://ap-northeast-1.example/") {
		t.Errorf("body:\n%s", body)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	s := testServer(t, "")
	if res, body := get(t, s, "/healthz"); res.StatusCode != 200 || body != "ok\n" {
		t.Errorf("healthz %d %q", res.StatusCode, body)
	}
	if res, body := get(t, s, "/readyz"); res.StatusCode != 200 || !strings.HasPrefix(body, "ok: snapshot read") {
		t.Errorf("readyz %d %q", res.StatusCode, body)
	}
	get(t, s, "/metalink?repo=demo-1&arch=x86_64&location=us-east-1")
	_, body := get(t, s, "/metrics")
	for _, want := range []string{
		`regionmirror_http_requests_total{code="200",endpoint="metalink",tier="location"} 1`,
		`regionmirror_http_requests_total{code="200",endpoint="readyz",tier="-"} 1`,
		"regionmirror_snapshot_age_seconds",
		"regionmirror_database_up",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	empty := New(Options{Store: NewStore(nil, StoreOptions{})})
	if res, body := get(t, empty, "/readyz"); res.StatusCode != 503 {
		t.Errorf("readyz without snapshot: %d %q", res.StatusCode, body)
	}
	if res, _ := get(t, empty, "/metalink?repo=demo-1&arch=x86_64"); res.StatusCode != 503 {
		t.Errorf("metalink without snapshot: %d", res.StatusCode)
	}
}

// TestAnswerCacheFollowsSnapshot: the Server's metalink cache is filled from one snapshot
// and starts empty for the next, so a cached answer never outlives its snapshot.
func TestAnswerCacheFollowsSnapshot(t *testing.T) {
	s := testServer(t, "https://old.example.org/pub")
	const target = "/metalink?repo=demo-1&arch=x86_64&location=us-east-1"
	for range 2 { // the second answer comes from the cache
		if _, body := get(t, s, target); !strings.Contains(body, "https://old.example.org/pub/") {
			t.Fatalf("body lacks the origin:\n%s", body)
		}
	}
	s.opt.Store.Swap(fixture(t, "https://new.example.org/pub"))
	if _, body := get(t, s, target); !strings.Contains(body, "https://new.example.org/pub/") || strings.Contains(body, "old.example.org") {
		t.Errorf("after a new snapshot, body:\n%s", body)
	}
}

// TestAnswerCacheKeepsTheNewest: a request still holding an older snapshot gets a cache of
// its own and leaves the newer snapshot's in place; a newer snapshot replaces it.
func TestAnswerCacheKeepsTheNewest(t *testing.T) {
	s := testServer(t, "")
	older, newer := fixture(t, ""), fixture(t, "")
	cur := s.answerCache(newer)
	if got := s.answerCache(older); got == cur || s.answers.Load() != cur {
		t.Fatalf("an older snapshot replaced the newer one's cache")
	}
	if s.answerCache(newer) != cur {
		t.Fatalf("the newer snapshot lost its cache")
	}
	if newest := fixture(t, ""); s.answerCache(newest) == cur || s.answers.Load().gen != newest.Gen {
		t.Fatalf("a newer snapshot did not get a cache of its own")
	}
}
