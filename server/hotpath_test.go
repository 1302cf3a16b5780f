package server

import (
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/regionmirror/regionmirror/internal/geo"
)

// FuzzRequestPath checks that a download's path, taken as net/http decoded it when it can
// (requestPath), is what unescaping the escaped path again gives, errors included.
func FuzzRequestPath(f *testing.F) {
	for _, s := range []string{
		"/pub/a/b.rpm", "/pub/", "/pub", "/pubx/a", "/pub//a", "/pub/a/../b", "/pub/%2e%2e/x", "/pub/%252e%252e/x",
		"/pub/a%00b", "/pub/a%5cb", "/pub/%C3%A9t%C3%A9.rpm", "/pub/%FF", "/pub/a%2Fb", "/pub/a b", "/pub/a+b%2B",
		"/pu%62/a", "/pub/" + strings.Repeat("a", 300), "/pub/" + strings.Repeat("%41", 1100), "/pub/" + strings.Repeat("ab/", 400),
		"/pub/a?b", "/pub/.", "/pub/a/", "/pub/%7e~", "/r/x/a", "/",
	} {
		f.Add(s)
	}
	s := &Server{prefix: "/pub"}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.ParseRequestURI(raw)
		if err != nil {
			return
		}
		want, wantErr := func() (string, error) {
			esc := u.EscapedPath()
			if !strings.HasPrefix(esc, s.prefix+"/") {
				return "", echo.ErrNotFound
			}
			return downloadPath(esc[len(s.prefix)+1:])
		}()
		got, gotErr := s.requestPath(u)
		if got != want || errText(gotErr) != errText(wantErr) {
			t.Fatalf("%q: requestPath %q, %v; unescaped again %q, %v", raw, got, gotErr, want, wantErr)
		}
	})
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestReadMap: every stored key is found, from the lock-free map once promoted, while
// other goroutines read and write. A round is short and the race it holds off (a promotion
// between a load's lock-free miss and its lock) is rare, so it runs many rounds.
func TestReadMap(t *testing.T) {
	for round := range 60 {
		if !readMapRound(t) {
			t.Fatalf("round %d failed", round)
		}
	}
}

func readMapRound(t *testing.T) bool {
	t.Helper()
	var m readMap[answerKey, int]
	if _, ok := m.load(answerKey{countries: "DE"}); ok {
		t.Error("an empty map found a key")
		return false
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				k := answerKey{countries: strconv.Itoa(g*1000 + i)}
				m.store(k, i)
				for j := 0; j <= i; j += 50 {
					if v, ok := m.load(answerKey{countries: strconv.Itoa(g*1000 + j)}); !ok || v != j {
						t.Errorf("key %d of goroutine %d: %d, %v", j, g, v, ok)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	for range 3000 { // misses promote dirty
		m.load(answerKey{countries: "none"})
	}
	if t.Failed() {
		return false
	}
	if r := m.read.Load(); r == nil || len(*r) != 2000 {
		t.Errorf("read map not promoted: %v", r != nil)
		return false
	}
	if v, ok := m.load(answerKey{countries: "3499"}); !ok || v != 499 {
		t.Errorf("3499: %d, %v", v, ok)
		return false
	}
	return true
}

// BenchmarkKeyedLoad compares a hit in the client order cache's map, sync.Map as it was
// against readMap, for the key of a redirect without location= (a GeoIP city).
func BenchmarkKeyedLoad(b *testing.B) {
	k := answerKey{geo: geo.Location{Country: "DE", Continent: "EU", Lat: 50.1, Lon: 8.7, HasCoords: true}}
	o := &clientOrder{}
	b.Run("sync.Map", func(b *testing.B) {
		var m sync.Map
		m.Store(k, o)
		for b.Loop() {
			v, _ := m.Load(k)
			if v.(*clientOrder) != o {
				b.Fatal("miss")
			}
		}
	})
	b.Run("readMap", func(b *testing.B) {
		var m readMap[answerKey, *clientOrder]
		m.store(k, o)
		m.load(k) // promotes
		for b.Loop() {
			if v, _ := m.load(k); v != o {
				b.Fatal("miss")
			}
		}
	})
}

// checkPathBySegment is checkPath as it was written before its single pass: the reference
// FuzzCheckPath holds it to.
func checkPathBySegment(p string) error {
	if p == "" {
		return badRequest("empty path")
	}
	if len(p) > maxPathLen {
		return badRequest("path longer than %d bytes", maxPathLen)
	}
	if !utf8.ValidString(p) {
		return badRequest("the path is not valid UTF-8")
	}
	for seg := range strings.SplitSeq(p, "/") {
		switch {
		case seg == "":
			return badRequest("empty path segment (// or a trailing /): name a file")
		case seg == "." || seg == "..":
			return badRequest("'.' and '..' are not allowed in paths")
		case len(seg) > maxSegmentLen:
			return badRequest("path segment longer than %d bytes", maxSegmentLen)
		}
		for i := 0; i < len(seg); i++ {
			if c := seg[i]; c < 0x20 || c == 0x7f || c == '\\' {
				return badRequest("control characters and backslashes are not allowed in paths")
			}
		}
		if strings.IndexByte(seg, '%') >= 0 {
			if u, err := url.PathUnescape(seg); err == nil && (u == "." || u == ".." || strings.ContainsAny(u, "/\\\x00")) {
				return badRequest("encoded traversal in the path")
			}
		}
	}
	return nil
}

// FuzzCheckPath: the single pass refuses what the segment-by-segment checks refused, with
// the same error, and accepts the rest.
func FuzzCheckPath(f *testing.F) {
	for _, s := range []string{
		"a/b.rpm", "", "/", "a//b", "a/", "/a", ".", "a/./b", "a/../b", "..", "a/%2e%2e/b", "a/%2E./b", "a/%2fb", "a/%5Cx",
		"a/%00", "a/%zz", "a\x01b/c", "a/b\\c", "a\x7f", strings.Repeat("x", 256) + "/a", "a/" + strings.Repeat("y", 255),
		strings.Repeat("ab/", 400), "\xff/a", "é/ü", "a\x01/..", "../a\x01", "%2e%2e/" + strings.Repeat("z", 300),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if got, want := errText(checkPath(p)), errText(checkPathBySegment(p)); got != want {
			t.Fatalf("%q: %q, want %q", p, got, want)
		}
	})
}

// BenchmarkCheckPath compares the single pass with the segment-by-segment checks on a
// redirect's path.
func BenchmarkCheckPath(b *testing.B) {
	p := benchPath(7)
	b.Run("single-pass", func(b *testing.B) {
		for b.Loop() {
			if checkPath(p) != nil {
				b.Fatal(p)
			}
		}
	})
	b.Run("by-segment", func(b *testing.B) {
		for b.Loop() {
			if checkPathBySegment(p) != nil {
				b.Fatal(p)
			}
		}
	})
}
