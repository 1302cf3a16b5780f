package pusher

import (
	"slices"
	"testing"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/repomd"
)

func TestPhaseOfApt(t *testing.T) {
	for p, want := range map[string]int{
		"debian/pool/main/h/hello/hello_1_amd64.deb": PhaseFiles,
		"debian/README":       PhaseFiles,
		"debian/dists/README": PhaseFiles, // not inside a suite
		"debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/" + hex64:        PhaseRepodata,
		"debian/dists/bookworm/main/by-hash/SHA256/" + hex64:                     PhaseRepodata,
		"debian/dists/bookworm/by-hash/SHA256/" + hex64:                          PhaseRepodata,
		"debian/dists/bookworm/main/binary-amd64/Packages.gz":                    PhaseIndex,
		"debian/dists/bookworm/main/binary-amd64/Release":                        PhaseIndex, // a component's Release is an index
		"debian/dists/bookworm/main/i18n/Translation-en.bz2":                     PhaseIndex,
		"debian/dists/bookworm/Contents-amd64.gz":                                PhaseIndex,
		"debian/dists/bookworm/InRelease":                                        PhaseRepomd,
		"debian/dists/bookworm/Release":                                          PhaseRepomd,
		"debian/dists/bookworm/Release.gpg":                                      PhaseRepomd,
		"dists/stable/InRelease":                                                 PhaseRepomd,
		"dists/stable/main/binary-all/Packages":                                  PhaseIndex,
		"notdists/stable/InRelease":                                              PhaseFiles,
		"fedora/40/os/repodata/repomd.xml":                                       PhaseRepomd,
		"fedora/40/os/repodata/abc-primary.xml.gz":                               PhaseRepodata,
		"fedora/40/os/Packages/a/a-1.rpm":                                        PhaseFiles,
		"weird/dists/x/repodata/repomd.xml":                                      PhaseRepomd, // yum's rules first
		"weird/dists/x/repodata/abc-primary.xml.gz":                              PhaseRepodata,
		"debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/" + hex64 + "/x": PhaseRepodata,
	} {
		if got := PhaseOf(p); got != want {
			t.Errorf("PhaseOf(%q) = %s, want %s", p, PhaseNames[got], PhaseNames[want])
		}
	}
}

func sum32(b byte) []byte { s := make([]byte, 32); s[0] = b; return s }

func itemPaths(items []Item) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.File.Path)
	}
	return out
}

const hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// aptTree is an APT archive at "deb" with suite "s": files 1-2 pool, 3-4 plain indices,
// 5-6 by-hash twins, 7-9 the Release files, and a yum repository beside it.
func aptTree() ([]model.File, model.Repository) {
	const suite = "deb/dists/s/"
	paths := []string{
		"deb/pool/main/a/a/a_1_amd64.deb",
		"deb/pool/main/b/b/b_1_amd64.deb",
		suite + "main/binary-amd64/Packages",
		suite + "main/binary-amd64/Packages.gz",
		suite + "main/binary-amd64/by-hash/SHA256/" + hex64,
		suite + "main/binary-amd64/by-hash/SHA256/" + hex64[1:] + "0",
		suite + "InRelease",
		suite + "Release",
		suite + "Release.gpg",
	}
	var files []model.File
	for i, p := range paths {
		files = append(files, model.File{ID: int64(i + 1), Path: p, Size: 10, SHA256: sum32(byte(i + 1))})
	}
	return files, model.Repository{ID: 7, Name: "deb", Arch: model.AptArch, Directory: "deb", Kind: model.RepoApt, Suite: "s", ReleaseFile: "InRelease"}
}

