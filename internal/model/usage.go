package model

import (
	"fmt"
	"time"
)

// CountmeBuckets are dnf's countme values: the age of the machine that sent it, by the
// first week it counted itself.
var CountmeBuckets = [4]string{"first week", "up to a month", "up to six months", "older"}

// CountmeBucket returns the bucket (1..4) of a countme= query value, or 0 for anything
// else (dnf sends only "1".."4"; other values are ignored, the request is still answered).
func CountmeBucket(v string) int {
	if len(v) == 1 && v[0] >= '1' && v[0] <= '4' {
		return int(v[0] - '0')
	}
	return 0
}

// WeekStart returns the Monday 00:00 UTC that starts t's ISO week.
func WeekStart(t time.Time) time.Time {
	t = t.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	// Weekday: Sunday 0 .. Saturday 6; ISO weeks start on Monday.
	back := (int(day.Weekday()) + 6) % 7
	return day.AddDate(0, 0, -back)
}

// ISOWeek returns t's ISO week as "2026-W49".
func ISOWeek(t time.Time) string {
	y, w := t.UTC().ISOWeek()
	return fmt.Sprintf("%04d-W%02d", y, w)
}

// DefaultUsageWeeks is the default window of the usage figures (the stats API's and
// `regionmirror stats`'s): this ISO week and the 25 before it.
const DefaultUsageWeeks = 26

// UsageWindow is [from, to) of the last weeks ISO weeks at now, this one included: from
// the Monday weeks-1 weeks before this week's, to the end of now's hour (so the hour
// running is in it).
func UsageWindow(now time.Time, weeks int) (from, to time.Time) {
	return WeekStart(now).AddDate(0, 0, -7*(weeks-1)), now.UTC().Truncate(time.Hour).Add(time.Hour)
}

// CountmeKey is what one countme request is counted under.
type CountmeKey struct {
	Repo, Arch string
	Week       time.Time // WeekStart of the request's time
	Bucket     int       // 1..4
}

// CountmeCount is a number of countme requests under one key.
type CountmeCount struct {
	CountmeKey
	Hits int64
}

// HourKey is what redirects are counted under per hour.
type HourKey struct {
	Hour   time.Time // UTC, whole hour
	Region string    // "" for the origin
}

// HourCount is what was redirected to one target in one hour.
type HourCount struct {
	HourKey
	Requests, Bytes int64
}

// UsageDelta is what one server adds to the database in one background round, in one
// transaction: the totals per target, the hourly figures and the countme requests.
type UsageDelta struct {
	Totals  []RedirectCount
	Hours   []HourCount
	Countme []CountmeCount
}

// Empty reports whether the delta adds nothing.
func (d UsageDelta) Empty() bool {
	return len(d.Totals) == 0 && len(d.Hours) == 0 && len(d.Countme) == 0
}

// UsageWeek is one repository's countme requests in one ISO week: the JSON of the stats
// API and of `regionmirror stats --json`.
type UsageWeek struct {
	Repo      string `json:"repo"`
	Arch      string `json:"arch"`
	Week      string `json:"week"`       // ISO week, "2026-W49"
	WeekStart string `json:"week_start"` // its Monday, "2026-11-30"
	// Buckets are the requests with countme=1..4, in that order.
	Buckets [4]int64 `json:"buckets"`
	Total   int64    `json:"total"`
}

// UsageHour is what was redirected to one target in one hour.
type UsageHour struct {
	Hour     time.Time `json:"hour"`
	Region   string    `json:"region"` // "" for the origin
	Requests int64     `json:"requests"`
	Bytes    int64     `json:"bytes"`
}

// UsageStats are the usage figures of a window: countme weeks overlapping it, ordered by
// week, repository, arch; hours in it, ordered by hour and region.
type UsageStats struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// HourlyFrom is where the hourly figures start: From, or later where fewer hours are
	// held than weeks (the server keeps 31 days of hours, two years of weeks).
	HourlyFrom time.Time   `json:"hourly_from"`
	Countme    []UsageWeek `json:"countme"`
	Hourly     []UsageHour `json:"hourly"`
}

// UsageWeekOf builds the row of one (repo, arch, week) from its four bucket counts.
func UsageWeekOf(repo, arch string, week time.Time, buckets [4]int64) UsageWeek {
	w := UsageWeek{Repo: repo, Arch: arch, Week: ISOWeek(week), WeekStart: week.UTC().Format(time.DateOnly), Buckets: buckets}
	for _, n := range buckets {
		w.Total += n
	}
	return w
}

// Filter returns the figures of s inside [from, to): countme weeks that start before to
// and end after from, hours in the window; repo "" keeps every repository.
func (s UsageStats) Filter(from, to time.Time, repo string) UsageStats {
	out := UsageStats{From: from, To: to, HourlyFrom: from, Countme: []UsageWeek{}, Hourly: []UsageHour{}}
	if s.HourlyFrom.After(from) {
		out.HourlyFrom = s.HourlyFrom
	}
	if out.HourlyFrom.After(to) { // a window wholly before the held hours: none, from to
		out.HourlyFrom = to
	}
	for _, w := range s.Countme {
		start, err := time.Parse(time.DateOnly, w.WeekStart)
		if err != nil || !start.Before(to) || !start.AddDate(0, 0, 7).After(from) || (repo != "" && w.Repo != repo) {
			continue
		}
		out.Countme = append(out.Countme, w)
	}
	for _, h := range s.Hourly {
		if !h.Hour.Before(out.HourlyFrom) && h.Hour.Before(to) {
			out.Hourly = append(out.Hourly, h)
		}
	}
	return out
}
