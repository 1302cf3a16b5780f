//go:build ignore

// Command downloads starts the two servers of the download redirect benchmark
// (BENCHMARKS.md, "Downloads"): the real /pub/<path> handler on a synthetic snapshot of 8
// regions and N files (1 000 000 by default), each verified in every region, with GeoIP,
// metrics and redirect counting on; and a bare echo handler that answers every /pub/<path>
// with a constant 302 carrying the same headers (Location, six Link, Repr-Digest, Digest,
// Cache-Control, Vary). Run from the repository root:
//
//	go run testdata/bench/downloads.go -real 127.0.0.1:8091 -bare 127.0.0.1:8092 [-files 1000000] [-access-log]
package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/geo"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/server"
)

func path(n int) string {
	return "fedora/linux/releases/40/Everything/x86_64/os/Packages/p/python3-package-number-" + strconv.Itoa(n) + "-1.2.3-1.fc40.noarch.rpm"
}

func main() {
	realAddr := flag.String("real", "127.0.0.1:8091", "address of the real server")
	bareAddr := flag.String("bare", "127.0.0.1:8092", "address of the bare echo server")
	files := flag.Int("files", 1_000_000, "tracked files")
	accessLog := flag.Bool("access-log", false, "log every request (to /dev/null)")
	pprofAddr := flag.String("pprof", "", "address for net/http/pprof (profiling the benchmark)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	now := time.Now()
	data := &db.SnapshotData{ReadAt: now}
	places := []struct {
		name, cc string
		lat, lon float64
	}{{"us-east-1", "US", 38.9, -77.4}, {"us-west-2", "US", 45.8, -119.7}, {"eu-central-1", "DE", 50.1, 8.7},
		{"eu-west-1", "IE", 53.3, -6.3}, {"ap-southeast-2", "AU", -33.9, 151.2}, {"ap-northeast-1", "JP", 35.7, 139.7},
		{"sa-east-1", "BR", -23.5, -46.6}, {"ca-central-1", "CA", 45.5, -73.6}}
	for i, p := range places {
		lat, lon := p.lat, p.lon
		r := model.Region{ID: int64(i + 1), Name: p.name, Kind: model.KindS3, Bucket: "fedora-" + p.name,
			PublicURL: "https://fedora-" + p.name + ".s3." + p.name + ".amazonaws.com", Prefix: "pub", Country: p.cc,
			Latitude: &lat, Longitude: &lon, Weight: 100, Enabled: true}
		if err := r.Normalize(); err != nil {
			log.Fatal(err)
		}
		r.ID = int64(i + 1)
		data.Regions = append(data.Regions, r)
	}
	start := time.Now()
	fb := db.NewFileTableBuilder(*files, *files*100)
	var seed [8]byte
	for i := range *files {
		binary.LittleEndian.PutUint64(seed[:], uint64(i))
		sum := sha256.Sum256(seed[:])
		if _, err := fb.Add(path(i), int64(100_000+i), sum[:], false); err != nil {
			log.Fatal(err)
		}
		for r := range places {
			fb.Verify(int64(r+1), i)
		}
	}
	table := fb.Table()
	fmt.Printf("file table of %d files built in %s\n", table.Len(), time.Since(start).Round(time.Millisecond))

	store := server.NewStore(nil, server.StoreOptions{})
	store.Swap(server.BuildSnapshot(data, server.NewFileIndex(table), server.Policy{OriginURL: "https://dl.example.org/pub", AlternatesMaxAge: 72 * time.Hour}, nil))
	g, err := geo.OpenGeoIP("testdata/geoip/regionmirror-test-city.mmdb", nil)
	if err != nil {
		log.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if *accessLog {
		devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		logger = slog.New(slog.NewTextHandler(devnull, nil))
	}
	srv := server.New(server.Options{Store: store, GeoIP: g, Log: logger, AccessLog: *accessLog, DownloadPrefix: "/pub",
		Metrics: server.NewMetrics(func() *server.Store { return store }), Activity: server.NewActivity(nil, server.ActivityOptions{})})

	// The bare server answers with the headers of a real redirect.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/pub/"+path(7), nil)
	req.RemoteAddr, req.Host = "127.0.0.1:1", *realAddr
	srv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusFound {
		log.Fatalf("real server: %d %s", rec.Code, rec.Body)
	}
	headers := rec.Header().Clone()
	headers.Del("Content-Length")
	for k, v := range headers {
		for _, x := range v {
			fmt.Printf("%s: %s\n", k, x)
		}
	}
	bare := echo.New()
	bare.HideBanner, bare.HidePort = true, true
	constant := func(c echo.Context) error {
		h := c.Response().Header()
		for k, v := range headers {
			h[k] = v
		}
		return c.NoContent(http.StatusFound)
	}
	bare.GET("/pub/*", constant)
	bare.HEAD("/pub/*", constant)

	lr, err := net.Listen("tcp", *realAddr)
	if err != nil {
		log.Fatal(err)
	}
	lb, err := net.Listen("tcp", *bareAddr)
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = http.Serve(lb, bare) }()
	if *pprofAddr != "" {
		go func() { _ = http.ListenAndServe(*pprofAddr, nil) }() // DefaultServeMux has pprof
	}
	fmt.Println("ready")
	if err := srv.Serve(ctx, lr, time.Second); err != nil {
		log.Fatal(err)
	}
}
