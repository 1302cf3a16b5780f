package server

import (
	"net/url"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
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
