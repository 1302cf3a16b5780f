package accesslog

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"time"
)

// slogLine is the line log/slog writes for r: the specification the formatter is held to.
func slogLine(t testing.TB, r *Record, json bool) string {
	t.Helper()
	var b bytes.Buffer
	var h slog.Handler = slog.NewTextHandler(&b, nil)
	if json {
		h = slog.NewJSONHandler(&b, nil)
	}
	level := slog.LevelInfo
	if r.Warn {
		level = slog.LevelWarn
	}
	rec := slog.NewRecord(r.Time, level, Message, 0)
	rec.AddAttrs(r.Attrs()...)
	if err := h.Handle(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func checkSame(t testing.TB, r *Record) {
	t.Helper()
	var c timeCache
	for _, json := range []bool{false, true} {
		var got []byte
		if json {
			got = c.appendJSON(nil, r)
		} else {
			got = c.appendText(nil, r)
		}
		if want := slogLine(t, r, json); string(got) != want {
			t.Errorf("json=%v\n got %q\nwant %q", json, got, want)
		}
	}
}

func TestFormatsAreSlogs(t *testing.T) {
	utc := time.Date(2026, 12, 2, 7, 40, 1, 123456789, time.UTC)
	east := time.FixedZone("east", 5*3600+30*60)
	base := Record{Time: utc, Method: "GET", URI: "/pub/fedora/x.rpm", Status: 302, Took: 12345 * time.Nanosecond,
		Client: netip.MustParseAddr("192.0.2.7"), Peer: "192.0.2.7:50123", Endpoint: "download",
		Region: "eu-central-1", Tier: "geoip", Agent: "libdnf (Fedora Linux 40; container; Linux.x86_64)"}
	tests := map[string]func(r *Record){
		"redirect":            func(r *Record) {},
		"5xx is WARN":         func(r *Record) { r.Warn, r.Status = true, 503 },
		"no region, no tier":  func(r *Record) { r.Region, r.Tier = "", "" },
		"no client":           func(r *Record) { r.Client = netip.Addr{} },
		"ipv6 client":         func(r *Record) { r.Client = netip.MustParseAddr("2001:db8::1"); r.Peer = "[2001:db8::1]:443" },
		"empty agent":         func(r *Record) { r.Agent = "" },
		"quotes and equals":   func(r *Record) { r.URI = `/pub/a"b=c d`; r.Agent = `x\y"z` },
		"backslash alone":     func(r *Record) { r.URI = `/pub/a\b` },
		"control characters":  func(r *Record) { r.URI = "/pub/a\nb\rc\td\x00e\x1f\x7f" },
		"invalid UTF-8":       func(r *Record) { r.URI = "/pub/\xff\xfe"; r.Agent = "a\xc3" },
		"line separators":     func(r *Record) { r.Agent = "a\u2028b\u2029c" },
		"non-ASCII printable": func(r *Record) { r.URI = "/pub/Ünïcødé/日本.rpm" },
		"non-printable rune":  func(r *Record) { r.URI = "/pub/\u00a0\u200b" },
		"html characters":     func(r *Record) { r.Agent = "<script>&" },
		"whole milliseconds":  func(r *Record) { r.Time = time.Date(2026, 1, 2, 3, 4, 5, 7e6, time.UTC) },
		"whole second":        func(r *Record) { r.Time = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) },
		"under a millisecond": func(r *Record) { r.Time = time.Date(2026, 1, 2, 3, 4, 5, 999, time.UTC) },
		"another zone":        func(r *Record) { r.Time = utc.In(east) },
		"durations":           func(r *Record) { r.Took = 0 },
		"long duration":       func(r *Record) { r.Took = 3*time.Hour + 2*time.Millisecond },
		"big body":            func(r *Record) { r.Bytes = 5 << 40; r.Status = 200 },
	}
	for name, change := range tests {
		t.Run(name, func(t *testing.T) {
			r := base
			change(&r)
			checkSame(t, &r)
		})
	}
}

// The cache of the formatted second must follow the clock and the zone from one record
// to the next.
func TestTimeCacheFollows(t *testing.T) {
	var c timeCache
	times := []time.Time{
		time.Date(2026, 12, 31, 23, 59, 59, 999e6, time.UTC),
		time.Date(2027, 1, 1, 0, 0, 0, 1e6, time.UTC),
		time.Date(2027, 1, 1, 0, 0, 0, 1e6, time.FixedZone("x", -3600)),
		time.Date(2027, 1, 1, 0, 0, 0, 5e6, time.UTC),
	}
	for _, tm := range times {
		r := &Record{Time: tm, Method: "GET", URI: "/", Peer: "p", Endpoint: "e", Agent: "a"}
		var want, got bytes.Buffer
		want.WriteString(slogLine(t, r, false))
		got.Write(c.appendText(nil, r))
		if got.String() != want.String() {
			t.Errorf("%v: got %q, want %q", tm, got.String(), want.String())
		}
	}
}

// FuzzFormat holds both formats to slog's for any strings, times and durations.
func FuzzFormat(f *testing.F) {
	f.Add("GET", "/pub/x", "127.0.0.1:1", "curl/8", "eu", int64(1764660000123456789), int64(1234), 302, int64(0))
	f.Add("", "a b\"=\x00\xff\u2028", "", "\t", "", int64(0), int64(-5), 0, int64(-1))
	f.Fuzz(func(t *testing.T, method, uri, peer, agent, region string, unixNano, took int64, status int, size int64) {
		tm := time.Unix(0, unixNano).UTC()
		if y := tm.Year(); y < 0 || y >= 10000 {
			t.Skip("slog refuses years outside 0-9999")
		}
		r := &Record{Time: tm, Method: method, URI: uri, Status: status, Bytes: size, Took: time.Duration(took),
			Peer: peer, Endpoint: "download", Region: region, Agent: agent}
		checkSame(t, r)
	})
}

func BenchmarkFormatText(b *testing.B) {
	r := &Record{Time: time.Now(), Method: "GET", URI: "/pub/fedora/linux/releases/40/Everything/x86_64/os/Packages/p/python3-x-1.2-1.fc40.noarch.rpm",
		Status: 302, Took: 12345, Client: netip.MustParseAddr("192.0.2.7"), Peer: "192.0.2.7:50123",
		Endpoint: "download", Region: "eu-central-1", Tier: "geoip", Agent: "libdnf (Fedora Linux 40; container; Linux.x86_64)"}
	var c timeCache
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = c.appendText(buf[:0], r)
	}
}

func TestZonedClient(t *testing.T) {
	r := &Record{Time: time.Unix(1, 0).UTC(), Client: netip.MustParseAddr("fe80::1%eth0"), URI: "/"}
	checkSame(t, r)
}
