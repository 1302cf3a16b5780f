package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/accesslog"
	"github.com/regionmirror/regionmirror/internal/certfile"
	"github.com/regionmirror/regionmirror/internal/config"
	"github.com/regionmirror/regionmirror/internal/geo"
	"github.com/regionmirror/regionmirror/server"
	"github.com/regionmirror/regionmirror/server/selection"
)

// geoipCheckInterval is how often serve looks for a new GeoIP database file.
const geoipCheckInterval = 30 * time.Second

func (a *app) serveCmd() *cobra.Command {
	var accessLog bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Answer yum/dnf metalinks, mirror lists and download redirects from an in-memory snapshot",
		Long: `Serve GET /metalink and GET /mirrorlist (yum/dnf), download redirects under
server.download_prefix (with ?meta4 and ?mirrorlist), GET /r/<region>/<path> (a region's
view of the tree, which metalinks give for on-demand regions when server.public_url is
set), the status dashboard at /, the JSON API under /api/v1/ (with DELETE
/api/v1/regions/<R>/objects/<PATH> when server.admin_tokens is set), /healthz, /readyz and
/metrics on server.listen. A request whose first region is on-demand and lacks the file is
answered by the next verified copy and queues a copy into it (ondemand.max_wait lets it
wait for the copy). Every answer comes from an in-memory snapshot of the database that is
rebuilt when a writer sends NOTIFY regionmirror_changed and every server.snapshot_interval;
when the database is unreachable the last snapshot keeps serving and /readyz says so.
Every server.probe_interval a HEAD to each public region's URL checks that this server can
reach it; a region it cannot reach leaves the answers until it answers again.
SIGHUP (systemctl reload) reads the configuration again and applies the log level,
origin.url and metalink.alternates_max_age, reloads the GeoIP database and the TLS pair,
and rebuilds the snapshot, without a pause in serving; a broken configuration is logged
and the one in use stays. SIGINT or SIGTERM shut down gracefully.`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			holdHangups()
			ctx := cmd.Context()
			if _, err := a.loadConfig(); err != nil {
				return err
			}
			d, err := a.openDB(ctx, true)
			if err != nil {
				return err
			}
			l, err := net.Listen("tcp", a.cfg.Server.Listen)
			if err != nil {
				return &config.Error{Key: "server.listen", Value: a.cfg.Server.Listen, Reason: err.Error()}
			}
			if !cmd.Flags().Changed("access-log") {
				accessLog = a.cfg.Log.Access
			}
			return a.serve(ctx, d, l, accessLog, nil)
		}),
	}
	cmd.Flags().BoolVar(&accessLog, "access-log", true, "log every request (errors are always logged); overrides log.access")
	return cmd
}

