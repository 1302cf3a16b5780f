package server

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/geo"
	"github.com/regionmirror/regionmirror/server/selection"
)

// BenchmarkMetalink measures one metalink answer without the network: parsing, client
// address, GeoIP, selection over the test world's regions, rendering, metrics.
func BenchmarkMetalink(b *testing.B) {
	// Eight regions that all serve the current repomd.xml: the common case.
	var specs []regionSpec
	for _, name := range []string{"us-east-1", "us-west-1", "eu-central-1", "eu-west-1", "ap-southeast-2", "ap-northeast-1", "sa-east-1", "ca-central-1"} {
		specs = append(specs, regionSpec{Name: name, Country: "US", Lat: float64(len(specs) * 10), Lon: float64(len(specs) * 20), RepoState: "fresh", RepoVersion: "v3"})
	}
	store := NewStore(nil, StoreOptions{})
	store.Swap(selection.BuildSnapshot(fixtureData(b, specs), nil, selection.Policy{OriginURL: "https://dl.example.org/pub", AlternatesMaxAge: 72 * time.Hour}, nil))
	g, err := geo.OpenGeoIP("../testdata/geoip/regionmirror-test-city.mmdb", nil)
	if err != nil {
		b.Fatal(err)
	}
	// An Activity without a database: countme=1 is counted in memory, as in production.
	s := New(Options{Store: store, GeoIP: g, Metrics: NewMetrics(store), Activity: NewActivity(nil, ActivityOptions{})})
	req := httptest.NewRequest(http.MethodGet, "/metalink?repo=demo-1&arch=x86_64&countme=1", nil)
	req.RemoteAddr = "127.0.0.1:4000"
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}
