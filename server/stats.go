package server

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/regionmirror/regionmirror/internal/model"
)

// The stats API: usage figures (countme weeks, redirects per hour) of a window, from what
// the Activity's background round last read; `regionmirror stats --json` prints the same
// model.UsageStats from the database.

const (
	// statsMaxWindow bounds a window: what the server holds (UsageWeeks) and a little more.
	statsMaxWindow   = 2*366*24*time.Hour + 14*24*time.Hour
	maxStatsValueLen = 64
)

// errNoUsage is the stats API's answer before the first background read of the figures.
var errNoUsage = &Error{Status: http.StatusServiceUnavailable, Msg: "starting up, usage figures not read from the database yet"}

// statsWindow reads the stats API's parameters: from and to as RFC 3339 or YYYY-MM-DD
// (UTC midnight), defaulting to model.UsageWindow of model.DefaultUsageWeeks, as
// `regionmirror stats` has them; repo
// keeps one repository. It refuses from >= to and windows over statsMaxWindow.
func statsWindow(get func(string) string, now time.Time) (from, to time.Time, repo string, err error) {
	from, to = model.UsageWindow(now, model.DefaultUsageWeeks)
	if from, err = statsTime(get, "from", from); err != nil {
		return
	}
	if to, err = statsTime(get, "to", to); err != nil {
		return
	}
	if repo = get("repo"); len(repo) > maxValueLen {
		return from, to, "", badRequest("parameter repo: longer than %d bytes", maxValueLen)
	}
	if !from.Before(to) {
		return from, to, "", badRequest("from must be before to")
	}
	if to.Sub(from) > statsMaxWindow {
		return from, to, "", badRequest("window longer than two years: the server holds %d weeks", UsageWeeks)
	}
	return from, to, repo, nil
}

// statsTime parses parameter name, def when absent.
func statsTime(get func(string) string, name string, def time.Time) (time.Time, error) {
	v := get(name)
	if v == "" {
		return def, nil
	}
	if len(v) <= maxStatsValueLen {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			return t.UTC(), nil
		}
		if t, err := time.Parse(time.DateOnly, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, badRequest("parameter %s: not a time; give RFC 3339 (2026-12-02T15:00:00Z) or a date (2026-12-02)", name)
}

// statsAnswer is the window's figures out of held; a window starting before held does is
// clipped there, and From says so.
func statsAnswer(held *model.UsageStats, from, to time.Time, repo string) model.UsageStats {
	if from.Before(held.From) {
		from = held.From
	}
	if !from.Before(to) {
		// Wholly before what is held: an empty window at held's start.
		to = from
	}
	return held.Filter(from, to, repo)
}

// apiStats answers GET /api/v1/stats?from=&to=[&repo=].
func (s *Server) apiStats(c echo.Context) error {
	q := c.QueryParams()
	from, to, repo, err := statsWindow(q.Get, s.now())
	if err != nil {
		return err
	}
	var held *model.UsageStats
	if a := s.opt.Activity; a != nil {
		held = a.View().Usage
	}
	if held == nil {
		return errNoUsage
	}
	return s.writeJSON(c, http.StatusOK, statsAnswer(held, from, to, repo))
}
