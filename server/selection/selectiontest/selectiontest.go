// Package selectiontest builds the snapshots the selection and server tests share: a
// repository with three repomd.xml versions, and a world of regions covering every
// selection tier and every reason to leave a region out.
package selectiontest

import (
	"crypto/sha256"
	"net/netip"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/server/selection"
)

// Now is the fixed clock of the tests.
var Now = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func fptr(f float64) *float64 { return &f }

func sum(s string, n int) []byte {
	h := sha256.Sum256([]byte(s))
	out := make([]byte, n)
	for i := range out {
		out[i] = h[i%32]
	}
	return out
}

func version(repoID int64, name string, firstSeen time.Time, ts int64) model.RepomdVersion {
	return model.RepomdVersion{RepositoryID: repoID, MD5: sum(name+"md5", 16), SHA1: sum(name+"sha1", 20),
		SHA256: sum(name, 32), SHA512: sum(name+"sha512", 64), Size: 4374, Timestamp: ts, FirstSeen: firstSeen}
}

// Region describes one region of a test world and what it recorded for demo-1.
type Region struct {
	Name, Country, URL string
	Lat, Lon           float64
	NoCoords           bool
	Weight             int // 0 means 100
	Aliases            []string
	Netblocks          []string
	Includes           []string
	LocationOnly       bool
	Disabled           bool
	Health             string
	RepoState          string // "" for no region_repos row
	RepoVersion        string // v3 (current), v2, v1 or a foreign name
	RepoErr            string
	Prefix             string
	Fill               string // "" means model.FillPush
	Pins               []string
}

// Data builds the database contents of the selection tests: repository demo-1
// with versions v3 (current, seen 1h ago), v2 (superseded 1h ago) and v1 (superseded 4d
// ago), and the given regions.
func Data(t testing.TB, specs []Region) *model.SnapshotData {
	t.Helper()
	data := &model.SnapshotData{ReadAt: Now}
	data.Repositories = []model.Repository{
		{ID: 1, Name: "demo-1", Arch: "x86_64", Directory: "demo/1/x86_64/os"},
		{ID: 2, Name: "empty-1", Arch: "x86_64", Directory: "empty/1/x86_64/os"},
	}
	data.RepomdVersions = []model.RepomdVersion{
		version(1, "v3", Now.Add(-time.Hour), 1763726400),
		version(1, "v2", Now.Add(-4*24*time.Hour), 1763400000),
		version(1, "v1", Now.Add(-10*24*time.Hour), 1763000000),
	}
	for i := 1; i < len(data.RepomdVersions); i++ { // as db.LoadSnapshot reads them
		data.RepomdVersions[i].SupersededAt = data.RepomdVersions[i-1].FirstSeen
	}
	for i, sp := range specs {
		id := int64(i + 1)
		r := model.Region{ID: id, Name: sp.Name, Kind: model.KindS3, Bucket: "b" + sp.Name, Country: sp.Country,
			PublicURL: sp.URL, Prefix: sp.Prefix, Aliases: sp.Aliases, Includes: sp.Includes, Weight: sp.Weight,
			Access: model.AccessPublic, Enabled: !sp.Disabled, Fill: sp.Fill, Pins: sp.Pins}
		if r.PublicURL == "" {
			r.PublicURL = "https://" + sp.Name + ".example"
		}
		if r.Weight == 0 {
			r.Weight = 100
		}
		if !sp.NoCoords {
			r.Latitude, r.Longitude = fptr(sp.Lat), fptr(sp.Lon)
		}
		if sp.LocationOnly {
			r.Access = model.AccessLocationOnly
		}
		for _, nb := range sp.Netblocks {
			r.Netblocks = append(r.Netblocks, netip.MustParsePrefix(nb))
		}
		if err := r.Normalize(); err != nil {
			t.Fatalf("region %s: %v", sp.Name, err)
		}
		r.ID = id
		data.Regions = append(data.Regions, r)
		if sp.Health != "" {
			data.Health = append(data.Health, model.Health{RegionID: id, State: sp.Health, LastError: "probe failed", ChangedAt: Now.Add(-time.Hour)})
		}
		if sp.RepoState != "" {
			rr := model.RegionRepo{RegionID: id, RepositoryID: 1, State: sp.RepoState, Error: sp.RepoErr}
			if sp.RepoVersion != "" {
				rr.RepomdSHA256 = sum(sp.RepoVersion, 32)
			}
			data.RegionRepos = append(data.RegionRepos, rr)
		}
	}
	return data
}

