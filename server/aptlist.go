package server

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/server/selection"
)

// cacheAptList: apt fetches the list again on every run, and the order depends on who
// asks, so shared caches keep nothing and a client's own cache only briefly.
var cacheAptList = []string{"private, max-age=30"}

// maxAptName bounds the repository and region names of an /apt/ path: real ones are short.
const maxAptName = 128

// ParseAptListPath splits what follows /apt/ into the repository and, for the per-region
// form <repo>/<region>.list, the region ("" for <repo>.list). ok is false for anything
// else: apt drops query strings from mirror-list URLs, so the path alone tells lists apart.
func ParseAptListPath(rest string) (repo, region string, ok bool) {
	name, found := strings.CutSuffix(rest, ".list")
	if !found || len(name) > 2*maxAptName+1 {
		return "", "", false
	}
	repo, region, _ = strings.Cut(name, "/")
	if repo == "" || len(repo) > maxAptName || len(region) > maxAptName || strings.Contains(region, "/") ||
		(region == "" && strings.Contains(name, "/")) {
		return "", "", false
	}
	for _, s := range []string{repo, region} {
		for i := 0; i < len(s); i++ {
			if s[i] <= 0x20 || s[i] >= 0x7f {
				return "", "", false
			}
		}
	}
	return repo, region, true
}

// aptList answers apt's mirror method: /apt/<repo>.list[?location=L] and the per-region
// /apt/<repo>/<region>.list, which puts that region first. Only regions serving the
// current revision or an alternate still offered are listed (SelectRepository), the
// origin last.
func (s *Server) aptList(c echo.Context) error {
	snap, err := s.snapshot()
	if err != nil {
		return err
	}
	name, regionName, ok := ParseAptListPath(strings.TrimPrefix(c.Request().URL.Path, "/apt/"))
	if !ok {
		return &Error{Status: http.StatusNotFound, Msg: "not an APT mirror list: /apt/<repo>.list or /apt/<repo>/<region>.list"}
	}
	q, err := ParseQuery(c.Request().URL.RawQuery)
	if err != nil {
		return err
	}
	q.Repo, q.Arch = name, model.AptArch
	repo := snap.Repository(name, model.AptArch)
	if repo == nil || !repo.IsApt() {
		return &Error{Status: http.StatusNotFound, Msg: "no APT repository named " + safeText(name, maxAptName)}
	}
	if regionName != "" {
		r := snap.Region(regionName)
		if r == nil {
			return &Error{Status: http.StatusNotFound, Msg: "no region named " + safeText(regionName, maxAptName)}
		}
		q.Location = r.Name // the region named is first, whatever location= says
	}
	d, err := s.decide(c, snap, repo, q, s.request(c, snap, q))
	if err != nil {
		return err
	}
	b := bufPool.Get().(*bytes.Buffer)
	b.Reset()
	defer bufPool.Put(b)
	WriteAptList(b, repo, d)
	return blob(c, http.StatusOK, ContentTypeMirrorlist, b.Bytes())
}

// WriteAptList renders apt's mirror-list format (PROTOCOLS.md 9): one base URL per line,
// the archive root in each region, best first, each with a TAB and priority:N (1, 2, ...:
// apt tries the lowest first and shuffles equal ones, so every entry gets its own). apt
// appends dists/... and pool/... to the base. No comment lines: apt's parser has none.
func WriteAptList(b *bytes.Buffer, repo *selection.Repository, d *selection.Decision) {
	dir := listDir(repo)
	for i, r := range d.Regions() {
		writeListBase(b, r, dir)
		b.WriteString("\tpriority:")
		b.WriteString(strconv.Itoa(i + 1))
		b.WriteString("\n")
	}
}
