package server

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"
	"github.com/regionmirror/regionmirror/server/selection"
)

// format is what a route answers, and so how its errors are rendered (see handleError).
type format uint8

const (
	// formatText: plain text; errors as "# error:" comment lines. Requests that no route
	// matched answer in it too.
	formatText format = iota
	formatMetalink
	formatMirrorlist
	formatJSON
	// formatHTML: pages; errors, as ever, as text comment lines.
	formatHTML
)

// Cache-Control values, as slices shared by all answers rather than allocated per answer
// (Header.Set allocates one). net/http only reads them, and Header.Add copies a slice of
// capacity one before appending.
var (
	// The answer depends on who asks: shared caches must not keep it.
	cachePrivate = []string{"private, no-store"}
	// The answer changes with every snapshot.
	cacheNoStore = []string{"no-store"}
)

// route registers h for GET and HEAD at path, as pkgsite's errorHandler and apiHandler
// do: endpoint names the route in metrics and logs, f says how its errors are rendered,
// and cache is the Cache-Control of its answers (nil for none; errors always say no-store).
//
// HEAD runs the GET handler: net/http discards a HEAD's body and keeps its headers
// (Content-Length included), so HEAD answers with GET's status and headers (RFC 9110,
// section 9.3.2) without a second code path that could drift from GET's.
func (s *Server) route(path, endpoint string, f format, cache []string, h echo.HandlerFunc) {
	s.echo.Match(getHead, path, func(c echo.Context) error {
		ri := info(c)
		ri.endpoint, ri.format = endpoint, f
		if cache != nil {
			c.Response().Header()["Cache-Control"] = cache
		}
		if f == formatHTML || f == formatJSON {
			compressible(c)
		}
		return h(c)
	})
}

var getHead = []string{http.MethodGet, http.MethodHead}

// snapshot is the snapshot requests are answered from; errNoSnapshot until the first.
func (s *Server) snapshot() (*selection.Snapshot, error) {
	snap := s.opt.Store.Snapshot()
	if snap == nil {
		return nil, errNoSnapshot
	}
	return snap, nil
}

// blob writes a complete body with its Content-Length: a metalink is larger than what
// net/http buffers before it switches to chunked encoding. A compressible answer (see
// compressible) is gzipped for a GET whose client accepts gzip.
func blob(c echo.Context, status int, ctype string, body []byte) error {
	h := c.Response().Header()
	// HEAD is compressed too (net/http drops the body), so that it says what GET sends.
	if ri, ok := c.(*reqInfo); ok && ri.compress && acceptsGzip(c.Request().Header.Get("Accept-Encoding")) {
		z := bufPool.Get().(*bytes.Buffer)
		z.Reset()
		defer bufPool.Put(z)
		gw := gzipWriters.Get().(*gzip.Writer)
		gw.Reset(z)
		_, err := gw.Write(body)
		if err == nil {
			err = gw.Close()
		}
		gzipWriters.Put(gw)
		if err != nil {
			return fmt.Errorf("gzip: %w", err)
		}
		h.Set("Content-Encoding", "gzip")
		body = z.Bytes()
	}
	h.Set(echo.HeaderContentLength, strconv.Itoa(len(body)))
	return c.Blob(status, ctype, body)
}

// compressible marks the answer for gzip (pages and the JSON API: text many times its
// compressed size). Metalinks and mirror lists stay uncompressed: a few kilobytes that
// dnf fetches once per repository, where compressing costs more CPU than the whole answer
// (gzip of a 2255-byte metalink: 131 µs; the answer without it: 12 µs); redirects have no
// body. HEAD is compressed as GET is, so its Content-Encoding and Content-Length are GET's.
func compressible(c echo.Context) {
	if ri, ok := c.(*reqInfo); ok {
		ri.compress = true
	}
	c.Response().Header().Add("Vary", "Accept-Encoding")
}

var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}

// acceptsGzip reports whether an Accept-Encoding header allows gzip (RFC 9110, section
// 12.5.3): named, or covered by "*", with a q-value above 0.
func acceptsGzip(accept string) bool {
	star := false
	for item := range strings.SplitSeq(accept, ",") {
		coding, params, _ := strings.Cut(item, ";")
		coding = strings.TrimSpace(coding)
		ok := true
		for param := range strings.SplitSeq(params, ";") {
			k, v, _ := strings.Cut(param, "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				if q, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err != nil || q <= 0 {
					ok = false
				}
			}
		}
		switch {
		case strings.EqualFold(coding, "gzip"), strings.EqualFold(coding, "x-gzip"):
			return ok
		case coding == "*":
			star = ok
		}
	}
	return star
}

// writeJSON answers v as JSON, indented with ?pretty (as echo's Context.JSON does).
func (s *Server) writeJSON(c echo.Context, status int, v any) error {
	b := bufPool.Get().(*bytes.Buffer)
	b.Reset()
	defer bufPool.Put(b)
	enc := json.NewEncoder(b)
	if _, pretty := c.QueryParams()["pretty"]; pretty {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(v); err != nil {
		return err
	}
	return blob(c, status, echo.MIMEApplicationJSON, b.Bytes())
}
