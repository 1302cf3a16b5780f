package model

import (
	"strings"
	"testing"
	"time"
)

func TestFreshness(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	v3, v2, v1 := []byte("v3-sha"), []byte("v2-sha"), []byte("v1-sha")
	// v3 current (seen 1h ago), v2 superseded 1h ago, v1 superseded 4 days ago.
	versions := []RepomdVersion{{SHA256: v3}, {SHA256: v2, SupersededAt: now.Add(-time.Hour)}, {SHA256: v1, SupersededAt: now.Add(-96 * time.Hour)}}
	window := AlternatesPolicy{MaxAge: 72 * time.Hour}
	rec := func(state string, sha []byte) RecordedRepo {
		return RecordedRepo{Known: true, State: state, RepomdSHA256: sha}
	}
	tests := []struct {
		name     string
		carried  bool
		rec      RecordedRepo
		versions []RepomdVersion
		policy   AlternatesPolicy
		state    string
		version  int
		reason   string
	}{
		{"current version", true, rec(RepoFresh, v3), versions, window, RepoFresh, 0, ""},
		{"recorded alternate, now current again", true, rec(RepoAlternate, v3), versions, window, RepoFresh, 0, ""},
		{"recorded fresh, a newer version appeared", true, rec(RepoFresh, v2), versions, window, RepoAlternate, 1, ""},
		{"alternate within the window", true, rec(RepoAlternate, v2), versions, window, RepoAlternate, 1, ""},
		// Defect 16: status called this alternate while every metalink left it out.
		{"recorded fresh, superseded beyond alternates_max_age", true, rec(RepoFresh, v1), versions, window, RepoStale, 2, "beyond metalink.alternates_max_age (72h0m0s)"},
		{"recorded alternate, superseded beyond alternates_max_age", true, rec(RepoAlternate, v1), versions, window, RepoStale, 2, "superseded 96h0m0s ago"},
		{"a shorter window", true, rec(RepoAlternate, v2), versions, AlternatesPolicy{MaxAge: 30 * time.Minute}, RepoStale, 1, "beyond metalink.alternates_max_age (30m0s)"},
		{"no window at all", true, rec(RepoFresh, v2), versions, AlternatesPolicy{}, RepoStale, 1, "beyond"},
		{"exactly at the window's end", true, rec(RepoFresh, v2), versions, AlternatesPolicy{MaxAge: time.Hour}, RepoAlternate, 1, ""},
		{"never published", true, rec(RepoFresh, []byte("zz")), versions, window, RepoStale, -1, "the origin never published"},
		{"recorded stale stays stale, even with the current sha", true, rec(RepoStale, v3), versions, window, RepoStale, 0, "stale"},
		{"missing", true, rec(RepoMissing, nil), versions, window, RepoMissing, -1, "has no repomd.xml"},
		{"unreachable", true, rec(RepoUnreachable, v3), versions, window, RepoUnreachable, 0, "unreachable"},
		{"a state this binary does not know", true, rec("purple", v3), versions, window, RepoStale, 0, "stale"},
		{"nothing recorded", true, RecordedRepo{}, versions, window, RepoUnverified, -1, "not verified"},
		{"origin's repomd.xml not recorded yet", true, rec(RepoFresh, v3), nil, window, RepoUnverified, -1, "not been recorded"},
		{"not carried", false, rec(RepoFresh, v3), versions, window, RepoExcluded, -1, "does not carry"},
	}
	for _, tt := range tests {
		got := Freshness(tt.carried, tt.rec, tt.versions, tt.policy, now)
		if got.State != tt.state || got.Version != tt.version || !strings.Contains(got.Reason, tt.reason) || (tt.reason == "") != (got.Reason == "") {
			t.Errorf("%s: %+v, want %s version %d reason %q", tt.name, got, tt.state, tt.version, tt.reason)
		}
		if got.Offered() != (tt.state == RepoFresh || tt.state == RepoAlternate) {
			t.Errorf("%s: Offered() = %v", tt.name, got.Offered())
		}
	}
}

// TestRepodataOnlyIncludesCarryNoRepository: the rule every view applies with Freshness.
func TestRepodataOnlyIncludesCarryNoRepository(t *testing.T) {
	dir := "demo/1/x86_64/os"
	for _, tt := range []struct {
		includes []string
		want     bool
	}{
		{nil, true},
		{[]string{"demo"}, true},
		{[]string{dir}, true},
		{[]string{dir + "/repodata"}, false},
		{[]string{dir + "/repodata", dir + "/Packages"}, false},
		{[]string{"other"}, false},
	} {
		got := Freshness(CarriesRepository(tt.includes, dir), RecordedRepo{Known: true, State: RepoFresh, RepomdSHA256: []byte("x")},
			[]RepomdVersion{{SHA256: []byte("x")}}, AlternatesPolicy{MaxAge: time.Hour}, time.Now())
		if got.Offered() != tt.want {
			t.Errorf("includes %q: %+v, offered %v, want %v", tt.includes, got, got.Offered(), tt.want)
		}
	}
}
