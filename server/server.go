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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/regionmirror/regionmirror/internal/accesslog"
	"github.com/regionmirror/regionmirror/internal/geo"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/server/selection"
)

// Locator finds where an address is; *geo.GeoIP is one.
type Locator interface {
	Lookup(netip.Addr) (geo.Location, bool)
}

var _ Locator = (*geo.GeoIP)(nil)

// Options configure a Server.
type Options struct {
	Store          *Store
	Metrics        *Metrics
	GeoIP          Locator // nil without a GeoIP database
	TrustedProxies []netip.Prefix
	Log            *slog.Logger
	// AccessLog logs every request at info level; without it only errors are logged.
	AccessLog bool
	// RequestLog takes the request records (batched, off the request path); nil logs them
	// through Log, a line at a time (tests).
	RequestLog *accesslog.Logger
	// Now is the clock (tests pin it); nil means time.Now.
	Now func() time.Time
	// DownloadPrefix is where files are downloaded (GET /pub/<path>); "" means /pub.
	DownloadPrefix string
	// Activity counts redirects and feeds the dashboard; nil counts nothing.
	Activity *Activity
	// Fills collects misses of on-demand regions and requests of their copies (and holds
	// ondemand.max_wait); nil records nothing.
	Fills *Fills
	// Admin answers the purge API (DELETE /api/v1/regions/R/objects/P); nil refuses it.
	Admin *Admin
	// OnDemandStaleAfter is ondemand.stale_after: with per-file data older than this, no
	// client is sent to an on-demand copy (0: no bound).
	OnDemandStaleAfter time.Duration
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
	// region names the region the answer sends the client to first ("origin" for
	// origin.url), for the request log; "" when none.
	region   string
	client   netip.Addr
	format   format // the route's, for handleError
	compress bool   // gzip the answer if the client accepts it (see compressible)
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
	if opt.Fills != nil && opt.Store != nil {
		opt.Store.onInstall(opt.Fills.wake)
		opt.Store.SetUrgent(opt.Fills.Waiting)
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Use(s.observe)
	s.echo = e
	s.route("/metalink", "metalink", formatMetalink, cachePrivate, s.metalink)
	s.route("/mirrorlist", "mirrorlist", formatMirrorlist, cachePrivate, s.mirrorlist)
	s.route("/apt/*", "apt-list", formatText, cacheAptList, s.aptList)
	// Errors of downloads are text whatever was asked (redirect, meta4, page).
	s.route(s.prefix+"/*", "download", formatText, cachePrivate, s.download)
	// A region's own view of the tree, which metalinks give for on-demand regions.
	s.route("/r/*", "region-download", formatText, cachePrivate, s.regionDownload)
	s.route("/", "dashboard", formatHTML, cacheNoStore, s.dashboard)
	s.route("/api/v1/regions", "api-regions", formatJSON, cacheNoStore, s.apiRegions)
	s.route("/api/v1/repositories", "api-repositories", formatJSON, cacheNoStore, s.apiRepositories)
	s.route("/api/v1/status", "api-status", formatJSON, cacheNoStore, s.apiStatus)
	s.route("/api/v1/locate", "api-locate", formatJSON, cacheNoStore, s.apiLocate)
	s.route("/api/v1/stats", "api-stats", formatJSON, cacheNoStore, s.apiStats)
	s.purgeRoute()
	s.route("/healthz", "healthz", formatText, nil, s.healthz)
	s.route("/readyz", "readyz", formatText, cacheNoStore, s.readyz)
	if opt.Metrics != nil {
		h := promhttp.HandlerFor(opt.Metrics.Registry, promhttp.HandlerOpts{})
		s.route("/metrics", "/metrics", formatText, nil, func(c echo.Context) error {
			h.ServeHTTP(c.Response(), c.Request())
			return nil
		})
	}
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
			s.logRequest(c, start, took, status, endpoint, tier)
		}
		return nil
	}
}

// logRequest hands the request's record to the request log.
func (s *Server) logRequest(c *reqInfo, start time.Time, took time.Duration, status int, endpoint, tier string) {
	r := c.Request()
	if !c.client.IsValid() { // no selection ran
		c.client = ClientAddr(r.RemoteAddr, r.Header.Values("X-Forwarded-For"), s.opt.TrustedProxies)
	}
	rec := accesslog.Record{Time: start, Warn: status >= 500, Method: r.Method, URI: r.RequestURI, Status: status,
		Bytes: c.Response().Size, Took: took, Client: c.client, Peer: r.RemoteAddr, Endpoint: endpoint,
		Region: c.region, Tier: tier, Agent: r.UserAgent()}
	if l := s.opt.RequestLog; l != nil {
		l.Log(&rec)
		return
	}
	level := slog.LevelInfo
	if rec.Warn {
		level = slog.LevelWarn
	}
	s.log.LogAttrs(r.Context(), level, accesslog.Message, rec.Attrs()...)
}

