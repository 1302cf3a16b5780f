package selection_test

import (
	"slices"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/server/selection"
	"github.com/regionmirror/regionmirror/server/selection/selectiontest"
)

// onDemandWorld is a push region and an on-demand one, both fresh for demo-1.
var onDemandWorld = []selectiontest.Region{
	{Name: "eu-central-1", Country: "DE", Lat: 50.1, Lon: 8.7, RepoState: model.RepoFresh, RepoVersion: "v3"},
	{Name: "us-east-1", Country: "US", Lat: 38.9, Lon: -77.4, RepoState: model.RepoFresh, RepoVersion: "v3",
		Fill: model.FillOnDemand, Pins: []string{"demo/1/x86_64/os/Packages/pinned"}, Prefix: "mirror"},
}

// TestOnDemandListing: metalinks and mirror lists name an on-demand region by this
// server's /r/<region>/ base, and only with a public URL; without one it is left out with
// a reason explain prints. Push regions keep their bucket URL, and every region's URL for
// redirects (Region.URL) stays its bucket's.
func TestOnDemandListing(t *testing.T) {
	tests := []struct {
		name      string
		publicURL string
		chosen    []string
		listBase  map[string]string
		scheme    map[string]string
		excluded  string // reason of us-east-1, "" when chosen
	}{
		{
			name: "no public URL: the on-demand region is left out", chosen: []string{"eu-central-1"},
			listBase: map[string]string{"eu-central-1": "https://eu-central-1.example/", "us-east-1": ""},
			excluded: selection.NotListedOnDemand,
		},
		{
			name: "public URL: listed by /r/", publicURL: "http://mirror.example.org:8080/",
			chosen:   []string{"us-east-1", "eu-central-1"},
			listBase: map[string]string{"eu-central-1": "https://eu-central-1.example/", "us-east-1": "http://mirror.example.org:8080/r/us-east-1/"},
			scheme:   map[string]string{"eu-central-1": "https", "us-east-1": "http"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap := selection.BuildSnapshot(selectiontest.Data(t, onDemandWorld), nil,
				selection.Policy{AlternatesMaxAge: 72 * time.Hour, PublicURL: tc.publicURL}, nil)
			repo := snap.Repository("demo-1", "x86_64")
			d := selection.SelectRepository(snap, repo, selection.Request{Location: "us-east-1", Now: selectiontest.Now, Explain: true})
			got := names(d)
			if !slices.Equal(got, tc.chosen) {
				t.Errorf("chosen %v, want %v", got, tc.chosen)
			}
			reason := ""
			for _, e := range d.Excluded {
				if e.Region.Name == "us-east-1" {
					reason = e.Reason
				}
			}
			if reason != tc.excluded {
				t.Errorf("us-east-1 excluded for %q, want %q", reason, tc.excluded)
			}
			for name, base := range tc.listBase {
				r := snap.Region(name)
				if r.ListBase() != base {
					t.Errorf("%s: ListBase %q, want %q", name, r.ListBase(), base)
				}
				if s, ok := tc.scheme[name]; ok && r.ListScheme() != s {
					t.Errorf("%s: ListScheme %q, want %q", name, r.ListScheme(), s)
				}
			}
			want := ""
			if tc.publicURL != "" {
				want = "http://mirror.example.org:8080/r/us-east-1/demo/1/x86_64/os/repodata/repomd.xml"
			}
			if got := snap.Region("us-east-1").ListedRepomdURL(repo); got != want {
				t.Errorf("ListedRepomdURL %q, want %q", got, want)
			}
			if got := snap.Region("us-east-1").RepomdURL(repo); got != "https://us-east-1.example/mirror/demo/1/x86_64/os/repodata/repomd.xml" {
				t.Errorf("RepomdURL (the prober's) %q", got)
			}
			// Redirects never go through /r/: the bucket URL, with its prefix.
			if u := snap.Region("us-east-1").URL("demo/1/x86_64/os/Packages/a.rpm"); u != "https://us-east-1.example/mirror/demo/1/x86_64/os/Packages/a.rpm" {
				t.Errorf("us-east-1 URL %q", u)
			}
			// Files stay selectable in an on-demand region whatever the public URL.
			if !snap.Region("us-east-1").OnDemand || snap.Region("eu-central-1").OnDemand {
				t.Error("OnDemand not taken from the region's fill mode")
			}
		})
	}
}

// TestFillsOnDemand: which of an on-demand region's files are copied on demand (carried,
// not metadata, not pinned); a push region fills nothing on demand.
func TestFillsOnDemand(t *testing.T) {
	snap := selection.BuildSnapshot(selectiontest.Data(t, onDemandWorld), nil, selection.Policy{}, nil)
	od, push := snap.Region("us-east-1"), snap.Region("eu-central-1")
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"demo/1/x86_64/os/Packages/hello-1.0-1.noarch.rpm", true},
		{"demo/1/x86_64/os/repodata/repomd.xml", false},
		{"demo/1/x86_64/os/repodata/primary.xml.gz", false},
		{"demo/1/x86_64/os/Packages/pinned/a.rpm", false},
		{"other/file.iso", true},
	} {
		if got := od.FillsOnDemand(tc.path); got != tc.want {
			t.Errorf("on-demand FillsOnDemand(%s) = %v, want %v", tc.path, got, tc.want)
		}
		if push.FillsOnDemand(tc.path) {
			t.Errorf("push region fills %s on demand", tc.path)
		}
	}
}

// TestRepositoryOfRepomd: the repomd.xml path of a repository names it.
func TestRepositoryOfRepomd(t *testing.T) {
	snap := selection.BuildSnapshot(selectiontest.Data(t, onDemandWorld), nil, selection.Policy{}, nil)
	if r := snap.RepositoryOfRepomd("demo/1/x86_64/os/repodata/repomd.xml"); r == nil || r.Name != "demo-1" {
		t.Errorf("repomd path names %v", r)
	}
	if r := snap.RepositoryOfRepomd("demo/1/x86_64/os/repodata/primary.xml.gz"); r != nil {
		t.Errorf("primary.xml.gz names %v", r.Name)
	}
	if !snap.ServesRepository(snap.Repository("demo-1", "x86_64"), snap.Region("us-east-1"), selectiontest.Now) {
		t.Error("us-east-1 is fresh for demo-1")
	}
	if snap.RegionByID(snap.Region("us-east-1").ID) != snap.Region("us-east-1") || snap.RegionByID(999) != nil {
		t.Error("RegionByID")
	}
}