// serve answers on l until ctx ends, from a snapshot of d, as the configuration says.
// ready, when given, is called once the first snapshot is in place. SIGHUP reloads what
// can change without a restart (see reloadServe) and never stops serving.
func (a *app) serve(ctx context.Context, d *db.DB, l net.Listener, accessLog bool, ready func()) error {
	hup, stopHangups := hangups()
	defer stopHangups()
	// The background loops (snapshot, GeoIP, probes, reloads) end when serve does, whether
	// ctx ended or the listener failed: the waits for them below would hang otherwise.
	ctx, stopLoops := context.WithCancel(ctx)
	defer stopLoops()
	cfg := a.cfg
	var locator server.Locator
	var geoip *swapGeoIP
	if path := cfg.Server.GeoIPDatabase; path != "" {
		g, err := geo.OpenGeoIP(path, a.log)
		if err != nil {
			return &config.Error{Key: "server.geoip_database", Value: path, Reason: err.Error()}
		}
		geoip = &swapGeoIP{}
		geoip.cur.Store(g)
		go geoip.watch(ctx, geoipCheckInterval, a.log)
		locator = geoip
	}
	var certs *swapCerts
	if cfg.Server.TLSCert != "" {
		loader, err := certfile.New(cfg.Server.TLSCert, cfg.Server.TLSKey, a.log)
		if err != nil {
			return &config.Error{Key: "server.tls_cert", Value: cfg.Server.TLSCert, Reason: err.Error()}
		}
		certs = &swapCerts{}
		certs.cur.Store(loader)
		l = tls.NewListener(l, certs.config())
	}
	if path := cfg.Server.FilesCache; path != "" {
		if st, err := os.Stat(filepath.Dir(path)); err != nil || !st.IsDir() {
			return &config.Error{Key: "server.files_cache", Value: path, Reason: "its directory does not exist"}
		}
	}
	store := server.NewStore(d, server.StoreOptions{
		Policy:    servePolicy(cfg),
		Interval:  cfg.Server.SnapshotInterval.Std(),
		LoadFiles: true,
		TableFile: cfg.Server.FilesCache,
		Log:       a.log,
	})
	metrics := server.NewMetrics(store) // before the first build, which it counts
	if ready != nil {
		// Build the first snapshot before saying so; Run keeps it fresh from then on.
		if err := store.Refresh(ctx, true); err != nil {
			return fmt.Errorf("serve: first snapshot: %w", err)
		}
		ready()
	}
	go store.Run(ctx)
	if interval := cfg.Server.ProbeInterval.Std(); interval > 0 {
		// Regions this server cannot reach leave its answers within a probe or two.
		prober := server.NewProber(store, server.ProberOptions{
			Interval: interval, Timeout: cfg.Server.ProbeTimeout.Std(), Log: a.log, Metrics: metrics,
		})
		proberDone := make(chan struct{})
		go func() { prober.Run(ctx); close(proberDone) }()
		defer func() { <-proberDone }() // no probe outlives serve
	}
	// The counting loops stop once serve has answered its last request (after the drain on
	// SIGTERM), so that their last flush holds what those requests counted.
	countCtx, stopCounting := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCounting()
	// Redirect counts and the dashboard's runs: read and written in the background.
	activity := server.NewActivity(d, server.ActivityOptions{Log: a.log})
	activityDone := make(chan struct{})
	go func() { activity.Run(countCtx); close(activityDone) }()
	defer func() { stopCounting(); <-activityDone }() // the last flush of the counts
	// Misses of on-demand regions become fill jobs, and requests of their copies move the
	// expiry clock: collected in memory, written in the background.
	fills := server.NewFills(d, server.FillOptions{MaxWait: cfg.OnDemand.MaxWait.Std(), Metrics: metrics, Log: a.log})
	fillsDone := make(chan struct{})
	go func() { fills.Run(countCtx); close(fillsDone) }()
	defer func() { stopCounting(); <-fillsDone }() // the last flush of the misses
	// The request log writes in batches from its own goroutine, to stderr as the other
	// lines do (an *os.File serializes writes, so lines never interleave); it is flushed
	// once the last request has been answered.
	requestLog := accesslog.New(a.stderr, accesslog.Options{
		JSON: cfg.Log.Format == "json", Level: &a.level, Buffer: int(cfg.Log.AccessBuffer), Wait: cfg.Log.AccessWhenFull == "wait",
		Errors: func(err error) { a.log.Error("request log", slog.Any("err", err)) },
	})
	defer requestLog.Close()
	metrics.WatchRequestLog(requestLog)
	srv := server.New(server.Options{
		Store: store, Metrics: metrics, GeoIP: locator, Log: a.log, AccessLog: accessLog, RequestLog: requestLog,
		TrustedProxies: cfg.TrustedProxyPrefixes(), DownloadPrefix: cfg.Server.DownloadPrefix, Activity: activity,
		Fills: fills, Admin: server.NewAdmin(d, cfg.Server.AdminTokens, a.log), OnDemandStaleAfter: cfg.OnDemand.StaleAfter.Std(),
	})
	reloadDone := make(chan struct{})
	go func() {
		defer close(reloadDone)
		cur := cfg
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				cur = a.reloadServe(ctx, cur, store, geoip, certs)
			}
		}
	}()
	defer func() { <-reloadDone }()
	a.log.Info("serving", slog.String("listen", l.Addr().String()), slog.Bool("geoip", locator != nil),
		slog.String("origin", cfg.Origin.URL))
	err := srv.Serve(ctx, l, 10*time.Second)
	stopLoops() // the loops above end with serve: after a listener's failure too
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	requestLog.Close() // the last requests' lines before the last line
	a.log.Info("stopped")
	return nil
}

func servePolicy(cfg *config.Config) selection.Policy {
	return selection.Policy{OriginURL: cfg.Origin.URL, AlternatesMaxAge: cfg.Metalink.AlternatesMaxAge.Std(),
		PublicURL: cfg.Server.PublicURL}
}

