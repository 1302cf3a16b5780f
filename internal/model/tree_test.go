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

func TestPushesPath(t *testing.T) {
	for _, c := range []struct {
		fill           string
		includes, pins []string
		path           string
		push, onDemand bool
	}{
		{FillPush, nil, nil, "f/x86_64/p.rpm", true, false},
		{FillPush, []string{"f"}, nil, "e/p.rpm", false, false},
		{FillOnDemand, nil, nil, "f/x86_64/p.rpm", false, true},
		{FillOnDemand, nil, nil, "f/x86_64/repodata/repomd.xml", true, false},
		{FillOnDemand, nil, nil, "f/x86_64/repodata/abc-primary.xml.gz", true, false},
		{FillOnDemand, nil, nil, "repodata/repomd.xml", true, false},
		// Metadata of a repository the region does not carry whole is not pushed.
		{FillOnDemand, []string{"f/x86_64/repodata"}, nil, "f/x86_64/repodata/repomd.xml", false, true},
		{FillOnDemand, []string{"f"}, nil, "e/x86_64/repodata/repomd.xml", false, false},
		{FillOnDemand, nil, []string{"f/hot"}, "f/hot/p.rpm", true, false},
		{FillOnDemand, nil, []string{"f/hot"}, "f/hotter/p.rpm", false, true},
		{FillOnDemand, []string{"f"}, []string{"f/hot"}, "g/hot/p.rpm", false, false},
	} {
		r := &Region{Fill: c.fill, Includes: c.includes, Pins: c.pins}
		if got := r.Pushes(c.path); got != c.push {
			t.Errorf("%s %v %v: Pushes(%s) = %v, want %v", c.fill, c.includes, c.pins, c.path, got, c.push)
		}
		if got := r.FillsOnDemand(c.path); got != c.onDemand {
			t.Errorf("%s %v %v: FillsOnDemand(%s) = %v, want %v", c.fill, c.includes, c.pins, c.path, got, c.onDemand)
		}
	}
}

func TestWritableTwin(t *testing.T) {
	origin := map[string]bool{"a/x y.rpm": true, "a/x+y.rpm": true, "a/c++.rpm": true}
	is := func(p string) bool { return origin[p] }
	for p, want := range map[string]string{
		"a/x+y.rpm": "",          // "a/x y.rpm" is a real file
		"a/c++.rpm": "a/c  .rpm", // no real file there
		"a/x y.rpm": "",          // no "+"
	} {
		if got := WritableTwin(p, is); got != want {
			t.Errorf("WritableTwin(%q) = %q, want %q", p, got, want)
		}
	}
}
