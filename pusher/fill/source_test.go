package fill

import (
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/model"
)

func TestChooseSource(t *testing.T) {
	f := &model.File{ID: 1, Path: "a.rpm", Size: 10, SHA256: make([]byte, 32)}
	other := append([]byte{1}, make([]byte, 31)...)
	ll := func(lat, lon float64) (*float64, *float64) { return &lat, &lon }
	region := func(id int64, name string, mod func(*model.Region)) *model.Region {
		r := &model.Region{ID: id, Name: name, Kind: model.KindS3, Endpoint: "http://s3", S3Region: "us-east-1", Enabled: true}
		if mod != nil {
			mod(r)
		}
		return r
	}
	holds := &model.RegionObject{State: model.ObjectPresent, Size: 10, SHA256: make([]byte, 32)}
	dst := region(1, "dst", func(r *model.Region) {
		r.Latitude, r.Longitude = ll(50, 8)
		r.Country, r.Continent = "DE", "EU"
	})
	near := region(2, "near", func(r *model.Region) { r.Latitude, r.Longitude = ll(48, 11) })
	far := region(3, "far", func(r *model.Region) { r.Latitude, r.Longitude = ll(40, -74) })
	noCoords := region(4, "nocoords", nil)
	sameCountry := region(5, "de", func(r *model.Region) { r.Country, r.Continent = "DE", "EU" })
	sameContinent := region(6, "fr", func(r *model.Region) { r.Country, r.Continent = "FR", "EU" })
	heavy := region(7, "heavy", func(r *model.Region) { r.Weight = 5 })
	otherEndpoint := region(8, "elsewhere", func(r *model.Region) { r.Endpoint = "http://other"; r.Latitude, r.Longitude = ll(50, 8) })
	otherProfile := region(9, "profile", func(r *model.Region) { r.Credentials = "ops"; r.Latitude, r.Longitude = ll(50, 8) })
	otherS3Region := region(10, "s3region", func(r *model.Region) { r.S3Region = "eu-west-1"; r.Latitude, r.Longitude = ll(50, 8) })
	fileRegion := region(11, "file", func(r *model.Region) { r.Kind, r.Endpoint = model.KindFile, "" })
	disabled := region(12, "disabled", func(r *model.Region) { r.Enabled = false; r.Latitude, r.Longitude = ll(50, 8) })
	fileDst := region(13, "filedst", func(r *model.Region) { r.Kind, r.Endpoint = model.KindFile, "" })

	c := func(r *model.Region, healthy bool, o *model.RegionObject) Candidate {
		return Candidate{Region: r, Healthy: healthy, Object: o}
	}
	cases := []struct {
		name  string
		dst   *model.Region
		cands []Candidate
		want  string // "" for the origin
	}{
		{"nothing: origin", dst, nil, ""},
		{"nearest by coordinates", dst, []Candidate{c(far, true, holds), c(near, true, holds)}, "near"},
		{"coordinates beat country", dst, []Candidate{c(sameCountry, true, holds), c(far, true, holds)}, "far"},
		{"same country, then continent", dst, []Candidate{c(sameContinent, true, holds), c(sameCountry, true, holds), c(noCoords, true, holds)}, "de"},
		{"continent beats weight", dst, []Candidate{c(heavy, true, holds), c(sameContinent, true, holds)}, "fr"},
		{"then weight", dst, []Candidate{c(noCoords, true, holds), c(heavy, true, holds)}, "heavy"},
		{"then name", dst, []Candidate{c(region(20, "b", nil), true, holds), c(region(21, "a", nil), true, holds)}, "a"},
		{"down region skipped", dst, []Candidate{c(near, false, holds), c(far, true, holds)}, "far"},
		{"disabled skipped", dst, []Candidate{c(disabled, true, holds)}, ""},
		{"not held skipped", dst, []Candidate{c(near, true, nil), c(far, true, holds)}, "far"},
		{"deleting skipped", dst, []Candidate{c(near, true, &model.RegionObject{State: model.ObjectDeleting, Size: 10, SHA256: make([]byte, 32)})}, ""},
		{"stale copy skipped", dst, []Candidate{c(near, true, &model.RegionObject{State: model.ObjectPresent, Size: 10, SHA256: other})}, ""},
		{"wrong size skipped", dst, []Candidate{c(near, true, &model.RegionObject{State: model.ObjectPresent, Size: 9, SHA256: make([]byte, 32)})}, ""},
		{"other endpoint skipped", dst, []Candidate{c(otherEndpoint, true, holds)}, ""},
		{"other credentials skipped", dst, []Candidate{c(otherProfile, true, holds)}, ""},
		{"other signing region skipped", dst, []Candidate{c(otherS3Region, true, holds)}, ""},
		{"file region never a source", dst, []Candidate{c(fileRegion, true, holds)}, ""},
		{"the destination itself skipped", dst, []Candidate{c(dst, true, holds)}, ""},
		{"file destination: origin", fileDst, []Candidate{c(near, true, holds), c(fileRegion, true, holds)}, ""},
	}
	for _, tc := range cases {
		got := ChooseSource(tc.dst, f, tc.cands)
		name := ""
		if got.Region != nil {
			name = got.Region.Name
		}
		if name != tc.want || got.Why == "" {
			t.Errorf("%s: source %q (%s), want %q", tc.name, name, got.Why, tc.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	for _, c := range []struct {
		base            time.Duration
		attempts, limit int
		wait            time.Duration
		final           bool
	}{
		{10 * time.Second, 1, 5, 10 * time.Second, false},
		{10 * time.Second, 2, 5, 20 * time.Second, false},
		{10 * time.Second, 4, 5, 80 * time.Second, false},
		{10 * time.Second, 5, 5, 160 * time.Second, true},
		{10 * time.Second, 9, 20, 10 * time.Minute, false},
		{time.Hour, 1, 1, 10 * time.Minute, true},
		{time.Second, 200, 500, 10 * time.Minute, false},
	} {
		wait, final := Backoff(c.base, c.attempts, c.limit)
		if wait != c.wait || final != c.final {
			t.Errorf("Backoff(%s, %d, %d) = %s, %v; want %s, %v", c.base, c.attempts, c.limit, wait, final, c.wait, c.final)
		}
	}
}
