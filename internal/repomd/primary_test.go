package repomd

import (
	"bytes"
	"compress/gzip"
	"errors"
	"strings"
	"testing"
)

const samplePrimary = `<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="2">
<package type="rpm">
  <name>hello</name>
  <checksum type="sha256" pkgid="YES">ABCDEF0123</checksum>
  <location href="Packages/hello-1.0-1.noarch.rpm"/>
  <format><rpm:provides><rpm:entry name="hello"/></rpm:provides></format>
</package>
<package type="rpm">
  <name>libc++</name>
  <checksum type="sha1" pkgid="YES"> 99 </checksum>
  <location xml:base="https://elsewhere.example/" href="Packages/libc++-1.0-1.noarch.rpm"/>
</package>
</metadata>`

func TestParsePrimary(t *testing.T) {
	var got []Package
	if err := ParsePrimary(strings.NewReader(samplePrimary), func(p Package) error { got = append(got, p); return nil }); err != nil {
		t.Fatal(err)
	}
	want := []Package{{"Packages/hello-1.0-1.noarch.rpm", "abcdef0123", "sha256", ""}, {"Packages/libc++-1.0-1.noarch.rpm", "99", "sha1", "https://elsewhere.example/"}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got %+v", got)
	}
	for _, bad := range []string{"../etc/passwd", "/abs.rpm", "a/../../b.rpm", "http://x/y.rpm"} {
		doc := strings.Replace(samplePrimary, "Packages/hello-1.0-1.noarch.rpm", bad, 1)
		if err := ParsePrimary(strings.NewReader(doc), func(Package) error { return nil }); err == nil {
			t.Errorf("href %q accepted", bad)
		}
	}
	if err := ParsePrimary(strings.NewReader(samplePrimary[:200]), func(Package) error { return nil }); err == nil {
		t.Error("truncated primary.xml accepted")
	}
}

func TestDecompress(t *testing.T) {
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write([]byte(samplePrimary))
	w.Close()
	r, err := Decompress("repodata/x-primary.xml.gz", &gz)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := ParsePrimary(r, func(Package) error { n++; return nil }); err != nil || n != 2 {
		t.Errorf("gz: %d %v", n, err)
	}
	if _, err := Decompress("repodata/primary.xml.zst", strings.NewReader("")); !errors.Is(err, ErrCompression) {
		t.Errorf("zst: %v", err)
	}
}

// FuzzParsePrimary: any primary.xml either fails or hands out only paths inside the
// repository.
func FuzzParsePrimary(f *testing.F) {
	f.Add(samplePrimary)
	f.Add(`<metadata><package><location href="a/../b"/></package></metadata>`)
	f.Fuzz(func(t *testing.T, doc string) {
		_ = ParsePrimary(strings.NewReader(doc), func(p Package) error {
			if p.Href == "" || strings.HasPrefix(p.Href, "/") || p.Href == ".." || strings.HasPrefix(p.Href, "../") || strings.Contains(p.Href, "/../") {
				t.Fatalf("href %q handed out", p.Href)
			}
			return nil
		})
	})
}
