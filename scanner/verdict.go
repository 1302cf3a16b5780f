package scanner

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"path"
	"strings"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/objstore"
	"github.com/regionmirror/regionmirror/internal/repomd"
)

// The scanner's decisions, kept out of its I/O loops: what an object's ETag or stored
// checksum says about its bytes, what a region holds of one file, and whether a data entry
// of the repomd.xml a region serves matches what the region holds.

// Evidence is what was learnt about an object's bytes compared with the origin's file.
type Evidence int

const (
	Unknown   Evidence = iota // nothing seen either way
	Match                     // certainly the origin's bytes
	Differs                   // certainly other bytes
	NeedsHead                 // the listing cannot tell; a HeadObject (stored checksum, encryption) may
)

func (e Evidence) String() string {
	return [...]string{"unknown", "match", "differs", "needs-head"}[e]
}

// Bucket encryption as far as the scanner knows it.
const (
	EncUnknown = ""        // not asked, or the store would not say
	EncNone    = "none"    // no encryption, or SSE-S3 (AES256): plain ETags are MD5s
	EncKMS     = "aws:kms" // SSE-KMS (also aws:kms:dsse): ETags are not MD5s
	EncSSEC    = "sse-c"   // customer keys: ETags are not MD5s
)

// ETagMeansMD5 reports whether an object's plain 32-hex ETag may be read as its MD5: only
// when neither the bucket nor the object is known to use KMS or customer keys.
func ETagMeansMD5(bucketEnc, objectEnc string) bool {
	untrusted := func(e string) bool { e = NormalizeEncryption(e); return e == EncKMS || e == EncSSEC }
	return !untrusted(bucketEnc) && !untrusted(objectEnc)
}

// ListingEvidence judges an object from its listing entry alone. A plain ETag that equals
// the MD5 is a match unless the bucket uses KMS or customer keys. One that differs never
// condemns the object by itself: the object may be encrypted with KMS (its ETag is then no
// MD5 at all, whatever the bucket's default), so it asks for a Head.
func ListingEvidence(f *model.File, info objstore.Info, bucketEnc string) Evidence {
	if info.Size != f.Size {
		return Differs
	}
	if info.SHA256 != nil {
		return boolEvidence(bytes.Equal(info.SHA256, f.SHA256))
	}
	if md5 := objstore.ETagMD5(info.ETag); md5 != nil && ETagMeansMD5(bucketEnc, "") && bytes.Equal(md5, f.MD5) {
		return Match
	}
	return NeedsHead
}

// NormalizeEncryption maps what a store says of its encryption to the Enc constants.
func NormalizeEncryption(s string) string {
	switch {
	case s == "":
		return EncUnknown
	case strings.EqualFold(s, "none"), strings.EqualFold(s, "AES256"):
		return EncNone
	case strings.HasPrefix(strings.ToLower(s), "aws:kms"):
		return EncKMS
	default:
		return EncSSEC
	}
}

// HeadEvidence judges an object from a HeadObject answer (asked with checksum mode on).
// The stored SHA-256 decides when there is one; otherwise a plain ETag is trusted only when
// neither the bucket nor the object says KMS or customer keys.
func HeadEvidence(f *model.File, head objstore.Info, bucketEnc string) Evidence {
	if head.Size != f.Size {
		return Differs
	}
	if head.SHA256 != nil {
		return boolEvidence(bytes.Equal(head.SHA256, f.SHA256))
	}
	md5 := objstore.ETagMD5(head.ETag)
	if md5 == nil || !ETagMeansMD5(bucketEnc, head.Encryption) {
		return Unknown
	}
	return boolEvidence(bytes.Equal(md5, f.MD5))
}

func boolEvidence(ok bool) Evidence {
	if ok {
		return Match
	}
	return Differs
}

// Verdict is what a scan concludes about a region's copy of one file.
type Verdict int

