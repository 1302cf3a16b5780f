//go:build ignore

// Command serve starts the two servers of the server benchmarks (BENCHMARKS.md, "Server"
// and "Downloads"), both in the net/http settings of serve (server.HTTPServer), so that a
// comparison is about the handlers:
//
//   - real: regionmirror's handlers on a synthetic snapshot of 8 regions and a repository
//     with an alternate (GeoIP, metrics and redirect counting on), plus with -files N a
//     file table of N files, each verified in every region;
//   - bare: echo answering /metalink with a constant body as long as the real answer, and
//     (with -files) every /pub/<path> with a constant 302 carrying the headers of a real
//     redirect (Location, six Link, Repr-Digest, Digest, Cache-Control, Vary).
//
// Run from the repository root:
//
//	go run testdata/bench/serve.go -real 127.0.0.1:8081 -bare 127.0.0.1:8082 [-files 1000000] [-access-log]
package main

import (
	"bytes"
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

	"github.com/regionmirror/regionmirror/internal/filetable"
	"github.com/regionmirror/regionmirror/internal/geo"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/server"
	"github.com/regionmirror/regionmirror/server/selection"
)

// path is file n's path (testdata/bench/random-file.lua asks for the same).
func path(n int) string {
	return "fedora/linux/releases/40/Everything/x86_64/os/Packages/p/python3-package-number-" + strconv.Itoa(n) + "-1.2.3-1.fc40.noarch.rpm"
}

func main() {
	realAddr := flag.String("real", "127.0.0.1:8081", "address of the real server")
	bareAddr := flag.String("bare", "127.0.0.1:8082", "address of the bare echo server")
	files := flag.Int("files", 0, "files in the snapshot, each verified in every region (0: none, no /pub)")
	accessLog := flag.Bool("access-log", false, "log every request (to /dev/null)")
	pprofAddr := flag.String("pprof", "", "address for net/http/pprof (profiling the benchmark)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	now := time.Now()
	data := &model.SnapshotData{ReadAt: now}
	data.Repositories = []model.Repository{{ID: 1, Name: "fedora-40", Arch: "x86_64", Directory: "fedora/linux/releases/40/Everything/x86_64/os"}}
	for i := range 2 { // the current repomd.xml and an alternate
		h := func(n int) []byte { return bytes.Repeat([]byte{byte(i + n)}, n) }
		data.RepomdVersions = append(data.RepomdVersions, model.RepomdVersion{RepositoryID: 1, MD5: h(16), SHA1: h(20), SHA256: h(32),
			SHA512: h(64), Size: 4374, Timestamp: 1763726400 - int64(i)*3600, FirstSeen: now.Add(-time.Duration(i+1) * time.Hour)})
	}
	data.RepomdVersions[1].SupersededAt = data.RepomdVersions[0].FirstSeen // as db.LoadSnapshot reads it
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
		data.RegionRepos = append(data.RegionRepos, model.RegionRepo{RegionID: r.ID, RepositoryID: 1, RepomdSHA256: data.RepomdVersions[0].SHA256, State: model.RepoFresh})
	}
	var index *selection.FileIndex
	if *files > 0 {
		start := time.Now()
		fb := filetable.NewBuilder(*files, *files*100)
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
		index = selection.NewFileIndex(fb.Table())
		fmt.Printf("file table of %d files built in %s\n", index.Len(), time.Since(start).Round(time.Millisecond))
	}

	store := server.NewStore(nil, server.StoreOptions{})
	store.Swap(selection.BuildSnapshot(data, index, selection.Policy{OriginURL: "https://dl.example.org/pub", AlternatesMaxAge: 72 * time.Hour}, nil))
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
		Metrics: server.NewMetrics(store), Activity: server.NewActivity(nil, server.ActivityOptions{})})
	answer := func(target string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, target, nil)
		req.RemoteAddr, req.Host = "127.0.0.1:1", *realAddr
		srv.Handler().ServeHTTP(rec, req)
		return rec
	}

	bare := echo.New()
	bare.HideBanner, bare.HidePort = true, true
	// A body exactly as long as the real metalink; like the real handler, it sends
	// Content-Length (else net/http chunks bodies over 2 KB).
	body := bytes.Repeat([]byte("x"), answer("/metalink?repo=fedora-40&arch=x86_64").Body.Len())
	bare.GET("/metalink", func(c echo.Context) error {
		c.Response().Header().Set(echo.HeaderContentLength, strconv.Itoa(len(body)))
		return c.Blob(http.StatusOK, server.ContentTypeMetalink, body)
	})
	fmt.Printf("metalink body: %d bytes\n", len(body))
	if *files > 0 {
		rec := answer("/pub/" + path(7))
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
		redirect := func(c echo.Context) error {
			h := c.Response().Header()
			for k, v := range headers {
				h[k] = v
			}
			return c.NoContent(http.StatusFound)
		}
		bare.GET("/pub/*", redirect)
		bare.HEAD("/pub/*", redirect)
	}

	lr, err := net.Listen("tcp", *realAddr)
	if err != nil {
		log.Fatal(err)
	}
	lb, err := net.Listen("tcp", *bareAddr)
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = server.HTTPServer(bare, slog.New(slog.DiscardHandler)).Serve(lb) }()
	if *pprofAddr != "" {
		go func() { _ = http.ListenAndServe(*pprofAddr, nil) }() // DefaultServeMux has pprof
	}
	fmt.Println("ready")
	if err := srv.Serve(ctx, lr, time.Second); err != nil {
		log.Fatal(err)
	}
}