// request gathers what is known about the client for selection.
func (s *Server) request(c echo.Context, snap *selection.Snapshot, q Query) selection.Request {
	r := c.Request()
	req := selection.Request{
		Location:  q.Location,
		Countries: q.Countries,
		Global:    q.Global,
		Protocols: q.Protocols,
		Now:       s.now(),
		Client:    ClientAddr(r.RemoteAddr, r.Header["X-Forwarded-For"], s.opt.TrustedProxies),
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
func (s *Server) resolveRepo(c echo.Context) (*selection.Snapshot, *selection.Repository, Query, error) {
	snap, err := s.snapshot()
	if err != nil {
		return nil, nil, Query{}, err
	}
	q, err := ParseQuery(c.Request().URL.RawQuery)
	if err != nil {
		return nil, nil, q, err
	}
	if q.Repo == "" || q.Arch == "" {
		return nil, nil, q, &Error{Status: http.StatusBadRequest, Msg: "repo= and arch= must both be given"}
	}
	repo := snap.Repository(q.Repo, q.Arch)
	if repo == nil {
		return nil, nil, q, unknownRepo(snap, q)
	}
	if repo.IsApt() {
		// apt reads mirror lists, not metalinks: an InRelease in a metalink helps no one.
		return nil, nil, q, &Error{Status: http.StatusNotFound, About: repoAbout(q),
			Msg: "an APT repository: its mirror list is /apt/" + safeText(q.Repo, 128) + ".list"}
	}
	if len(repo.Versions) == 0 && info(c).format == formatMetalink {
		return nil, nil, q, &Error{Status: http.StatusServiceUnavailable, About: repoAbout(q),
			Msg: "the repository's repomd.xml has not been recorded yet"}
	}
	return snap, repo, q, nil
}

// repoAbout names the repository asked for in an Error.
func repoAbout(q Query) string {
	return "repo = " + safeText(q.Repo, 128) + " arch = " + safeText(q.Arch, 64)
}

// decide runs selection and refuses an answer without any URL: dnf would fail on it
// with "No URLs in metalink", which says less than our error.
func (s *Server) decide(c echo.Context, snap *selection.Snapshot, repo *selection.Repository, q Query, req selection.Request) (*selection.Decision, error) {
	d := selection.SelectRepository(snap, repo, req)
	d.Notes = append(q.Notes, d.Notes...)
	info(c).tier, info(c).region = d.Tier, firstRegion(d)
	if len(d.Chosen) == 0 && d.Origin == nil {
		e := &Error{Status: http.StatusServiceUnavailable, About: repoAbout(q), Msg: "no region can serve this repository now"}
		for _, n := range d.Notes {
			e.Details = append(e.Details, safeText(n, 256))
		}
		return nil, e
	}
	return d, nil
}

func (s *Server) metalink(c echo.Context) error {
	snap, repo, q, err := s.resolveRepo(c)
	if err != nil {
		return err
	}
	req := s.request(c, snap, q)
	now := req.Now
	blockBits := make([]int, len(snap.Regions))
	matched := snap.MatchNetblocks(req.Client, blockBits)
	key := keyFor(repo, snap.Region(req.Location), req, blockBits, matched)
	b := bufPool.Get().(*bytes.Buffer)
	b.Reset()
	defer bufPool.Put(b)
	c.Response().Header()[echo.HeaderContentType] = hdrMetalink
	answers := s.answerCache(snap)
	if a := answers.get(key, now); a != nil {
		info(c).tier, info(c).region = a.tier, a.region
		a.write(b, now)
		s.countme(c, repo, q)
		return blob(c, http.StatusOK, ContentTypeMetalink, b.Bytes())
	}
	d, err := s.decide(c, snap, repo, q, req)
	if err != nil {
		return err
	}
	WriteMetalink(b, repo, d, repo.Alternates(now, snap.Policy.AlternatesMaxAge), now)
	if a := newAnswer(b.Bytes(), d.Tier, firstRegion(d), now); a != nil {
		answers.put(key, a)
	}
	s.countme(c, repo, q)
	return blob(c, http.StatusOK, ContentTypeMetalink, b.Bytes())
}

// countme counts a GET that carried countme= for a repository answered. Only GET: HEAD
// is no machine fetching its metadata, and dnf sends countme= on one GET a week. There is
// no 304 to leave out: metalinks and mirror lists carry no validators (librepo sends
// none), so every such GET is answered in full, and counted once, here.
func (s *Server) countme(c echo.Context, repo *selection.Repository, q Query) {
	if q.Countme != 0 && s.opt.Activity != nil && c.Request().Method == http.MethodGet {
		s.opt.Activity.Countme(repo.Name, repo.Arch, q.Countme)
	}
}

func (s *Server) mirrorlist(c echo.Context) error {
	snap, repo, q, err := s.resolveRepo(c)
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
	s.countme(c, repo, q)
	return blob(c, http.StatusOK, ContentTypeMirrorlist, b.Bytes())
}

// hdrMetalink is every metalink's Content-Type, shared as the Cache-Control values are
// (see routes.go).
var hdrMetalink = []string{ContentTypeMetalink}

func (s *Server) healthz(c echo.Context) error {
	return c.String(http.StatusOK, "ok\n")
}

// readyz is 503 until the first snapshot serves. A database outage afterwards keeps it
// 200 (the snapshot still answers, which is the point) but says so in the body, so that a
// load balancer keeps the instance while people and monitoring see the problem.
func (s *Server) readyz(c echo.Context) error {
	st := s.opt.Store.Status()
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
