package pusher

import (
	"testing"

	"github.com/regionmirror/regionmirror/internal/model"
)

// TestServedByHash: a rewrite of a suite's plain index names leaves a region in the answers
// only when the revision it serves, not only the new one, is read by hash. (Found by
// review: an archive turning by-hash on had its plain indices rewritten under the clients
// of its old revision, which read them by name.)
func TestServedByHash(t *testing.T) {
	repo := model.Repository{ID: 7, Name: "deb", Arch: model.AptArch, Kind: model.RepoApt, Suite: "stable", ReleaseFile: "InRelease", Directory: "debian"}
	yum := model.Repository{ID: 8, Name: "fedora", Arch: "x86_64", Kind: model.RepoYum, Directory: "fedora"}
	const dir = "debian/dists/stable"
	old, plain, cur := []byte("old-by-hash"), []byte("old-plain"), []byte("new")
	versions := map[int64][]model.RepomdVersion{7: {{SHA256: cur, ByHash: true}, {SHA256: old, ByHash: true}, {SHA256: plain, ByHash: false}}}
	serves := func(state string, sum []byte) []model.RegionRepo {
		return []model.RegionRepo{{RegionID: 1, RepositoryID: 7, State: state, RepomdSHA256: sum}}
	}
	for _, tc := range []struct {
		name   string
		byHash map[string]bool
		states []model.RegionRepo
		want   bool
	}{
		{"serves a by-hash revision", map[string]bool{dir: true}, serves(model.RepoFresh, old), true},
		{"serves it as an alternate", map[string]bool{dir: true}, serves(model.RepoAlternate, old), true},
		{"serves a revision without by-hash: the archive turned it on", map[string]bool{dir: true}, serves(model.RepoFresh, plain), false},
		{"serves a revision not recorded", map[string]bool{dir: true}, serves(model.RepoFresh, []byte("other")), false},
		{"serves nothing yet", map[string]bool{dir: true}, nil, true},
		{"stale: no client is sent there", map[string]bool{dir: true}, serves(model.RepoStale, plain), true},
		{"the new revision is not by-hash", map[string]bool{}, serves(model.RepoFresh, old), false},
	} {
		got := ServedByHash(1, []model.Repository{repo, yum}, tc.byHash, tc.states, versions)
		if got[dir] != tc.want || len(got) > 1 {
			t.Errorf("%s: %v, want %s: %v", tc.name, got, dir, tc.want)
		}
	}
}
