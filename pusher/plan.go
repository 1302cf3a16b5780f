package pusher

import (
	"bytes"
	"mime"
	"path"
	"regexp"
	"strings"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
)

// Phases of a push, each finished in a region before the next starts there, so that
// metadata never lands before the files it names.
const (
	PhaseFiles    = 0 // everything outside repodata/: packages, images
	PhaseRepodata = 1 // repodata/ except repomd.xml
	PhaseRepomd   = 2 // repomd.xml and its signature: what makes a new state visible
	NumPhases     = 3
)

// PhaseNames name the phases in output.
var PhaseNames = [NumPhases]string{"files", "repodata", "repomd"}

// PhaseOf tells which phase uploads a path.
func PhaseOf(p string) int {
	dir, base := path.Split(p)
	if dir != "repodata/" && !strings.HasSuffix(dir, "/repodata/") {
		return PhaseFiles
	}
	if base == "repomd.xml" || strings.HasPrefix(base, "repomd.xml.") {
		return PhaseRepomd
	}
	return PhaseRepodata
}

// SpaceTwin is the second key of a path with "+": older dnf sends "+" unencoded and S3
// decodes it as a space, so such objects are stored under both keys. "" when none.
func SpaceTwin(p string) string {
	if !strings.Contains(p, "+") {
		return ""
	}
	return strings.ReplaceAll(p, "+", " ")
}

// Included reports whether a region with these include prefixes carries path p.
func Included(includes []string, p string) bool {
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

// Verified reports whether a region's object is the origin's current file.
func Verified(f *db.File, o *db.RegionObject) bool {
	return o != nil && o.State == db.ObjectPresent && o.Size == f.Size && bytes.Equal(o.SHA256, f.SHA256)
}

// Item is one file to upload.
type Item struct {
	File  *db.File
	Phase int
}

// RegionPlan is what one region lacks.
type RegionPlan struct {
	Region   *model.Region
	Items    [NumPhases][]Item
	Bytes    [NumPhases]int64
	UpToDate int // files the region already holds verified
}

// Files counts the items of every phase.
func (p *RegionPlan) Files() int {
	n := 0
	for _, it := range p.Items {
		n += len(it)
	}
	return n
}

// TotalBytes sums the items of every phase.
func (p *RegionPlan) TotalBytes() int64 {
	var n int64
	for _, b := range p.Bytes {
		n += b
	}
	return n
}

// Plan lists what region must receive: every live origin file it carries that it does
// not hold verified. objects are the region's records by file ID.
func Plan(region *model.Region, files []db.File, objects map[int64]*db.RegionObject) *RegionPlan {
	p := &RegionPlan{Region: region}
	for i := range files {
		f := &files[i]
		if f.DeletedAt != nil || !Included(region.Includes, f.Path) {
			continue
		}
		if Verified(f, objects[f.ID]) {
			p.UpToDate++
			continue
		}
		ph := PhaseOf(f.Path)
		p.Items[ph] = append(p.Items[ph], Item{File: f, Phase: ph})
		p.Bytes[ph] += f.Size
	}
	return p
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
	case PhaseOf(p) == PhaseRepomd:
		// Clients and caches must always ask again: this is what moves a repository forward.
		cacheControl = "no-cache"
	case ext == ".rpm" || ext == ".drpm" || checksumNamed.MatchString(base):
		cacheControl = immutable
	default:
		cacheControl = "public, max-age=300"
	}
	return contentType, cacheControl
}
