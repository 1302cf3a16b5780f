package server

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/regionmirror/regionmirror/server/selection"
)

// The JSON API: the dashboard's data, documented in README.md. Every answer comes from the
// snapshot and the Activity's last read; none waits on the database.

func (s *Server) apiSnapshot(c echo.Context, endpoint string) (*selection.Snapshot, error) {
	info(c).endpoint = endpoint
	c.Response().Header().Set("Cache-Control", "no-store")
	snap := s.opt.Store.Snapshot()
	if snap == nil {
		return nil, errNoSnapshot
	}
	return snap, nil
}

func (s *Server) apiRegions(c echo.Context) error {
	snap, err := s.apiSnapshot(c, "api-regions")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"regions": s.regionViews(snap)})
}

func (s *Server) apiRepositories(c echo.Context) error {
	snap, err := s.apiSnapshot(c, "api-repositories")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"repositories": repositoryViews(snap, s.now())})
}

func (s *Server) apiStatus(c echo.Context) error {
	snap, err := s.apiSnapshot(c, "api-status")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.statusView(snap))
}

// apiLocate answers /api/v1/locate?path=P: which regions hold P verified, in the order
// this client would get them (location=, country= and protocol= apply as for downloads).
func (s *Server) apiLocate(c echo.Context) error {
	snap, err := s.apiSnapshot(c, "api-locate")
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
	if snap.Files == nil {
		return &docError{status: http.StatusServiceUnavailable, lines: []string{"# error: starting up, the file inventory is not loaded yet"}}
	}
	idx, ok := snap.Files.Lookup(path)
	if !ok {
		return &docError{status: http.StatusNotFound, lines: []string{"# error: the origin has no file " + safeText(path, 512)}}
	}
	t := snap.Files.Table()
	f := fileRef{path: path, index: idx, size: t.Size(idx), sha256: t.SHA256(idx)}
	req := s.request(c, snap, q)
	d := selection.SelectFileAt(snap, f.path, f.index, req)
	d.Notes = append(q.Notes, d.Notes...)
	info(c).tier = d.Tier
	return c.JSON(http.StatusOK, s.locateView(snap, f, d))
}
