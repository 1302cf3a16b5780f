package server

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/regionmirror/regionmirror/internal/human"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/plot"
	"github.com/regionmirror/regionmirror/server/selection"
	"github.com/regionmirror/regionmirror/templates"
)

// ContentTypeHTML is the pages' content type.
const ContentTypeHTML = "text/html; charset=utf-8"

// pages are the parsed HTML templates.
type pages struct {
	dashboard, mirrorlist *template.Template
}

var pageFuncs = template.FuncMap{
	"bytes": human.Bytes,
	"ago": func(now time.Time, t any) string {
		var at time.Time
		switch v := t.(type) {
		case time.Time:
			at = v
		case *time.Time:
			if v != nil {
				at = *v
			}
		}
		if at.IsZero() {
			return "never"
		}
		return human.Age(now.Sub(at)) + " ago"
	},
	"pct":   func(f float64) string { return strconv.FormatFloat(100*f, 'f', 1, 64) + "%" },
	"lower": strings.ToLower,
	// share is pct for an optional fraction: "—" when there is none yet.
	"share": func(f *float64) string {
		if f == nil {
			return "—"
		}
		return strconv.FormatFloat(100**f, 'f', 1, 64) + "%"
	},
	"seconds": func(f *float64) string {
		if f == nil {
			return "none queued"
		}
		return human.Age(time.Duration(*f*float64(time.Second))) + " ago"
	},
	"deref": func(p *int64) int64 {
		if p == nil {
			return 0
		}
		return *p
	},
	"onDemand": func(regions []RegionView) []RegionView {
		var out []RegionView
		for _, r := range regions {
			if r.Fill == model.FillOnDemand {
				out = append(out, r)
			}
		}
		return out
	},
	"regionClass": regionClass,
	"lag":         lagText,
	"lagSummary":  lagSummary,
	"coord":       func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
	"inc":         func(i int) int { return i + 1 },
	"rfc3339": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	},
	"hexShort": func(s string) string {
		if len(s) > 12 {
			return s[:12] + "…"
		}
		return s
	},
}

func mustParsePages() *pages {
	parse := func(name string) *template.Template {
		return template.Must(template.New(name).Funcs(pageFuncs).ParseFS(templates.FS, "base.html", name))
	}
	return &pages{dashboard: parse("dashboard.html"), mirrorlist: parse("mirrorlist.html")}
}

func (s *Server) render(c echo.Context, t *template.Template, data any) error {
	b := bufPool.Get().(*bytes.Buffer)
	b.Reset()
	defer bufPool.Put(b)
	if err := t.ExecuteTemplate(b, "base", data); err != nil {
		return fmt.Errorf("render %s: %w", t.Name(), err)
	}
	h := c.Response().Header()
	// Inline style only; nothing is loaded from anywhere.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	return blob(c, http.StatusOK, ContentTypeHTML, b.Bytes())
}

// mirrorEntry is one row of a file's mirror list page.
type mirrorEntry struct {
	Rank       int
	Name       string
	Country    string
	Continent  string
	URL        string
	Health     string
	VerifiedAt *time.Time
	Origin     bool
}

type mirrorlistPage struct {
	Title       string
	Now         time.Time
	Path        string
	Name        string
	Size        int64
	SHA256      string
	Tier        string
	DownloadURL string
	Meta4URL    string
	Entries     []mirrorEntry
	Excluded    []LocateExclude
	Notes       []string
}

// fileMirrorlist renders ?mirrorlist: the regions holding the file, in this client's order.
func (s *Server) fileMirrorlist(c echo.Context, snap *selection.Snapshot, f fileRef, d *selection.Decision, req selection.Request) error {
	loc := s.locateView(snap, f, d)
	self := s.prefix + "/" + model.EscapePath(f.path)
	p := mirrorlistPage{
		Title: "Mirrors of " + baseName(f.path), Now: req.Now, Path: f.path, Name: baseName(f.path), Size: f.size,
		SHA256: hex.EncodeToString(f.sha256), Tier: d.Tier, DownloadURL: self, Meta4URL: self + ".meta4",
		Excluded: loc.Excluded, Notes: loc.Notes,
	}
	for i, c := range d.Chosen {
		r := c.Region
		p.Entries = append(p.Entries, mirrorEntry{Rank: i + 1, Name: r.Name, Country: r.Country, Continent: r.Continent,
			URL: r.URL(f.path), Health: r.Health, VerifiedAt: loc.Regions[i].VerifiedAt})
	}
	if d.Origin != nil {
		p.Entries = append(p.Entries, mirrorEntry{Rank: len(p.Entries) + 1, Name: "origin", URL: d.Origin.URL(f.path), Origin: true})
	}
	return s.render(c, s.pages.mirrorlist, p)
}

type dashboardPage struct {
	Title  string
	Now    time.Time
	Prefix string
	*StatusView
	Map worldMap
	// The usage plots (see usageCharts), drawn; UsageRead is false before the Activity
	// read the figures.
	Countme, Redirects []template.HTML
	UsageRead          bool
}

// dashboard renders GET /: the freshness grid, the map, runs and redirect counts.
func (s *Server) dashboard(c echo.Context) error {
	snap, err := s.snapshot()
	if err != nil {
		return err
	}
	v := s.statusView(snap)
	p := dashboardPage{Title: "regionmirror status", Now: v.GeneratedAt,
		Prefix: s.prefix, StatusView: v, Map: newWorldMap(v.Regions)}
	if a := s.opt.Activity; a != nil {
		if u := a.View().Usage; u != nil {
			p.UsageRead = true
			countme, redirects := usageCharts(u, v.GeneratedAt)
			for _, c := range countme {
				p.Countme = append(p.Countme, plot.Figure(c))
			}
			for _, c := range redirects {
				p.Redirects = append(p.Redirects, plot.Figure(c))
			}
		}
	}
	return s.render(c, s.pages.dashboard, p)
}

