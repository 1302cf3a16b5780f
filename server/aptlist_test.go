package server

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/server/selection"
)

func TestParseAptListPath(t *testing.T) {
	for _, tc := range []struct {
		in, repo, region string
		ok               bool
	}{
		{"deb.list", "deb", "", true},
		{"deb/us-east-1.list", "deb", "us-east-1", true},
		{"deb", "", "", false},
		{".list", "", "", false},
		{"/x.list", "", "", false},
		{"deb/.list", "", "", false},
		{"deb/a/b.list", "", "", false},
		{"deb\x00.list", "", "", false},
		{"deb\n.list", "", "", false},
		{"d e b.list", "", "", false},
		{"déb.list", "", "", false},
		{strings.Repeat("x", 129) + ".list", "", "", false},
		{"deb/" + strings.Repeat("x", 129) + ".list", "", "", false},
		{strings.Repeat("x", 128) + ".list", strings.Repeat("x", 128), "", true},
	} {
		repo, region, ok := ParseAptListPath(tc.in)
		if repo != tc.repo || region != tc.region || ok != tc.ok {
			t.Errorf("%q: %q %q %v, want %q %q %v", tc.in, repo, region, ok, tc.repo, tc.region, tc.ok)
		}
	}
}

func FuzzParseAptListPath(f *testing.F) {
	for _, s := range []string{"deb.list", "deb/eu.list", "a/b/c.list", "\x00.list"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		repo, region, ok := ParseAptListPath(s)
		if !ok {
			return
		}
		if repo == "" || strings.ContainsAny(repo+region, "/\x00\n ") || len(repo) > maxAptName || len(region) > maxAptName {
			t.Errorf("%q: accepted %q %q", s, repo, region)
		}
	})
}

func TestValidUntilWarning(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		until time.Time
		want  string // substring; "" for none
	}{
		{"none", time.Time{}, ""},
		{"a week away", now.Add(7 * 24 * time.Hour), ""},
		{"exactly a day away", now.Add(24 * time.Hour), ""},
		{"23 hours away", now.Add(23 * time.Hour), "less than a day away"},
		{"now", now, "has passed"},
		{"passed", now.Add(-time.Hour), "has passed"},
	} {
		got := ValidUntilWarning(tc.until, now)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestWriteAptList: one line per region of the decision, the archive root with a
// trailing slash, TAB, priority:1, 2, ... in order, the origin last; no comments (apt's
// list parser has none).
func TestWriteAptList(t *testing.T) {
	snap := fixture(t, "https://origin.example/pub")
	repo := snap.Repository("demo-1", "x86_64")
	d := selection.SelectRepository(snap, repo, selection.Request{Now: now, Location: "us-east-1"})
	var b bytes.Buffer
	WriteAptList(&b, repo, d)
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != len(d.Chosen)+1 || len(lines) < 3 {
		t.Fatalf("%d lines for %d regions and the origin:\n%s", len(lines), len(d.Chosen), b.String())
	}
	for i, l := range lines {
		url, tag, ok := strings.Cut(l, "\t")
		if !ok || tag != "priority:"+strconv.Itoa(i+1) || !strings.HasSuffix(url, "/demo/1/x86_64/os/") || strings.HasPrefix(l, "#") {
			t.Errorf("line %d: %q", i+1, l)
		}
	}
	if !strings.HasPrefix(lines[0], "https://us-east-1.example/pub/") || lines[len(lines)-1] != "https://origin.example/pub/demo/1/x86_64/os/\tpriority:"+strconv.Itoa(len(lines)) {
		t.Errorf("first %q, last %q", lines[0], lines[len(lines)-1])
	}
}
