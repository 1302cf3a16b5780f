package repomd

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
)

// ReleaseFile is one line of a Release file's SHA256 list.
type ReleaseFile struct {
	Path   string // relative to dists/SUITE/
	Size   int64
	SHA256 []byte
}

// Release is a parsed APT Release or InRelease file with the hashes of its bytes.
type Release struct {
	Suite, Codename string
	Date            time.Time
	ValidUntil      time.Time // zero: the Release does not expire
	ByHash          bool      // Acquire-By-Hash: yes
	// StrongestHash is the strongest checksum list ("SHA512", else "SHA256"): apt fetches
	// by-hash/<StrongestHash>/<sum>, and falls back to the plain name when that is missing.
	StrongestHash string
	Files         []ReleaseFile
	Signed        bool // clear-signed (InRelease), whether or not checked
	Size          int64
	MD5           []byte
	SHA1          []byte
	SHA256        []byte
	SHA512        []byte
}

// File returns the listed file at path, or nil.
func (r *Release) File(p string) *ReleaseFile {
	for i := range r.Files {
		if r.Files[i].Path == p {
			return &r.Files[i]
		}
	}
	return nil
}

const clearsignHeader = "-----BEGIN PGP SIGNED MESSAGE-----"

// ParseRelease reads a Release or InRelease file (clear-signed: the signature is stripped,
// not checked; see CheckReleaseSignature). It refuses a file over MaxSize, one that is not
// deb822, one without a valid Date or without a SHA256 list, and listed paths that leave
// the suite's directory.
func ParseRelease(r io.Reader) (*Release, error) {
	raw, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	if len(raw) > MaxSize {
		return nil, fmt.Errorf("release: larger than %d bytes", MaxSize)
	}
	rel := &Release{Size: int64(len(raw))}
	m, s1, s256, s512 := md5.Sum(raw), sha1.Sum(raw), sha256.Sum256(raw), sha512.Sum512(raw)
	rel.MD5, rel.SHA1, rel.SHA256, rel.SHA512 = m[:], s1[:], s256[:], s512[:]
	body := raw
	if bytes.HasPrefix(bytes.TrimLeft(raw, " \t\r\n"), []byte(clearsignHeader)) {
		block, _ := clearsign.Decode(raw)
		if block == nil {
			return nil, errors.New("release: a clear-signed message that does not decode")
		}
		body, rel.Signed = block.Plaintext, true
	}
	var first *Paragraph
	n := 0
	err = ReadParagraphs(bytes.NewReader(body), func(p *Paragraph) error {
		n++
		if n == 1 {
			c := *p
			first = &c
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	if first == nil {
		return nil, errors.New("release: empty")
	}
	if n > 1 {
		return nil, errors.New("release: more than one paragraph")
	}
	rel.Suite, rel.Codename = first.Get("Suite"), first.Get("Codename")
	date, ok := first.Lookup("Date")
	if !ok {
		return nil, errors.New("release: no Date field")
	}
	if rel.Date, err = parseReleaseTime(date); err != nil {
		return nil, fmt.Errorf("release: Date: %w", err)
	}
	if v, ok := first.Lookup("Valid-Until"); ok {
		if rel.ValidUntil, err = parseReleaseTime(v); err != nil {
			return nil, fmt.Errorf("release: Valid-Until: %w", err)
		}
	}
	rel.ByHash = strings.EqualFold(first.Get("Acquire-By-Hash"), "yes")
	list, ok := first.Lookup("SHA256")
	if !ok {
		return nil, errors.New("release: no SHA256 list")
	}
	rel.StrongestHash = "SHA256"
	if _, ok := first.Lookup("SHA512"); ok {
		rel.StrongestHash = "SHA512"
	}
	seen := map[string]bool{}
	for i, line := range strings.Split(list, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("release: SHA256 line %d: want \"<sha256> <size> <path>\"", i+1)
		}
		sum, err := hex.DecodeString(f[0])
		if err != nil || len(sum) != sha256.Size {
			return nil, fmt.Errorf("release: SHA256 line %d: %q is not a SHA-256", i+1, f[0])
		}
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || size < 0 {
			return nil, fmt.Errorf("release: SHA256 line %d: %q is not a size", i+1, f[1])
		}
		if !insideRepository(f[2]) {
			return nil, fmt.Errorf("release: SHA256 line %d: path %q leaves the suite's directory", i+1, f[2])
		}
		if seen[f[2]] {
			return nil, fmt.Errorf("release: SHA256 line %d: %s listed twice", i+1, f[2])
		}
		seen[f[2]] = true
		rel.Files = append(rel.Files, ReleaseFile{Path: f[2], Size: size, SHA256: sum})
	}
	return rel, nil
}

// Release dates are RFC 2822 in UTC ("Sat, 10 Jun 2023 08:53:33 UTC"); apt also reads
// numeric zones and one-digit days. The numeric layouts come first: Go reads "+0000"
// as a zone abbreviation too, which the name check below would refuse.
var releaseTimeLayouts = []string{time.RFC1123Z, "Mon, 2 Jan 2006 15:04:05 -0700", time.RFC1123, "Mon, 2 Jan 2006 15:04:05 MST"}

func parseReleaseTime(v string) (time.Time, error) {
	for _, l := range releaseTimeLayouts {
		t, err := time.Parse(l, v)
		if err != nil {
			continue
		}
		if zone, _ := t.Zone(); strings.HasSuffix(l, "MST") && zone != "UTC" && zone != "GMT" {
			// Go makes an abbreviation it cannot place a zero offset; apt takes only
			// UTC or GMT by name.
			return time.Time{}, fmt.Errorf("%q: the zone must be UTC", v)
		}
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 2822 date", v)
}

// ReleaseProblem is why an origin revision must not be published ("" when none) as far
// as its own fields tell: a Date in the future (apt refuses one more than a few seconds
// ahead) or a Valid-Until already passed (apt refuses the whole repository).
func ReleaseProblem(rel *Release, now time.Time) string {
	const maxFuture = 10 * time.Second // apt's Acquire::Max-FutureTime default is 10 s
	switch {
	case rel.Date.After(now.Add(maxFuture)):
		return fmt.Sprintf("its Date (%s) is in the future", rel.Date.Format(time.RFC1123))
	case !rel.ValidUntil.IsZero() && !rel.ValidUntil.After(now):
		return fmt.Sprintf("its Valid-Until (%s) has passed", rel.ValidUntil.Format(time.RFC1123))
	}
	return ""
}

// ReadKeyring reads an OpenPGP keyring, armored or binary (what `signed-by=` takes).
func ReadKeyring(raw []byte) (openpgp.EntityList, error) {
	if bytes.Contains(raw, []byte("-----BEGIN PGP")) {
		kr, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("keyring: %w", err)
		}
		return kr, nil
	}
	kr, err := openpgp.ReadKeyRing(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	return kr, nil
}

// CheckInRelease checks a clear-signed InRelease against the keyring.
func CheckInRelease(raw []byte, keyring openpgp.EntityList) error {
	block, _ := clearsign.Decode(raw)
	if block == nil {
		return errors.New("the InRelease file is not clear-signed")
	}
	if _, err := block.VerifySignature(keyring, nil); err != nil {
		return fmt.Errorf("signature of InRelease: %w", err)
	}
	return nil
}

// CheckDetached checks Release against its detached signature Release.gpg (armored, as
// apt-ftparchive and dak write it, or binary).
func CheckDetached(release, sig []byte, keyring openpgp.EntityList) error {
	var err error
	if bytes.Contains(sig, []byte("-----BEGIN PGP")) {
		_, err = openpgp.CheckArmoredDetachedSignature(keyring, bytes.NewReader(release), bytes.NewReader(sig), nil)
	} else {
		_, err = openpgp.CheckDetachedSignature(keyring, bytes.NewReader(release), bytes.NewReader(sig), nil)
	}
	if err != nil {
		return fmt.Errorf("signature of Release (Release.gpg): %w", err)
	}
	return nil
}

// DebPackage is what a Packages index says of one package file.
type DebPackage struct {
	Filename string // relative to the archive root ("pool/main/h/hello/hello_1_amd64.deb")
	Size     int64
	SHA256   []byte // nil when the paragraph has none
}

// ParsePackages calls fn for each paragraph of a Packages index (already decompressed).
// A paragraph without Filename is an error, as is a Filename that leaves the archive root.
func ParsePackages(r io.Reader, fn func(DebPackage) error) error {
	n := 0
	return ReadParagraphs(r, func(p *Paragraph) error {
		n++
		// apt-ftparchive run on "." writes "./pool/..." (and "./x.deb" in flat
		// repositories); apt reads it relative to the archive root all the same.
		name := strings.TrimPrefix(p.Get("Filename"), "./")
		if !insideRepository(name) {
			return fmt.Errorf("paragraph %d of Packages: Filename %q is missing or leaves the archive root", n, name)
		}
		pkg := DebPackage{Filename: name}
		if s := p.Get("Size"); s != "" {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil || v < 0 {
				return fmt.Errorf("paragraph %d of Packages: Size %q", n, s)
			}
			pkg.Size = v
		}
		if s := p.Get("SHA256"); s != "" {
			sum, err := hex.DecodeString(s)
			if err != nil || len(sum) != sha256.Size {
				return fmt.Errorf("paragraph %d of Packages: SHA256 %q", n, s)
			}
			pkg.SHA256 = sum
		}
		return fn(pkg)
	})
}