// worldMap is an equirectangular map of the regions, drawn as inline SVG.
type worldMap struct {
	Width, Height int
	Land          []string // polygon point lists, in SVG coordinates
	Graticule     []string // path data
	Points        []mapPoint
}

type mapPoint struct {
	Name, Class string
	X, Y        float64
	LabelX      float64
	Anchor      string
}

const mapScale = 2 // SVG units per degree

func project(lat, lon float64) (float64, float64) {
	return (lon + 180) * mapScale, (90 - lat) * mapScale
}

// landOutlines are rough continents as longitude,latitude rings, written by hand: enough
// to recognise where a region is, small enough to inline in every page.
var landOutlines = [][]float64{
	// North America
	{-168, 66, -162, 70, -140, 70, -120, 72, -95, 72, -80, 73, -65, 60, -55, 52, -66, 45, -76, 35, -81, 25, -80, 31,
		-90, 30, -97, 26, -97, 18, -88, 15, -83, 9, -79, 8, -86, 13, -92, 15, -105, 20, -112, 30, -117, 33, -124, 40,
		-125, 49, -135, 58, -150, 60, -165, 60},
	// Greenland
	{-73, 78, -60, 82, -30, 83, -20, 75, -22, 70, -42, 60, -52, 64, -58, 75},
	// South America
	{-80, 9, -75, 11, -62, 11, -50, 0, -35, -5, -39, -15, -41, -22, -48, -26, -58, -35, -65, -41, -68, -53, -73, -52,
		-75, -40, -71, -30, -70, -18, -77, -12, -81, -5, -78, 2},
	// Eurasia
	{-10, 36, -9, 43, -2, 44, -5, 48, 2, 51, 8, 54, 8, 57, 5, 62, 15, 69, 28, 71, 40, 67, 60, 70, 80, 73, 100, 78,
		140, 73, 180, 68, 180, 65, 160, 60, 143, 52, 140, 43, 130, 42, 122, 40, 121, 30, 110, 20, 106, 10, 100, 13,
		103, 1, 98, 8, 97, 17, 92, 22, 80, 15, 77, 8, 72, 20, 66, 25, 57, 25, 59, 22, 52, 16, 44, 13, 35, 30, 35, 36,
		27, 40, 22, 37, 20, 40, 15, 38, 12, 44, 8, 44, 3, 43, -1, 37},
	// Africa
	{-17, 21, -10, 30, -6, 36, 10, 37, 20, 32, 32, 31, 35, 28, 43, 12, 51, 12, 40, -2, 40, -15, 33, -26, 20, -35,
		17, -29, 12, -17, 9, -1, 9, 4, -8, 4, -16, 12},
	// Great Britain and Ireland
	{-5, 50, 1, 51, 0, 54, -3, 58, -6, 57, -4, 54},
	{-10, 52, -6, 52, -6, 55, -10, 54},
	// Japan
	{130, 31, 135, 34, 141, 36, 142, 41, 140, 41, 135, 35},
	// Indonesia and New Guinea, roughly
	{95, 5, 106, -6, 115, -8, 120, -9, 140, -9, 150, -10, 141, -2, 120, 2, 110, 2},
	// Australia
	{114, -22, 122, -18, 131, -12, 137, -12, 142, -11, 146, -19, 153, -26, 150, -37, 141, -38, 132, -32, 115, -34},
	// New Zealand
	{172, -35, 178, -38, 174, -41, 167, -46, 172, -41},
}

func newWorldMap(regions []RegionView) worldMap {
	m := worldMap{Width: 360 * mapScale, Height: 180 * mapScale}
	for _, ring := range landOutlines {
		var b strings.Builder
		for i := 0; i+1 < len(ring); i += 2 {
			x, y := project(ring[i+1], ring[i])
			fmt.Fprintf(&b, "%.0f,%.0f ", x, y)
		}
		m.Land = append(m.Land, strings.TrimSpace(b.String()))
	}
	for lat := -60; lat <= 60; lat += 30 {
		_, y := project(float64(lat), 0)
		m.Graticule = append(m.Graticule, fmt.Sprintf("M0 %.0fH%d", y, m.Width))
	}
	for lon := -150; lon <= 150; lon += 30 {
		x, _ := project(0, float64(lon))
		m.Graticule = append(m.Graticule, fmt.Sprintf("M%.0f 0V%d", x, m.Height))
	}
	for _, r := range regions {
		if r.Latitude == nil || r.Longitude == nil {
			continue
		}
		x, y := project(*r.Latitude, *r.Longitude)
		p := mapPoint{Name: r.Name, X: x, Y: y, Class: regionClass(r), LabelX: x + 7, Anchor: "start"}
		if x > float64(m.Width)-120 {
			p.LabelX, p.Anchor = x-7, "end"
		}
		m.Points = append(m.Points, p)
	}
	return m
}

// regionClass is a region's state for colour; the pages always print it as text too.
func regionClass(r RegionView) string {
	switch {
	case !r.Enabled:
		return "disabled"
	case r.Health.State == "down":
		return "down"
	case r.Health.State == "up":
		return "up"
	}
	return "unknown"
}
