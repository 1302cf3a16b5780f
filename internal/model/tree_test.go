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
