package model

import "testing"

func TestCarriesRepository(t *testing.T) {
	for _, tc := range []struct {
		includes []string
		dir      string
		want     bool
	}{
		{nil, "", true},
		{nil, "fedora/40/x86_64", true},
		{[]string{"fedora"}, "fedora/40/x86_64", true},
		{[]string{"fedora/40/x86_64"}, "fedora/40/x86_64", true},
		// Only the metadata: the packages would be missing (defect 11 of issue 12).
		{[]string{"fedora/40/x86_64/repodata"}, "fedora/40/x86_64", false},
		{[]string{"fedora/40/x86_64/repodata/repomd.xml"}, "fedora/40/x86_64", false},
		{[]string{"fedora/40/x86_64/Packages"}, "fedora/40/x86_64", false},
		{[]string{"fedora/4"}, "fedora/40/x86_64", false},
		{[]string{"epel", "fedora"}, "fedora/40", true},
		{[]string{"fedora"}, "", false},
		{[]string{"fedora"}, ".", false},
	} {
		if got := CarriesRepository(tc.includes, tc.dir); got != tc.want {
			t.Errorf("CarriesRepository(%q, %q) = %v, want %v", tc.includes, tc.dir, got, tc.want)
		}
	}
}

func TestCarriesPath(t *testing.T) {
	inc := []string{"a/b", "c"}
	for p, want := range map[string]bool{"a/b": true, "a/b/x": true, "a/bc": false, "c/d": true, "d": false, "a": false} {
		if CarriesPath(inc, p) != want {
			t.Errorf("CarriesPath(%q) = %v", p, !want)
		}
	}
	if !CarriesPath(nil, "anything") {
		t.Error("no includes must carry everything")
	}
}

func TestSpaceTwin(t *testing.T) {
	if SpaceTwin("a+b/c+d") != "a b/c d" || SpaceTwin("plain") != "" {
		t.Error("SpaceTwin")
	}
}

func TestHeaders(t *testing.T) {
	for p, want := range map[string][2]string{
		"r/Packages/a.rpm":          {"application/x-rpm", "public, max-age=31536000, immutable"},
		"r/repodata/repomd.xml":     {"application/xml", "no-cache"},
		"r/repodata/repomd.xml.asc": {"application/pgp-signature", "no-cache"},
		"r/repodata/0123456789abcdef0123456789abcdef01234567-primary.xml.gz": {"application/gzip", "public, max-age=31536000, immutable"},
		"r/repodata/comps.xml": {"application/xml", "public, max-age=300"},
		"r/README":             {"application/octet-stream", "public, max-age=300"},
	} {
		ct, cc := Headers(p)
		if ct != want[0] || cc != want[1] {
			t.Errorf("Headers(%q) = %q, %q; want %q", p, ct, cc, want)
		}
	}
}