// World is the standard set of regions: every tier and every exclusion reason.
var World = []Region{
	{Name: "us-east-1", Country: "US", Lat: 38.9, Lon: -77.4, Aliases: []string{"virginia"}, RepoState: model.RepoFresh, RepoVersion: "v3", Prefix: "pub"},
	{Name: "eu-central-1", Country: "DE", Lat: 50.1, Lon: 8.7, RepoState: model.RepoFresh, RepoVersion: "v3"},
	{Name: "ap-southeast-2", Country: "AU", Lat: -33.9, Lon: 151.2, URL: "http://ap-southeast-2.example", RepoState: model.RepoFresh, RepoVersion: "v3"},
	{Name: "ap-northeast-1", Country: "JP", Lat: 35.7, Lon: 139.7, RepoState: model.RepoAlternate, RepoVersion: "v2"},
	{Name: "us-east-2", Country: "US", NoCoords: true, Weight: 50, RepoState: model.RepoFresh, RepoVersion: "v3"},
	{Name: "eu-west-1", Country: "IE", Lat: 53.3, Lon: -6.3, LocationOnly: true, Netblocks: []string{"10.1.0.0/16"}, RepoState: model.RepoFresh, RepoVersion: "v3"},
	{Name: "sa-east-1", Country: "BR", Lat: -23.5, Lon: -46.6, Disabled: true, RepoState: model.RepoFresh, RepoVersion: "v3"},
	{Name: "us-west-2", Country: "US", Lat: 45.8, Lon: -119.7, Health: model.HealthDown, RepoState: model.RepoFresh, RepoVersion: "v3"},
	{Name: "me-south-1", Country: "BH", Lat: 26.1, Lon: 50.6, Includes: []string{"other"}, RepoState: model.RepoFresh, RepoVersion: "v3"},
	{Name: "ca-central-1", Country: "CA", Lat: 45.5, Lon: -73.6, RepoState: model.RepoStale, RepoVersion: "zz", RepoErr: "serves an unknown repomd.xml"},
	{Name: "af-south-1", Country: "ZA", Lat: -33.9, Lon: 18.4, RepoState: model.RepoAlternate, RepoVersion: "v1"},
	{Name: "eu-north-1", Country: "SE", Lat: 59.3, Lon: 18.1},
	{Name: "eu-south-1", Country: "IT", Lat: 45.5, Lon: 9.2, RepoState: model.RepoMissing, RepoErr: "HTTP 404"},
	{Name: "eu-west-3", Country: "FR", Lat: 48.9, Lon: 2.4, RepoState: model.RepoUnreachable, RepoErr: "dial tcp: connection refused"},
	{Name: "ap-south-1", Country: "IN", Lat: 19.1, Lon: 72.9, RepoState: model.RepoFresh, RepoVersion: "never-published"},
	{Name: "us-gov-1", Country: "US", Lat: 39, Lon: -77, Health: model.HealthUnknown, LocationOnly: true, RepoState: model.RepoFresh, RepoVersion: "v3"},
}

// Snapshot is World with the origin at origin ("" for none) and a 72h alternates window.
func Snapshot(t testing.TB, origin string) *selection.Snapshot {
	t.Helper()
	return selection.BuildSnapshot(Data(t, World), nil, selection.Policy{OriginURL: origin, AlternatesMaxAge: 72 * time.Hour}, nil)
}

// CarriedCases are include prefixes of a region with, for each, whether the region carries
// repository demo-1 (directory demo/1/x86_64/os) whole and so may be offered for it
// (model.CarriesRepository): an include of repodata/ alone does not (issue 12, defect 11).
var CarriedCases = []struct {
	Includes []string
	Offered  bool
}{
	{nil, true},
	{[]string{"demo"}, true},
	{[]string{"demo/1/x86_64/os"}, true},
	{[]string{"demo/1/x86_64/os/repodata"}, false},
	{[]string{"demo/1/x86_64/os/repodata", "demo/1/x86_64/os/Packages"}, false},
	{[]string{"demo/1/x86_64/o"}, false},
}
