package server

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/plot"
)

// The dashboard's usage plots: what the Activity holds (model.UsageStats) shaped into
// plot.Charts. Pure functions of the figures and now; internal/plot draws them.

const (
	plotWeeks = 26     // countme plots: this ISO week and the 25 before
	plotHours = 7 * 24 // hourly plots: this hour and the 167 before
	plotDays  = 7      // the share plot: today (UTC) and the 6 days before
	// originSeries names the origin in the plots' legends (its region is "").
	originSeries = "origin"
)

// countmeCharts are (a): one stacked chart per repository (repo/arch) of its weekly
// countme requests over the last plotWeeks weeks, by bucket; weeks without data are 0.
// Repositories without a countme request in those weeks have no chart.
func countmeCharts(u *model.UsageStats, now time.Time) []plot.Chart {
	first := model.WeekStart(now).AddDate(0, 0, -7*(plotWeeks-1))
	labels := make([]string, plotWeeks)
	index := map[string]int{} // week_start -> label index
	for i := range plotWeeks {
		w := first.AddDate(0, 0, 7*i)
		labels[i] = model.ISOWeek(w)
		index[w.Format(time.DateOnly)] = i
	}
	type key struct{ repo, arch string }
	byRepo := map[key][]plot.Series{}
	for _, w := range u.Countme {
		i, ok := index[w.WeekStart]
		if !ok {
			continue
		}
		k := key{w.Repo, w.Arch}
		series := byRepo[k]
		if series == nil {
			series = make([]plot.Series, len(model.CountmeBuckets))
			for b, name := range model.CountmeBuckets {
				series[b] = plot.Series{Name: name, Values: make([]float64, plotWeeks)}
			}
			byRepo[k] = series
		}
		for b, n := range w.Buckets {
			series[b].Values[i] += float64(n)
		}
	}
	keys := make([]key, 0, len(byRepo))
	for k := range byRepo {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int { return cmp.Or(cmp.Compare(a.repo, b.repo), cmp.Compare(a.arch, b.arch)) })
	out := make([]plot.Chart, 0, len(keys))
	for i, k := range keys {
		out = append(out, plot.Chart{
			// The index keeps ids unique where names differ only in what plotID replaces.
			ID:     "countme-" + strconv.Itoa(i+1) + "-" + plotID(k.repo+"-"+k.arch),
			Title:  "dnf countme requests of " + k.repo + "/" + k.arch + " per ISO week, by the machine's age (last 26 weeks)",
			Labels: labels, Series: byRepo[k], Unit: plot.Count, Kind: plot.Stacked, LabelName: "Week",
		})
	}
	return out
}

// hourlyCharts are (b) and (c): requests and bytes redirected per hour over the last
// plotHours hours (this hour last, counted so far), one line per region and one for the
// origin (last); hours without redirects are 0. The x axis is marked at midnights (UTC).
func hourlyCharts(u *model.UsageStats, now time.Time) (requests, bytes plot.Chart) {
	first := now.UTC().Truncate(time.Hour).Add(-(plotHours - 1) * time.Hour)
	labels := make([]string, plotHours)
	var ticks []int
	for i := range plotHours {
		h := first.Add(time.Duration(i) * time.Hour)
		labels[i] = h.Format("01-02 15:04")
		if h.Hour() == 0 {
			ticks = append(ticks, i)
		}
	}
	reqs, byts := map[string][]float64{originSeries: make([]float64, plotHours)}, map[string][]float64{originSeries: make([]float64, plotHours)}
	for _, h := range u.Hourly {
		i := int(h.Hour.Sub(first) / time.Hour)
		if h.Hour.Before(first) || i >= plotHours {
			continue
		}
		name := cmp.Or(h.Region, originSeries)
		if reqs[name] == nil {
			reqs[name], byts[name] = make([]float64, plotHours), make([]float64, plotHours)
		}
		reqs[name][i] += float64(h.Requests)
		byts[name][i] += float64(h.Bytes)
	}
	requests = plot.Chart{ID: "redirects-hourly", Title: "Requests redirected per hour, by region (last 7 days, UTC)",
		Labels: labels, Series: regionSeries(reqs), Unit: plot.Count, Kind: plot.Lines, LabelName: "Hour (UTC)", Ticks: ticks}
	bytes = plot.Chart{ID: "bytes-hourly", Title: "Bytes redirected per hour, by region (last 7 days, UTC)",
		Labels: labels, Series: regionSeries(byts), Unit: plot.Bytes, Kind: plot.Lines, LabelName: "Hour (UTC)", Ticks: ticks}
	return requests, bytes
}

// regionSeries orders series by region name, the origin last.
func regionSeries(values map[string][]float64) []plot.Series {
	out := make([]plot.Series, 0, len(values))
	for name, v := range values {
		if name != originSeries {
			out = append(out, plot.Series{Name: name, Values: v})
		}
	}
	slices.SortFunc(out, func(a, b plot.Series) int { return cmp.Compare(a.Name, b.Name) })
	return append(out, plot.Series{Name: originSeries, Values: values[originSeries]})
}

// shareChart is (d): per day (UTC) over the last plotDays days, the share of the bytes
// redirected that the regions served and the share the origin did, in percent; NaN on a
// day nothing was redirected. Per day rather than per hour: an hour of a few requests
// swings between 0 and 100%.
func shareChart(u *model.UsageStats, now time.Time) plot.Chart {
	today := now.UTC().Truncate(24 * time.Hour)
	first := today.AddDate(0, 0, -(plotDays - 1))
	labels := make([]string, plotDays)
	regions, origin := make([]float64, plotDays), make([]float64, plotDays)
	for i := range plotDays {
		labels[i] = first.AddDate(0, 0, i).Format(time.DateOnly)
	}
	for _, h := range u.Hourly {
		i := int(h.Hour.Sub(first) / (24 * time.Hour))
		if h.Hour.Before(first) || i >= plotDays {
			continue
		}
		if h.Region == "" {
			origin[i] += float64(h.Bytes)
		} else {
			regions[i] += float64(h.Bytes)
		}
	}
	for i := range plotDays {
		total := regions[i] + origin[i]
		if total == 0 {
			regions[i], origin[i] = math.NaN(), math.NaN()
			continue
		}
		regions[i], origin[i] = 100*regions[i]/total, 100*origin[i]/total
	}
	return plot.Chart{ID: "share-daily", Title: "Share of the bytes redirected served by the regions and by the origin, per day (last 7 days, UTC)",
		Labels: labels, Series: []plot.Series{{Name: "regions", Values: regions}, {Name: originSeries, Values: origin}},
		Unit: plot.Percent, Kind: plot.Lines, LabelName: "Day (UTC)"}
}

// usageCharts are the dashboard's usage plots: the countme charts (nil when no countme
// request in the last plotWeeks weeks) and the three redirect charts (nil when nothing was
// redirected in the last plotHours hours).
func usageCharts(u *model.UsageStats, now time.Time) (countme, redirects []plot.Chart) {
	if u == nil {
		return nil, nil
	}
	countme = countmeCharts(u, now)
	first := now.UTC().Truncate(time.Hour).Add(-(plotHours - 1) * time.Hour)
	if slices.ContainsFunc(u.Hourly, func(h model.UsageHour) bool { return !h.Hour.Before(first) && (h.Requests != 0 || h.Bytes != 0) }) {
		r, b := hourlyCharts(u, now)
		redirects = []plot.Chart{r, b, shareChart(u, now)}
	}
	return countme, redirects
}

// plotID makes s usable in element ids: letters, digits, "-" and "_" kept, others "_".
func plotID(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}
