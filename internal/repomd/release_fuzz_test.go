package repomd

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzParseRelease: no input makes ParseRelease panic, and what it accepts keeps its
// promises: hashes of the bytes given, listed paths that stay inside the suite, a Date.
func FuzzParseRelease(f *testing.F) {
	f.Add([]byte("Origin: x\nDate: Sat, 10 Jun 2023 08:53:33 UTC\nValid-Until: Sat, 17 Jun 2023 08:53:33 UTC\nAcquire-By-Hash: yes\nSHA256:\n " +
		strings.Repeat("ab", 32) + " 12 main/binary-amd64/Packages\n"))
	f.Add([]byte("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nDate: Sat, 10 Jun 2023 08:53:33 UTC\nSHA256:\n- x\n-----BEGIN PGP SIGNATURE-----\n\nabc\n-----END PGP SIGNATURE-----\n"))
	f.Add([]byte("Date: Mon, 2 Jan 2006 15:04:05 +0000\nSHA256:\n " + strings.Repeat("00", 32) + " 0 ../etc/passwd\n"))
	f.Add([]byte(" continuation first\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		rel, err := ParseRelease(bytes.NewReader(raw))
		if err != nil {
			return
		}
		if rel.Size != int64(len(raw)) || len(rel.SHA256) != 32 || rel.Date.IsZero() {
			t.Fatalf("accepted with size %d (of %d), sha256 %x, date %v", rel.Size, len(raw), rel.SHA256, rel.Date)
		}
		for _, file := range rel.Files {
			if !insideRepository(file.Path) || file.Size < 0 || len(file.SHA256) != 32 {
				t.Fatalf("accepted a listed file %+v", file)
			}
		}
	})
}
