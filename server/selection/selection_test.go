package selection_test

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/geo"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/server/selection"
	"github.com/regionmirror/regionmirror/server/selection/selectiontest"
)

func names(d *selection.Decision) []string {
	var out []string
	for _, c := range d.Chosen {
		out = append(out, c.Region.Name)
	}
	return out
}

// servable are the regions of world that pass every check for a public client, in
// weight/name order.
var servable = []string{"ap-northeast-1", "ap-southeast-2", "eu-central-1", "us-east-1", "us-east-2"}

func TestSelectionTiers(t *testing.T) {
	snap := fixture(t, "")
	repo := snap.Repository("demo-1", "x86_64")
	frankfurt := geo.Location{Country: "DE", Continent: "EU", Lat: 50.1, Lon: 8.7, HasCoords: true}
	tests := []struct {
		name  string
		req   selection.Request
		tier  string
		order []string
		why0  string // reason of the first region
		note  string
	}{
		{
			name: "location names a region; others by distance from it",
			req:  selection.Request{Location: "us-east-1"},
			tier: selection.TierLocation, order: []string{"us-east-1", "eu-central-1", "ap-northeast-1", "ap-southeast-2", "us-east-2"},
			why0: "named by location=us-east-1",
		},
		{
			name: "location by alias, any case",
			req:  selection.Request{Location: "VIRGINIA"},
			tier: selection.TierLocation, order: []string{"us-east-1", "eu-central-1", "ap-northeast-1", "ap-southeast-2", "us-east-2"},
		},
		{
			name: "availability zone means its region",
			req:  selection.Request{Location: "ap-southeast-2b"},
			tier: selection.TierLocation, order: []string{"ap-southeast-2", "ap-northeast-1", "us-east-1", "eu-central-1", "us-east-2"},
		},
		{
			// The netblock still admits the location-only eu-west-1, ordered by distance.
			name: "location wins over country and address",
			req:  selection.Request{Location: "eu-central-1", Countries: []string{"AU"}, Client: netip.MustParseAddr("10.1.2.3")},
			tier: selection.TierLocation, order: []string{"eu-central-1", "eu-west-1", "us-east-1", "ap-northeast-1", "ap-southeast-2", "us-east-2"},
		},
		{
			name: "a location-only region for the client that names it",
			req:  selection.Request{Location: "eu-west-1"},
			tier: selection.TierLocation, order: []string{"eu-west-1", "eu-central-1", "us-east-1", "ap-northeast-1", "ap-southeast-2", "us-east-2"},
		},
		{
			name: "an unknown location is ignored",
			req:  selection.Request{Location: "mars-1"},
			tier: selection.TierWeight, order: servable, note: "location=mars-1 names no region",
		},
		{
			name: "country: those countries, then the continent, then the rest",
			req:  selection.Request{Countries: []string{"US", "DE"}},
			tier: selection.TierCountry, order: []string{"us-east-1", "us-east-2", "eu-central-1", "ap-northeast-1", "ap-southeast-2"},
			why0: "in country=US",
		},
		{
			name: "country on a continent without a region of its own",
			req:  selection.Request{Countries: []string{"NZ"}},
			tier: selection.TierCountry, order: []string{"ap-southeast-2", "ap-northeast-1", "eu-central-1", "us-east-1", "us-east-2"},
		},
		{
			name: "country=global is weight order",
			req:  selection.Request{Global: true, Client: netip.MustParseAddr("10.1.2.3")},
			tier: selection.TierWeight, order: []string{"ap-northeast-1", "ap-southeast-2", "eu-central-1", "eu-west-1", "us-east-1", "us-east-2"},
		},
		{
			name: "client in a location-only region's netblock",
			req:  selection.Request{Client: netip.MustParseAddr("10.1.2.3"), ClientGeo: frankfurt},
			tier: selection.TierNetblock, order: []string{"eu-west-1", "eu-central-1", "us-east-1", "ap-northeast-1", "ap-southeast-2", "us-east-2"},
			why0: "the client is in its netblock /16",
		},
		{
			name: "GeoIP coordinates: nearest first, regions without coordinates last",
			req:  selection.Request{Client: netip.MustParseAddr("192.0.2.1"), ClientGeo: geo.Location{Country: "AU", Continent: "OC", Lat: -37.8, Lon: 145, HasCoords: true}},
			tier: selection.TierGeoIP, order: []string{"ap-southeast-2", "ap-northeast-1", "eu-central-1", "us-east-1", "us-east-2"},
		},
		{
			name: "GeoIP country only (a Country database)",
			req:  selection.Request{Client: netip.MustParseAddr("2001:db8::1"), ClientGeo: geo.Location{Country: "US", Continent: "NA"}},
			tier: selection.TierGeoIP, order: []string{"us-east-1", "us-east-2", "ap-northeast-1", "ap-southeast-2", "eu-central-1"},
			why0: "same country as the client (US)",
		},
		{
			name: "GeoIP continent only",
			req:  selection.Request{Client: netip.MustParseAddr("2001:db8::1"), ClientGeo: geo.Location{Continent: "EU"}},
			tier: selection.TierGeoIP, order: []string{"eu-central-1", "ap-northeast-1", "ap-southeast-2", "us-east-1", "us-east-2"},
		},
		{
			name: "an address nobody knows: weight order",
			req:  selection.Request{Client: netip.MustParseAddr("198.51.100.7")},
			tier: selection.TierWeight, order: servable, why0: "weight 100",
		},
		{
			name: "no address at all: weight order",
			req:  selection.Request{},
			tier: selection.TierWeight, order: servable,
		},
		{
			name: "protocol=http keeps only http regions",
			req:  selection.Request{Protocols: []string{"http"}},
			tier: selection.TierWeight, order: []string{"ap-southeast-2"},
		},
		{
			name: "protocol nobody offers",
			req:  selection.Request{Protocols: []string{"ftp"}},
			tier: selection.TierNone, order: nil, note: "protocol=ftp matched no URL",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Now, tt.req.Explain = now, true
			d := selection.SelectRepository(snap, repo, tt.req)
			if d.Tier != tt.tier {
				t.Errorf("tier = %s, want %s (basis: %s)", d.Tier, tt.tier, d.Basis)
			}
			if got := names(d); !slices.Equal(got, tt.order) {
				t.Errorf("order = %v\n          want %v", got, tt.order)
			}
			if tt.why0 != "" && (len(d.Chosen) == 0 || d.Chosen[0].Why != tt.why0) {
				t.Errorf("first reason = %+v, want %q", d.Chosen, tt.why0)
			}
			if tt.note != "" && !slices.ContainsFunc(d.Notes, func(n string) bool { return strings.Contains(n, tt.note) }) {
				t.Errorf("notes %q lack %q", d.Notes, tt.note)
			}
			// Every region is either chosen or excluded with a reason.
			if len(d.Chosen)+len(d.Excluded) != len(snap.Regions) {
				t.Errorf("%d chosen + %d excluded != %d regions", len(d.Chosen), len(d.Excluded), len(snap.Regions))
			}
			for _, e := range d.Excluded {
				if e.Reason == "" {
					t.Errorf("region %s excluded without a reason", e.Region.Name)
				}
			}
		})
	}
}

