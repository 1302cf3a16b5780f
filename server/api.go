package server

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"
)

// The JSON API: the dashboard's data, documented in README.md. Every answer comes from the
// snapshot and the Activity's last read; none waits on the database.

func (s *Server) apiRegions(c echo.Context) error {
	snap, err := s.snapshot()
	if err != nil {
		return err
	}
	return s.writeJSON(c, http.StatusOK, map[string]any{"regions": s.regionViews(snap)})
}

func (s *Server) apiRepositories(c echo.Context) error {
	snap, err := s.snapshot()
	if err != nil {
		return err
	}
	return s.writeJSON(c, http.StatusOK, map[string]any{"repositories": repositoryViews(snap, s.now(), s.publications())})
}

func (s *Server) apiStatus(c echo.Context) error {
	snap, err := s.snapshot()
	if err != nil {
		return err
	}
	return s.writeJSON(c, http.StatusOK, s.statusView(snap))
}

// apiLocate answers /api/v1/locate?path=P: which regions hold P verified, in the order
// this client would get them (location=, country= and protocol= apply as for downloads).
func (s *Server) apiLocate(c echo.Context) error {
	snap, err := s.snapshot()
	if err != nil {
		return err
	}
	raw := c.Request().URL.RawQuery
	q, err := ParseQuery(raw)
	if err != nil {
		return err
	}
	var path string
	for pair := range strings.SplitSeq(raw, "&") {
		if k, v, _ := strings.Cut(pair, "="); k == "path" {
			if path, err = url.QueryUnescape(v); err != nil {
				return badRequest("parameter path: bad percent-encoding")
			}
		}
	}
	path = strings.TrimPrefix(path, "/")
	if path == "" {
		return badRequest("path= must name a file of the origin tree")
	}
	if err := checkPath(path); err != nil {
		return err
	}
	f, _, err := lookupFile(snap, path, false)
	if err != nil {
		return err
	}
	req := s.request(c, snap, q)
	d := s.selectFile(snap, f, req)
	d.Notes = append(q.Notes, d.Notes...)
	info(c).tier = d.Tier
	return s.writeJSON(c, http.StatusOK, s.locateView(snap, f, d))
}
