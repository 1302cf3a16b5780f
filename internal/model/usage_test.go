package model

import (
	"testing"
	"time"
)

func TestCountmeBucket(t *testing.T) {
	for v, want := range map[string]int{"1": 1, "2": 2, "3": 3, "4": 4, "0": 0, "5": 0, "": 0, "11": 0, "x": 0, "-1": 0, "１": 0} {
		if got := CountmeBucket(v); got != want {
			t.Errorf("CountmeBucket(%q) = %d, want %d", v, got, want)
		}
	}
}

func TestWeekStartAndISOWeek(t *testing.T) {
	for _, c := range []struct {
		t          time.Time
		start, iso string
	}{
		{time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC), "2026-11-30", "2026-W49"},
		{time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), "2026-11-30", "2026-W49"},
		{time.Date(2026, 11, 29, 23, 59, 59, 0, time.UTC), "2026-11-23", "2026-W48"}, // Sunday
		{time.Date(2021, 1, 3, 12, 0, 0, 0, time.UTC), "2020-12-28", "2020-W53"},     // ISO year before
		{time.Date(2024, 12, 30, 12, 0, 0, 0, time.UTC), "2024-12-30", "2025-W01"},   // ISO year after
		// In UTC, whatever the zone it is given in: Monday 01:00 in Berlin is Sunday in UTC.
		{time.Date(2026, 11, 30, 0, 30, 0, 0, time.FixedZone("CET", 3600)), "2026-11-23", "2026-W48"},
	} {
		if got := WeekStart(c.t).Format(time.DateOnly); got != c.start {
			t.Errorf("WeekStart(%v) = %s, want %s", c.t, got, c.start)
		}
		if got := ISOWeek(c.t); got != c.iso {
			t.Errorf("ISOWeek(%v) = %s, want %s", c.t, got, c.iso)
		}
	}
}

func TestUsageFilterHourlyFrom(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC) }
	held := UsageStats{From: day(1), To: day(30), HourlyFrom: day(10),
		Hourly: []UsageHour{{Hour: day(9)}, {Hour: day(10)}, {Hour: day(20)}}}
	for _, c := range []struct {
		from, to, hourlyFrom time.Time
		hours                int
	}{
		{day(1), day(30), day(10), 2}, // the held hours start later than the window
		{day(15), day(30), day(15), 1},
		{day(2), day(5), day(5), 0}, // wholly before the held hours: never after to
	} {
		got := held.Filter(c.from, c.to, "")
		if !got.HourlyFrom.Equal(c.hourlyFrom) || len(got.Hourly) != c.hours {
			t.Errorf("Filter(%v, %v): hourly_from %v with %d hours, want %v with %d", c.from, c.to, got.HourlyFrom, len(got.Hourly), c.hourlyFrom, c.hours)
		}
	}
}
