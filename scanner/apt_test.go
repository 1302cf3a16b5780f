package scanner

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/objstore"
	"github.com/regionmirror/regionmirror/internal/repomd"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

// aptRepo builds a signed by-hash archive under the origin's debian/, registers it and
// records its InRelease as the current revision (what the inventory of an APT push does).
func (f *fixture) aptRepo() (*model.Repository, *testenv.AptArchive) {
	f.t.Helper()
	return f.aptRepoOf("InRelease")
}

func (f *fixture) aptRepoOf(releaseFile string) (*model.Repository, *testenv.AptArchive) {
	f.t.Helper()
	ctx := context.Background()
	a := testenv.NewAptArchive(f.t, filepath.Join(f.origin, "debian"), "stable", true, true)
	a.Publish(f.t, []testenv.AptPackage{{Name: "hello", Version: "1.0", Content: "hello"}}, testenv.PublishOptions{})
	repo := &model.Repository{Name: "deb", Kind: model.RepoApt, Suite: "stable", Directory: "debian", ReleaseFile: releaseFile}
	if err := repo.Normalize(); err != nil {
		f.t.Fatal(err)
	}
	if err := f.db.CreateRepository(ctx, repo); err != nil {
		f.t.Fatal(err)
	}
	f.inventory()
	f.recordRelease(repo)
	return repo, a
}

func (f *fixture) recordRelease(repo *model.Repository) {
	f.t.Helper()
	raw, err := os.ReadFile(filepath.Join(f.origin, filepath.FromSlash(repo.MetadataPath())))
	if err != nil {
		f.t.Fatal(err)
	}
	rel, err := repomd.ParseRelease(bytes.NewReader(raw))
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.db.RecordRepomdVersion(context.Background(), &model.RepomdVersion{RepositoryID: repo.ID, MD5: rel.MD5, SHA1: rel.SHA1,
		SHA256: rel.SHA256, SHA512: rel.SHA512, Size: rel.Size, Timestamp: rel.Date.Unix(), ValidUntil: rel.ValidUntil}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) repoStateOf(r *model.Region, repo *model.Repository) (string, string) {
	states, _ := f.db.RegionRepos(context.Background())
	for _, s := range states {
		if s.RegionID == r.ID && s.RepositoryID == repo.ID {
			return s.State, s.Error
		}
	}
	return "none", ""
}

// TestScanAptRepository: the scanner reads an APT suite's InRelease through the region's
// public URL, classifies it, and checks the index files it lists (and their by-hash
// twins): a corrupted Packages.gz (same name and size, other bytes) or a missing by-hash
// twin makes the region stale for the suite, so that it leaves the mirror lists.
func TestScanAptRepository(t *testing.T) {
	f := newFixture(t, 0)
	srv := testenv.SharedS3(t)
	repo, _ := f.aptRepo()
	a := f.s3Region("eu-central-1", srv)
	f.push(a)
	f.scan(a)
	if st, why := f.repoStateOf(a, repo); st != model.RepoFresh {
		t.Fatalf("after push and scan: %s (%s)", st, why)
	}
	ctx := context.Background()
	put := func(key string, body []byte) {
		t.Helper()
		if _, err := srv.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: &a.Bucket, Key: aws.String(a.Prefix + "/" + key), Body: bytes.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	pkgs := "debian/dists/stable/main/binary-amd64/Packages.gz"
	orig, err := os.ReadFile(filepath.Join(f.origin, pkgs))
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(orig)
	bad[len(bad)/2] ^= 0xff
	put(pkgs, bad)
	f.scan(a)
	if st, why := f.repoStateOf(a, repo); st != model.RepoStale || !strings.Contains(why, "Packages.gz") {
		t.Errorf("corrupted Packages.gz: %s (%s)", st, why)
	}

	put(pkgs, orig)
	f.scan(a)
	if st, why := f.repoStateOf(a, repo); st != model.RepoFresh {
		t.Fatalf("repaired: %s (%s)", st, why)
	}

	// The by-hash twin of Packages goes: apt asks for it first.
	raw, _ := os.ReadFile(filepath.Join(f.origin, filepath.FromSlash(repo.MetadataPath())))
	rel, _ := repomd.ParseRelease(bytes.NewReader(raw))
	var twin string
	for _, lf := range rel.Files {
		if lf.Path == "main/binary-amd64/Packages" {
			twin = "debian/dists/stable/main/binary-amd64/by-hash/SHA256/" + hexOf(lf.SHA256)
		}
	}
	if _, err := srv.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &a.Bucket, Key: aws.String(a.Prefix + "/" + twin)}); err != nil {
		t.Fatal(err)
	}
	f.scan(a)
	if st, why := f.repoStateOf(a, repo); st != model.RepoStale || !strings.Contains(why, "by-hash") {
		t.Errorf("missing by-hash twin: %s (%s)", st, why)
	}

	// An InRelease the origin never published is stale, as a repomd.xml is.
	put(repo.MetadataPath(), bytes.Replace(raw, []byte("Origin:"), []byte("Origin: x"), 1))
	f.scan(a)
	if st, why := f.repoStateOf(a, repo); st != model.RepoStale || !strings.Contains(why, "InRelease") {
		t.Errorf("unpublished InRelease: %s (%s)", st, why)
	}
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }

// TestScanAptPoolNeverPushed: a region serving the current InRelease and its indices, but
// none of the pool files they name (never pushed there), is stale: apt would fail there.
func TestScanAptPoolNeverPushed(t *testing.T) {
	f := newFixture(t, 0)
	srv := testenv.SharedS3(t)
	repo, a := f.aptRepo()
	b := f.s3Region("eu-west-1", srv)
	dists := filepath.Join(a.Root, "dists")
	err := filepath.WalkDir(dists, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(f.origin, p)
		body, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		_, err = srv.Client().PutObject(context.Background(), &s3.PutObjectInput{Bucket: &b.Bucket, Key: aws.String(b.Prefix + "/" + filepath.ToSlash(rel)), Body: bytes.NewReader(body)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	f.scan(b)
	if st, why := f.repoStateOf(b, repo); st != model.RepoStale || !strings.Contains(why, "pool/main/h/hello/") {
		t.Errorf("no pool files: %s (%s)", st, why)
	}
}

// TestScanAptReleaseGpg: a suite identified by Release needs its Release.gpg beside it,
// the one of that Release, as repomd.xml needs its .asc.
func TestScanAptReleaseGpg(t *testing.T) {
	f := newFixture(t, 0)
	srv := testenv.SharedS3(t)
	repo, _ := f.aptRepoOf("Release")
	a := f.s3Region("eu-central-1", srv)
	f.push(a)
	f.scan(a)
	if st, why := f.repoStateOf(a, repo); st != model.RepoFresh {
		t.Fatalf("after push and scan: %s (%s)", st, why)
	}
	ctx := context.Background()
	key := aws.String(a.Prefix + "/debian/dists/stable/Release.gpg")
	if _, err := srv.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: &a.Bucket, Key: key, Body: strings.NewReader("not the signature")}); err != nil {
		t.Fatal(err)
	}
	f.scan(a)
	if st, why := f.repoStateOf(a, repo); st != model.RepoStale || !strings.Contains(why, "Release.gpg") {
		t.Errorf("another Release.gpg: %s (%s)", st, why)
	}
	if _, err := srv.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &a.Bucket, Key: key}); err != nil {
		t.Fatal(err)
	}
	f.scan(a)
	if st, why := f.repoStateOf(a, repo); st != model.RepoStale || !strings.Contains(why, "without its Release.gpg") {
		t.Errorf("no Release.gpg: %s (%s)", st, why)
	}
}

