package server

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/plot"
)

var plotNow = time.Date(2026, 12, 2, 15, 30, 0, 0, time.UTC) // Wednesday of 2026-W49

func TestCountmeCharts(t *testing.T) {
	week := model.WeekStart(plotNow)
	u := &model.UsageStats{Countme: []model.UsageWeek{
		model.UsageWeekOf("demo-1", "x86_64", week.AddDate(0, 0, -7*26), [4]int64{9, 9, 9, 9}), // 27 weeks back: out
		model.UsageWeekOf("demo-1", "x86_64", week.AddDate(0, 0, -7*25), [4]int64{1, 2, 3, 4}), // the first week shown
		model.UsageWeekOf("b", "aarch64", week, [4]int64{0, 0, 0, 7}),
		model.UsageWeekOf("demo-1", "x86_64", week, [4]int64{5, 0, 0, 1}),
		model.UsageWeekOf("b", "x86_64", week.AddDate(0, 0, -7), [4]int64{1, 0, 0, 0}),
	}}
	charts := countmeCharts(u, plotNow)
	var names []string
	for _, c := range charts {
		names = append(names, c.ID)
	}
	if strings.Join(names, " ") != "countme-1-b-aarch64 countme-2-b-x86_64 countme-3-demo-1-x86_64" {
		t.Fatalf("charts %v", names)
	}
	c := charts[2]
	if c.Kind != plot.Stacked || c.Unit != plot.Count || len(c.Labels) != 26 || c.Labels[0] != "2026-W24" || c.Labels[25] != "2026-W49" ||
		!strings.Contains(c.Title, "demo-1/x86_64") {
		t.Errorf("chart %+v", c)
	}
	if len(c.Series) != 4 || c.Series[0].Name != model.CountmeBuckets[0] || c.Series[3].Name != model.CountmeBuckets[3] {
		t.Fatalf("series %+v", c.Series)
	}
	for b, want := range [4][]float64{{1, 5}, {2, 0}, {3, 0}, {4, 1}} {
		v := c.Series[b].Values
		if len(v) != 26 || v[0] != want[0] || v[25] != want[1] || v[1] != 0 || v[24] != 0 {
			t.Errorf("bucket %d: %v", b+1, v)
		}
	}
	if got := countmeCharts(&model.UsageStats{}, plotNow); len(got) != 0 {
		t.Errorf("no data: %v", got)
	}
}

func TestHourlyCharts(t *testing.T) {
	hour := plotNow.Truncate(time.Hour) // 15:00, the last label
	first := hour.Add(-167 * time.Hour)
	u := &model.UsageStats{Hourly: []model.UsageHour{
		{Hour: first.Add(-time.Hour), Region: "us-east-1", Requests: 99, Bytes: 99}, // out
		{Hour: first, Region: "us-east-1", Requests: 2, Bytes: 200},
		{Hour: first, Region: "", Requests: 1, Bytes: 50},
		{Hour: hour, Region: "eu-central-1", Requests: 3, Bytes: 30},
	}}
	reqs, byts := hourlyCharts(u, plotNow)
	if len(reqs.Labels) != 168 || reqs.Labels[167] != "12-02 15:00" || reqs.Labels[0] != "11-25 16:00" || reqs.Kind != plot.Lines || reqs.Unit != plot.Count || byts.Unit != plot.Bytes {
		t.Fatalf("labels %v..%v kind %v unit %v/%v", reqs.Labels[0], reqs.Labels[167], reqs.Kind, reqs.Unit, byts.Unit)
	}
	// Ticks at midnights: 11-26 00:00 is label 8.
	if len(reqs.Ticks) != 7 || reqs.Ticks[0] != 8 || reqs.Labels[reqs.Ticks[6]] != "12-02 00:00" {
		t.Errorf("ticks %v", reqs.Ticks)
	}
	for _, tt := range []struct {
		c      plot.Chart
		series []string
		values map[string][2]float64 // first and last value
	}{
		{reqs, []string{"eu-central-1", "us-east-1", "origin"}, map[string][2]float64{"eu-central-1": {0, 3}, "us-east-1": {2, 0}, "origin": {1, 0}}},
		{byts, []string{"eu-central-1", "us-east-1", "origin"}, map[string][2]float64{"eu-central-1": {0, 30}, "us-east-1": {200, 0}, "origin": {50, 0}}},
	} {
		var names []string
		for _, s := range tt.c.Series {
			names = append(names, s.Name)
			if want := tt.values[s.Name]; len(s.Values) != 168 || s.Values[0] != want[0] || s.Values[167] != want[1] || s.Values[80] != 0 {
				t.Errorf("%s %s: first %v last %v", tt.c.ID, s.Name, s.Values[0], s.Values[167])
			}
		}
		if strings.Join(names, " ") != strings.Join(tt.series, " ") {
			t.Errorf("%s series %v, want %v", tt.c.ID, names, tt.series)
		}
	}
	// The origin has its line even without a redirect to it.
	reqs, _ = hourlyCharts(&model.UsageStats{Hourly: []model.UsageHour{{Hour: hour, Region: "r", Requests: 1}}}, plotNow)
	if len(reqs.Series) != 2 || reqs.Series[1].Name != "origin" || reqs.Series[1].Values[167] != 0 {
		t.Errorf("series %+v", reqs.Series)
	}
}