const (
	VerdictPresent     Verdict = iota // there with the origin's bytes, and recorded so
	VerdictAdopted                    // there with the origin's bytes, not recorded so (an interrupted push)
	VerdictMissing                    // recorded, not there
	VerdictTwinMissing                // there, but its "+" twin key is not
	VerdictOutdated                   // the record says an older version (the origin changed since): the next push replaces it
	VerdictCorrupt                    // there with other bytes
	VerdictUnchecked                  // there with the right size; contents not checkable: the record stands
	VerdictNeverPushed                // not there and never recorded: nothing the region serves names it yet
)

func (v Verdict) String() string {
	return [...]string{"present", "adopted", "missing", "twin-missing", "outdated", "corrupt", "unchecked", "never-pushed"}[v]
}

// Holds reports whether the verdict says the region holds the origin's current bytes.
func (v Verdict) Holds() bool { return v == VerdictPresent || v == VerdictAdopted }

// ObjectInput is everything the verdict on one file depends on.
type ObjectInput struct {
	File       *model.File
	Record     *model.RegionObject // nil: nothing recorded
	Listed     bool
	NeedsTwin  bool // the path has a "+" twin key
	TwinListed bool
	Content    Evidence // of the listed object against File (Unknown when not listed)
}

// ObjectVerdict decides what a region holds of one file.
func ObjectVerdict(in ObjectInput) Verdict {
	row := in.Record
	switch {
	case !in.Listed || (in.NeedsTwin && !in.TwinListed):
		if row == nil {
			return VerdictNeverPushed
		}
		if !in.Listed {
			return VerdictMissing
		}
		return VerdictTwinMissing
	case row != nil && !bytes.Equal(row.SHA256, in.File.SHA256) && in.Content != Match:
		// Not damage: the record already says the region holds an older version.
		return VerdictOutdated
	case in.Content == Differs:
		return VerdictCorrupt
	case in.Content != Match:
		return VerdictUnchecked
	case !row.Holds(in.File):
		return VerdictAdopted
	default:
		return VerdictPresent
	}
}

// DataEvidence judges one <data> entry of the repomd.xml a region serves against what the
// scan already knows: the origin's file at that path (nil when the origin has none) and
// whether the region's object is certainly that file's bytes. Unknown means the object
// must be read (or its stored SHA-256 asked for).
func DataEvidence(d repomd.Data, f *model.File, holdsOrigin bool) Evidence {
	if f == nil || !holdsOrigin || !strings.EqualFold(d.Algorithm, "sha256") {
		return Unknown
	}
	if d.Size > 0 && d.Size != f.Size {
		return Differs
	}
	want, err := hex.DecodeString(d.Checksum)
	if err != nil {
		return Differs
	}
	return boolEvidence(bytes.Equal(want, f.SHA256))
}

// AlternateVerified reports whether a region serving an older repomd.xml (sha256 served)
// may stay in the answers as an alternate: only when it was last recorded serving that
// same version as fresh or alternate. A scan cannot check an older version's packages
// (they are named by its primary.xml, not by repomd.xml), and a push that rewrites files
// in place overwrites them with the origin's current bytes, which the object comparison
// then finds right; such a push takes the repository out first, and that record must
// stand until a push makes the region fresh again. Likewise a region that moved, or was
// never verified serving this version, is not offered for it.
func AlternateVerified(prev *model.RegionRepo, served []byte) bool {
	if prev == nil || served == nil {
		return false
	}
	return (prev.State == model.RepoFresh || prev.State == model.RepoAlternate) && bytes.Equal(prev.RepomdSHA256, served)
}

// PackageHeld judges one package a served primary.xml names against what the region holds:
// holdsOrigin when it holds the origin's file f (its current bytes), older the sha256 of an
// older version the region holds verified (the origin changed since, and the served
// metadata may still name that version). Match: the region holds the bytes primary.xml
// names; Differs: it holds other bytes; Unknown: it holds nothing verified there.
func PackageHeld(pkg repomd.Package, f *model.File, holdsOrigin bool, older []byte) Evidence {
	if older != nil && strings.EqualFold(pkg.Algorithm, "sha256") {
		return boolEvidence(pkg.Checksum == hex.EncodeToString(older))
	}
	if !holdsOrigin || f == nil {
		return Unknown
	}
	// By the hashes the inventory keeps; other algorithms cannot tell.
	match, known := f.MatchesChecksum(pkg.Algorithm, pkg.Checksum)
	return boolEvidence(match || !known)
}

