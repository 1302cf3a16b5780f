package server

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log destination read while the server writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// logServer is fileServer with the request log on, written as slog text into a buffer.
func logServer(t *testing.T) (*Server, *syncBuffer) {
	t.Helper()
	buf := &syncBuffer{}
	store := NewStore(nil, StoreOptions{})
	store.Swap(fileFixture(t, "https://dl.example.org/pub"))
	s := New(Options{
		Store: store, Metrics: NewMetrics(store), GeoIP: fakeGeo{},
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Now:            func() time.Time { return now }, DownloadPrefix: "/pub",
		AccessLog: true, Log: slog.New(slog.NewTextHandler(buf, nil)),
	})
	return s, buf
}

// logged returns the request log's lines written so far (the log's writer may buffer:
// this is where a test waits for it).
func logged(t *testing.T, s *Server, buf *syncBuffer) []string {
	t.Helper()
	return strings.Split(strings.TrimSpace(buf.String()), "\n")
}

// TestRequestLogRegion: the request log names the region each answer sends the client to
// first (origin.url as "origin"), for redirects, meta4, metalinks fresh and cached, and
// mirror lists.
func TestRequestLogRegion(t *testing.T) {
	s, buf := logServer(t)
	for _, c := range []struct {
		target, endpoint, region string
	}{
		{"/pub/" + helloPath + "?location=eu-central-1", "download", "eu-central-1"},
		{"/pub/" + helloPath + "?location=us-east-1", "download", "us-east-1"},
		{"/pub/" + lonelyPath, "download", "origin"}, // no region holds it
		{"/pub/" + helloPath + "?location=eu-central-1&meta4", "download-meta4", "eu-central-1"},
		{"/pub/" + helloPath + ".meta4?location=us-east-1", "download-meta4", "us-east-1"},
		{"/pub/" + helloPath + "?location=us-east-1&mirrorlist", "download-mirrorlist", "us-east-1"},
		{"/metalink?repo=demo-1&arch=x86_64&location=eu-central-1", "metalink", "eu-central-1"},
		{"/metalink?repo=demo-1&arch=x86_64&location=eu-central-1", "metalink", "eu-central-1"}, // cached
		{"/metalink?repo=demo-1&arch=x86_64&location=us-east-1", "metalink", "us-east-1"},
		{"/mirrorlist?repo=demo-1&arch=x86_64&location=us-east-1", "mirrorlist", "us-east-1"},
		{"/pub/no/such/file.rpm", "download", "-"},
		{"/healthz", "healthz", "-"},
	} {
		before := len(logged(t, s, buf))
		if buf.String() == "" {
			before = 0
		}
		res, body := do(t, s, http.MethodGet, c.target)
		if res.StatusCode >= 500 {
			t.Fatalf("%s: %d %s", c.target, res.StatusCode, body)
		}
		lines := logged(t, s, buf)
		if len(lines) != before+1 {
			t.Fatalf("%s: %d new log lines, want 1:\n%s", c.target, len(lines)-before, strings.Join(lines[before:], "\n"))
		}
		line := lines[len(lines)-1]
		if !strings.Contains(line, " endpoint="+c.endpoint+" ") || !strings.Contains(line, " region="+c.region+" ") {
			t.Errorf("%s: want endpoint=%s region=%s in\n%s", c.target, c.endpoint, c.region, line)
		}
	}
	if s.answers.Load() == nil || len(s.answers.Load().m) == 0 {
		t.Error("no metalink was cached: the cached answer's region went untested")
	}
}
