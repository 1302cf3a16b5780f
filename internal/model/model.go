package model

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"strings"
	"time"
)

// Kinds of region storage.
const (
	KindS3   = "s3"
	KindFile = "file"
)

// Fill modes of a region.
const (
	FillPush     = "push"
	FillOnDemand = "on-demand"
)

// Access modes of a region.
const (
	AccessPublic       = "public"
	AccessLocationOnly = "location-only"
)

// Region is one copy of the tree in one place.
type Region struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Bucket, Endpoint, S3Region and Credentials apply to S3 regions; Dir to file regions.
	Bucket      string         `json:"bucket,omitempty"`
	Dir         string         `json:"dir,omitempty"`
	Endpoint    string         `json:"endpoint,omitempty"`
	S3Region    string         `json:"s3_region,omitempty"`
	Prefix      string         `json:"prefix,omitempty"`
	PublicURL   string         `json:"public_url"`
	Country     string         `json:"country,omitempty"`
	Continent   string         `json:"continent,omitempty"`
	Latitude    *float64       `json:"latitude,omitempty"`
	Longitude   *float64       `json:"longitude,omitempty"`
	Aliases     []string       `json:"aliases"`
	Netblocks   []netip.Prefix `json:"netblocks"`
	Includes    []string       `json:"includes"`
	Weight      int            `json:"weight"`
	Access      string         `json:"access"`
	Credentials string         `json:"credentials,omitempty"` // a shared-config profile name, never a secret
	// Concurrency is the number of transfers in flight for this region; 0 means the
	// configured default.
	Concurrency int `json:"concurrency,omitempty"`
	// Fill is FillPush (everything carried is pushed in advance) or FillOnDemand
	// (metadata and Pins are pushed; other files are copied when first asked for).
	Fill string `json:"fill"`
	// Pins are prefixes an on-demand region gets pushed like a push region.
	Pins []string `json:"pins"`
	// MaxBytes caps the bytes an on-demand region's on-demand copies hold (0: no cap);
	// above it the least recently requested go first.
	MaxBytes  int64     `json:"max_bytes,omitempty"`
	Enabled   bool      `json:"enabled"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Key is the object key of an origin path in this region: the prefix, then the path.
func (r *Region) Key(p string) string {
	if r.Prefix == "" {
		return p
	}
	return r.Prefix + "/" + p
}

// URL is where clients download an origin path from this region: the public URL (the
// root of the bucket or directory), then the key, every segment percent-encoded. "+" is
// encoded as well, because S3 decodes a literal "+" in a path as a space.
func (r *Region) URL(p string) string {
	return r.PublicURL + "/" + EscapePath(r.Key(p))
}

// EscapePath percent-encodes every byte of a path except unreserved characters and the
// slashes between segments: "+" becomes %2B, because S3 reads a literal "+" as a space.
func EscapePath(p string) string {
	const hexDigits = "0123456789ABCDEF"
	n := 0
	for i := 0; i < len(p); i++ {
		if !pathSafe(p[i]) {
			n++
		}
	}
	if n == 0 {
		return p
	}
	var b strings.Builder
	b.Grow(len(p) + 2*n)
	for i := 0; i < len(p); i++ {
		c := p[i]
		if pathSafe(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

func pathSafe(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~' || c == '/'
}

// DefaultWeight is the weight of a region added without --weight.
const DefaultWeight = 100

// Repository is a yum/dnf repository: the directory holding repodata/repomd.xml.
type Repository struct {
	ID        int64  `json:"id"`
	Name      string `json:"name"`
	Arch      string `json:"arch"` // AptArch for APT repositories, which span architectures
	Directory string `json:"directory"`
	// Kind is RepoYum (Directory holds repodata/) or RepoApt (Directory is the archive
	// root: dists/Suite/ and the pool the indices name).
	Kind  string `json:"kind"`
	Suite string `json:"suite,omitempty"` // APT only
	// ReleaseFile is what identifies an APT revision: InRelease, or Release for a suite
	// published without one (unsigned, or signed by Release.gpg alone).
	ReleaseFile string `json:"release_file,omitempty"`
	// Keyring is an APT repository's OpenPGP keyring (a path on the pushing machine): when
	// set, a revision whose signature it does not verify is never published.
	Keyring   string    `json:"keyring,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Repository kinds.
const (
	RepoYum = "yum"
	RepoApt = "apt"
	// AptArch is the arch of every APT repository: one suite serves all its
	// architectures, and (name, arch) stays the key of every repository.
	AptArch = "all"
)

// IsApt reports whether the repository is an APT suite.
func (r *Repository) IsApt() bool { return r.Kind == RepoApt }

// MetadataPath is the file whose checksum identifies the repository's published state,
// written last by a push and read through the public URL by the scanner: repomd.xml, or
// an APT suite's InRelease.
func (r *Repository) MetadataPath() string {
	if r.IsApt() {
		return path.Join(r.Directory, "dists", r.Suite, r.ReleaseFile)
	}
	return RepomdPath(r.Directory)
}

// ValidationError names the field and value that break a rule. The CLI maps it to exit
// status 2 (bad input).
type ValidationError struct {
	Field  string
	Value  string
	Reason string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("invalid %s %q: %s", e.Field, e.Value, e.Reason)
}

func invalid(field, value, format string, args ...any) error {
	return &ValidationError{Field: field, Value: value, Reason: fmt.Sprintf(format, args...)}
}

// IsValidation reports whether err is (or wraps) a ValidationError.
func IsValidation(err error) bool {
	var v *ValidationError
	return errors.As(err, &v)
}