func TestSelectionExclusionReasons(t *testing.T) {
	snap := fixture(t, "")
	repo := snap.Repository("demo-1", "x86_64")
	d := selection.SelectRepository(snap, repo, selection.Request{Now: now, Protocols: []string{"https"}})
	want := map[string]string{
		"sa-east-1":      "disabled",
		"us-west-2":      "health is down since 2026-11-21T11:00:00Z: probe failed",
		"me-south-1":     "does not carry demo/1/x86_64/os (includes: other)",
		"eu-west-1":      "location-only: the client neither named it (location=) nor is in its netblocks",
		"us-gov-1":       "location-only",
		"ap-southeast-2": "its URL is http, not in protocol=https",
		"eu-north-1":     "repository not verified in this region yet",
		"ca-central-1":   "serves a stale repomd.xml: serves an unknown repomd.xml",
		"eu-south-1":     "has no repomd.xml: HTTP 404",
		"eu-west-3":      "unreachable: connection refused", // the recorded error, as public answers show it
		"ap-south-1":     "serves a repomd.xml the origin never published",
		"af-south-1":     "serves a repomd.xml superseded 96h0m0s ago, beyond metalink.alternates_max_age (72h0m0s)",
	}
	got := map[string]string{}
	for _, e := range d.Excluded {
		got[e.Region.Name] = e.Reason
	}
	for region, reason := range want {
		if !strings.HasPrefix(got[region], reason) {
			t.Errorf("%s: reason %q, want %q", region, got[region], reason)
		}
	}
	if len(got) != len(want) {
		t.Errorf("excluded %v, want exactly %d", got, len(want))
	}
	// The alternate within the window is chosen and marked as such.
	for _, c := range d.Chosen {
		if c.Region.Name == "ap-northeast-1" && c.Version != 1 {
			t.Errorf("ap-northeast-1 version %d, want 1 (the alternate)", c.Version)
		}
	}
}

