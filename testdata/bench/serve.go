//go:build ignore

// Command serve starts the two servers of the metalink benchmark (BENCHMARKS.md): the real
// metalink handler on a synthetic snapshot (8 regions, a repository with an alternate,
// GeoIP on, metrics on) and a bare echo handler that returns a constant body of the same
// size. Run from the repository root:
//
//	go run testdata/bench/serve.go -real 127.0.0.1:8081 -bare 127.0.0.1:8082 [-access-log]
package main

import (
	"bytes"
	"context"
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

func main() {
	realAddr := flag.String("real", "127.0.0.1:8081", "address of the metalink server")
	bareAddr := flag.String("bare", "127.0.0.1:8082", "address of the bare echo server")
	accessLog := flag.Bool("access-log", false, "log every request (to /dev/null)")
	pprofAddr := flag.String("pprof", "", "address for net/http/pprof (profiling the benchmark)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	now := time.Now()
	data := &db.SnapshotData{ReadAt: now}
	data.Repositories = []model.Repository{{ID: 1, Name: "fedora-40", Arch: "x86_64", Directory: "fedora/linux/releases/40/Everything/x86_64/os"}}
	for i, v := range []string{"new", "old"} {
		h := func(n int) []byte { return bytes.Repeat([]byte{byte(i + n)}, n) }
		data.RepomdVersions = append(data.RepomdVersions, db.RepomdVersion{RepositoryID: 1, MD5: h(16), SHA1: h(20), SHA256: h(32),
			SHA512: h(64), Size: 4374, Timestamp: 1763726400 - int64(i)*3600, FirstSeen: now.Add(-time.Duration(i+1) * time.Hour)})
		_ = v
	}
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
		data.RegionRepos = append(data.RegionRepos, db.RegionRepo{RegionID: r.ID, RepositoryID: 1, RepomdSHA256: data.RepomdVersions[0].SHA256, State: db.RepoFresh})
	}
	store := server.NewStore(nil, server.StoreOptions{})
	store.Swap(server.BuildSnapshot(data, nil, server.Policy{OriginURL: "https://dl.example.org/pub", AlternatesMaxAge: 72 * time.Hour}, nil))
	g, err := geo.OpenGeoIP("testdata/geoip/regionmirror-test-city.mmdb", nil)
	if err != nil {
		log.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if *accessLog {
		devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		logger = slog.New(slog.NewTextHandler(devnull, nil))
	}
	srv := server.New(server.Options{Store: store, GeoIP: g, Log: logger, AccessLog: *accessLog,
		Metrics: server.NewMetrics(func() *server.Store { return store })})

	// The bare server answers with a body exactly as long as the real one.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/metalink?repo=fedora-40&arch=x86_64", nil)
	req.RemoteAddr = "127.0.0.1:1"
	srv.Handler().ServeHTTP(rec, req)
	body := bytes.Repeat([]byte("x"), rec.Body.Len())
	bare := echo.New()
	bare.HideBanner, bare.HidePort = true, true
	// Like the real handler, it sends Content-Length (else net/http chunks bodies over 2 KB).
	bare.GET("/metalink", func(c echo.Context) error {
		c.Response().Header().Set(echo.HeaderContentLength, strconv.Itoa(len(body)))
		return c.Blob(http.StatusOK, server.ContentTypeMetalink, body)
	})
	fmt.Printf("metalink body: %d bytes\n", len(body))

	lr, err := net.Listen("tcp", *realAddr)
	if err != nil {
		log.Fatal(err)
	}
	lb, err := net.Listen("tcp", *bareAddr)
	if err != nil {
		log.Fatal(err)
	}
	// The same net/http server settings as the real one (timeouts cost a deadline per
	// request): the comparison is about the handler.
	go func() { _ = server.HTTPServer(bare, slog.New(slog.DiscardHandler)).Serve(lb) }()
	if *pprofAddr != "" {
		go func() { _ = http.ListenAndServe(*pprofAddr, nil) }() // DefaultServeMux has pprof
	}
	if err := srv.Serve(ctx, lr, time.Second); err != nil {
		log.Fatal(err)
	}
}
