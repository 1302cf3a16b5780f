package testenv

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// AptPackage is one package of a fixture archive: a real .deb built by dpkg-deb, holding
// one file with Content.
type AptPackage struct {
	Name, Version string
	Content       string // the payload; also what makes two builds differ
}

// AptArchive is an APT archive built with the real tools (dpkg-deb, apt-ftparchive, gpg):
// Root/pool/main/<x>/<name>/<name>_<version>_amd64.deb and Root/dists/<Suite>/ with
// main/binary-amd64/Packages and Packages.gz, their by-hash twins when ByHash, Release
// and, when signed, InRelease and Release.gpg.
type AptArchive struct {
	Root  string // the archive root (the repository's DIR)
	Suite string
	// ByHash writes by-hash/SHA256/<sum> twins and Acquire-By-Hash: yes.
	ByHash bool
	// Sign makes InRelease and Release.gpg with a throwaway key; Keyring is its public
	// key (armored), for --keyring and apt's signed-by=.
	Sign    bool
	Keyring string
	gnupg   string
}

// NewAptArchive prepares an archive at root (created) for suite; Publish writes it.
func NewAptArchive(t testing.TB, root, suite string, byHash, sign bool) *AptArchive {
	t.Helper()
	for _, tool := range []string{"dpkg-deb", "apt-ftparchive", "gpg"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing (.ci/deps installs dpkg-dev, apt-utils and gpg): %v", tool, err)
		}
	}
	a := &AptArchive{Root: root, Suite: suite, ByHash: byHash, Sign: sign}
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if sign {
		a.gnupg = t.TempDir()
		run(t, a.gnupg, []string{"GNUPGHOME=" + a.gnupg}, "gpg", "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", "",
			"--quick-generate-key", "regionmirror test archive <archive@example.invalid>", "ed25519", "sign", "never")
		a.Keyring = filepath.Join(a.gnupg, "archive.asc")
		pub := run(t, a.gnupg, []string{"GNUPGHOME=" + a.gnupg}, "gpg", "--batch", "--armor", "--export")
		if err := os.WriteFile(a.Keyring, pub, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// PublishOptions change one publish.
type PublishOptions struct {
	Date       time.Time     // zero: now
	ValidUntil time.Duration // after Date; 0: no Valid-Until
}

// DebPath is where Publish puts a package's .deb, relative to Root.
func DebPath(p AptPackage) string {
	return path.Join("pool", "main", p.Name[:1], p.Name, fmt.Sprintf("%s_%s_amd64.deb", p.Name, p.Version))
}

// Publish builds the packages that are missing from the pool, then writes a new revision
// of the suite naming exactly pkgs, as a publisher does: pool files first, then the
// index files (by-hash twins kept from earlier revisions), then Release, InRelease and
// Release.gpg. Files of earlier revisions stay, as publishers keep them for a while.
func (a *AptArchive) Publish(t testing.TB, pkgs []AptPackage, opt PublishOptions) {
	t.Helper()
	for _, p := range pkgs {
		deb := filepath.Join(a.Root, filepath.FromSlash(DebPath(p)))
		if _, err := os.Stat(deb); err == nil {
			continue
		}
		build := t.TempDir()
		ctl := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: amd64\nMaintainer: regionmirror tests <tests@example.invalid>\n"+
			"Description: regionmirror test package %s\n a fixture of the APT tests\n", p.Name, p.Version, p.Name)
		write(t, filepath.Join(build, "DEBIAN", "control"), []byte(ctl))
		write(t, filepath.Join(build, "usr", "share", "doc", p.Name, "content"), []byte(p.Content))
		if err := os.MkdirAll(filepath.Dir(deb), 0o755); err != nil {
			t.Fatal(err)
		}
		run(t, build, nil, "dpkg-deb", "--root-owner-group", "-Zgzip", "--build", build, deb)
	}
	suite := filepath.Join(a.Root, "dists", a.Suite)
	bin := filepath.Join(suite, "main", "binary-amd64")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	// Only the named packages: apt-ftparchive reads a directory, so it reads a copy of
	// the pool that holds just those (hard links), under the same relative names.
	only := t.TempDir()
	for _, p := range pkgs {
		dst := filepath.Join(only, filepath.FromSlash(DebPath(p)))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		src := filepath.Join(a.Root, filepath.FromSlash(DebPath(p)))
		if err := os.Link(src, dst); err != nil {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			write(t, dst, b)
		}
	}
	packages := run(t, only, nil, "apt-ftparchive", "packages", "pool")
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(packages)
	zw.Close()
	for name, body := range map[string][]byte{"Packages": packages, "Packages.gz": gz.Bytes()} {
		if a.ByHash {
			sum := sha256.Sum256(body)
			write(t, filepath.Join(bin, "by-hash", "SHA256", hex.EncodeToString(sum[:])), body)
		}
		write(t, filepath.Join(bin, name), body)
	}
	date := opt.Date
	if date.IsZero() {
		date = time.Now()
	}
	const layout = "Mon, 02 Jan 2006 15:04:05 UTC"
	args := []string{"-o", "APT::FTPArchive::Release::Origin=regionmirror-tests", "-o", "APT::FTPArchive::Release::Suite=" + a.Suite,
		"-o", "APT::FTPArchive::Release::Codename=" + a.Suite, "-o", "APT::FTPArchive::Release::Architectures=amd64",
		"-o", "APT::FTPArchive::Release::Components=main", "-o", "APT::FTPArchive::Release::Date=" + date.UTC().Format(layout)}
	if a.ByHash {
		args = append(args, "-o", "APT::FTPArchive::Release::Acquire-By-Hash=yes")
	}
	// SHA256 lists only, as dak publishes and as the by-hash twins are: apt fetches
	// by-hash under the strongest hash the Release lists, so with a SHA512 list it asks
	// for by-hash/SHA512/..., finds nothing and falls back to the plain names.
	args = append(args, "-o", "APT::FTPArchive::MD5=false", "-o", "APT::FTPArchive::SHA1=false", "-o", "APT::FTPArchive::SHA512=false")
	for _, f := range []string{"Release", "InRelease", "Release.gpg"} {
		os.Remove(filepath.Join(suite, f))
	}
	// Relative to dists/SUITE, as Release lists its files; by-hash twins are not listed.
	release := run(t, suite, nil, "apt-ftparchive", append(append(args, "-o", "APT::FTPArchive::Release::Patterns::=Packages*"), "release", ".")...)
	release = dropByHash(release)
	if opt.ValidUntil != 0 {
		// apt-ftparchive counts its ValidTime from now, not from Date: written here, a
		// test can publish a revision that has already expired.
		dateLine := "Date: " + date.UTC().Format(layout) + "\n"
		release = bytes.Replace(release, []byte(dateLine), []byte(dateLine+"Valid-Until: "+date.Add(opt.ValidUntil).UTC().Format(layout)+"\n"), 1)
	}
	write(t, filepath.Join(suite, "Release.new"), release)
	if a.Sign {
		env := []string{"GNUPGHOME=" + a.gnupg}
		run(t, suite, env, "gpg", "--batch", "--yes", "--armor", "--detach-sign", "-o", "Release.gpg.new", "Release.new")
		run(t, suite, env, "gpg", "--batch", "--yes", "--clearsign", "-o", "InRelease.new", "Release.new")
		rename(t, filepath.Join(suite, "Release.gpg.new"), filepath.Join(suite, "Release.gpg"))
		rename(t, filepath.Join(suite, "Release.new"), filepath.Join(suite, "Release"))
		rename(t, filepath.Join(suite, "InRelease.new"), filepath.Join(suite, "InRelease"))
		return
	}
	rename(t, filepath.Join(suite, "Release.new"), filepath.Join(suite, "Release"))
}

// dropByHash removes by-hash/ lines from a Release's checksum lists: apt-ftparchive
// lists every file it finds under the suite, and by-hash twins are never listed.
func dropByHash(release []byte) []byte {
	var out bytes.Buffer
	for _, line := range strings.SplitAfter(string(release), "\n") {
		if strings.HasPrefix(line, " ") && strings.Contains(line, "/by-hash/") {
			continue
		}
		out.WriteString(line)
	}
	return out.Bytes()
}

// AptRoot is a private root for the real apt (TESTING.md): the machine's own apt state is
// never read or written.
type AptRoot struct {
	Dir    string
	config string
}

// NewAptRoot makes a private root whose sources.list is sources (one or more lines).
func NewAptRoot(t testing.TB, sources string) *AptRoot {
	t.Helper()
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Fatalf("apt-get is missing (.ci/deps installs apt): %v", err)
	}
	r := &AptRoot{Dir: t.TempDir()}
	for _, d := range []string{"etc/apt/apt.conf.d", "etc/apt/preferences.d", "etc/apt/sources.list.d", "etc/apt/trusted.gpg.d",
		"var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/lib/dpkg", "var/log/apt", "download"} {
		if err := os.MkdirAll(filepath.Join(r.Dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(r.Dir, "var/lib/dpkg/status"), nil)
	write(t, filepath.Join(r.Dir, "etc/apt/sources.list"), []byte(sources+"\n"))
	r.config = filepath.Join(r.Dir, "apt.conf")
	conf := fmt.Sprintf(`Dir "%s/";
Dir::State::status "%s/var/lib/dpkg/status";
Dir::Etc::TrustedParts "%s/etc/apt/trusted.gpg.d";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
Acquire::Languages "none";
Acquire::Retries "0";
Acquire::http::Timeout "10";
APT::Sandbox::User "root";
`, r.Dir, r.Dir, r.Dir)
	write(t, r.config, []byte(conf))
	return r
}

// Run runs apt-get with args in the root (downloads land in Dir/download) and returns its
// combined output.
func (r *AptRoot) Run(args ...string) ([]byte, error) {
	cmd := exec.Command("apt-get", args...)
	cmd.Dir = filepath.Join(r.Dir, "download")
	cmd.Env = append(os.Environ(), "APT_CONFIG="+r.config, "LC_ALL=C")
	return cmd.CombinedOutput()
}

func run(t testing.TB, dir string, env []string, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

func write(t testing.TB, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func rename(t testing.TB, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}