func TestSelectionHealthUnknownIsUsable(t *testing.T) {
	snap := fixture(t, "")
	d := selection.SelectRepository(snap, snap.Repository("demo-1", "x86_64"), selection.Request{Now: now, Location: "us-gov-1"})
	if got := names(d); len(got) == 0 || got[0] != "us-gov-1" {
		t.Errorf("order %v: a never-probed region named by the client must be first", got)
	}
}

func TestSelectionNamedRegionExcluded(t *testing.T) {
	snap := fixture(t, "")
	d := selection.SelectRepository(snap, snap.Repository("demo-1", "x86_64"), selection.Request{Now: now, Location: "sa-east-1"})
	if d.Tier != selection.TierLocation || names(d)[0] != "us-east-1" {
		t.Errorf("tier %s order %v: others must follow by distance from the named region", d.Tier, names(d))
	}
	if !slices.ContainsFunc(d.Notes, func(n string) bool { return strings.Contains(n, "sa-east-1 was named but cannot serve") }) {
		t.Errorf("notes %q", d.Notes)
	}
}

func TestSelectionOrigin(t *testing.T) {
	snap := fixture(t, "https://dl.example.org/pub")
	repo := snap.Repository("demo-1", "x86_64")
	d := selection.SelectRepository(snap, repo, selection.Request{Now: now})
	rs := d.Regions()
	if last := rs[len(rs)-1]; last.Name != "origin" || last.URL("a+b") != "https://dl.example.org/pub/a%2Bb" {
		t.Errorf("last = %+v", last)
	}
	d = selection.SelectRepository(snap, repo, selection.Request{Now: now, Protocols: []string{"http"}})
	if d.Origin != nil {
		t.Error("origin with https URL listed for protocol=http")
	}
	// A repository no region serves still lists the origin.
	empty := snap.Repository("empty-1", "x86_64")
	d = selection.SelectRepository(snap, empty, selection.Request{Now: now})
	if len(d.Chosen) != 0 || d.Origin == nil || d.Tier != selection.TierNone {
		t.Errorf("empty repository: chosen %v origin %v tier %s", names(d), d.Origin, d.Tier)
	}
}

func TestAlternates(t *testing.T) {
	snap := fixture(t, "")
	repo := snap.Repository("demo-1", "x86_64")
	alts := repo.Alternates(now, 72*time.Hour)
	if len(alts) != 1 || alts[0] != repo.Versions[1] {
		t.Errorf("alternates within 72h: %d", len(alts))
	}
	if alts := repo.Alternates(now, 200*time.Hour); len(alts) != 2 {
		t.Errorf("alternates within 200h: %d", len(alts))
	}
	if alts := repo.Alternates(now, 0); len(alts) != 0 {
		t.Errorf("alternates within 0: %d", len(alts))
	}
}

