//go:build ignore

// Command bare is the bare echo/v4 server of testdata/bench/serve-ab.sh: what echo itself
// does on the same core, in serve's net/http settings (server.HTTPServer), as the ceiling
// the real `regionmirror serve` binary is measured against. It answers
//
//   - every GET or HEAD /pub/* with a constant 302 carrying the headers of a real redirect,
//     read at start from -redirect (a header dump, as `curl -D` writes it, of the real
//     server's answer for one file: Location, Link, Repr-Digest, Digest, Cache-Control,
//     Vary, ...; Date and Content-Length are left to net/http, as for the real server);
//   - GET or HEAD /metalink with the constant body of -metalink (the real server's
//     metalink, saved at start, so the same size), with its Content-Length and type.
//
// Run from the repository root:
//
//	go run testdata/bench/bare.go -listen 127.0.0.1:18183 -redirect .tmp/x/redirect.headers -metalink .tmp/x/metalink.xml
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/labstack/echo/v4"

	"github.com/regionmirror/regionmirror/server"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18183", "address to answer on")
	redirectFile := flag.String("redirect", "", "the real server's answer headers for one /pub file (curl -D)")
	metalinkFile := flag.String("metalink", "", "the real server's metalink body")
	flag.Parse()
	if *redirectFile == "" || *metalinkFile == "" {
		log.Fatal("bare: -redirect and -metalink are required")
	}
	headers, err := readHeaders(*redirectFile)
	if err != nil {
		log.Fatalf("bare: %s: %v", *redirectFile, err)
	}
	body, err := os.ReadFile(*metalinkFile)
	if err != nil {
		log.Fatal(err)
	}

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	redirect := func(c echo.Context) error {
		h := c.Response().Header()
		for k, v := range headers {
			h[k] = v
		}
		return c.NoContent(http.StatusFound)
	}
	e.GET("/pub/*", redirect)
	e.HEAD("/pub/*", redirect)
	// Like the real handler, it sends Content-Length (else net/http chunks bodies over 2 KB).
	length := strconv.Itoa(len(body))
	metalink := func(c echo.Context) error {
		c.Response().Header().Set(echo.HeaderContentLength, length)
		return c.Blob(http.StatusOK, server.ContentTypeMetalink, body)
	}
	e.GET("/metalink", metalink)
	e.HEAD("/metalink", metalink)

	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := server.HTTPServer(e, slog.New(slog.DiscardHandler))
	go func() { <-ctx.Done(); _ = srv.Close() }()
	if err := srv.Serve(l); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

// readHeaders reads a header dump (a status line, then the header lines) and drops what
// net/http writes itself.
func readHeaders(name string) (http.Header, error) {
	raw, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw)))
	if _, err := r.ReadLine(); err != nil { // HTTP/1.1 302 Found
		return nil, err
	}
	mh, err := r.ReadMIMEHeader()
	if err != nil && len(mh) == 0 {
		return nil, err
	}
	h := http.Header(mh)
	for _, k := range []string{"Date", "Content-Length", "Connection", "Keep-Alive"} {
		h.Del(k)
	}
	if h.Get("Location") == "" {
		return nil, os.ErrInvalid
	}
	return h, nil
}
