package scanner

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/objstore"
	"github.com/regionmirror/regionmirror/internal/repomd"
)

func sampleFile(body string) *model.File {
	m := md5.Sum([]byte(body))
	s := sha256.Sum256([]byte(body))
	return &model.File{ID: 1, Path: "a/b.rpm", Size: int64(len(body)), MD5: m[:], SHA256: s[:]}
}

func TestListingAndHeadEvidence(t *testing.T) {
	f := sampleFile("origin bytes")
	other := sampleFile("other bytes!")
	md5hex := hex.EncodeToString(f.MD5)
	otherMD5 := hex.EncodeToString(other.MD5)
	cases := []struct {
		name      string
		info      objstore.Info
		bucketEnc string
		listing   Evidence
		head      Evidence // the same info read as a Head answer
	}{
		{"plain MD5 ETag matches", objstore.Info{Size: f.Size, ETag: md5hex}, EncUnknown, Match, Match},
		{"plain MD5 ETag matches, no encryption", objstore.Info{Size: f.Size, ETag: md5hex}, EncNone, Match, Match},
		{"size differs", objstore.Info{Size: f.Size + 1, ETag: md5hex}, EncNone, Differs, Differs},
		// An ETag that differs condemns nothing by itself: the object may be SSE-KMS.
		{"ETag differs, encryption unknown", objstore.Info{Size: f.Size, ETag: otherMD5}, EncUnknown, NeedsHead, Differs},
		{"ETag differs, bucket unencrypted", objstore.Info{Size: f.Size, ETag: otherMD5}, EncNone, NeedsHead, Differs},
		{"ETag differs, object says KMS", objstore.Info{Size: f.Size, ETag: otherMD5, Encryption: "aws:kms"}, EncUnknown, NeedsHead, Unknown},
		{"ETag differs, object says DSSE-KMS", objstore.Info{Size: f.Size, ETag: otherMD5, Encryption: "aws:kms:dsse"}, EncNone, NeedsHead, Unknown},
		{"ETag differs, object says SSE-C", objstore.Info{Size: f.Size, ETag: otherMD5, Encryption: EncSSEC}, EncUnknown, NeedsHead, Unknown},
		{"ETag differs, SSE-S3", objstore.Info{Size: f.Size, ETag: otherMD5, Encryption: "AES256"}, EncUnknown, NeedsHead, Differs},
		{"KMS bucket: ETag not trusted", objstore.Info{Size: f.Size, ETag: otherMD5}, EncKMS, NeedsHead, Unknown},
		// Even an ETag equal to the MD5 proves nothing in a KMS bucket.
		{"KMS bucket: matching ETag not trusted", objstore.Info{Size: f.Size, ETag: md5hex}, EncKMS, NeedsHead, Unknown},
		{"KMS: stored sha256 matches", objstore.Info{Size: f.Size, ETag: otherMD5, SHA256: f.SHA256, Encryption: "aws:kms"}, EncKMS, Match, Match},
		{"KMS: stored sha256 differs", objstore.Info{Size: f.Size, ETag: otherMD5, SHA256: other.SHA256, Encryption: "aws:kms"}, EncKMS, Differs, Differs},
		{"stored sha256 beats a matching ETag", objstore.Info{Size: f.Size, ETag: md5hex, SHA256: other.SHA256}, EncNone, Differs, Differs},
		{"multipart ETag", objstore.Info{Size: f.Size, ETag: md5hex[:30] + "-3"}, EncNone, NeedsHead, Unknown},
		{"multipart ETag, stored sha256", objstore.Info{Size: f.Size, ETag: md5hex[:30] + "-3", SHA256: f.SHA256}, EncNone, Match, Match},
	}
	for _, c := range cases {
		if got := ListingEvidence(f, c.info, c.bucketEnc); got != c.listing {
			t.Errorf("%s: listing evidence %s, want %s", c.name, got, c.listing)
		}
		if got := HeadEvidence(f, c.info, c.bucketEnc); got != c.head {
			t.Errorf("%s: head evidence %s, want %s", c.name, got, c.head)
		}
	}
}

