package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/regionmirror/regionmirror/internal/geo"
	"github.com/regionmirror/regionmirror/internal/model"
)

// Locator finds where an address is; *geo.GeoIP is one.
type Locator interface {
	Lookup(netip.Addr) (geo.Location, bool)
}

// Options configure a Server.
type Options struct {
	Store          *Store
	Metrics        *Metrics
	GeoIP          Locator // nil without a GeoIP database
	TrustedProxies []netip.Prefix
	Log            *slog.Logger
	// AccessLog logs every request at info level; without it only errors are logged.
	AccessLog bool
	// Now is the clock (tests pin it); nil means time.Now.
	Now func() time.Time
	// DownloadPrefix is where files are downloaded (GET /pub/<path>); "" means /pub.
	DownloadPrefix string
	// Activity counts redirects and feeds the dashboard; nil counts nothing.
	Activity *Activity
}

// Server is the HTTP front end.
type Server struct {
	opt  Options
	echo *echo.Echo
	log  *slog.Logger
	now  func() time.Time
	// prefix is Options.DownloadPrefix without a trailing slash.
	prefix string
	pages  *pages
	// orders caches selection per client for redirects (see download_order.go).
	orders atomic.Pointer[orderCache]
	// answers caches rendered metalinks of one snapshot (see cache.go).
	answers atomic.Pointer[answerCache]
}

// reqInfo is what handlers tell the logging and metrics middleware about a request. It
// wraps echo's context: echo's own store (Set/Get) is a map and a lock per request, a
// visible share of a metalink's cost.
type reqInfo struct {
	echo.Context
	endpoint, tier string
	client         netip.Addr
}

var reqInfos = sync.Pool{New: func() any { return new(reqInfo) }}

// info returns the request's reqInfo; a context observe did not wrap (none in serve) gets
// one that nobody reads.
func info(c echo.Context) *reqInfo {
	if ri, ok := c.(*reqInfo); ok {
		return ri
	}
	return &reqInfo{Context: c}
}

// New builds the echo application.
func New(opt Options) *Server {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{opt: opt, log: opt.Log, now: opt.Now, prefix: strings.TrimRight(opt.DownloadPrefix, "/")}
	if s.now == nil {
		s.now = time.Now
	}
	if s.prefix == "" {
		s.prefix = "/pub"
	}
	s.pages = mustParsePages()
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Use(s.observe)
	e.GET("/metalink", s.metalink)
	e.GET("/mirrorlist", s.mirrorlist)
	e.GET(s.prefix+"/*", s.download)
	e.HEAD(s.prefix+"/*", s.download)
	e.GET("/", s.dashboard)
	e.GET("/api/v1/regions", s.apiRegions)
	e.GET("/api/v1/repositories", s.apiRepositories)
	e.GET("/api/v1/status", s.apiStatus)
	e.GET("/api/v1/locate", s.apiLocate)
	e.GET("/healthz", s.healthz)
	e.HEAD("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.HEAD("/readyz", s.readyz)
	if opt.Metrics != nil {
		h := promhttp.HandlerFor(opt.Metrics.Registry, promhttp.HandlerOpts{})
		e.GET("/metrics", func(c echo.Context) error {
			h.ServeHTTP(c.Response(), c.Request())
			return nil
		})
	}
	s.echo = e
	return s
}

// Handler returns the http.Handler (tests use it with httptest).
func (s *Server) Handler() http.Handler { return s.echo }

// HTTPServer returns the net/http server serve runs h in: timeouts against slow clients,
// bounded headers, errors through log.
func HTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10, // a metalink request is a few hundred bytes
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// Serve answers on l until ctx ends, then shuts down gracefully: requests in flight get
// up to grace to finish.
func (s *Server) Serve(ctx context.Context, l net.Listener, grace time.Duration) error {
	srv := HTTPServer(s.echo, s.log)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// docError is an error answered as a document in the endpoint's format.
type docError struct {
	status int
	lines  []string // comment lines, each starting with "#"
}

func (e *docError) Error() string {
	if len(e.lines) > 0 {
		return e.lines[0]
	}
	return http.StatusText(e.status)
}

var errNoSnapshot = &docError{status: http.StatusServiceUnavailable, lines: []string{"# error: starting up, no snapshot of the database yet"}}

// observe logs and counts every request once the handler and error handler have run.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(ec echo.Context) error {
		start := time.Now()
		c := reqInfos.Get().(*reqInfo)
		*c = reqInfo{Context: ec}
		defer func() {
			*c = reqInfo{}
			reqInfos.Put(c)
		}()
		err := next(c)
		if err != nil {
			s.handleError(err, c) // writes the response, so the status below is final
		}
		status := c.Response().Status
		endpoint := c.endpoint
		if endpoint == "" {
			endpoint = c.Path()
			if endpoint == "" || status == http.StatusNotFound && c.Path() == "/*" {
				endpoint = "other"
			}
		}
		tier := c.tier
		if tier == "" {
			tier = "-"
		}
		took := time.Since(start)
		if m := s.opt.Metrics; m != nil {
			m.observeRequest(endpoint, status, tier, took)
		}
		if s.opt.AccessLog || status >= 500 {
			level := slog.LevelInfo
			if status >= 500 {
				level = slog.LevelWarn
			}
			client := c.client
			r := c.Request()
			s.log.LogAttrs(r.Context(), level, "request",
				slog.String("method", r.Method), slog.String("uri", r.RequestURI), slog.Int("status", status),
				slog.Int64("bytes", c.Response().Size), slog.Duration("took", took),
				slog.String("client", client.String()), slog.String("peer", r.RemoteAddr),
				slog.String("tier", tier), slog.String("agent", r.UserAgent()))
		}
		return nil
	}
}

