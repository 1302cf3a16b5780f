package server

import (
	"crypto/sha256"
	"net/netip"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/server/selection"
)

// now is the fixed clock of the pure tests.
var now = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

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

type regionSpec struct {
	name, country, url string
	lat, lon           float64
	noCoords           bool
	weight             int
	aliases            []string
	netblocks          []string
	includes           []string
	locationOnly       bool
	disabled           bool
	health             string
	repoState          string // "" for no region_repos row
	repoVersion        string // v3 (current), v2, v1 or a foreign name
	repoErr            string
	prefix             string
}

// fixtureData builds the database contents of the selection tests: repository demo-1
// with versions v3 (current, seen 1h ago), v2 (superseded 1h ago) and v1 (superseded 4d
// ago), and the given regions.
func fixtureData(t testing.TB, specs []regionSpec) *model.SnapshotData {
	t.Helper()
	data := &model.SnapshotData{ReadAt: now}
	data.Repositories = []model.Repository{
		{ID: 1, Name: "demo-1", Arch: "x86_64", Directory: "demo/1/x86_64/os"},
		{ID: 2, Name: "empty-1", Arch: "x86_64", Directory: "empty/1/x86_64/os"},
	}
	data.RepomdVersions = []model.RepomdVersion{
		version(1, "v3", now.Add(-time.Hour), 1763726400),
		version(1, "v2", now.Add(-4*24*time.Hour), 1763400000),
		version(1, "v1", now.Add(-10*24*time.Hour), 1763000000),
	}
	for i := 1; i < len(data.RepomdVersions); i++ { // as db.LoadSnapshot reads them
		data.RepomdVersions[i].SupersededAt = data.RepomdVersions[i-1].FirstSeen
	}
	for i, sp := range specs {
		id := int64(i + 1)
		r := model.Region{ID: id, Name: sp.name, Kind: model.KindS3, Bucket: "b" + sp.name, Country: sp.country,
			PublicURL: sp.url, Prefix: sp.prefix, Aliases: sp.aliases, Includes: sp.includes, Weight: sp.weight,
			Access: model.AccessPublic, Enabled: !sp.disabled}
		if r.PublicURL == "" {
			r.PublicURL = "https://" + sp.name + ".example"
		}
		if r.Weight == 0 {
			r.Weight = 100
		}
		if !sp.noCoords {
			r.Latitude, r.Longitude = fptr(sp.lat), fptr(sp.lon)
		}
		if sp.locationOnly {
			r.Access = model.AccessLocationOnly
		}
		for _, nb := range sp.netblocks {
			r.Netblocks = append(r.Netblocks, netip.MustParsePrefix(nb))
		}
		if err := r.Normalize(); err != nil {
			t.Fatalf("region %s: %v", sp.name, err)
		}
		r.ID = id
		data.Regions = append(data.Regions, r)
		if sp.health != "" {
			data.Health = append(data.Health, model.Health{RegionID: id, State: sp.health, LastError: "probe failed", ChangedAt: now.Add(-time.Hour)})
		}
		if sp.repoState != "" {
			rr := model.RegionRepo{RegionID: id, RepositoryID: 1, State: sp.repoState, Error: sp.repoErr}
			if sp.repoVersion != "" {
				rr.RepomdSHA256 = sum(sp.repoVersion, 32)
			}
			data.RegionRepos = append(data.RegionRepos, rr)
		}
	}
	return data
}

// world is the standard set of regions: every tier and every exclusion reason.
var world = []regionSpec{
	{name: "us-east-1", country: "US", lat: 38.9, lon: -77.4, aliases: []string{"virginia"}, repoState: model.RepoFresh, repoVersion: "v3", prefix: "pub"},
	{name: "eu-central-1", country: "DE", lat: 50.1, lon: 8.7, repoState: model.RepoFresh, repoVersion: "v3"},
	{name: "ap-southeast-2", country: "AU", lat: -33.9, lon: 151.2, url: "http://ap-southeast-2.example", repoState: model.RepoFresh, repoVersion: "v3"},
	{name: "ap-northeast-1", country: "JP", lat: 35.7, lon: 139.7, repoState: model.RepoAlternate, repoVersion: "v2"},
	{name: "us-east-2", country: "US", noCoords: true, weight: 50, repoState: model.RepoFresh, repoVersion: "v3"},
	{name: "eu-west-1", country: "IE", lat: 53.3, lon: -6.3, locationOnly: true, netblocks: []string{"10.1.0.0/16"}, repoState: model.RepoFresh, repoVersion: "v3"},
	{name: "sa-east-1", country: "BR", lat: -23.5, lon: -46.6, disabled: true, repoState: model.RepoFresh, repoVersion: "v3"},
	{name: "us-west-2", country: "US", lat: 45.8, lon: -119.7, health: model.HealthDown, repoState: model.RepoFresh, repoVersion: "v3"},
	{name: "me-south-1", country: "BH", lat: 26.1, lon: 50.6, includes: []string{"other"}, repoState: model.RepoFresh, repoVersion: "v3"},
	{name: "ca-central-1", country: "CA", lat: 45.5, lon: -73.6, repoState: model.RepoStale, repoVersion: "zz", repoErr: "serves an unknown repomd.xml"},
	{name: "af-south-1", country: "ZA", lat: -33.9, lon: 18.4, repoState: model.RepoAlternate, repoVersion: "v1"},
	{name: "eu-north-1", country: "SE", lat: 59.3, lon: 18.1},
	{name: "eu-south-1", country: "IT", lat: 45.5, lon: 9.2, repoState: model.RepoMissing, repoErr: "HTTP 404"},
	{name: "eu-west-3", country: "FR", lat: 48.9, lon: 2.4, repoState: model.RepoUnreachable, repoErr: "dial tcp: connection refused"},
	{name: "ap-south-1", country: "IN", lat: 19.1, lon: 72.9, repoState: model.RepoFresh, repoVersion: "never-published"},
	{name: "us-gov-1", country: "US", lat: 39, lon: -77, health: model.HealthUnknown, locationOnly: true, repoState: model.RepoFresh, repoVersion: "v3"},
}

func fixture(t testing.TB, origin string) *selection.Snapshot {
	t.Helper()
	return selection.BuildSnapshot(fixtureData(t, world), nil, selection.Policy{OriginURL: origin, AlternatesMaxAge: 72 * time.Hour}, nil)
}
