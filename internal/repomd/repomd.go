package repomd

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// MaxSize bounds what Parse reads: real repomd.xml files are a few KiB.
const MaxSize = 4 << 20

// Data is one <data> entry.
type Data struct {
	Type      string
	Href      string // relative to the repository directory ("repodata/...-primary.xml.gz")
	Checksum  string // hex
	Algorithm string // sha256, sha1, ...
	Size      int64
	Timestamp int64
}

// Repomd is a parsed repomd.xml with the hashes of its bytes.
type Repomd struct {
	Revision  string
	Data      []Data
	Timestamp int64 // the newest <timestamp> of the data entries (Unix seconds)
	Size      int64
	MD5       []byte
	SHA1      []byte
	SHA256    []byte
	SHA512    []byte
}

type xmlRepomd struct {
	XMLName  xml.Name `xml:"repomd"`
	Revision string   `xml:"revision"`
	Data     []struct {
		Type     string `xml:"type,attr"`
		Checksum struct {
			Type  string `xml:"type,attr"`
			Value string `xml:",chardata"`
		} `xml:"checksum"`
		Location struct {
			Href string `xml:"href,attr"`
		} `xml:"location"`
		Timestamp string `xml:"timestamp"`
		Size      string `xml:"size"`
	} `xml:"data"`
}

// insideRepository reports whether a location from metadata is a clean relative path
// that stays inside the repository.
func insideRepository(href string) bool {
	return href != "" && !strings.HasPrefix(href, "/") && !strings.Contains(href, "://") && path.Clean(href) == href &&
		href != ".." && !strings.HasPrefix(href, "../")
}

// Parse reads a repomd.xml. It refuses documents that are not repomd, hrefs that leave the
// repository, and files over MaxSize.
func Parse(r io.Reader) (*Repomd, error) {
	raw, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("repomd.xml: %w", err)
	}
	if len(raw) > MaxSize {
		return nil, fmt.Errorf("repomd.xml: larger than %d bytes", MaxSize)
	}
	var doc xmlRepomd
	dec := xml.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("repomd.xml: %w", err)
	}
	if len(doc.Data) == 0 {
		return nil, errors.New("repomd.xml: no <data> entries")
	}
	m := md5.Sum(raw)
	s1 := sha1.Sum(raw)
	s256 := sha256.Sum256(raw)
	s512 := sha512.Sum512(raw)
	out := &Repomd{Revision: strings.TrimSpace(doc.Revision), Size: int64(len(raw)),
		MD5: m[:], SHA1: s1[:], SHA256: s256[:], SHA512: s512[:]}
	for _, d := range doc.Data {
		href := strings.TrimSpace(d.Location.Href)
		if !insideRepository(href) {
			return nil, fmt.Errorf("repomd.xml: data %q: location %q is not a path inside the repository", d.Type, href)
		}
		entry := Data{Type: d.Type, Href: href, Checksum: strings.ToLower(strings.TrimSpace(d.Checksum.Value)), Algorithm: d.Checksum.Type}
		if v := strings.TrimSpace(d.Timestamp); v != "" {
			// createrepo writes integers; some tools write "1700000000.0".
			var f float64
			if _, err := fmt.Sscan(v, &f); err != nil {
				return nil, fmt.Errorf("repomd.xml: data %q: bad timestamp %q", d.Type, v)
			}
			entry.Timestamp = int64(f)
		}
		if v := strings.TrimSpace(d.Size); v != "" {
			if _, err := fmt.Sscan(v, &entry.Size); err != nil {
				return nil, fmt.Errorf("repomd.xml: data %q: bad size %q", d.Type, v)
			}
		}
		out.Timestamp = max(out.Timestamp, entry.Timestamp)
		out.Data = append(out.Data, entry)
	}
	return out, nil
}
