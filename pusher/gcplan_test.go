package pusher

import (
	"reflect"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/model"
)

func TestPlanGC(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	h := func(n float64) time.Time { return now.Add(time.Duration(n * float64(time.Hour))) }
	const dir = "f/40/os"
	pkg := dir + "/Packages/a-1.rpm"
	// repo builds a repository in dir with versions first seen at the given hours
	// (newest first), fresh in the region unless stale is set.
	repo := func(d string, firstSeen ...float64) GCRepository {
		var fs []time.Time
		for _, x := range firstSeen {
			fs = append(fs, h(x))
		}
		return GCRepository{Name: "f-40", Arch: "x86_64", Directory: d, Versions: gcVersions(fs), FreshInRegion: true}
	}
	stale := func(r GCRepository) GCRepository { r.FreshInRegion = false; return r }
	type want struct {
		del    bool
		reason string
		until  time.Time
		keys   []string
	}
	for _, tc := range []struct {
		name     string
		grace    time.Duration
		altAge   time.Duration
		includes []string
		path     string
		deleted  time.Time
		repos    []GCRepository
		real     []string
		want     want
		blocked  bool
	}{
		{name: "outside every repository: grace from deletion, passed", grace: time.Hour,
			path: "isos/x.iso", deleted: h(-2), repos: []GCRepository{repo(dir, -1, -100)},
			want: want{del: true, keys: []string{"isos/x.iso"}}},
		{name: "outside every repository: within grace", grace: time.Hour,
			path: "isos/x.iso", deleted: h(-0.5), repos: []GCRepository{repo(dir, -1, -100)},
			want: want{reason: KeepGrace, until: h(0.5)}},
		{name: "grace exactly passed is not past", grace: time.Hour,
			path: "isos/x.iso", deleted: h(-1),
			want: want{reason: KeepGrace, until: h(0)}},
		{name: "no repository: grace from deletion", grace: time.Hour,
			path: pkg, deleted: h(-2),
			want: want{del: true, keys: []string{pkg}}},
		// Defect 15: deleted long ago, its repository regenerated only recently; the old
		// repomd.xml that names it is still an alternate.
		{name: "deleted long ago, the metadata naming it superseded recently: still offered", grace: 96 * time.Hour, altAge: 72 * time.Hour,
			path: pkg, deleted: h(-100), repos: []GCRepository{repo(dir, -10, -300)},
			want: want{reason: KeepOffered, until: h(62 + 96)}},
		{name: "its metadata left the metalinks, grace after that not over", grace: 96 * time.Hour, altAge: 72 * time.Hour,
			path: pkg, deleted: h(-300), repos: []GCRepository{repo(dir, -80, -400)},
			want: want{reason: KeepOfferedGrace, until: h(-8 + 96)}},
		{name: "its metadata left the metalinks more than grace ago", grace: 96 * time.Hour, altAge: 72 * time.Hour,
			path: pkg, deleted: h(-300), repos: []GCRepository{repo(dir, -200, -400)},
			want: want{del: true, keys: []string{pkg}}},
		{name: "the latest version first seen before the deletion counts, not older ones", grace: time.Hour, altAge: 10 * time.Hour,
			path: pkg, deleted: h(-50), repos: []GCRepository{repo(dir, -5, -40, -60, -90)},
			// -60 is the last version before the deletion, superseded at -40: offered until -30.
			want: want{del: true, keys: []string{pkg}}},
		{name: "the latest version first seen before the deletion, still an alternate", grace: time.Hour, altAge: 10 * time.Hour,
			path: pkg, deleted: h(-50), repos: []GCRepository{repo(dir, -5, -8, -60, -90)},
			want: want{reason: KeepOffered, until: h(3)}},
		{name: "current version first seen before the deletion: never while current", grace: time.Hour, altAge: time.Hour,
			path: pkg, deleted: h(-500), repos: []GCRepository{repo(dir, -600)},
			want: want{reason: KeepOffered}},
		// The inventory that recorded the deletion recorded the new repomd.xml in the same
		// transaction: that version was read from a tree without the file.
		{name: "new version recorded at the deletion's time does not name it", grace: time.Hour, altAge: 2 * time.Hour,
			path: pkg, deleted: h(-10), repos: []GCRepository{repo(dir, -10, -100)},
			// -100 superseded at -10: offered until -8, grace until -7.
			want: want{del: true, keys: []string{pkg}}},
		{name: "new version at the deletion's time, the superseded one within its window", grace: time.Hour, altAge: 72 * time.Hour,
			path: pkg, deleted: h(-10), repos: []GCRepository{repo(dir, -10, -100)},
			want: want{reason: KeepOffered, until: h(63)}},
		{name: "versions of another repository do not count", grace: time.Hour, altAge: 72 * time.Hour,
			path: pkg, deleted: h(-10), repos: []GCRepository{repo("f/40/everything", -5, -100), repo("f/40/o", -5, -100)},
			want: want{del: true, keys: []string{pkg}}},
		{name: "a repository at the root holds every path", grace: time.Hour, altAge: 72 * time.Hour,
			path: pkg, deleted: h(-10), repos: []GCRepository{repo("", -5, -100)},
			want: want{reason: KeepOffered, until: h(68)}},
		{name: "nested repositories: the outer one's versions count too", grace: time.Hour, altAge: 72 * time.Hour,
			path: pkg, deleted: h(-100), repos: []GCRepository{repo(dir, -50, -200), repo("f", -1, -300)},
			want: want{reason: KeepOffered, until: h(72)}},
		// Defect 9: the twin of a+b is a b; a real file a b is never deleted as a twin.
		{name: "twin deleted with its file", grace: time.Hour,
			path: dir + "/Packages/libc++-1.rpm", deleted: h(-2),
			want: want{del: true, keys: []string{dir + "/Packages/libc++-1.rpm", dir + "/Packages/libc  -1.rpm"}}},
		{name: "twin that is a real path is kept", grace: time.Hour,
			path: dir + "/Packages/libc++-1.rpm", deleted: h(-2), real: []string{dir + "/Packages/libc  -1.rpm"},
			want: want{del: true, keys: []string{dir + "/Packages/libc++-1.rpm"}}},
		// Freshness, with the one rule for "carries the repository" (defect 11).
		{name: "a carried repository not fresh: nothing goes", grace: time.Hour,
			path: "isos/x.iso", deleted: h(-2), repos: []GCRepository{stale(repo(dir, -5))},
			want: want{reason: KeepRegionNotFresh}, blocked: true},
		{name: "a carried repository not fresh blocks nothing that must stay anyway", grace: time.Hour,
			path: "isos/x.iso", deleted: h(-0.5), repos: []GCRepository{stale(repo(dir, -5))},
			want: want{reason: KeepGrace, until: h(0.5)}},
		{name: "a repository outside the includes may be stale", grace: time.Hour, includes: []string{"isos", "f/41"},
			path: "isos/x.iso", deleted: h(-2), repos: []GCRepository{stale(repo(dir, -5))},
			want: want{del: true, keys: []string{"isos/x.iso"}}},
		{name: "includes that cover repodata/ only do not carry the repository", grace: time.Hour, includes: []string{"isos", dir + "/repodata"},
			path: "isos/x.iso", deleted: h(-2), repos: []GCRepository{stale(repo(dir, -5))},
			want: want{del: true, keys: []string{"isos/x.iso"}}},
		{name: "includes covering the repository's directory carry it", grace: time.Hour, includes: []string{"f"},
			path: "isos/x.iso", deleted: h(-2), repos: []GCRepository{stale(repo(dir, -5))},
			want: want{reason: KeepRegionNotFresh}, blocked: true},
		{name: "a repository with no version yet does not block", grace: time.Hour,
			path: "isos/x.iso", deleted: h(-2), repos: []GCRepository{stale(repo(dir))},
			want: want{del: true, keys: []string{"isos/x.iso"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			real := map[string]bool{}
			for _, p := range tc.real {
				real[p] = true
			}
			plan := PlanGC(GCInput{Now: now, Grace: tc.grace, AlternatesMaxAge: tc.altAge, Includes: tc.includes,
				Copies: []GCCopy{{FileID: 7, Path: tc.path, DeletedAt: tc.deleted, State: "present"}}, Repositories: tc.repos, RealPaths: real})
			if (plan.Blocked != "") != tc.blocked {
				t.Errorf("blocked %q, want %v", plan.Blocked, tc.blocked)
			}
			if tc.want.del {
				if len(plan.Delete) != 1 || len(plan.Kept) != 0 || !reflect.DeepEqual(plan.Delete[0].Keys, tc.want.keys) {
					t.Fatalf("want deleted with keys %q, got %+v", tc.want.keys, plan)
				}
				return
			}
			if len(plan.Delete) != 0 || len(plan.Kept) != 1 {
				t.Fatalf("want kept (%s), got %+v", tc.want.reason, plan)
			}
			if k := plan.Kept[0]; k.Reason != tc.want.reason || !k.Until.Equal(tc.want.until) {
				t.Errorf("kept %q until %v, want %q until %v", k.Reason, k.Until, tc.want.reason, tc.want.until)
			}
		})
	}
}

// gcVersions turns a repository's first_seen times, newest first, into versions as db reads
// them (SupersededAt is the next newer one's first_seen).
func gcVersions(firstSeenNewestFirst []time.Time) []model.RepomdVersion {
	out := make([]model.RepomdVersion, len(firstSeenNewestFirst))
	for i, fs := range firstSeenNewestFirst {
		out[i].FirstSeen = fs
		if i > 0 {
			out[i].SupersededAt = firstSeenNewestFirst[i-1]
		}
	}
	return out
}
