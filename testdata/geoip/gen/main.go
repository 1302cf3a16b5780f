//go:build ignore

// Command gen writes testdata/geoip/regionmirror-test-city.mmdb, the GeoIP2-City test
// database of regionmirror's tests: loopback, private, documentation and a few IPv6
// networks placed in real cities. Run from the repository root:
//
//	go run testdata/geoip/gen/main.go
package main

import (
	"log"
	"net"
	"os"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

type place struct {
	network, city, country, continent string
	lat, lon                          float64
	noCoords                          bool // a Country-database-like record
}

// Later entries override earlier ones where networks overlap.
var places = []place{
	{"127.0.0.0/8", "Frankfurt am Main", "DE", "EU", 50.1109, 8.6821, false},
	{"::1/128", "Sydney", "AU", "OC", -33.8688, 151.2093, false},
	{"10.0.0.0/8", "Ashburn", "US", "NA", 39.0438, -77.4874, false},
	{"192.0.2.0/24", "Tokyo", "JP", "AS", 35.6762, 139.6503, false},
	{"198.51.100.0/24", "Sao Paulo", "BR", "SA", -23.5505, -46.6333, false},
	{"203.0.113.0/24", "", "FR", "EU", 0, 0, true},
	{"2001:db8::/32", "Ashburn", "US", "NA", 39.0438, -77.4874, false},
	{"2001:db8:1::/48", "London", "GB", "EU", 51.5072, -0.1276, false},
}

func record(p place) mmdbtype.Map {
	names := func(s string) mmdbtype.Map { return mmdbtype.Map{"en": mmdbtype.String(s)} }
	m := mmdbtype.Map{
		"continent": mmdbtype.Map{"code": mmdbtype.String(p.continent), "names": names(p.continent)},
		"country":   mmdbtype.Map{"iso_code": mmdbtype.String(p.country), "names": names(p.country)},
	}
	if p.city != "" {
		m["city"] = mmdbtype.Map{"names": names(p.city)}
	}
	if !p.noCoords {
		m["location"] = mmdbtype.Map{
			"latitude":        mmdbtype.Float64(p.lat),
			"longitude":       mmdbtype.Float64(p.lon),
			"accuracy_radius": mmdbtype.Uint16(50),
		}
	}
	return m
}

func main() {
	out := "testdata/geoip/regionmirror-test-city.mmdb"
	if len(os.Args) > 1 {
		out = os.Args[1]
	}
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            "GeoIP2-City",
		Description:             map[string]string{"en": "regionmirror test City database"},
		Languages:               []string{"en"},
		RecordSize:              24,
		IncludeReservedNetworks: true,       // loopback, 10/8 and the documentation ranges
		BuildEpoch:              1767225600, // fixed, so that the output is reproducible
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range places {
		_, network, err := net.ParseCIDR(p.network)
		if err != nil {
			log.Fatal(err)
		}
		if err := tree.Insert(network, record(p)); err != nil {
			log.Fatalf("%s: %v", p.network, err)
		}
	}
	f, err := os.Create(out)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
}
