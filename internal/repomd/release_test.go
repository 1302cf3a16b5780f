package repomd_test

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/repomd"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

const sum1 = "8a2f0c0bc2b6ad1d2c0e1fbf1d4bdbd6a1c1b2a33f3a07f54d5f4b5c2bd1c0aa"
const sum2 = "1c0aa8a2f0c0bc2b6ad1d2c0e1fbf1d4bdbd6a1c1b2a33f3a07f54d5f4b5c2bd"

const release = `Origin: Debian
Label: Debian
Suite: stable
Codename: bookworm
Date: Sat, 10 Jun 2023 08:53:33 UTC
Valid-Until: Sat, 17 Jun 2023 08:53:33 UTC
Acquire-By-Hash: yes
Architectures: amd64 arm64
Components: main contrib
Description: Debian 12.0 Released 10 June 2023
MD5Sum:
 0ed6d4c8891eb86358b94bb35d9e4da4  1484322 contrib/Contents-all
SHA256:
 ` + sum1 + `   738242 main/binary-amd64/Packages
 ` + sum2 + ` 1484322 main/binary-amd64/Packages.gz
`

func TestParseRelease(t *testing.T) {
	rel, err := repomd.ParseRelease(strings.NewReader(release))
	if err != nil {
		t.Fatal(err)
	}
	if rel.Suite != "stable" || rel.Codename != "bookworm" || !rel.ByHash || rel.Signed || rel.StrongestHash != "SHA256" {
		t.Errorf("fields %+v", rel)
	}
	if want := time.Date(2023, 6, 10, 8, 53, 33, 0, time.UTC); !rel.Date.Equal(want) || !rel.ValidUntil.Equal(want.Add(7*24*time.Hour)) {
		t.Errorf("Date %v, Valid-Until %v", rel.Date, rel.ValidUntil)
	}
	if len(rel.Files) != 2 || rel.Files[0].Path != "main/binary-amd64/Packages" || rel.Files[0].Size != 738242 ||
		hex.EncodeToString(rel.Files[1].SHA256) != sum2 || rel.File("main/binary-amd64/Packages.gz") == nil || rel.File("x") != nil {
		t.Errorf("files %+v", rel.Files)
	}
	if rel.Size != int64(len(release)) || len(rel.SHA256) != 32 || len(rel.SHA512) != 64 || len(rel.MD5) != 16 || len(rel.SHA1) != 20 {
		t.Errorf("hashes of the bytes: size %d", rel.Size)
	}
}

// apt fetches by-hash under the strongest hash listed: with a SHA512 list that is
// by-hash/SHA512/.
func TestParseReleaseStrongestHash(t *testing.T) {
	in := release + "SHA512:\n " + strings.Repeat("ab", 64) + " 738242 main/binary-amd64/Packages\n"
	rel, err := repomd.ParseRelease(strings.NewReader(in))
	if err != nil || rel.StrongestHash != "SHA512" {
		t.Fatalf("%+v, %v", rel, err)
	}
}

func TestParseReleaseDates(t *testing.T) {
	for v, ok := range map[string]bool{
		"Sat, 10 Jun 2023 08:53:33 UTC":   true,
		"Sat, 10 Jun 2023 08:53:33 GMT":   true,
		"Sat, 10 Jun 2023 08:53:33 +0000": true,
		"Sat, 10 Jun 2023 10:53:33 +0200": true,
		"Sat, 3 Jun 2023 08:53:33 UTC":    true,
		"Sat, 10 Jun 2023 08:53:33 CEST":  false, // apt takes only UTC or GMT by name
		"2023-06-10T08:53:33Z":            false,
		"":                                false,
	} {
		in := strings.Replace(release, "Date: Sat, 10 Jun 2023 08:53:33 UTC", "Date: "+v, 1)
		rel, err := repomd.ParseRelease(strings.NewReader(in))
		if (err == nil) != ok {
			t.Errorf("Date %q: %v, want accepted %v", v, err, ok)
			continue
		}
		if ok && !rel.Date.Equal(time.Date(2023, 6, 10, 8, 53, 33, 0, time.UTC)) && !strings.Contains(v, " 3 Jun") {
			t.Errorf("Date %q read as %v", v, rel.Date)
		}
	}
}

