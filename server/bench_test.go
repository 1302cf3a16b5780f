package server

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/regionmirror/regionmirror/internal/geo"
)

// BenchmarkMetalink measures one metalink answer without the network: parsing, client
// address, GeoIP, selection over the test world's regions, rendering, metrics.
func BenchmarkMetalink(b *testing.B) {
	store := NewStore(nil, StoreOptions{})
	store.Swap(fixture(b, "https://dl.example.org/pub"))
	g, err := geo.OpenGeoIP("../testdata/geoip/regionmirror-test-city.mmdb", nil)
	if err != nil {
		b.Fatal(err)
	}
	s := New(Options{Store: store, GeoIP: g, Metrics: NewMetrics(func() *Store { return store })})
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