// handleError is the one place that turns errors into responses.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	endpoint := info(c).endpoint
	var (
		de *docError
		br *BadRequestError
		he *echo.HTTPError
	)
	switch {
	case errors.As(err, &br):
		de = &docError{status: http.StatusBadRequest, lines: []string{"# error: " + safeText(br.Msg, 256)}}
	case errors.As(err, &de):
	case errors.As(err, &he):
		msg := http.StatusText(he.Code)
		if m, ok := he.Message.(string); ok {
			msg = m
		}
		de = &docError{status: he.Code, lines: []string{"# error: " + msg}}
	default:
		s.log.Error("request failed", slog.String("uri", c.Request().RequestURI), slog.Any("err", err))
		de = &docError{status: http.StatusInternalServerError, lines: []string{"# error: internal error"}}
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	if strings.HasPrefix(endpoint, "api") {
		msg := strings.TrimPrefix(de.lines[0], "# error: ")
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(de.status)
			return
		}
		_ = c.JSON(de.status, map[string]string{"error": msg})
		return
	}
	b := bufPool.Get().(*bytes.Buffer)
	b.Reset()
	defer bufPool.Put(b)
	ctype := ContentTypeMirrorlist
	if endpoint == "metalink" {
		ctype = ContentTypeMetalink
		WriteMetalinkError(b, de.lines, s.now())
	} else {
		WriteMirrorlistError(b, de.lines)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(de.status)
		return
	}
	if err := blob(c, de.status, ctype, b.Bytes()); err != nil {
		s.log.Debug("writing error response failed", slog.Any("err", err))
	}
}

// request gathers what is known about the client for selection.
func (s *Server) request(c echo.Context, snap *Snapshot, q Query) Request {
	r := c.Request()
	req := Request{
		Location:  q.Location,
		Countries: q.Countries,
		Global:    q.Global,
		Protocols: q.Protocols,
		Now:       s.now(),
		Client:    ClientAddr(r.RemoteAddr, r.Header.Values("X-Forwarded-For"), s.opt.TrustedProxies),
	}
	info(c).client = req.Client
	// GeoIP only matters when neither location= nor country= decides.
	if s.opt.GeoIP != nil && req.Client.IsValid() && len(req.Countries) == 0 && !req.Global && snap.Region(req.Location) == nil {
		loc, ok := s.opt.GeoIP.Lookup(req.Client)
		req.ClientGeo = loc
		if m := s.opt.Metrics; m != nil {
			if ok {
				m.geoipFound.Inc()
			} else {
				m.geoipUnknown.Inc()
			}
		}
	}
	return req
}

// resolveRepo parses a /metalink or /mirrorlist request and finds its repository.
func (s *Server) resolveRepo(c echo.Context, endpoint string) (*Snapshot, *Repository, Query, error) {
	info(c).endpoint = endpoint
	snap := s.opt.Store.Snapshot()
	if snap == nil {
		return nil, nil, Query{}, errNoSnapshot
	}
	q, err := ParseQuery(c.Request().URL.RawQuery)
	if err != nil {
		return nil, nil, q, err
	}
	if q.Repo == "" || q.Arch == "" {
		return nil, nil, q, &docError{status: http.StatusBadRequest, lines: []string{"# error: repo= and arch= must both be given"}}
	}
	repo := snap.Repository(q.Repo, q.Arch)
	if repo == nil {
		return nil, nil, q, &docError{status: http.StatusNotFound, lines: unknownRepoLines(snap, q.Repo, q.Arch)}
	}
	if len(repo.Versions) == 0 && endpoint == "metalink" {
		return nil, nil, q, &docError{status: http.StatusServiceUnavailable,
			lines: []string{repoHead(q) + " error: the repository's repomd.xml has not been recorded yet"}}
	}
	return snap, repo, q, nil
}

