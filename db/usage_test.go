package db_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

// TestUsageSumsDeltas: two servers' deltas add up per key; the window selects weeks that
// overlap it and hours inside it; a failing statement adds nothing.
func TestUsageSumsDeltas(t *testing.T) {
	ctx := context.Background()
	_, url := testenv.NewDB(t)
	// A session whose dates read "30/11/2026" (DateStyle SQL, DMY) and whose zone is not
	// UTC: weeks and hours must come back the same (the weeks were read as text before).
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	d := open(t, url+sep+"datestyle=SQL,DMY&timezone=Australia/Sydney")
	wed := time.Date(2026, 12, 2, 15, 4, 0, 0, time.UTC) // ISO week 2026-W49, Monday 11-30
	h := wed.Truncate(time.Hour)
	one := model.UsageDelta{
		Totals:  []model.RedirectCount{{Region: "eu", Requests: 2, Bytes: 20}},
		Hours:   []model.HourCount{{HourKey: model.HourKey{Hour: h, Region: "eu"}, Requests: 2, Bytes: 20}},
		Countme: []model.CountmeCount{{CountmeKey: model.CountmeKey{Repo: "fedora-41", Arch: "x86_64", Week: wed, Bucket: 2}, Hits: 1}},
	}
	two := model.UsageDelta{
		Totals: []model.RedirectCount{{Region: "", Requests: 1, Bytes: 5}},
		Hours: []model.HourCount{{HourKey: model.HourKey{Hour: h, Region: "eu"}, Requests: 1, Bytes: 10},
			{HourKey: model.HourKey{Hour: h.Add(-time.Hour), Region: ""}, Requests: 1, Bytes: 5}},
		Countme: []model.CountmeCount{{CountmeKey: model.CountmeKey{Repo: "fedora-41", Arch: "x86_64", Week: wed.AddDate(0, 0, -2), Bucket: 2}, Hits: 3},
			{CountmeKey: model.CountmeKey{Repo: "fedora-41", Arch: "x86_64", Week: wed.AddDate(0, 0, -7), Bucket: 4}, Hits: 5}},
	}
	for _, delta := range []model.UsageDelta{one, two} {
		if err := d.AddUsage(ctx, delta); err != nil {
			t.Fatal(err)
		}
	}
	// One bad row (a negative count) fails the whole delta: the totals are not added either.
	bad := model.UsageDelta{Totals: []model.RedirectCount{{Region: "eu", Requests: 100}},
		Hours: []model.HourCount{{HourKey: model.HourKey{Hour: h, Region: "eu"}, Requests: -100}}}
	if err := d.AddUsage(ctx, bad); err == nil {
		t.Fatal("a negative hourly count was accepted")
	}
	totals, err := d.RedirectCounts(ctx)
	if err != nil || len(totals) != 2 || totals[1].Region != "eu" || totals[1].Requests != 2 {
		t.Fatalf("totals %+v %v", totals, err)
	}

	u, err := d.Usage(ctx, time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), h.Add(time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	want := []model.UsageWeek{
		{Repo: "fedora-41", Arch: "x86_64", Week: "2026-W48", WeekStart: "2026-11-23", Buckets: [4]int64{0, 0, 0, 5}, Total: 5},
		{Repo: "fedora-41", Arch: "x86_64", Week: "2026-W49", WeekStart: "2026-11-30", Buckets: [4]int64{0, 4, 0, 0}, Total: 4},
	}
	if len(u.Countme) != 2 || u.Countme[0] != want[0] || u.Countme[1] != want[1] {
		t.Errorf("countme %+v, want %+v", u.Countme, want)
	}
	if len(u.Hourly) != 2 || u.Hourly[0].Region != "" || u.Hourly[1] != (model.UsageHour{Hour: h, Region: "eu", Requests: 3, Bytes: 30}) {
		t.Errorf("hourly %+v", u.Hourly)
	}
	// A window inside W49 still has W49; the hour before it starts is out.
	u, err = d.Usage(ctx, h, h.Add(time.Hour), "fedora-41")
	if err != nil || len(u.Countme) != 1 || u.Countme[0].Week != "2026-W49" || len(u.Hourly) != 1 {
		t.Errorf("narrow window: %+v %v", u, err)
	}
	if u, err := d.Usage(ctx, h, h.Add(time.Hour), "other"); err != nil || len(u.Countme) != 0 {
		t.Errorf("other repository: %+v %v", u, err)
	}
	// Hours from later than the weeks: the hour before h is left out, and said so.
	u, err = d.UsageSince(ctx, time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), h, h.Add(time.Hour), "")
	if err != nil || len(u.Countme) != 2 || len(u.Hourly) != 1 || !u.HourlyFrom.Equal(h) {
		t.Errorf("hours since h: %+v %v", u, err)
	}
}