// reloadServe is serve's answer to SIGHUP: the configuration is read again (a broken one
// is logged and the one in use stays), then the log level, origin.url and
// metalink.alternates_max_age apply at once, the GeoIP database and the TLS pair are
// read again (from their new paths, if those changed), and the snapshot is rebuilt from
// the database. What only a restart can change (listen address, database, prefixes,
// proxies, intervals) is named in a warning. It returns the configuration now in use.
func (a *app) reloadServe(ctx context.Context, cur *config.Config, store *server.Store, geoip *swapGeoIP, certs *swapCerts) *config.Config {
	log := a.log
	log.Info("reloading (SIGHUP)")
	cfg, err := a.reloadConfig()
	configOK := err == nil
	if err != nil {
		log.Error("reload: configuration not reloaded; the one in use stays", slog.Any("err", err))
		cfg = cur
	} else {
		// Against the configuration serve started with: what only a restart applies.
		start := a.cfg
		restart := cfg.Server
		restart.GeoIPDatabase, restart.TLSCert, restart.TLSKey = start.Server.GeoIPDatabase, start.Server.TLSCert, start.Server.TLSKey
		if !reflect.DeepEqual(restart, start.Server) || cfg.DatabaseURL != start.DatabaseURL {
			log.Warn("reload: changes to database_url or server settings other than geoip_database, tls_cert and tls_key take effect on restart")
		}
		if (cfg.Server.GeoIPDatabase == "") != (geoip == nil) || (cfg.Server.TLSCert == "") != (certs == nil) {
			log.Warn("reload: turning GeoIP or TLS on or off takes effect on restart")
		}
		store.SetPolicy(servePolicy(cfg))
	}
	geoipOK, tlsOK := true, true
	if geoip != nil && cfg.Server.GeoIPDatabase != "" {
		if err := geoip.reload(cfg.Server.GeoIPDatabase, log); err != nil {
			geoipOK = false
			log.Error("reload: geoip database not reloaded; the one in use stays", slog.Any("err", err))
		}
	}
	if certs != nil && cfg.Server.TLSCert != "" {
		loader, err := certfile.New(cfg.Server.TLSCert, cfg.Server.TLSKey, log)
		if err != nil {
			tlsOK = false
			log.Error("reload: TLS certificate not reloaded; the one in use stays", slog.Any("err", err))
		} else {
			certs.cur.Store(loader)
		}
	}
	snapErr := store.Refresh(ctx, true)
	if snapErr != nil {
		log.Error("reload: snapshot not rebuilt; the one in use keeps serving", slog.Any("err", snapErr))
	}
	log.Info("reloaded", slog.Bool("config", configOK), slog.String("log_level", a.level.Level().String()),
		slog.Bool("geoip", geoip != nil && geoipOK), slog.Bool("tls", certs != nil && tlsOK), slog.Bool("snapshot", snapErr == nil))
	if !configOK {
		return cur
	}
	return cfg
}

// swapGeoIP is the server's GeoIP database, which a reload may replace with another file.
type swapGeoIP struct {
	mu  sync.Mutex // serialises reloads and the watcher
	cur atomic.Pointer[geo.GeoIP]
}

func (s *swapGeoIP) Lookup(addr netip.Addr) (geo.Location, bool) { return s.cur.Load().Lookup(addr) }

// reload reads the database at path: the one in use if its file changed, or a new one.
func (s *swapGeoIP) reload(path string, log *slog.Logger) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.cur.Load(); g.Path() == path {
		_, err := g.Reload()
		return err
	}
	g, err := geo.OpenGeoIP(path, log)
	if err != nil {
		return err
	}
	s.cur.Store(g)
	return nil
}

// watch reloads the database in use when its file changes, until ctx ends.
func (s *swapGeoIP) watch(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.mu.Lock()
			_, err := s.cur.Load().Reload()
			s.mu.Unlock()
			if err != nil {
				log.Warn("geoip database not reloaded; the previous one stays in use", slog.Any("err", err))
			}
		}
	}
}

// swapCerts is the TLS pair in use, which a reload may replace; each loader also picks
// up renewals of its files by itself.
type swapCerts struct {
	cur atomic.Pointer[certfile.Loader]
}

func (s *swapCerts) config() *tls.Config {
	c := s.cur.Load().Config()
	c.GetCertificate = func(h *tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cur.Load().GetCertificate(h) }
	return c
}