func TestParseReleaseRefuses(t *testing.T) {
	for name, in := range map[string]string{
		"empty":             "",
		"no Date":           strings.Replace(release, "Date: Sat, 10 Jun 2023 08:53:33 UTC\n", "", 1),
		"bad Valid-Until":   strings.Replace(release, "Valid-Until: Sat, 17 Jun 2023 08:53:33 UTC", "Valid-Until: soon", 1),
		"no SHA256 list":    release[:strings.Index(release, "SHA256:")],
		"short SHA256 line": strings.Replace(release, "   738242 main", " main", 1),
		"not a SHA-256":     strings.Replace(release, sum1, "xyz", 1),
		"negative size":     strings.Replace(release, "738242", "-1", 1),
		"path leaves":       strings.Replace(release, "main/binary-amd64/Packages.gz", "../../etc/passwd", 1),
		"absolute path":     strings.Replace(release, "main/binary-amd64/Packages.gz", "/etc/passwd", 1),
		"listed twice":      strings.Replace(release, "main/binary-amd64/Packages.gz", "main/binary-amd64/Packages", 1),
		"two paragraphs":    release + "\nSuite: other\n",
		"not deb822":        "this is not a release file\n",
		"field twice":       "Date: Sat, 10 Jun 2023 08:53:33 UTC\n" + release,
		"bad clear-sign":    "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n" + release,
		"oversized":         release + " " + strings.Repeat("x", repomd.MaxSize) + "\n",
	} {
		if _, err := repomd.ParseRelease(strings.NewReader(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestReleaseProblem(t *testing.T) {
	now := time.Date(2023, 6, 12, 0, 0, 0, 0, time.UTC)
	rel := func(date, valid time.Time) *repomd.Release { return &repomd.Release{Date: date, ValidUntil: valid} }
	for _, tc := range []struct {
		name string
		rel  *repomd.Release
		want string
	}{
		{"current", rel(now.Add(-time.Hour), now.Add(time.Hour)), ""},
		{"no Valid-Until", rel(now.Add(-time.Hour), time.Time{}), ""},
		{"Date a few seconds ahead (clock skew apt tolerates)", rel(now.Add(5*time.Second), time.Time{}), ""},
		{"Date in the future", rel(now.Add(time.Minute), time.Time{}), "in the future"},
		{"Valid-Until passed", rel(now.Add(-2*time.Hour), now.Add(-time.Hour)), "Valid-Until"},
		{"Valid-Until now", rel(now.Add(-2*time.Hour), now), "Valid-Until"},
	} {
		if got := repomd.ReleaseProblem(tc.rel, now); (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestReadParagraphs(t *testing.T) {
	in := "# a comment\r\nPackage: a\r\nDescription: short\r\n long\r\n .\r\n more\r\n\r\n\r\nPackage: b\n"
	var got []string
	err := repomd.ReadParagraphs(strings.NewReader(in), func(p *repomd.Paragraph) error {
		got = append(got, p.Get("package")+"|"+p.Get("Description"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a|short\nlong\n\nmore", "b|"}; strings.Join(got, ";") != strings.Join(want, ";") {
		t.Errorf("paragraphs %q, want %q", got, want)
	}
	for name, bad := range map[string]string{
		"continuation first": " x\n",
		"no colon":           "Package a\n",
		"space in name":      "Pack age: a\n",
		"field twice":        "A: 1\na: 2\n",
	} {
		if err := repomd.ReadParagraphs(strings.NewReader(bad), func(*repomd.Paragraph) error { return nil }); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	stop := errors.New("stop")
	if err := repomd.ReadParagraphs(strings.NewReader("A: 1\n\nA: 2\n"), func(*repomd.Paragraph) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("fn's error: %v", err)
	}
}

func TestParsePackages(t *testing.T) {
	in := "Package: a\nFilename: pool/main/a/a/a_1_amd64.deb\nSize: 12\nSHA256: " + sum1 + "\n\n" +
		"Package: b\nFilename: ./pool/main/b/b/b_1_amd64.deb\n"
	var got []repomd.DebPackage
	if err := repomd.ParsePackages(strings.NewReader(in), func(p repomd.DebPackage) error { got = append(got, p); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Size != 12 || hex.EncodeToString(got[0].SHA256) != sum1 || got[1].Filename != "pool/main/b/b/b_1_amd64.deb" || got[1].SHA256 != nil {
		t.Errorf("packages %+v", got)
	}
	for name, bad := range map[string]string{
		"no Filename":      "Package: a\nSize: 1\n",
		"Filename leaves":  "Package: a\nFilename: ../x.deb\n",
		"dot-dot after ./": "Package: a\nFilename: ./../x.deb\n",
		"absolute":         "Package: a\nFilename: /x.deb\n",
		"a URL":            "Package: a\nFilename: http://example.org/x.deb\n",
		"bad Size":         "Package: a\nFilename: x.deb\nSize: big\n",
		"bad SHA256":       "Package: a\nFilename: x.deb\nSHA256: 00\n",
	} {
		if err := repomd.ParsePackages(strings.NewReader(bad), func(repomd.DebPackage) error { return nil }); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestReleaseSignatures checks the OpenPGP checks against an archive signed by the real
// gpg: InRelease and Release.gpg verify with its key, not with another, not tampered.
func TestReleaseSignatures(t *testing.T) {
	a := testenv.NewAptArchive(t, t.TempDir(), "stable", true, true)
	a.Publish(t, []testenv.AptPackage{{Name: "hello", Version: "1", Content: "hi"}}, testenv.PublishOptions{})
	other := testenv.NewAptArchive(t, t.TempDir(), "stable", false, true)
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	suite := filepath.Join(a.Root, "dists", "stable")
	in, rel, sig := read(filepath.Join(suite, "InRelease")), read(filepath.Join(suite, "Release")), read(filepath.Join(suite, "Release.gpg"))
	kr, err := repomd.ReadKeyring(read(a.Keyring))
	if err != nil {
		t.Fatal(err)
	}
	okr, err := repomd.ReadKeyring(read(other.Keyring))
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := repomd.ParseRelease(bytes.NewReader(in))
	if err != nil || !parsed.Signed || !parsed.ByHash || len(parsed.Files) != 2 {
		t.Fatalf("InRelease: %+v, %v", parsed, err)
	}
	plain, err := repomd.ParseRelease(bytes.NewReader(rel))
	if err != nil || plain.Signed || !plain.Date.Equal(parsed.Date) || len(plain.Files) != len(parsed.Files) {
		t.Fatalf("Release: %+v, %v", plain, err)
	}
	tampered := bytes.Replace(in, []byte("Suite: stable"), []byte("Suite: stablE"), 1)
	if err := repomd.CheckInRelease(in, kr); err != nil {
		t.Errorf("InRelease with its key: %v", err)
	}
	if err := repomd.CheckInRelease(in, okr); err == nil {
		t.Error("InRelease verified with another key")
	}
	if err := repomd.CheckInRelease(tampered, kr); err == nil {
		t.Error("tampered InRelease verified")
	}
	if err := repomd.CheckInRelease(rel, kr); err == nil {
		t.Error("an unsigned Release passed as InRelease")
	}
	if err := repomd.CheckDetached(rel, sig, kr); err != nil {
		t.Errorf("Release.gpg with its key: %v", err)
	}
	if err := repomd.CheckDetached(rel, sig, okr); err == nil {
		t.Error("Release.gpg verified with another key")
	}
	if err := repomd.CheckDetached(append(rel, '\n'), sig, kr); err == nil {
		t.Error("a changed Release verified")
	}
	if _, err := repomd.ReadKeyring([]byte("not a key")); err == nil {
		t.Error("garbage read as a keyring")
	}
}

// TestDecompressIndex: an APT index is read plain without a compression suffix, through
// gzip with .gz, and refused with ErrCompression in a compression this build lacks.
func TestDecompressIndex(t *testing.T) {
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write([]byte("Package: hello\n"))
	w.Close()
	for _, c := range []struct {
		name, body, want string
		err              error
	}{
		{"dists/stable/main/binary-amd64/Packages", "Package: hello\n", "Package: hello\n", nil},
		{"dists/stable/main/binary-amd64/Packages.gz", gz.String(), "Package: hello\n", nil},
		{"dists/stable/main/binary-amd64/Packages.xz", "\xfd7zXZ", "", repomd.ErrCompression},
	} {
		r, err := repomd.DecompressIndex(c.name, strings.NewReader(c.body))
		if !errors.Is(err, c.err) {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
			continue
		}
		if err == nil {
			if b, _ := io.ReadAll(r); string(b) != c.want {
				t.Errorf("%s: read %q, want %q", c.name, b, c.want)
			}
		}
		if got := repomd.IndexStem(c.name); got != "dists/stable/main/binary-amd64/Packages" {
			t.Errorf("IndexStem(%s) = %s", c.name, got)
		}
	}
}
