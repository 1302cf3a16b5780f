package repomd

import (
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

func TestParseSampleRepository(t *testing.T) {
	f, err := os.Open("../../testdata/origin/demo/1/x86_64/os/repodata/repomd.xml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Data) != 3 || r.Timestamp == 0 || len(r.MD5) != 16 || len(r.SHA1) != 20 || len(r.SHA256) != 32 || len(r.SHA512) != 64 {
		t.Fatalf("parsed %+v", r)
	}
	for _, d := range r.Data {
		if !strings.HasPrefix(d.Href, "repodata/") || len(d.Checksum) != 64 || d.Algorithm != "sha256" {
			t.Errorf("data entry %+v", d)
		}
		if _, err := os.Stat("../../testdata/origin/demo/1/x86_64/os/" + d.Href); err != nil {
			t.Errorf("href %s does not exist: %v", d.Href, err)
		}
	}
}

func TestParseTimestampsAndHashes(t *testing.T) {
	doc := `<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo">
  <revision>42</revision>
  <data type="primary"><checksum type="sha256">AB</checksum><location href="repodata/p.xml.gz"/><timestamp>1700000000</timestamp><size>10</size></data>
  <data type="updateinfo"><checksum type="sha256">cd</checksum><location href="repodata/u.xml.gz"/><timestamp>1700000500.0</timestamp></data>
</repomd>`
	r, err := Parse(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	if r.Timestamp != 1700000500 || r.Revision != "42" || r.Data[0].Checksum != "ab" || r.Data[0].Size != 10 {
		t.Errorf("parsed %+v", r)
	}
	// The hashes are of the bytes exactly as given.
	if got := hex.EncodeToString(r.MD5); len(got) != 32 || r.Size != int64(len(doc)) {
		t.Errorf("md5 %s size %d", got, r.Size)
	}
}

func TestParseRejects(t *testing.T) {
	for name, doc := range map[string]string{
		"not xml":        "hello",
		"empty":          "",
		"other root":     `<metalink><data type="x"><location href="a"/></data></metalink>`,
		"no data":        `<repomd><revision>1</revision></repomd>`,
		"traversal href": `<repomd><data type="p"><location href="../../etc/passwd"/></data></repomd>`,
		"absolute href":  `<repomd><data type="p"><location href="/etc/passwd"/></data></repomd>`,
		"url href":       `<repomd><data type="p"><location href="http://evil/x"/></data></repomd>`,
		"unclean href":   `<repomd><data type="p"><location href="repodata/./x"/></data></repomd>`,
		"bad timestamp":  `<repomd><data type="p"><location href="a"/><timestamp>soon</timestamp></data></repomd>`,
		"too large":      "<repomd>" + strings.Repeat(" ", MaxSize) + "</repomd>",
		"unterminated":   `<repomd><data type="p"><location href="a"/>`,
	} {
		if _, err := Parse(strings.NewReader(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(`<repomd><data type="p"><location href="repodata/a"/><timestamp>1</timestamp></data></repomd>`)
	f.Add("<repomd>")
	f.Fuzz(func(t *testing.T, doc string) {
		r, err := Parse(strings.NewReader(doc))
		if err != nil {
			return
		}
		for _, d := range r.Data {
			if strings.HasPrefix(d.Href, "/") || strings.HasPrefix(d.Href, "../") || d.Href == ".." {
				t.Fatalf("accepted href %q", d.Href)
			}
		}
	})
}