func TestEscapePath(t *testing.T) {
	for in, want := range map[string]string{
		"demo/1/x86_64/os/Packages/libc++-compat-1.0-1.noarch.rpm": "demo/1/x86_64/os/Packages/libc%2B%2B-compat-1.0-1.noarch.rpm",
		"a b/ü?#&":    "a%20b/%C3%BC%3F%23%26",
		"plain/path~": "plain/path~",
	} {
		if got := model.EscapePath(in); got != want {
			t.Errorf("model.EscapePath(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRepositoryCarriedOnlyWhole: selection and the grid's cells offer a region for a
// repository only when its includes cover the repository's whole directory
// (model.CarriesRepository); an include of repodata/ alone carries the metadata's files,
// not the repository (issue 12, defect 11).
func TestRepositoryCarriedOnlyWhole(t *testing.T) {
	for _, tt := range selectiontest.CarriedCases {
		spec := regionSpec{Name: "eu-central-1", Country: "DE", Lat: 50.1, Lon: 8.7, Includes: tt.Includes, RepoState: "fresh", RepoVersion: "v3"}
		snap := selection.BuildSnapshot(fixtureData(t, []regionSpec{spec}), nil, selection.Policy{AlternatesMaxAge: 72 * time.Hour}, nil)
		repo := snap.Repository("demo-1", "x86_64")
		d := selection.SelectRepository(snap, repo, selection.Request{Now: now, Explain: true})
		if got := len(d.Chosen) == 1; got != tt.Offered {
			t.Errorf("includes %q: offered %v, want %v (excluded: %+v)", tt.Includes, got, tt.Offered, d.Excluded)
		}
		wantCell := "fresh"
		if !tt.Offered {
			wantCell = model.RepoExcluded
			if len(d.Excluded) != 1 || !strings.HasPrefix(d.Excluded[0].Reason, "does not carry demo/1/x86_64/os") {
				t.Errorf("includes %q: %+v", tt.Includes, d.Excluded)
			}
		}
		if c := snap.Cell(repo, snap.Regions[0], now); c.State != wantCell {
			t.Errorf("includes %q: the grid says %s, want %s", tt.Includes, c.State, wantCell)
		}
		// Files are a path each: repodata/ files are carried by a repodata/ include.
		if got := snap.Regions[0].Carries("demo/1/x86_64/os/repodata/repomd.xml"); got != (len(tt.Includes) == 0 || tt.Includes[0] != "demo/1/x86_64/o") {
			t.Errorf("includes %q: Carries(repomd.xml) = %v", tt.Includes, got)
		}
	}
}

// TestRepomdURL: the URL metalinks, explain and the prober use for a repository's
// repomd.xml, for a repository at the root of the tree too (explain printed
// "//repodata/repomd.xml" for it when it built the URL by hand), escaped and under the
// region's key prefix.
func TestRepomdURL(t *testing.T) {
	data := &model.SnapshotData{
		Regions: []model.Region{
			{ID: 1, Name: "plain", PublicURL: "https://plain.example", Enabled: true},
			{ID: 2, Name: "prefixed", PublicURL: "https://b.example/", Prefix: "pub", Enabled: true},
		},
		Repositories: []model.Repository{
			{ID: 1, Name: "root", Arch: "noarch", Directory: ""},
			{ID: 2, Name: "deep", Arch: "x86_64", Directory: "c++/1 x/os"},
		},
	}
	s := selection.BuildSnapshot(data, nil, selection.Policy{}, nil)
	for _, tt := range []struct{ region, repo, arch, want string }{
		{"plain", "root", "noarch", "https://plain.example/repodata/repomd.xml"},
		{"prefixed", "root", "noarch", "https://b.example/pub/repodata/repomd.xml"},
		{"plain", "deep", "x86_64", "https://plain.example/c%2B%2B/1%20x/os/repodata/repomd.xml"},
		{"prefixed", "deep", "x86_64", "https://b.example/pub/c%2B%2B/1%20x/os/repodata/repomd.xml"},
	} {
		if got := s.Region(tt.region).RepomdURL(s.Repository(tt.repo, tt.arch)); got != tt.want {
			t.Errorf("%s, %s: %s, want %s", tt.region, tt.repo, got, tt.want)
		}
	}
}

// TestExpiredAptAlternateNotOffered: a region serving an older APT revision within the
// alternates window is left out once that revision's Valid-Until has passed (apt refuses
// it outright); while it is valid it is offered, and the current revision is never
// refused for its own Valid-Until.
func TestExpiredAptAlternateNotOffered(t *testing.T) {
	build := func(v2Until, v3Until time.Time) *selection.Snapshot {
		data := selectiontest.Data(t, selectiontest.World)
		data.Repositories[0].Kind, data.Repositories[0].Suite, data.Repositories[0].ReleaseFile = model.RepoApt, "stable", "InRelease"
		data.RepomdVersions[0].ValidUntil, data.RepomdVersions[1].ValidUntil = v3Until, v2Until
		return selection.BuildSnapshot(data, nil, selection.Policy{AlternatesMaxAge: 72 * time.Hour}, nil)
	}
	chosen := func(snap *selection.Snapshot) (map[string]bool, map[string]string) {
		repo := snap.Repository("demo-1", "x86_64")
		d := selection.SelectRepository(snap, repo, selection.Request{Now: now})
		in, out := map[string]bool{}, map[string]string{}
		for _, c := range d.Chosen {
			in[c.Region.Name] = true
		}
		for _, e := range d.Excluded {
			out[e.Region.Name] = e.Reason
		}
		return in, out
	}
	// ap-northeast-1 serves v2, the alternate.
	in, _ := chosen(build(now.Add(time.Hour), time.Time{}))
	if !in["ap-northeast-1"] {
		t.Error("an alternate still valid is not offered")
	}
	snap := build(now.Add(-time.Minute), time.Time{})
	in, out := chosen(snap)
	if in["ap-northeast-1"] || !strings.Contains(out["ap-northeast-1"], "Valid-Until") {
		t.Errorf("an expired alternate: chosen %v, reason %q", in["ap-northeast-1"], out["ap-northeast-1"])
	}
	repo := snap.Repository("demo-1", "x86_64")
	if snap.ServesRepository(repo, snap.Region("ap-northeast-1"), now) {
		t.Error("ServesRepository offers the expired alternate")
	}
	if in, _ := chosen(build(time.Time{}, now.Add(-time.Minute))); !in["us-east-1"] || !in["ap-northeast-1"] {
		t.Error("an expired current revision took regions out of the answers")
	}
}
