package model

import (
	"mime"
	"path"
	"regexp"
	"strings"
)

// Tree-layout rules every package applies the same way: which paths a region carries,
// which repositories it carries, where a repository's repomd.xml is, the "+" twin key.

// CarriesPath reports whether a region with these include prefixes carries path p (a file
// or a directory): no includes carry everything; otherwise p must be an include or lie
// under one.
func CarriesPath(includes []string, p string) bool {
	if len(includes) == 0 {
		return true
	}
	for _, inc := range includes {
		if p == inc || strings.HasPrefix(p, inc+"/") {
			return true
		}
	}
	return false
}

// CarriesRepository reports whether a region with these include prefixes carries the
// repository in directory dir: all of it, metadata and every file the metadata may name.
// An include that covers repodata/ but not the packages beside it does not carry the
// repository; such a region gets none of its metadata and is never offered for it.
// A repository at the root of the tree (dir "") is carried only by a region without
// includes.
func CarriesRepository(includes []string, dir string) bool {
	if dir == "" || dir == "." {
		return len(includes) == 0
	}
	return CarriesPath(includes, dir)
}

// Carries reports whether the region carries path p (a file or a directory): CarriesPath
// of its include prefixes.
func (r *Region) Carries(p string) bool { return CarriesPath(r.Includes, p) }

// CarriesRepository reports whether the region carries the whole repository in dir:
// CarriesRepository of its include prefixes.
func (r *Region) CarriesRepository(dir string) bool { return CarriesRepository(r.Includes, dir) }

// PushesPath reports whether a push writes the file at p into a region with this fill
// mode, include prefixes and pins: every file a push region carries; in an on-demand
// region, the metadata of the repositories it carries (every file directly in their
// repodata/) and the files under its pins. Everything else an on-demand region carries is
// copied when a client asks for it, and may expire.
func PushesPath(fill string, includes, pins []string, p string) bool {
	if !CarriesPath(includes, p) {
		return false
	}
	if fill != FillOnDemand {
		return true
	}
	if IsMetadata(p) && CarriesRepository(includes, MetadataRepoDir(p)) {
		return true
	}
	return len(pins) > 0 && CarriesPath(pins, p)
}

// OnDemand reports whether the region fills on demand.
func (r *Region) OnDemand() bool { return r.Fill == FillOnDemand }

// Pushes reports whether a push writes p into the region (PushesPath).
func (r *Region) Pushes(p string) bool { return PushesPath(r.Fill, r.Includes, r.Pins, p) }

// FillsOnDemand reports whether the region's copy of p is made on demand: carried, not
// pushed. Only such copies expire or are evicted; metadata and pins never are.
func (r *Region) FillsOnDemand(p string) bool {
	return r.Fill == FillOnDemand && r.Carries(p) && !r.Pushes(p)
}

// AptSuitePath splits a path inside an APT archive's dists/SUITE/ into the archive root
// and suite and the rest (relative to dists/SUITE/, as Release lists it); ok is false for
// paths outside any dists/SUITE/. The first "dists" component counts: an archive holds no
// dists/ inside dists/.
func AptSuitePath(p string) (root, suite, rest string, ok bool) {
	i := 0
	for {
		j := strings.Index(p[i:], "dists/")
		if j < 0 {
			return "", "", "", false
		}
		j += i
		if j == 0 || p[j-1] == '/' {
			after := p[j+len("dists/"):]
			suite, rest, found := strings.Cut(after, "/")
			if !found || suite == "" || rest == "" {
				return "", "", "", false
			}
			return strings.TrimSuffix(p[:j], "/"), suite, rest, true
		}
		i = j + 1
	}
}

// IsAptRelease reports whether p is a suite's InRelease, Release or Release.gpg: what
// makes an APT repository's new revision visible, published last.
func IsAptRelease(p string) bool {
	_, _, rest, ok := AptSuitePath(p)
	return ok && (rest == "InRelease" || rest == "Release" || rest == "Release.gpg")
}