func TestAptPackageHeld(t *testing.T) {
	sum, other := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	f := &model.File{SHA256: sum}
	for _, tc := range []struct {
		name  string
		pkg   repomd.DebPackage
		f     *model.File
		holds bool
		older []byte
		want  Evidence
	}{
		{"held with the named bytes", repomd.DebPackage{SHA256: sum}, f, true, nil, Match},
		{"held with other bytes", repomd.DebPackage{SHA256: other}, f, true, nil, Differs},
		{"not held", repomd.DebPackage{SHA256: sum}, f, false, nil, Unknown},
		{"origin has no such file", repomd.DebPackage{SHA256: sum}, nil, true, nil, Unknown},
		{"no SHA256 in the index", repomd.DebPackage{}, f, true, nil, Match},
		{"an older version held, named", repomd.DebPackage{SHA256: other}, f, false, other, Match},
		{"an older version held, another named", repomd.DebPackage{SHA256: sum}, f, false, other, Differs},
	} {
		if got := AptPackageHeld(tc.pkg, tc.f, tc.holds, tc.older); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestAptPackagesIndices(t *testing.T) {
	rel := &repomd.Release{Files: []repomd.ReleaseFile{{Path: "main/binary-amd64/Packages.gz"}, {Path: "main/binary-amd64/Packages"},
		{Path: "main/binary-arm64/Packages.gz"}, {Path: "main/binary-arm64/Packages"}, {Path: "contrib/binary-amd64/Packages.xz"},
		{Path: "main/i18n/Translation-en"}}}
	listed := map[string]objstore.Info{}
	for _, p := range []string{"main/binary-amd64/Packages.gz", "main/binary-amd64/Packages", "main/binary-arm64/Packages.gz", "contrib/binary-amd64/Packages.xz"} {
		listed["d/dists/s/"+p] = objstore.Info{}
	}
	got := strings.Join(AptPackagesIndices(rel, "d/dists/s", listed), " ")
	if want := "d/dists/s/main/binary-amd64/Packages d/dists/s/main/binary-arm64/Packages.gz"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestAptIndexProblem(t *testing.T) {
	sum := bytes.Repeat([]byte{0xab}, 32)
	twin := "d/dists/s/main/binary-amd64/by-hash/SHA256/" + hexOf(sum)
	plain := "d/dists/s/main/binary-amd64/Packages"
	rel := func(byHash bool) *repomd.Release {
		return &repomd.Release{ByHash: byHash, Files: []repomd.ReleaseFile{{Path: "main/binary-amd64/Packages", Size: 10, SHA256: sum}}}
	}
	all := func(string) bool { return true }
	file := &model.File{Path: plain, Size: 10, SHA256: sum}
	origin := func(p string) *model.File {
		if p == plain {
			return file
		}
		return nil
	}
	listed := func(size int64, keys ...string) map[string]objstore.Info {
		m := map[string]objstore.Info{}
		for _, k := range keys {
			m[k] = objstore.Info{Key: k, Size: size}
		}
		return m
	}
	for _, tc := range []struct {
		name     string
		in       AptInput
		contains string // "" for no problem
	}{
		{"all there", AptInput{Release: rel(true), Listed: listed(10, plain, twin), Meant: all}, ""},
		{"no by-hash: twin not needed", AptInput{Release: rel(false), Listed: listed(10, plain), Meant: all}, ""},
		{"twin missing", AptInput{Release: rel(true), Listed: listed(10, plain), Meant: all}, "by-hash/SHA256/"},
		{"plain missing", AptInput{Release: rel(true), Listed: listed(10, twin), Meant: all}, "main/binary-amd64/Packages, which"},
		{"other size", AptInput{Release: rel(false), Listed: listed(9, plain), Meant: all}, "has 9 bytes"},
		{"not meant to hold (Debian's unpublished Packages)", AptInput{Release: rel(true), Listed: listed(10), Meant: func(string) bool { return false }}, ""},
		{"corrupt, same size", AptInput{Release: rel(false), Listed: listed(10, plain), Meant: all, Verdicts: map[string]Verdict{plain: VerdictCorrupt}}, "other bytes"},
		{"outdated copy, same size: the listing decides", AptInput{Release: rel(false), Listed: listed(10, plain), Meant: all, Verdicts: map[string]Verdict{plain: VerdictOutdated}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Suite = "d/dists/s"
			tc.in.Origin = origin
			got := AptIndexProblem(tc.in)
			if (tc.contains == "") != (got == "") || !strings.Contains(got, tc.contains) {
				t.Errorf("got %q, want %q", got, tc.contains)
			}
		})
	}
}