func TestObjectVerdict(t *testing.T) {
	f := sampleFile("origin bytes")
	old := sampleFile("older bytes")
	rec := func(state string, g *model.File) *model.RegionObject {
		return &model.RegionObject{FileID: f.ID, State: state, Size: g.Size, SHA256: g.SHA256}
	}
	cases := []struct {
		name string
		in   ObjectInput
		want Verdict
	}{
		{"verified and recorded", ObjectInput{File: f, Record: rec(model.ObjectPresent, f), Listed: true, Content: Match}, VerdictPresent},
		{"verified, not recorded", ObjectInput{File: f, Listed: true, Content: Match}, VerdictAdopted},
		{"verified, recorded missing", ObjectInput{File: f, Record: rec(model.ObjectMissing, f), Listed: true, Content: Match}, VerdictAdopted},
		{"the new version, recorded old", ObjectInput{File: f, Record: rec(model.ObjectPresent, old), Listed: true, Content: Match}, VerdictAdopted},
		{"recorded, not listed", ObjectInput{File: f, Record: rec(model.ObjectPresent, f)}, VerdictMissing},
		{"never pushed", ObjectInput{File: f}, VerdictNeverPushed},
		{"never pushed, twin neither", ObjectInput{File: f, NeedsTwin: true}, VerdictNeverPushed},
		{"twin missing", ObjectInput{File: f, Record: rec(model.ObjectPresent, f), Listed: true, NeedsTwin: true, Content: Match}, VerdictTwinMissing},
		{"unrecorded, twin missing", ObjectInput{File: f, Listed: true, NeedsTwin: true, Content: Match}, VerdictNeverPushed},
		{"twin there", ObjectInput{File: f, Record: rec(model.ObjectPresent, f), Listed: true, NeedsTwin: true, TwinListed: true, Content: Match}, VerdictPresent},
		{"older version recorded, other bytes", ObjectInput{File: f, Record: rec(model.ObjectPresent, old), Listed: true, Content: Differs}, VerdictOutdated},
		{"older version recorded, unknown bytes", ObjectInput{File: f, Record: rec(model.ObjectPresent, old), Listed: true, Content: Unknown}, VerdictOutdated},
		{"other bytes", ObjectInput{File: f, Record: rec(model.ObjectPresent, f), Listed: true, Content: Differs}, VerdictCorrupt},
		{"other bytes, unrecorded", ObjectInput{File: f, Listed: true, Content: Differs}, VerdictCorrupt},
		{"cannot tell", ObjectInput{File: f, Record: rec(model.ObjectPresent, f), Listed: true, Content: Unknown}, VerdictUnchecked},
	}
	for _, c := range cases {
		if got := ObjectVerdict(c.in); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

func TestDataEvidence(t *testing.T) {
	f := sampleFile("primary")
	old := sampleFile("old primary")
	entry := func(algo string, g *model.File) repomd.Data {
		return repomd.Data{Type: "primary", Href: "repodata/primary.xml.gz", Algorithm: algo, Checksum: hex.EncodeToString(g.SHA256), Size: g.Size}
	}
	cases := []struct {
		name  string
		d     repomd.Data
		f     *model.File
		holds bool
		want  Evidence
	}{
		{"names the origin's file, region holds it", entry("sha256", f), f, true, Match},
		// --simple-md-filenames: the region holds the new primary.xml.gz, serves the old repomd.xml.
		{"names older bytes than the region holds", entry("sha256", old), f, true, Differs},
		{"size differs", repomd.Data{Algorithm: "sha256", Checksum: hex.EncodeToString(f.SHA256), Size: f.Size + 1}, f, true, Differs},
		{"region's bytes unknown", entry("sha256", f), f, false, Unknown},
		{"origin has no such file", entry("sha256", f), nil, true, Unknown},
		{"sha512 must be read", repomd.Data{Algorithm: "sha512", Checksum: "00"}, f, true, Unknown},
		{"bad hex", repomd.Data{Algorithm: "sha256", Checksum: "zz"}, f, true, Differs},
	}
	for _, c := range cases {
		if got := DataEvidence(c.d, c.f, c.holds); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

func TestAlternateVerified(t *testing.T) {
	v1, v2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	for _, tc := range []struct {
		name string
		prev *model.RegionRepo
		want bool
	}{
		{"never recorded (a new or moved region)", nil, false},
		{"verified fresh with that version", &model.RegionRepo{State: model.RepoFresh, RepomdSHA256: v1}, true},
		{"already an alternate with that version", &model.RegionRepo{State: model.RepoAlternate, RepomdSHA256: v1}, true},
		{"fresh with another version (reverted behind our back)", &model.RegionRepo{State: model.RepoFresh, RepomdSHA256: v2}, false},
		{"taken out by a push rewriting in place", &model.RegionRepo{State: model.RepoStale, RepomdSHA256: v1, Error: "being rewritten in place"}, false},
		{"unreachable at the last scan", &model.RegionRepo{State: model.RepoUnreachable}, false},
		{"missing at the last scan", &model.RegionRepo{State: model.RepoMissing}, false},
	} {
		if got := AlternateVerified(tc.prev, v1); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if AlternateVerified(&model.RegionRepo{State: model.RepoFresh}, nil) {
		t.Error("nothing served is no alternate")
	}
}

func TestPackageHeld(t *testing.T) {
	f := sampleFile("new bytes")
	newSum := hex.EncodeToString(f.SHA256)
	oldSum := sha256.Sum256([]byte("old bytes"))
	for _, tc := range []struct {
		name        string
		pkg         repomd.Package
		holdsOrigin bool
		older       []byte
		want        Evidence
	}{
		{"holds the origin's bytes, which primary names", repomd.Package{Algorithm: "sha256", Checksum: newSum}, true, nil, Match},
		{"holds the origin's bytes, primary names others (origin mid-update)", repomd.Package{Algorithm: "sha256", Checksum: hex.EncodeToString(oldSum[:])}, true, nil, Differs},
		{"holds the older bytes primary names (origin moved on)", repomd.Package{Algorithm: "sha256", Checksum: hex.EncodeToString(oldSum[:])}, false, oldSum[:], Match},
		{"holds older bytes, primary names the new ones", repomd.Package{Algorithm: "sha256", Checksum: newSum}, false, oldSum[:], Differs},
		{"holds nothing verified", repomd.Package{Algorithm: "sha256", Checksum: newSum}, false, nil, Unknown},
		{"sha1 primary: the origin's bytes count", repomd.Package{Algorithm: "sha1", Checksum: "00"}, true, nil, Match},
	} {
		if got := PackageHeld(tc.pkg, f, tc.holdsOrigin, tc.older); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
