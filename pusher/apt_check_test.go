package pusher

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/repomd"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

var aptPkgs = []testenv.AptPackage{{Name: "hello", Version: "1.0", Content: "hello 1"}, {Name: "world", Version: "2.0", Content: "world 2"}}

// originIndex hashes every file under root as the inventory does.
func originIndex(t *testing.T, root string) map[string]*model.File {
	t.Helper()
	o := OSOrigin{Root: root}
	out := map[string]*model.File{}
	err := o.Walk(func(p string, size int64, mtime time.Time, _ bool) error {
		f, err := hashOne(o, walked{p, size, mtime}, make([]byte, 1<<16))
		if err != nil {
			return err
		}
		out[p] = &f
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCheckAptRevision runs the inventory's check of an APT revision against archives
// built by the real tools (dpkg-deb, apt-ftparchive, gpg), each then broken one way.
func TestCheckAptRevision(t *testing.T) {
	const suite = "stable"
	bin := filepath.Join("dists", suite, "main", "binary-amd64")
	other := testenv.NewAptArchive(t, t.TempDir(), suite, false, true) // another key
	for _, tc := range []struct {
		name    string
		byHash  bool
		opt     testenv.PublishOptions
		release string // ReleaseFile; "" InRelease
		keyring string // "archive", "other", "missing"
		breakIt func(t *testing.T, root string)
		want    string // substring of the reason; "" accepted
	}{
		{name: "signed, by-hash, checked", byHash: true, keyring: "archive"},
		{name: "unsigned Release only", release: "Release"},
		{name: "Release with Release.gpg checked", release: "Release", keyring: "archive"},
		{name: "Valid-Until passed", opt: testenv.PublishOptions{Date: time.Now().Add(-2 * time.Hour), ValidUntil: time.Hour}, want: "Valid-Until"},
		{name: "Valid-Until ahead", opt: testenv.PublishOptions{Date: time.Now().Add(-time.Hour), ValidUntil: 48 * time.Hour}},
		{name: "Date in the future", opt: testenv.PublishOptions{Date: time.Now().Add(time.Hour)}, want: "in the future"},
		{name: "bad signature", keyring: "other", want: "signature of InRelease"},
		{name: "bad Release.gpg", release: "Release", keyring: "other", want: "Release.gpg"},
		{name: "keyring unreadable", keyring: "missing", want: "keyring"},
		{name: "InRelease does not parse", breakIt: func(t *testing.T, root string) {
			writeFile(t, filepath.Join(root, "dists", suite, "InRelease"), "Date: yesterday\n")
		}, want: "cannot be parsed"},
		{name: "InRelease and Release disagree", breakIt: func(t *testing.T, root string) {
			p := filepath.Join(root, "dists", suite, "Release")
			b, _ := os.ReadFile(p)
			writeFile(t, p, strings.Replace(string(b), "Suite: "+suite, "Suite: other", 1))
		}, want: "different revisions"},
		{name: "uncompressed Packages not carried: tolerated", byHash: true, breakIt: func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, bin, "Packages"))
		}},
		{name: "listed index missing in every form", breakIt: func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, bin, "Packages"))
			os.Remove(filepath.Join(root, bin, "Packages.gz"))
		}, want: "which the origin does not have"},
		{name: "listed index with other bytes", breakIt: func(t *testing.T, root string) {
			writeFile(t, filepath.Join(root, bin, "Packages.gz"), "not the listed file")
		}, want: "another size or SHA256"},
		{name: "by-hash twin missing", byHash: true, breakIt: func(t *testing.T, root string) {
			os.RemoveAll(filepath.Join(root, bin, "by-hash"))
		}, want: "lacks the by-hash twin"},
		{name: "by-hash twin disagrees", byHash: true, breakIt: func(t *testing.T, root string) {
			b, _ := os.ReadFile(filepath.Join(root, bin, "Packages"))
			sum := sha256.Sum256(b)
			writeFile(t, filepath.Join(root, bin, "by-hash", "SHA256", hex.EncodeToString(sum[:])), "other bytes")
		}, want: "by-hash twin of"},
		{name: "pool file missing", breakIt: func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, testenv.DebPath(aptPkgs[1])))
		}, want: "names " + testenv.DebPath(aptPkgs[1]) + ", which the origin does not have"},
		{name: "pool file with other bytes", breakIt: func(t *testing.T, root string) {
			writeFile(t, filepath.Join(root, testenv.DebPath(aptPkgs[0])), "rebuilt")
		}, want: "names " + testenv.DebPath(aptPkgs[0]) + " with another size or SHA256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			origin := t.TempDir()
			root := filepath.Join(origin, "deb")
			a := testenv.NewAptArchive(t, root, suite, tc.byHash, true)
			a.Publish(t, aptPkgs, tc.opt)
			if tc.breakIt != nil {
				tc.breakIt(t, root)
			}
			repo := model.Repository{Name: "deb", Arch: model.AptArch, Directory: "deb", Kind: model.RepoApt, Suite: suite, ReleaseFile: "InRelease"}
			if tc.release != "" {
				repo.ReleaseFile = tc.release
				os.Remove(filepath.Join(root, "dists", suite, "InRelease"))
			}
			switch tc.keyring {
			case "archive":
				repo.Keyring = a.Keyring
			case "other":
				repo.Keyring = other.Keyring
			case "missing":
				repo.Keyring = filepath.Join(t.TempDir(), "none.asc")
			}
			rev, why := checkAptRevision(OSOrigin{Root: origin}, &repo, originIndex(t, origin), time.Now())
			switch {
			case tc.want == "" && why != "":
				t.Fatalf("refused: %s", why)
			case tc.want != "" && !strings.Contains(why, tc.want):
				t.Fatalf("reason %q, want it to say %q", why, tc.want)
			case tc.want == "" && (rev.rel == nil || rev.rel.ByHash != tc.byHash):
				t.Fatalf("revision %+v", rev.rel)
			}
		})
	}
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A component's Release is listed in the suite's Release but has no by-hash twin (apt
// never fetches it): it must not withhold a by-hash suite.
func TestCheckAptIndicesComponentRelease(t *testing.T) {
	origin := t.TempDir()
	bin := "deb/dists/s/main/binary-amd64"
	os.MkdirAll(filepath.Join(origin, filepath.FromSlash(bin), "by-hash", "SHA256"), 0o755)
	empty := sha256.Sum256(nil)
	compRel := []byte("Archive: s\nComponent: main\nArchitecture: amd64\n")
	relSum := sha256.Sum256(compRel)
	writeFile(t, filepath.Join(origin, filepath.FromSlash(bin), "Packages"), "")
	writeFile(t, filepath.Join(origin, filepath.FromSlash(bin), "by-hash", "SHA256", hex.EncodeToString(empty[:])), "")
	writeFile(t, filepath.Join(origin, filepath.FromSlash(bin), "Release"), string(compRel))
	rel := &repomd.Release{ByHash: true, Files: []repomd.ReleaseFile{
		{Path: "main/binary-amd64/Packages", Size: 0, SHA256: empty[:]},
		{Path: "main/binary-amd64/Release", Size: int64(len(compRel)), SHA256: relSum[:]},
	}}
	repo := model.Repository{Directory: "deb", Kind: model.RepoApt, Suite: "s", ReleaseFile: "InRelease"}
	if why := checkAptIndices(OSOrigin{Root: origin}, &repo, "deb/dists/s", rel, originIndex(t, origin)); why != "" {
		t.Errorf("refused: %s", why)
	}
}
