package geo

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

const testCity = "../../testdata/geoip/regionmirror-test-city.mmdb"

func TestGeoIPTestDatabase(t *testing.T) {
	g, err := OpenGeoIP(testCity, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr      string
		country   string
		continent string
		coords    bool
	}{
		{"127.0.0.1", "DE", "EU", true},
		{"::ffff:127.0.0.1", "DE", "EU", true},
		{"::1", "AU", "OC", true},
		{"10.9.8.7", "US", "NA", true},
		{"192.0.2.1", "JP", "AS", true},
		{"203.0.113.5", "FR", "EU", false}, // country only, as a Country database answers
		{"2001:db8::1", "US", "NA", true},
		{"2001:db8:1::1", "GB", "EU", true},
		{"fe80::1%eth0", "", "", false},
		{"8.8.8.8", "", "", false},
	}
	for _, tt := range tests {
		loc, ok := g.Lookup(netip.MustParseAddr(tt.addr))
		if loc.Country != tt.country || loc.Continent != tt.continent || loc.HasCoords != tt.coords || ok != (tt.country != "") {
			t.Errorf("Lookup(%s) = %+v %v, want %s %s coords=%v", tt.addr, loc, ok, tt.country, tt.continent, tt.coords)
		}
	}
	loc, _ := g.Lookup(netip.MustParseAddr("127.0.0.1"))
	if d := DistanceKm(loc.Lat, loc.Lon, 50.11, 8.68); d > 1 {
		t.Errorf("127.0.0.1 is %.1f km from Frankfurt", d)
	}
}

// writeDB writes a City database that places 127.0.0.0/8 in country.
func writeDB(t *testing.T, path, country string) {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoLite2-City", IncludeReservedNetworks: true, RecordSize: 24})
	if err != nil {
		t.Fatal(err)
	}
	_, n, _ := net.ParseCIDR("127.0.0.0/8")
	if err := tree.Insert(n, mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String(country)}}); err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Rename(tmp, path); err != nil { // how database updaters replace the file
		t.Fatal(err)
	}
}

func TestGeoIPReloadsChangedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "City.mmdb")
	writeDB(t, path, "NZ")
	g, err := OpenGeoIP(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	lo := netip.MustParseAddr("127.0.0.1")
	if loc, _ := g.Lookup(lo); loc.Country != "NZ" || loc.Continent != "OC" {
		t.Fatalf("before: %+v", loc)
	}
	if changed, err := g.Reload(); changed || err != nil {
		t.Errorf("Reload of an unchanged file = %v, %v", changed, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go g.Watch(ctx, 20*time.Millisecond)
	writeDB(t, path, "CL")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if loc, _ := g.Lookup(lo); loc.Country == "CL" && loc.Continent == "SA" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the rewritten database was not picked up")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// A broken file leaves the working database in use.
	if err := os.WriteFile(path, []byte("not a database"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Reload(); err == nil {
		t.Error("Reload of a broken file succeeded")
	}
	if loc, _ := g.Lookup(lo); loc.Country != "CL" {
		t.Errorf("after a broken file: %+v", loc)
	}
	if _, err := OpenGeoIP(filepath.Join(t.TempDir(), "missing.mmdb"), nil); err == nil {
		t.Error("opening a missing file succeeded")
	}
}
