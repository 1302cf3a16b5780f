package server

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// doServed sends a request to s through a real net/http server (from 127.0.0.1, with Host
// dl.example.org), without following redirects or asking for compression.
func doServed(t *testing.T, s *Server, method, target string, header ...string) (*http.Response, string) {
	t.Helper()
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	return doURL(t, method, srv.URL+target, header...)
}

func doURL(t *testing.T, method, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "dl.example.org"
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	client := &http.Client{
		Transport:     &http.Transport{DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(body)
}

// headTargets has a request for every GET route of the server (and some of their errors);
// TestHeadLikeGet fails when a route has none, so a new route gets one.
var headTargets = map[string][]string{
	"/metalink": {"/metalink?repo=demo-1&arch=x86_64&location=us-east-1", "/metalink?repo=nope&arch=x86_64",
		"/metalink?arch=x86_64"},
	"/mirrorlist": {"/mirrorlist?repo=demo-1&arch=x86_64&country=de", "/mirrorlist?repo=demo-1&arch=ppc64le"},
	"/pub/*": {"/pub/" + helloPath + "?location=eu-central-1", "/pub/" + helloPath + ".meta4",
		"/pub/" + helloPath + "?mirrorlist", "/pub/nope.rpm", "/pub/a/../b"},
	"/r/*": {"/r/eu-central-1/" + helloPath, "/r/us-east-1/demo/1/x86_64/os/repodata/repomd.xml", "/r/nowhere/" + helloPath,
		"/r/eu-central-1/a/../b"},
	"/apt/*":               {"/apt/demo-1.list", "/apt/nope/eu-central-1.list", "/apt/x"},
	"/":                    {"/"},
	"/api/v1/regions":      {"/api/v1/regions"},
	"/api/v1/repositories": {"/api/v1/repositories"},
	"/api/v1/status":       {"/api/v1/status"},
	"/api/v1/locate":       {"/api/v1/locate?path=" + helloPath, "/api/v1/locate?path=nope.rpm"},
	"/api/v1/stats":        {"/api/v1/stats", "/api/v1/stats?from=bad"},
	"/healthz":             {"/healthz"},
	"/readyz":              {"/readyz"},
	"/metrics":             {"/metrics"},
}

// TestHeadLikeGet: HEAD on every GET route answers GET's status and headers with no body
// (RFC 9110, section 9.3.2). Before routes were registered through Server.route, /,
// /metalink, /mirrorlist, /api/v1/* and /metrics answered HEAD with 405, and HEAD on
// ?mirrorlist lacked the Content-Security-Policy and nosniff headers.
func TestHeadLikeGet(t *testing.T) {
	s := fileServer(t, "https://dl.example.org/pub", nil)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	for _, r := range s.echo.Routes() {
		if r.Method != http.MethodGet {
			continue
		}
		targets, ok := headTargets[r.Path]
		if !ok {
			t.Errorf("GET %s: no request in headTargets", r.Path)
			continue
		}
		for _, target := range targets {
			for _, accept := range [][]string{nil, {"Accept-Encoding", "gzip"}} {
				get, getBody := doURL(t, http.MethodGet, srv.URL+target, accept...)
				head, headBody := doURL(t, http.MethodHead, srv.URL+target, accept...)
				if head.StatusCode != get.StatusCode || headBody != "" {
					t.Errorf("HEAD %s %v: %d with %d bytes of body, GET %d", target, accept, head.StatusCode, len(headBody), get.StatusCode)
				}
				for _, k := range []string{"Content-Type", "Content-Encoding", "Cache-Control", "Content-Security-Policy", "X-Content-Type-Options",
					"Vary", "Location", "Link", "Content-Disposition", "Repr-Digest"} {
					if g, h := strings.Join(get.Header.Values(k), ", "), strings.Join(head.Header.Values(k), ", "); g != h {
						t.Errorf("HEAD %s %v: %s %q, GET %q", target, accept, k, h, g)
					}
				}
				if cl := get.Header.Get("Content-Length"); cl != "" && head.Header.Get("Content-Length") != cl {
					t.Errorf("HEAD %s %v: Content-Length %q, GET %q (%d bytes)", target, accept, head.Header.Get("Content-Length"), cl, len(getBody))
				}
			}
		}
	}
}

// TestCurlHead: curl -I, as monitors and people use it, gets 200 from the pages, the API and
// the metalink, with the headers GET sends.
func TestCurlHead(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is not installed")
	}
	s := fileServer(t, "https://dl.example.org/pub", nil)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	for _, tt := range []struct{ target, want string }{
		{"/", "content-security-policy: default-src 'none'"},
		{"/pub/" + helloPath + "?mirrorlist", "x-content-type-options: nosniff"},
		{"/metalink?repo=demo-1&arch=x86_64", "content-type: " + ContentTypeMetalink},
		{"/mirrorlist?repo=demo-1&arch=x86_64", "cache-control: private, no-store"},
		{"/api/v1/status", "content-type: application/json"},
		{"/metrics", "content-type: text/plain"},
	} {
		out, err := exec.Command(curl, "-sS", "-I", srv.URL+tt.target).CombinedOutput()
		if err != nil {
			t.Fatalf("curl -I %s: %v\n%s", tt.target, err, out)
		}
		got := strings.ToLower(string(out))
		if !strings.HasPrefix(got, "http/1.1 200 ok\r\n") || !strings.Contains(got, tt.want) {
			t.Errorf("curl -I %s:\n%s\nwant 200 and %q", tt.target, out, tt.want)
		}
	}
}

// TestGzip: pages and the JSON API are gzipped for a client that accepts it, and decode to
// the identity answer (HEAD says the same encoding and length); metalinks, mirror lists,
// redirects and clients that do not ask (or refuse with q=0) get no gzip.
func TestGzip(t *testing.T) {
	s := fileServer(t, "https://dl.example.org/pub", nil)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	for _, tt := range []struct {
		target string
		gzip   bool
	}{
		{"/", true},
		{"/api/v1/status", true},
		{"/api/v1/regions?pretty", true},
		{"/api/v1/locate?path=" + helloPath, true},
		{"/pub/" + helloPath + "?mirrorlist", true},
		{"/metalink?repo=demo-1&arch=x86_64", false},
		{"/mirrorlist?repo=demo-1&arch=x86_64", false},
		{"/pub/" + helloPath, false},
		{"/pub/" + helloPath + ".meta4", false},
		{"/api/v1/locate?path=nope.rpm", false}, // an error: a few bytes
	} {
		plain, plainBody := doURL(t, http.MethodGet, srv.URL+tt.target)
		if ce := plain.Header.Get("Content-Encoding"); ce != "" {
			t.Errorf("%s without Accept-Encoding: Content-Encoding %q", tt.target, ce)
		}
		if _, body := doURL(t, http.MethodGet, srv.URL+tt.target, "Accept-Encoding", "br, gzip;q=0"); body != plainBody {
			t.Errorf("%s with gzip;q=0: a different body", tt.target)
		}
		for _, accept := range []string{"gzip", "gzip, deflate, br, zstd", "*"} {
			res, body := doURL(t, http.MethodGet, srv.URL+tt.target, "Accept-Encoding", accept)
			if !tt.gzip {
				if res.Header.Get("Content-Encoding") != "" || body != plainBody {
					t.Errorf("%s, Accept-Encoding %s: Content-Encoding %q", tt.target, accept, res.Header.Get("Content-Encoding"))
				}
				continue
			}
			if res.StatusCode != 200 || res.Header.Get("Content-Encoding") != "gzip" || res.Header.Get("Content-Length") != strconv.Itoa(len(body)) ||
				!strings.Contains(res.Header.Get("Vary"), "Accept-Encoding") || res.Header.Get("Content-Type") != plain.Header.Get("Content-Type") {
				t.Errorf("%s, Accept-Encoding %s: %d %v", tt.target, accept, res.StatusCode, res.Header)
				continue
			}
			zr, err := gzip.NewReader(strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			decoded, err := io.ReadAll(zr)
			if err != nil {
				t.Fatal(err)
			}
			if len(body) >= len(plainBody) || string(decoded) != plainBody {
				t.Errorf("%s: %d gzipped bytes decode to %d bytes, want the %d of the identity answer", tt.target, len(body), len(decoded), len(plainBody))
			}
		}
		if tt.gzip {
			if !strings.Contains(plain.Header.Get("Vary"), "Accept-Encoding") {
				t.Errorf("%s: Vary %q", tt.target, plain.Header.Get("Vary"))
			}
			// HEAD says what GET would send: the same encoding and length.
			get, _ := doURL(t, http.MethodGet, srv.URL+tt.target, "Accept-Encoding", "gzip")
			head, _ := doURL(t, http.MethodHead, srv.URL+tt.target, "Accept-Encoding", "gzip")
			if head.Header.Get("Content-Encoding") != "gzip" || head.Header.Get("Content-Length") != get.Header.Get("Content-Length") {
				t.Errorf("HEAD %s: %v, GET %v", tt.target, head.Header, get.Header)
			}
		}
	}
}