// AptInput is what the verdict on the index files of a served APT revision depends on.
type AptInput struct {
	Release  *repomd.Release // the InRelease (or Release) the region serves
	Suite    string          // the suite's directory (DIR/dists/SUITE), where listed paths start
	Listed   map[string]objstore.Info
	Verdicts map[string]Verdict // of the origin's live files, by path
	// Meant reports whether the region is meant to hold p: the origin has (or had) the
	// file and the region carries it. A Release may list files no mirror holds (Debian
	// lists uncompressed Packages it does not publish); apt then uses another.
	Meant func(p string) bool
	// Origin is the origin's file at p, or nil.
	Origin func(p string) *model.File
}

// AptIndexProblem returns why a region cannot serve the revision in.Release ("" when it
// can): an index file it lists, or its by-hash twin with Acquire-By-Hash, is not in the
// listing, has another size than listed, or is certainly other bytes than listed (the
// origin's file with the listed SHA-256 was found corrupt there).
func AptIndexProblem(in AptInput) string {
	check := func(p, listedAs string, size int64, sum []byte) string {
		if !in.Meant(p) {
			return ""
		}
		info, ok := in.Listed[p]
		switch {
		case !ok:
			return fmt.Sprintf("%s, which the Release it serves lists, is missing in this region", listedAs)
		case info.Size != size:
			return fmt.Sprintf("%s has %d bytes in this region; the Release it serves lists %d", listedAs, info.Size, size)
		}
		if f := in.Origin(p); f != nil && bytes.Equal(f.SHA256, sum) && in.Verdicts[p] == VerdictCorrupt {
			return fmt.Sprintf("%s has other bytes in this region than the Release it serves lists", listedAs)
		}
		return ""
	}
	for _, f := range in.Release.Files {
		p := path.Join(in.Suite, f.Path)
		if why := check(p, f.Path, f.Size, f.SHA256); why != "" {
			return why
		}
		if in.Release.ByHash {
			rel := path.Join(path.Dir(f.Path), "by-hash", "SHA256", hex.EncodeToString(f.SHA256))
			if why := check(path.Join(in.Suite, rel), rel, f.Size, f.SHA256); why != "" {
				return why
			}
		}
	}
	return ""
}

// AptPackagesIndices are the Packages indices of a Release to read for its pool files,
// one per directory: Packages when the region lists it, else Packages.gz (what the
// scanner can decompress; a directory with neither is not read).
func AptPackagesIndices(rel *repomd.Release, suite string, listed map[string]objstore.Info) []string {
	best := map[string]string{}
	var dirs []string
	for _, f := range rel.Files {
		base := path.Base(f.Path)
		if base != "Packages" && base != "Packages.gz" {
			continue
		}
		p := path.Join(suite, f.Path)
		if _, ok := listed[p]; !ok {
			continue
		}
		dir := path.Dir(p)
		cur, seen := best[dir]
		if !seen {
			dirs = append(dirs, dir)
		}
		if !seen || (base == "Packages" && cur != p) {
			best[dir] = p
		}
	}
	out := make([]string, 0, len(dirs))
	for _, d := range dirs {
		out = append(out, best[d])
	}
	return out
}

// AptPackageHeld judges one package a served Packages index names against what the region
// holds, as PackageHeld does for primary.xml: holdsOrigin when it holds the origin's file
// f, older the sha256 of an older version it holds verified.
func AptPackageHeld(pkg repomd.DebPackage, f *model.File, holdsOrigin bool, older []byte) Evidence {
	if older != nil && pkg.SHA256 != nil {
		return boolEvidence(bytes.Equal(older, pkg.SHA256))
	}
	if !holdsOrigin || f == nil {
		return Unknown
	}
	if pkg.SHA256 == nil {
		return Match // nothing to compare with: the object comparison stands
	}
	return boolEvidence(bytes.Equal(f.SHA256, pkg.SHA256))
}