func TestPlanAptOrder(t *testing.T) {
	files, repo := aptTree()
	p := PlanRegion(PlanInput{Region: &model.Region{Name: "x"}, Files: files, Repos: []model.Repository{repo}})
	want := [NumPhases][]string{
		{"deb/pool/main/a/a/a_1_amd64.deb", "deb/pool/main/b/b/b_1_amd64.deb"},
		{files[4].Path, files[5].Path},
		{files[2].Path, files[3].Path},
		// Release files last, InRelease (what apt reads first) the very last.
		{"deb/dists/s/Release.gpg", "deb/dists/s/Release", "deb/dists/s/InRelease"},
	}
	for ph := range NumPhases {
		if got := itemPaths(p.Items[ph]); !slices.Equal(got, want[ph]) {
			t.Errorf("phase %s: %v, want %v", PhaseNames[ph], got, want[ph])
		}
	}
	// The chain of phase 4 keeps that order: one file after the other.
	var jobs []*job
	for i := range p.Items[PhaseRepomd] {
		jobs = append(jobs, &job{file: &p.Items[PhaseRepomd][i]})
	}
	c := chains(PhaseRepomd, jobs)
	if len(c) != 1 || len(c[0]) != 3 || c[0][2].file.File.Path != "deb/dists/s/InRelease" {
		t.Errorf("chains %v", c)
	}
	// A withheld APT repository gets none of its metadata; its pool goes up.
	p = PlanRegion(PlanInput{Region: &model.Region{Name: "x"}, Files: files, Repos: []model.Repository{repo},
		Invalid: map[string]string{"deb": "its Valid-Until has passed"}})
	if got := [NumPhases]int{len(p.Items[0]), len(p.Items[1]), len(p.Items[2]), len(p.Items[3])}; got != [NumPhases]int{2, 0, 0, 0} || len(p.Withheld) != 1 {
		t.Errorf("withheld: phases %v, withheld %v", got, p.Withheld)
	}
}

func TestAptInPlace(t *testing.T) {
	files, repo := aptTree()
	present := func(ids ...int64) map[int64]*model.RegionObject {
		m := map[int64]*model.RegionObject{}
		for _, id := range ids {
			m[id] = &model.RegionObject{FileID: id, SHA256: sum32(99), Size: 10, State: model.ObjectPresent}
		}
		return m
	}
	for _, tc := range []struct {
		name    string
		objects map[int64]*model.RegionObject
		byHash  bool
		want    bool
	}{
		{"new revision, by-hash: plain indices rewritten, clients read by hash", present(3, 4), true, false},
		{"new revision without by-hash: plain indices rewritten take the region out", present(3, 4), false, true},
		// (another suite of the same archive has by-hash: it does not cover this one)
		{"a pool file rewritten under its name takes it out, by-hash or not", present(1), true, true},
		{"a by-hash file with other bytes (corrupt copy) takes it out", present(5), true, true},
		{"only the Release files change: the publication itself", present(7, 8, 9), false, false},
		{"nothing held yet", nil, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := PlanRegion(PlanInput{Region: &model.Region{Name: "x"}, Files: files, Objects: tc.objects, Repos: []model.Repository{repo},
				AptByHash: map[string]bool{"deb/dists/s": tc.byHash, "deb/dists/other": true}})
			if got := len(p.InPlace) == 1; got != tc.want {
				t.Errorf("in place %v, want %v", p.InPlace, tc.want)
			}
		})
	}
}

func TestHalfPairApt(t *testing.T) {
	const in, rel, gpg = "d/dists/s/InRelease", "d/dists/s/Release", "d/dists/s/Release.gpg"
	all := []string{gpg, rel, in}
	for _, tc := range []struct {
		planned []string
		main    string
		written []string
		want    bool
	}{
		{all, in, all, false},
		{all, in, nil, false},
		{all, in, []string{gpg, rel}, true}, // a new Release beside the old InRelease
		{all, in, []string{gpg}, true},
		{[]string{gpg, rel}, rel, []string{gpg}, true},
		{[]string{gpg}, rel, nil, true}, // Release current, its new signature missing
	} {
		w := map[string]bool{}
		for _, p := range tc.written {
			w[p] = true
		}
		if got := halfPair(tc.planned, tc.main, w); got != tc.want {
			t.Errorf("halfPair(%v, %s, %v) = %v, want %v", tc.planned, tc.main, tc.written, got, tc.want)
		}
	}
}

func TestByHashProtects(t *testing.T) {
	for _, tc := range []struct {
		rel  repomd.Release
		want bool
	}{
		{repomd.Release{ByHash: true, StrongestHash: "SHA256"}, true},
		{repomd.Release{ByHash: true, StrongestHash: "SHA512"}, false}, // apt reads by-hash/SHA512/
		{repomd.Release{ByHash: false, StrongestHash: "SHA256"}, false},
	} {
		if got := byHashProtects(&tc.rel); got != tc.want {
			t.Errorf("%+v: %v, want %v", tc.rel, got, tc.want)
		}
	}
}
