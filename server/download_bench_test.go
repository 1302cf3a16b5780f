package server

import (
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/filetable"
	"github.com/regionmirror/regionmirror/internal/geo"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/server/selection"
)

// benchPath is the path of synthetic file n, as in testdata/bench/fill.sql.
func benchPath(n int) string {
	return "fedora/linux/releases/40/Everything/x86_64/os/Packages/p/python3-package-number-" + strconv.Itoa(n) + "-1.2.3-1.fc40.noarch.rpm"
}

// benchDownloadServer serves n synthetic files, each verified in all eight regions.
// With mode "held" every region fills on demand and holds the files: each redirect also
// records the copy's request (Fills.Requested). With "miss" every region but the last
// fills on demand and holds none: each redirect is a miss (Fills.Missed), answered by the
// last region.
func benchDownloadServer(b *testing.B, n int, mode ...string) *Server {
	var specs []regionSpec
	fill, miss := "", false
	if len(mode) > 0 && mode[0] != "" {
		fill, miss = model.FillOnDemand, mode[0] == "miss"
	}
	for _, name := range []string{"us-east-1", "us-west-1", "eu-central-1", "eu-west-1", "ap-southeast-2", "ap-northeast-1", "sa-east-1", "ca-central-1"} {
		specs = append(specs, regionSpec{Name: name, Country: "US", Lat: float64(len(specs) * 10), Lon: float64(len(specs) * 20), RepoState: "fresh", RepoVersion: "v3", Fill: fill})
	}
	if miss {
		specs[len(specs)-1].Fill = ""
	}
	fb := filetable.NewBuilder(n, n*100)
	var sum [32]byte
	for i := range n {
		binary.LittleEndian.PutUint64(sum[:], uint64(i))
		s := sha256.Sum256(sum[:8])
		if _, err := fb.Add(benchPath(i), int64(1000+i), s[:], false); err != nil {
			b.Fatal(err)
		}
		for r := range specs {
			if !miss || r == len(specs)-1 {
				fb.Verify(int64(r+1), i)
			}
		}
	}
	store := NewStore(nil, StoreOptions{})
	store.Swap(selection.BuildSnapshot(fixtureData(b, specs), selection.NewFileIndex(fb.Table()), selection.Policy{OriginURL: "https://dl.example.org/pub", AlternatesMaxAge: 72 * time.Hour}, nil))
	g, err := geo.OpenGeoIP("../testdata/geoip/regionmirror-test-city.mmdb", nil)
	if err != nil {
		b.Fatal(err)
	}
	m := NewMetrics(store)
	return New(Options{Store: store, GeoIP: g, Metrics: m,
		Activity: NewActivity(nil, ActivityOptions{}), DownloadPrefix: "/pub",
		Fills: NewFills(nil, FillOptions{Metrics: m})})
}

// BenchmarkDownloadRedirect measures one redirect without the network: path checks, the
// lookup, GeoIP, selection, the Link and digest headers, counters and metrics.
func BenchmarkDownloadRedirect(b *testing.B) {
	for _, c := range []struct {
		name  string
		files int
		hot   bool
		mode  string
	}{{"hot", 1000, true, ""}, {"random-1M", 1_000_000, false, ""}, {"on-demand-held-hot", 1000, true, "held"},
		{"on-demand-miss-random-100k", 100_000, false, "miss"}} {
		b.Run(c.name, func(b *testing.B) {
			s := benchDownloadServer(b, c.files, c.mode)
			reqs := make([]*http.Request, 4096)
			for i := range reqs {
				n := 7
				if !c.hot {
					n = rand.IntN(c.files)
				}
				reqs[i] = httptest.NewRequest(http.MethodGet, "/pub/"+benchPath(n), nil)
				reqs[i].RemoteAddr = "127.0.0.1:4000"
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				rec := httptest.NewRecorder()
				s.Handler().ServeHTTP(rec, reqs[i&4095])
				if rec.Code != http.StatusFound {
					b.Fatal(rec.Code, rec.Body.String())
				}
				i++
			}
			f := s.opt.Fills
			f.mu.Lock()
			misses, held := len(f.misses), len(f.requests)
			f.mu.Unlock()
			if c.mode == "miss" && misses == 0 || c.mode == "held" && held == 0 {
				b.Fatalf("%s: %d misses, %d requests recorded", c.mode, misses, held)
			}
		})
	}
}
