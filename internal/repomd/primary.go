package repomd

import (
	"compress/bzip2"
	"compress/gzip"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// ErrCompression: the file is compressed in a format this package cannot read (xz, zstd).
var ErrCompression = errors.New("unsupported compression")

// Package is one <package> of primary.xml: its location and checksum.
type Package struct {
	Href      string // relative to the repository directory
	Checksum  string // hex, lower case
	Algorithm string // sha256, sha1, md5, sha512, ...
	Base      string // xml:base of the location: the package lives on another server
}

// Decompress returns a reader of a repodata file's contents by its name's suffix.
func Decompress(name string, r io.Reader) (io.Reader, error) {
	switch {
	case strings.HasSuffix(name, ".gz"):
		return gzip.NewReader(r)
	case strings.HasSuffix(name, ".bz2"):
		return bzip2.NewReader(r), nil
	case strings.HasSuffix(name, ".xml"):
		return r, nil
	}
	return nil, fmt.Errorf("%s: %w", path.Base(name), ErrCompression)
}

// IndexCompressions are the suffixes one APT index is published under (Packages,
// Packages.gz, Packages.xz ...).
var IndexCompressions = []string{".gz", ".xz", ".bz2", ".zst", ".lzma", ".lz4"}

// IndexStem is an APT index file's path without its compression suffix.
func IndexStem(p string) string {
	for _, ext := range IndexCompressions {
		if s, ok := strings.CutSuffix(p, ext); ok {
			return s
		}
	}
	return p
}

// DecompressIndex is Decompress for an APT index: the plain form (no compression suffix)
// is read as it is; ErrCompression for a compression this build cannot read (xz, ...).
func DecompressIndex(name string, r io.Reader) (io.Reader, error) {
	if IndexStem(name) == name {
		return r, nil
	}
	return Decompress(name, r)
}

// ParsePrimary streams the packages of a primary.xml (uncompressed) to fn, so that a
// repository of any size is read in constant memory. It refuses hrefs that leave the
// repository, like Parse.
func ParsePrimary(r io.Reader, fn func(Package) error) error {
	dec := xml.NewDecoder(r)
	var (
		in     bool
		pkg    Package
		inSum  bool
		sumBuf strings.Builder
	)
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("primary.xml: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch {
			case t.Name.Local == "package" && !in:
				in, pkg = true, Package{}
			case in && t.Name.Local == "checksum" && pkg.Checksum == "":
				inSum = true
				sumBuf.Reset()
				for _, a := range t.Attr {
					if a.Name.Local == "type" {
						pkg.Algorithm = a.Value
					}
				}
			case in && t.Name.Local == "location":
				for _, a := range t.Attr {
					switch a.Name.Local {
					case "href":
						pkg.Href = strings.TrimSpace(a.Value)
					case "base":
						pkg.Base = a.Value
					}
				}
			}
		case xml.CharData:
			if inSum {
				sumBuf.Write(t)
			}
		case xml.EndElement:
			switch {
			case inSum && t.Name.Local == "checksum":
				inSum = false
				pkg.Checksum = strings.ToLower(strings.TrimSpace(sumBuf.String()))
			case in && t.Name.Local == "package":
				in = false
				if !insideRepository(pkg.Href) {
					return fmt.Errorf("primary.xml: package location %q is not a path inside the repository", pkg.Href)
				}
				if err := fn(pkg); err != nil {
					return err
				}
			}
		}
	}
}