// IsAptByHash reports whether p is an index file stored under its hash
// (dists/SUITE/.../by-hash/SHA256/<sum>): a new name for every new content.
func IsAptByHash(p string) bool {
	_, _, rest, ok := AptSuitePath(p)
	return ok && (strings.HasPrefix(rest, "by-hash/") || strings.Contains(rest, "/by-hash/"))
}

// InAptDists reports whether p lies in an APT suite's dists/SUITE/.
func InAptDists(p string) bool {
	_, _, _, ok := AptSuitePath(p)
	return ok
}

// MetadataRepoDir is the repository directory of a metadata path: the directory above
// repodata/, or an APT archive's root above dists/ ("" at the origin's root).
func MetadataRepoDir(p string) string {
	if root, _, _, ok := AptSuitePath(p); ok {
		return root
	}
	return strings.TrimSuffix(path.Dir(path.Dir(p)), ".")
}

// IsMetadata reports whether p is repository metadata: directly in a repodata/, or in an
// APT suite's dists/SUITE/.
func IsMetadata(p string) bool { return InRepodata(p) || InAptDists(p) }

// RepomdPath is the path of a repository's repomd.xml.
func RepomdPath(dir string) string {
	return path.Join(dir, "repodata", "repomd.xml")
}

// SpaceTwin is the second key a path with "+" is written under, with spaces for the "+"
// (older dnf sends "+" unencoded, which S3 reads as a space); "" when p has no "+".
func SpaceTwin(p string) string {
	if !strings.Contains(p, "+") {
		return ""
	}
	return strings.ReplaceAll(p, "+", " ")
}

// WritableTwin is the space twin p is also written under, or "" when it has none or
// when the twin key is itself a path of the origin, live or deleted (isOriginPath): that
// key holds the real file, which a twin would overwrite.
// gc and the scanner must apply the same rule to twins.
func WritableTwin(p string, isOriginPath func(string) bool) string {
	twin := SpaceTwin(p)
	if twin == "" || isOriginPath(twin) {
		return ""
	}
	return twin
}

// InRepodata reports whether p lies directly in a repodata/ directory.
func InRepodata(p string) bool {
	dir := path.Dir(p)
	return dir == "repodata" || strings.HasSuffix(dir, "/repodata")
}

// IsRepomd reports whether p is a repomd.xml or its signature (repomd.xml.asc, .key):
// what makes a repository's new state visible, published last.
func IsRepomd(p string) bool {
	base := path.Base(p)
	return InRepodata(p) && (base == "repomd.xml" || strings.HasPrefix(base, "repomd.xml."))
}

// checksumNamed matches repodata files named after their own hash, which never change.
var checksumNamed = regexp.MustCompile(`^[0-9a-f]{32,128}-`)

// Headers returns the Content-Type and Cache-Control a path is stored with.
func Headers(p string) (contentType, cacheControl string) {
	base := path.Base(p)
	ext := path.Ext(base)
	switch ext {
	case ".rpm":
		contentType = "application/x-rpm"
	case ".xml":
		contentType = "application/xml"
	case ".gz":
		contentType = "application/gzip"
	case ".xz":
		contentType = "application/x-xz"
	case ".zst":
		contentType = "application/zstd"
	case ".bz2":
		contentType = "application/x-bzip2"
	case ".iso":
		contentType = "application/x-iso9660-image"
	case ".deb", ".udeb":
		contentType = "application/vnd.debian.binary-package"
	case ".asc":
		contentType = "application/pgp-signature"
	default:
		contentType = mime.TypeByExtension(ext)
		if contentType == "" {
			contentType = "application/octet-stream"
		}
	}
	const immutable = "public, max-age=31536000, immutable"
	switch {
	case IsRepomd(p) || (InAptDists(p) && !IsAptByHash(p)):
		// Clients and caches must always ask again: this is what moves a repository
		// forward (and an APT suite's plain index names are rewritten in place).
		cacheControl = "no-cache"
	case ext == ".rpm" || ext == ".drpm" || ext == ".deb" || ext == ".udeb" || IsAptByHash(p) || checksumNamed.MatchString(base):
		cacheControl = immutable
	default:
		cacheControl = "public, max-age=300"
	}
	return contentType, cacheControl
}
