package server

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/server/selection"
)

// Freshness lag (issue 15): how long each repository's repomd.xml took from first seen at
// the origin to served verified by each region. The publications are read with the
// Activity's other slow figures, in its background round: no request waits on them.

// PublicationsPerRepo is how many of a repository's last repomd.xml versions the dashboard
// and the API summarise.
const PublicationsPerRepo = 50

// PublicationsSource is what an ActivitySource also offers when it records publications
// (*db.DB does); they are read in the same background round.
type PublicationsSource interface {
	Publications(ctx context.Context, perRepo int) ([]model.Publication, error)
}

var _ PublicationsSource = (*db.DB)(nil)

// readPublications reads the publications grouped by repository (each oldest first, as
// db.Publications returns them).
func readPublications(ctx context.Context, src PublicationsSource) (map[int64][]model.Publication, error) {
	pubs, err := src.Publications(ctx, PublicationsPerRepo)
	if err != nil {
		return nil, err
	}
	out := map[int64][]model.Publication{}
	for _, p := range pubs {
		out[p.RepositoryID] = append(out[p.RepositoryID], p)
	}
	return out, nil
}

// FreshnessView is a repository's freshness lag in one region.
type FreshnessView struct {
	// LastLagSeconds is the current repomd.xml's lag in this region; nil while the region
	// does not serve it yet (NotYet) or when its publication is not read (yet).
	LastLagSeconds *float64 `json:"last_lag_seconds"`
	// NotYet: the region does not serve the current repomd.xml (yet).
	NotYet bool `json:"not_yet"`
	// The lags of the publications of the last PublicationsPerRepo versions (nil: none).
	MedianLagSeconds *float64 `json:"median_lag_seconds"`
	MinLagSeconds    *float64 `json:"min_lag_seconds"`
	MaxLagSeconds    *float64 `json:"max_lag_seconds"`
	// Publications is how many of those versions the region served verified.
	Publications int `json:"publications"`
	// Samples are those publications, oldest first (the page's plot and table).
	Samples []LagSample `json:"-"`
	Plot    *LagPlot    `json:"-"`
}

// LagSample is one publication in a region.
type LagSample struct {
	Timestamp int64 // repomd.xml's revision timestamp
	FirstSeen time.Time
	Lag       time.Duration
}

// freshnessOf is region regionID's freshness lag among the publications of one repository
// (oldest first); cur is the repository's current version (nil before the first) and
// servesCurrent whether the region serves it now, as the snapshot judges.
func freshnessOf(pubs []model.Publication, regionID int64, cur *selection.Version, servesCurrent bool) FreshnessView {
	var v FreshnessView
	var lags []time.Duration
	last := -1
	for _, p := range pubs {
		if p.RegionID != regionID || p.VerifiedAt == nil {
			continue
		}
		lag := p.Lag()
		if lag < 0 {
			// A version published again later (first_seen moved on): the region served it
			// before, and its publication then says nothing about this time.
			continue
		}
		if cur != nil && p.Timestamp == cur.Timestamp && p.FirstSeen.Equal(cur.FirstSeen) {
			last = len(v.Samples)
		}
		v.Samples = append(v.Samples, LagSample{Timestamp: p.Timestamp, FirstSeen: p.FirstSeen, Lag: lag})
		lags = append(lags, lag)
	}
	v.Publications = len(v.Samples)
	switch {
	case cur == nil:
	case !servesCurrent:
		v.NotYet = true
	case last >= 0:
		v.LastLagSeconds = seconds(v.Samples[last].Lag)
	}
	if len(lags) > 0 {
		slices.Sort(lags)
		v.MinLagSeconds, v.MaxLagSeconds = seconds(lags[0]), seconds(lags[len(lags)-1])
		v.MedianLagSeconds = seconds(median(lags))
		v.Plot = lagPlot(v.Samples, lags[len(lags)-1])
	}
	return v
}

// median of sorted, non-empty d.
func median(d []time.Duration) time.Duration {
	n := len(d)
	if n%2 == 1 {
		return d[n/2]
	}
	return (d[n/2-1] + d[n/2]) / 2
}

func seconds(d time.Duration) *float64 {
	s := d.Seconds()
	return &s
}

// LagPlot is a bar chart of a region's lags, drawn as inline SVG on the server: one bar
// per publication, oldest on the left, the highest bar the largest lag.
type LagPlot struct {
	Width, Height int
	Bars          []LagBar
}

// LagBar is one bar in SVG coordinates.
type LagBar struct {
	X, Y, W, H float64
}

const (
	plotWidth  = 200 // room for PublicationsPerRepo bars of 4 units
	plotHeight = 32
)

func lagPlot(samples []LagSample, maxLag time.Duration) *LagPlot {
	p := &LagPlot{Width: plotWidth, Height: plotHeight}
	slot := float64(plotWidth) / PublicationsPerRepo
	for i, s := range samples {
		h := float64(plotHeight)
		if maxLag > 0 {
			h = float64(plotHeight) * float64(s.Lag) / float64(maxLag)
		}
		h = max(h, 1) // a lag of 0 still shows as a publication
		p.Bars = append(p.Bars, LagBar{X: float64(i) * slot, Y: plotHeight - h, W: slot - 1, H: h})
	}
	return p
}

// lagText renders a lag in seconds for the pages: 840 ms, 2.5 s, 12 s, 3m05s.
func lagText(v any) string {
	var s float64
	switch x := v.(type) {
	case *float64:
		if x == nil {
			return "—"
		}
		s = *x
	case float64:
		s = x
	case time.Duration:
		s = x.Seconds()
	default:
		return "—"
	}
	switch {
	case s < 1:
		return strconv.Itoa(int(s*1000)) + " ms"
	case s < 10:
		return strconv.FormatFloat(s, 'f', 1, 64) + " s"
	case s < 100:
		return strconv.FormatFloat(s, 'f', 0, 64) + " s"
	case s < 3600:
		m := int(s) / 60
		return fmt.Sprintf("%dm%02ds", m, int(s)-60*m)
	}
	return fmt.Sprintf("%dh%02dm", int(s)/3600, int(s)%3600/60)
}

// lagSummary is a plot's text alternative: the lags' minimum, median and maximum.
func lagSummary(repo, region string, f *FreshnessView) string {
	return fmt.Sprintf("Freshness lag of %s in %s over its last %d publications: min %s, median %s, max %s",
		repo, region, f.Publications, lagText(f.MinLagSeconds), lagText(f.MedianLagSeconds), lagText(f.MaxLagSeconds))
}

// publications are the Activity's last read of them (nil without an Activity).
func (s *Server) publications() map[int64][]model.Publication {
	if a := s.opt.Activity; a != nil {
		return a.View().Publications
	}
	return nil
}
