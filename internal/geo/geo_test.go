package geo

import (
	"math"
	"testing"
)

func TestCountryTable(t *testing.T) {
	// ISO 3166-1 assigns 249 alpha-2 codes; XK is the one extra that GeoIP databases use.
	if got := len(countryContinent); got != 250 {
		t.Errorf("country table has %d entries, want 250", got)
	}
	for c, cont := range countryContinent {
		if len(c) != 2 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z' {
			t.Errorf("malformed country code %q", c)
		}
		if _, ok := Continents[cont]; !ok {
			t.Errorf("country %s has unknown continent %q", c, cont)
		}
	}
}

func TestNormalize(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"us", "US", true}, {" De ", "DE", true}, {"UK", "UK", false}, {"", "", false}, {"USA", "USA", false},
	} {
		got, ok := NormalizeCountry(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("NormalizeCountry(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	if c, ok := NormalizeContinent("eu"); c != "EU" || !ok {
		t.Errorf("NormalizeContinent(eu) = %q, %v", c, ok)
	}
	if _, ok := NormalizeContinent("XX"); ok {
		t.Error("NormalizeContinent(XX) accepted an unknown continent")
	}
	if got := ContinentOf("jp"); got != "AS" {
		t.Errorf("ContinentOf(jp) = %q, want AS", got)
	}
}

func TestDistanceKm(t *testing.T) {
	// Frankfurt to New York is about 6200 km.
	d := DistanceKm(50.11, 8.68, 40.71, -74.01)
	if math.Abs(d-6200) > 60 {
		t.Errorf("Frankfurt-New York = %.0f km, want about 6200", d)
	}
	if d := DistanceKm(10, 20, 10, 20); d != 0 {
		t.Errorf("distance to self = %v", d)
	}
	// Antipodes: half the circumference.
	if d := DistanceKm(0, 0, 0, 180); math.Abs(d-math.Pi*earthRadiusKm) > 1 {
		t.Errorf("antipodal distance = %.0f", d)
	}
}
