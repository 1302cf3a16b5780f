package pusher

import (
	"errors"
	"fmt"
	"path"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/repomd"
)

// errMismatch ends a primary.xml walk at the first package that does not match.
var errMismatch = errors.New("mismatch")

// inconsistency checks a repository at the origin against the inventory just taken:
// every file its repomd.xml names is there with the checksum repomd.xml names, and every
// package its primary.xml names is there with the checksum primary.xml names. It returns
// "" when they agree, else why not. An origin that re-signs packages before createrepo
// rewrites the metadata, or rewrites repodata in place before repomd.xml, is in between
// for a while: pushing it then would overwrite, under their names, files the metadata the
// regions serve still names, and publish a repository that matches nothing.
func inconsistency(origin Origin, dir string, md *repomd.Repomd, byPath map[string]*model.File) string {
	for _, d := range md.Data {
		p := path.Join(dir, d.Href)
		f := byPath[p]
		if f == nil {
			return fmt.Sprintf("its repomd.xml names %s, which the origin does not have", d.Href)
		}
		if match, known := f.MatchesChecksum(d.Algorithm, d.Checksum); known && !match {
			return fmt.Sprintf("its repomd.xml names %s with another %s checksum than the origin's file", d.Href, d.Algorithm)
		}
	}
	for _, d := range md.Data {
		if d.Type != "primary" {
			continue
		}
		p := path.Join(dir, d.Href)
		rd, err := origin.Open(p)
		if err != nil {
			return fmt.Sprintf("its %s cannot be read (%v)", d.Href, err)
		}
		defer rd.Close()
		xr, err := repomd.Decompress(p, rd)
		if errors.Is(err, repomd.ErrCompression) {
			return "" // the packages cannot be checked here; the repodata could
		}
		if err != nil {
			return fmt.Sprintf("its %s cannot be read (%v)", d.Href, err)
		}
		reason := ""
		err = repomd.ParsePrimary(xr, func(pkg repomd.Package) error {
			if pkg.Base != "" {
				return nil // served from elsewhere, not part of this tree
			}
			f := byPath[path.Join(dir, pkg.Href)]
			if f == nil {
				reason = fmt.Sprintf("its primary.xml names %s, which the origin does not have", pkg.Href)
				return errMismatch
			}
			if match, known := f.MatchesChecksum(pkg.Algorithm, pkg.Checksum); known && !match {
				reason = fmt.Sprintf("its primary.xml names %s with another %s checksum than the origin's file", pkg.Href, pkg.Algorithm)
				return errMismatch
			}
			return nil
		})
		if err != nil && !errors.Is(err, errMismatch) {
			return fmt.Sprintf("its %s cannot be parsed (%v)", d.Href, err)
		}
		return reason
	}
	return ""
}