func TestShareChart(t *testing.T) {
	today := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	u := &model.UsageStats{Hourly: []model.UsageHour{
		{Hour: today.AddDate(0, 0, -7), Region: "r", Bytes: 1000}, // 8 days ago: out
		{Hour: today.AddDate(0, 0, -6).Add(3 * time.Hour), Region: "r", Bytes: 300},
		{Hour: today.AddDate(0, 0, -6).Add(23 * time.Hour), Region: "s", Bytes: 450},
		{Hour: today.AddDate(0, 0, -6).Add(5 * time.Hour), Region: "", Bytes: 250},
		{Hour: today.Add(15 * time.Hour), Region: "", Bytes: 10},
		{Hour: today.AddDate(0, 0, -2), Region: "", Requests: 1, Bytes: 0}, // a redirect of nothing: no share
	}}
	c := shareChart(u, plotNow)
	if c.Unit != plot.Percent || c.Kind != plot.Lines || len(c.Labels) != 7 || c.Labels[0] != "2026-11-26" || c.Labels[6] != "2026-12-02" {
		t.Fatalf("chart %+v", c)
	}
	if len(c.Series) != 2 || c.Series[0].Name != "regions" || c.Series[1].Name != "origin" {
		t.Fatalf("series %+v", c.Series)
	}
	regions, origin := c.Series[0].Values, c.Series[1].Values
	if regions[0] != 75 || origin[0] != 25 || regions[6] != 0 || origin[6] != 100 {
		t.Errorf("shares: regions %v origin %v", regions, origin)
	}
	for i := 1; i < 6; i++ {
		if !math.IsNaN(regions[i]) || !math.IsNaN(origin[i]) {
			t.Errorf("day %d without bytes: %v %v, want NaN", i, regions[i], origin[i])
		}
	}
}

func TestUsageCharts(t *testing.T) {
	if c, r := usageCharts(nil, plotNow); c != nil || r != nil {
		t.Error("charts before the first read")
	}
	old := &model.UsageStats{Hourly: []model.UsageHour{{Hour: plotNow.Add(-30 * 24 * time.Hour), Region: "r", Requests: 5, Bytes: 5}}}
	if c, r := usageCharts(old, plotNow); len(c) != 0 || len(r) != 0 {
		t.Errorf("charts of figures older than the plots: %d %d", len(c), len(r))
	}
	u := &model.UsageStats{Hourly: []model.UsageHour{{Hour: plotNow.Truncate(time.Hour), Region: "r", Requests: 5, Bytes: 5}},
		Countme: []model.UsageWeek{model.UsageWeekOf("a", "x", model.WeekStart(plotNow), [4]int64{1})}}
	c, r := usageCharts(u, plotNow)
	if len(c) != 1 || len(r) != 3 || r[0].ID == r[1].ID || r[1].ID == r[2].ID {
		t.Errorf("charts %d %d", len(c), len(r))
	}
}
