package pusher

import (
	"slices"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/model"
)

func TestPlanExpiry(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	const dir = "r/os"
	od := func(maxBytes int64) *model.Region {
		return &model.Region{Name: "od", Fill: model.FillOnDemand, Includes: []string{"r"}, Pins: []string{"r/hot"}, MaxBytes: maxBytes}
	}
	cp := func(id int64, p string, size int64, age time.Duration) ExpiryCopy {
		return ExpiryCopy{FileID: id, Path: p, Size: size, State: model.ObjectPresent, LastUsed: now.Add(-age)}
	}
	a := cp(1, dir+"/Packages/a.rpm", 100, 20*day)   // expired
	b := cp(2, dir+"/Packages/b.rpm", 100, 3*day)    // oldest of the rest
	c := cp(3, dir+"/Packages/c.rpm", 50, day)       // middle
	d := cp(4, dir+"/Packages/d.rpm", 10, time.Hour) // newest
	meta := cp(5, dir+"/repodata/primary.xml.gz", 500, 30*day)
	pin := cp(6, "r/hot/big.iso", 1000, 30*day)
	outside := cp(7, "other/x.bin", 100, 30*day) // not carried: nothing of this region's rules
	never := ExpiryCopy{FileID: 8, Path: dir + "/Packages/never.rpm", Size: 5, State: model.ObjectPresent}
	tieSmall := cp(9, dir+"/Packages/t1.rpm", 10, 2*day)
	tieBig := cp(10, dir+"/Packages/t2.rpm", 40, 2*day)
	tieBig2 := cp(11, dir+"/Packages/t3.rpm", 40, 2*day)
	missing := ExpiryCopy{FileID: 12, Path: dir + "/Packages/m.rpm", Size: 1000, State: model.ObjectMissing, LastUsed: now.Add(-4 * day)}
	deleting := ExpiryCopy{FileID: 13, Path: dir + "/Packages/del.rpm", Size: 1000, State: model.ObjectDeleting, LastUsed: now.Add(-30 * day)}
	exactly := cp(14, dir+"/Packages/edge.rpm", 1, 14*day) // exactly expire_after old: stays
	twin := cp(15, dir+"/Packages/c++.rpm", 1, 20*day)
	realTwin := cp(16, dir+"/Packages/x+y.rpm", 1, 20*day)
	// Adopted by a scan an hour ago, never requested nor pushed: a scan is not a use.
	scannedAt := now.Add(-time.Hour)
	scanned := ExpiryCopy{FileID: 17, Path: dir + "/Packages/scanned.rpm", Size: 7, State: model.ObjectPresent,
		LastUsed: LastUsed(&model.RegionObject{VerifiedAt: &scannedAt})}

	for _, tc := range []struct {
		name          string
		region        *model.Region
		copies        []ExpiryCopy
		expire, evict []int64
		held, kept    int64
	}{
		{name: "age only, no cap", region: od(0), copies: []ExpiryCopy{a, b, c, d}, expire: []int64{1}, held: 260, kept: 160},
		{name: "never metadata or pins, however old", region: od(0), copies: []ExpiryCopy{meta, pin, outside, d}, kept: 10, held: 10},
		{name: "no known time counts as old", region: od(0), copies: []ExpiryCopy{never, d}, expire: []int64{8}, held: 15, kept: 10},
		{name: "verified by a scan, never requested: old", region: od(0), copies: []ExpiryCopy{scanned, d}, expire: []int64{17}, held: 17, kept: 10},
		{name: "exactly expire_after old stays", region: od(0), copies: []ExpiryCopy{exactly}, held: 1, kept: 1},
		{name: "under the cap: nothing evicted", region: od(1000), copies: []ExpiryCopy{a, b, c, d}, expire: []int64{1}, held: 260, kept: 160},
		{name: "at the cap: nothing evicted", region: od(160), copies: []ExpiryCopy{a, b, c, d}, expire: []int64{1}, held: 260, kept: 160},
		{name: "above the cap: least recently requested first", region: od(100), copies: []ExpiryCopy{d, c, b, a}, expire: []int64{1}, evict: []int64{2}, held: 260, kept: 60},
		{name: "evicted until at or under", region: od(9), copies: []ExpiryCopy{b, c, d}, evict: []int64{2, 3, 4}, held: 160, kept: 0},
		{name: "metadata and pins do not count against the cap", region: od(60), copies: []ExpiryCopy{meta, pin, b, c, d}, evict: []int64{2}, held: 160, kept: 60},
		{name: "ties: the larger first, then by path", region: od(20), copies: []ExpiryCopy{tieSmall, tieBig2, tieBig}, evict: []int64{10, 11}, held: 90, kept: 10},
		{name: "a missing copy holds nothing and frees nothing", region: od(55), copies: []ExpiryCopy{missing, b, c}, evict: []int64{2}, held: 150, kept: 50},
		{name: "a deleting copy is being removed already", region: od(0), copies: []ExpiryCopy{deleting, d}, held: 10, kept: 10},
		{name: "a push region expires nothing", region: &model.Region{Name: "p", Includes: []string{"r"}}, copies: []ExpiryCopy{a, b}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := PlanExpiry(ExpiryInput{Now: now, ExpireAfter: 14 * day, Region: tc.region, Copies: tc.copies})
			ids := func(ds []ExpiryDelete, reason string) []int64 {
				var out []int64
				for _, d := range ds {
					if d.Reason != reason {
						t.Errorf("%s: reason %q, want %q", d.Path, d.Reason, reason)
					}
					out = append(out, d.FileID)
				}
				return out
			}
			if got := ids(plan.Expire, RemoveExpired); !slices.Equal(got, tc.expire) {
				t.Errorf("expired %v, want %v", got, tc.expire)
			}
			if got := ids(plan.Evict, RemoveEvicted); !slices.Equal(got, tc.evict) {
				t.Errorf("evicted %v, want %v", got, tc.evict)
			}
			if plan.HeldBytes != tc.held || plan.KeptBytes != tc.kept {
				t.Errorf("held %d kept %d, want %d %d", plan.HeldBytes, plan.KeptBytes, tc.held, tc.kept)
			}
			for _, d := range plan.Deletes() {
				if !tc.region.FillsOnDemand(d.Path) {
					t.Errorf("%s is not filled on demand and must never go", d.Path)
				}
			}
		})
	}

	t.Run("twins", func(t *testing.T) {
		plan := PlanExpiry(ExpiryInput{Now: now, ExpireAfter: 14 * day, Region: od(0), Copies: []ExpiryCopy{twin, realTwin},
			RealPaths: map[string]bool{dir + "/Packages/x y.rpm": true}})
		if len(plan.Expire) != 2 {
			t.Fatalf("expired %v", plan.Expire)
		}
		if k := plan.Expire[0].Keys; !slices.Equal(k, []string{twin.Path, dir + "/Packages/c  .rpm"}) {
			t.Errorf("keys of %s: %v", twin.Path, k)
		}
		if k := plan.Expire[1]; !slices.Equal(k.Keys, []string{realTwin.Path}) || k.TwinKept != dir+"/Packages/x y.rpm" {
			t.Errorf("a real file at the twin key must stay: %+v", k)
		}
	})
}

func TestLastUsed(t *testing.T) {
	t1, t2, t3 := time.Unix(1, 0), time.Unix(2, 0), time.Unix(3, 0)
	for _, tc := range []struct {
		o    model.RegionObject
		want time.Time
	}{
		{model.RegionObject{LastRequestedAt: &t3, VerifiedAt: &t2, PushedAt: &t1}, t3},
		// A scan's verification is not a use: scans verify every copy again.
		{model.RegionObject{VerifiedAt: &t2, PushedAt: &t1}, t1},
		{model.RegionObject{PushedAt: &t1}, t1},
		{model.RegionObject{VerifiedAt: &t3}, time.Time{}},
		{model.RegionObject{}, time.Time{}},
	} {
		if got := LastUsed(&tc.o); !got.Equal(tc.want) {
			t.Errorf("LastUsed(%+v) = %v, want %v", tc.o, got, tc.want)
		}
	}
}