func repoHead(q Query) string {
	return "# repo = " + safeText(q.Repo, 128) + " arch = " + safeText(q.Arch, 64)
}

// decide runs selection and refuses an answer without any URL: dnf would fail on it
// with "No URLs in metalink", which says less than our error.
func (s *Server) decide(c echo.Context, snap *Snapshot, repo *Repository, q Query, req Request) (*Decision, error) {
	d := SelectRepository(snap, repo, req)
	d.Notes = append(q.Notes, d.Notes...)
	info(c).tier = d.Tier
	if len(d.Chosen) == 0 && d.Origin == nil {
		lines := []string{repoHead(q) + " error: no region can serve this repository now"}
		for _, n := range d.Notes {
			lines = append(lines, "# "+safeText(n, 256))
		}
		return nil, &docError{status: http.StatusServiceUnavailable, lines: lines}
	}
	return d, nil
}

func (s *Server) metalink(c echo.Context) error {
	snap, repo, q, err := s.resolveRepo(c, "metalink")
	if err != nil {
		return err
	}
	req := s.request(c, snap, q)
	now := req.Now
	blockBits := make([]int, len(snap.Regions))
	matched := snap.blocks.match(req.Client, blockBits)
	key := keyFor(repo, snap.Region(req.Location), req, blockBits, matched)
	b := bufPool.Get().(*bytes.Buffer)
	b.Reset()
	defer bufPool.Put(b)
	h := c.Response().Header()
	h["Cache-Control"], h[echo.HeaderContentType] = hdrPrivate, hdrMetalink
	answers := s.answerCache(snap)
	if a := answers.get(key, now); a != nil {
		info(c).tier = a.tier
		a.write(b, now)
		return blob(c, http.StatusOK, ContentTypeMetalink, b.Bytes())
	}
	d, err := s.decide(c, snap, repo, q, req)
	if err != nil {
		return err
	}
	WriteMetalink(b, repo, d, repo.Alternates(now, snap.Policy.AlternatesMaxAge), now)
	if a := newAnswer(b.Bytes(), d.Tier, now); a != nil {
		answers.put(key, a)
	}
	return blob(c, http.StatusOK, ContentTypeMetalink, b.Bytes())
}

func (s *Server) mirrorlist(c echo.Context) error {
	snap, repo, q, err := s.resolveRepo(c, "mirrorlist")
	if err != nil {
		return err
	}
	d, err := s.decide(c, snap, repo, q, s.request(c, snap, q))
	if err != nil {
		return err
	}
	b := bufPool.Get().(*bytes.Buffer)
	b.Reset()
	defer bufPool.Put(b)
	WriteMirrorlist(b, repo, d, MirrorlistHeader(q.Repo, q.Arch, d, q.Countries))
	c.Response().Header().Set("Cache-Control", "private, no-store")
	return blob(c, http.StatusOK, ContentTypeMirrorlist, b.Bytes())
}

// blob writes a complete body with its Content-Length: a metalink is larger than what
// net/http buffers before it switches to chunked encoding.
func blob(c echo.Context, status int, ctype string, body []byte) error {
	c.Response().Header().Set(echo.HeaderContentLength, strconv.Itoa(len(body)))
	return c.Blob(status, ctype, body)
}

// Header values of every metalink, as slices shared by all answers rather than allocated
// per answer (Header.Set allocates one). net/http only reads them, and Header.Add copies
// a slice of capacity one before appending.
var (
	hdrMetalink = []string{ContentTypeMetalink}
	// The answer depends on who asks: shared caches must not keep it.
	hdrPrivate = []string{"private, no-store"}
)

func (s *Server) healthz(c echo.Context) error {
	info(c).endpoint = "healthz"
	return c.String(http.StatusOK, "ok\n")
}

// readyz is 503 until the first snapshot serves. A database outage afterwards keeps it
// 200 (the snapshot still answers, which is the point) but says so in the body, so that a
// load balancer keeps the instance while people and monitoring see the problem.
func (s *Server) readyz(c echo.Context) error {
	info(c).endpoint = "readyz"
	st := s.opt.Store.Status()
	c.Response().Header().Set("Cache-Control", "no-store")
	if !st.Ready {
		msg := "not ready: no snapshot yet"
		if st.DBError != "" {
			msg += "; database: " + model.PublicReason(st.DBError)
		}
		return c.String(http.StatusServiceUnavailable, msg+"\n")
	}
	age := s.now().Sub(st.ReadAt).Round(time.Second)
	if st.DBError != "" {
		return c.String(http.StatusOK, fmt.Sprintf("degraded: database unreachable since %s (%s); serving the snapshot read %s ago\n",
			st.DBErrorAt.UTC().Format(time.RFC3339), model.PublicReason(st.DBError), age))
	}
	return c.String(http.StatusOK, fmt.Sprintf("ok: snapshot read %s ago\n", age))
}
