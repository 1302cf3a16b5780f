package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/config"
	"github.com/regionmirror/regionmirror/internal/model"
)

// AdminSource is the database side of the purge API; *db.DB is one.
type AdminSource interface {
	GetFile(ctx context.Context, path string) (*model.File, error)
	GetRegion(ctx context.Context, name string) (*model.Region, error)
	MarkCopyDeleting(ctx context.Context, regionID, fileID int64) (bool, error)
	ForgetObject(ctx context.Context, path string, regionID int64) (int, error)
	StartRun(ctx context.Context, kind string, region *model.Region) (*model.Run, error)
	FinishRun(ctx context.Context, r *model.Run, runErr error) error
}

var _ AdminSource = (*db.DB)(nil)

// Admin answers the write API: DELETE /api/v1/regions/<R>/objects/<PATH> for CI
// pipelines, as `regionmirror purge PATH --region R`. Tokens are server.admin_tokens'
// hashes, compared in constant time (config.TokenAllowed); without any the API is off.
type Admin struct {
	src    AdminSource
	tokens []string
	log    *slog.Logger
	// Timeout bounds the database work of one call.
	timeout time.Duration
}

// NewAdmin returns the purge API over src with the token hashes (none: refused).
func NewAdmin(src AdminSource, tokenHashes []string, log *slog.Logger) *Admin {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Admin{src: src, tokens: tokenHashes, log: log, timeout: 30 * time.Second}
}

// PurgeResult is the purge API's answer.
type PurgeResult struct {
	Region string `json:"region"`
	Path   string `json:"path"`
	// State is "deleting" (an on-demand copy, removed database-first: servers stop
	// sending clients there now, the next gc deletes the object), "forgotten" (a pushed
	// copy's record: the next push writes it again) or "not held".
	State string `json:"state"`
}

const (
	purgeDeleting  = "deleting"
	purgeForgotten = "forgotten"
	purgeNotHeld   = "not held"
)

// purge is DELETE /api/v1/regions/<R>/objects/<PATH>. The checks come first, in this
// order, and nothing changes unless all pass: the API is configured, the bearer token is
// well-formed (401) and allowed (403), the path is a clean path of the origin inventory
// and the region exists (404). It never fetches anything a client names.
func (s *Server) purge(c echo.Context) error {
	h := c.Response().Header()
	h["Cache-Control"] = cacheNoStore
	a := s.opt.Admin
	if a == nil || len(a.tokens) == 0 {
		return &Error{Status: http.StatusForbidden, Msg: "the purge API is disabled: no server.admin_tokens are configured"}
	}
	token, ok := bearerToken(c.Request().Header.Values("Authorization"))
	if !ok {
		h.Set("WWW-Authenticate", `Bearer realm="regionmirror"`)
		return &Error{Status: http.StatusUnauthorized, Msg: "send Authorization: Bearer <token>"}
	}
	if !config.TokenAllowed(a.tokens, token) {
		return &Error{Status: http.StatusForbidden, Msg: "the token is not allowed"}
	}
	// /api/v1/regions/<R>/objects/<PATH>, escaped as sent.
	esc := strings.TrimPrefix(c.Request().URL.EscapedPath(), "/api/v1/regions/")
	rawName, rest, _ := strings.Cut(esc, "/")
	rest, found := strings.CutPrefix(rest, "objects/")
	name, err := url.PathUnescape(rawName)
	if err != nil || !found || name == "" {
		return badRequest("use DELETE /api/v1/regions/<region>/objects/<path>")
	}
	// Only a name a region could have reaches the database (a NUL or invalid UTF-8 would
	// make PostgreSQL refuse the query, which is the client's fault, not a 503).
	if model.ValidateName("region name", name) != nil {
		return &Error{Status: http.StatusNotFound, Msg: "no region named " + safeText(name, 128)}
	}
	p, err := downloadPath(rest)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), a.timeout)
	defer cancel()
	region, err := a.src.GetRegion(ctx, name)
	if errors.Is(err, db.ErrNotFound) {
		return &Error{Status: http.StatusNotFound, Msg: "no region named " + safeText(name, 128)}
	}
	if err != nil {
		return a.unavailable(err)
	}
	f, err := a.src.GetFile(ctx, p)
	if errors.Is(err, db.ErrNotFound) {
		return &Error{Status: http.StatusNotFound, Msg: "the origin has no file " + safeText(p, 512)}
	}
	if err != nil {
		return a.unavailable(err)
	}
	run, err := a.src.StartRun(ctx, model.RunPurge, region)
	if err != nil {
		return a.unavailable(err)
	}
	res := PurgeResult{Region: region.Name, Path: f.Path, State: purgeNotHeld}
	var n int
	if region.FillsOnDemand(f.Path) {
		// Database-first: marked deleting (and its fill job removed) now; gc deletes the
		// object after the servers' update delay, then forgets the record.
		var marked bool
		if marked, err = a.src.MarkCopyDeleting(ctx, region.ID, f.ID); err == nil && marked {
			n, res.State = 1, purgeDeleting
		}
	} else if n, err = a.src.ForgetObject(ctx, f.Path, region.ID); err == nil && n > 0 {
		res.State = purgeForgotten
	}
	run.Files = int64(n)
	run.Counts["copies"] = int64(n)
	if ferr := a.src.FinishRun(context.WithoutCancel(ctx), run, err); ferr != nil {
		a.log.Warn("purge API: recording the run failed", slog.Any("err", ferr))
	}
	if err != nil {
		return a.unavailable(err)
	}
	a.log.Info("purge API", slog.String("region", region.Name), slog.String("path", f.Path), slog.String("state", res.State),
		slog.String("client", ClientAddr(c.Request().RemoteAddr, c.Request().Header.Values("X-Forwarded-For"), s.opt.TrustedProxies).String()))
	return s.writeJSON(c, http.StatusAccepted, res)
}

func (a *Admin) unavailable(err error) error {
	a.log.Warn("purge API: database error", slog.Any("err", err))
	return &Error{Status: http.StatusServiceUnavailable, Msg: "the database is unavailable; nothing was purged, try again", Err: err}
}

// bearerToken reads the one Authorization header's bearer token (RFC 6750, section 2.1).
func bearerToken(values []string) (string, bool) {
	if len(values) != 1 {
		return "", false
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || len(token) > 1024 || strings.ContainsAny(token, " \t") {
		return "", false
	}
	return token, true
}

// purgeRoute registers the purge API: DELETE only, answers in JSON, never cached.
func (s *Server) purgeRoute() {
	s.echo.DELETE("/api/v1/regions/*", func(c echo.Context) error {
		ri := info(c)
		ri.endpoint, ri.format = "api-purge", formatJSON
		return s.purge(c)
	})
}
