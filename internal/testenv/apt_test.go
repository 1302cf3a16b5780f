package testenv

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/repomd"
)

// TestAptArchiveIsWhatAptReads: the fixture archive has what the APT tests rely on: an
// InRelease the keyring verifies, listing Packages and Packages.gz with their sizes and
// SHA-256, by-hash twins of both, and the pool files Packages names.
func TestAptArchiveIsWhatAptReads(t *testing.T) {
	root := filepath.Join(t.TempDir(), "debian")
	a := NewAptArchive(t, root, "stable", true, true)
	pkgs := []AptPackage{{Name: "hello", Version: "1.0", Content: "hello 1"}, {Name: "world", Version: "2.0", Content: "world 2"}}
	a.Publish(t, pkgs, PublishOptions{ValidUntil: 7 * 24 * time.Hour})
	raw, err := os.ReadFile(filepath.Join(root, "dists/stable/InRelease"))
	if err != nil {
		t.Fatal(err)
	}
	rel, err := repomd.ParseRelease(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if !rel.Signed || !rel.ByHash || rel.ValidUntil.Sub(rel.Date) != 7*24*time.Hour || len(rel.Files) != 2 {
		t.Fatalf("InRelease: signed %v, by-hash %v, valid %v, files %+v", rel.Signed, rel.ByHash, rel.ValidUntil.Sub(rel.Date), rel.Files)
	}
	keyring, err := os.ReadFile(a.Keyring)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := repomd.ReadKeyring(keyring)
	if err != nil {
		t.Fatal(err)
	}
	if err := repomd.CheckInRelease(raw, kr); err != nil {
		t.Fatal(err)
	}
	for _, f := range rel.Files {
		body, err := os.ReadFile(filepath.Join(root, "dists/stable", f.Path))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(body)
		if int64(len(body)) != f.Size || !bytes.Equal(sum[:], f.SHA256) {
			t.Errorf("%s: size %d sha256 %x, listed %d %x", f.Path, len(body), sum, f.Size, f.SHA256)
		}
		twin, err := os.ReadFile(filepath.Join(root, "dists/stable", filepath.Dir(f.Path), "by-hash/SHA256", hex.EncodeToString(f.SHA256)))
		if err != nil || !bytes.Equal(twin, body) {
			t.Errorf("%s: by-hash twin %v", f.Path, err)
		}
	}
	idx, err := os.Open(filepath.Join(root, "dists/stable/main/binary-amd64/Packages"))
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	n := 0
	err = repomd.ParsePackages(idx, func(p repomd.DebPackage) error {
		n++
		deb, err := os.ReadFile(filepath.Join(root, p.Filename))
		if err != nil {
			return err
		}
		if sum := sha256.Sum256(deb); !bytes.Equal(sum[:], p.SHA256) || int64(len(deb)) != p.Size {
			t.Errorf("%s does not match Packages", p.Filename)
		}
		return nil
	})
	if err != nil || n != 2 {
		t.Fatalf("Packages: %d packages, %v", n, err)
	}
}
