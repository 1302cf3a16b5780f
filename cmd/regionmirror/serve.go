package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/certfile"
	"github.com/regionmirror/regionmirror/internal/config"
	"github.com/regionmirror/regionmirror/internal/geo"
	"github.com/regionmirror/regionmirror/server"
)

// geoipCheckInterval is how often serve looks for a new GeoIP database file.
const geoipCheckInterval = 30 * time.Second

func (a *app) serveCmd() *cobra.Command {
	var accessLog bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Answer yum/dnf metalinks, mirror lists and download redirects from an in-memory snapshot",
		Long: `Serve GET /metalink and GET /mirrorlist (yum/dnf), download redirects under
server.download_prefix (with ?meta4 and ?mirrorlist), the status dashboard at /, the JSON
API under /api/v1/, /healthz, /readyz and /metrics on server.listen. Every answer comes from an in-memory snapshot of the database that is
rebuilt when a writer sends NOTIFY regionmirror_changed and every server.snapshot_interval;
when the database is unreachable the last snapshot keeps serving and /readyz says so.
Every server.probe_interval a HEAD to each public region's URL checks that this server can
reach it; a region it cannot reach leaves the answers until it answers again.
SIGINT or SIGTERM shut down gracefully.`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
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
			return a.serve(ctx, d, l, accessLog, nil)
		}),
	}
	cmd.Flags().BoolVar(&accessLog, "access-log", true, "log every request (errors are always logged)")
	return cmd
}

// serve answers on l until ctx ends, from a snapshot of d, as the configuration says.
// ready, when given, is called once the first snapshot is in place.
func (a *app) serve(ctx context.Context, d *db.DB, l net.Listener, accessLog bool, ready func()) error {
	cfg := a.cfg
	var locator server.Locator
	if path := cfg.Server.GeoIPDatabase; path != "" {
		g, err := geo.OpenGeoIP(path, a.log)
		if err != nil {
			return &config.Error{Key: "server.geoip_database", Value: path, Reason: err.Error()}
		}
		go g.Watch(ctx, geoipCheckInterval)
		locator = g
	}
	if cfg.Server.TLSCert != "" {
		certs, err := certfile.New(cfg.Server.TLSCert, cfg.Server.TLSKey, a.log)
		if err != nil {
			return &config.Error{Key: "server.tls_cert", Value: cfg.Server.TLSCert, Reason: err.Error()}
		}
		l = tls.NewListener(l, certs.Config())
	}
	if path := cfg.Server.FilesCache; path != "" {
		if st, err := os.Stat(filepath.Dir(path)); err != nil || !st.IsDir() {
			return &config.Error{Key: "server.files_cache", Value: path, Reason: "its directory does not exist"}
		}
	}
	var metrics *server.Metrics
	store := server.NewStore(d, server.StoreOptions{
		Policy:    server.Policy{OriginURL: cfg.Origin.URL, AlternatesMaxAge: cfg.Metalink.AlternatesMaxAge.Std()},
		Interval:  cfg.Server.SnapshotInterval.Std(),
		LoadFiles: true,
		TableFile: cfg.Server.FilesCache,
		Log:       a.log,
		OnBuild: func(kind string, took time.Duration, err error) {
			if metrics != nil {
				metrics.ObserveBuild(kind, took, err)
			}
		},
	})
	metrics = server.NewMetrics(func() *server.Store { return store })
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
	// Redirect counts and the dashboard's runs: read and written in the background.
	activity := server.NewActivity(d, server.ActivityOptions{Log: a.log})
	activityDone := make(chan struct{})
	go func() { activity.Run(ctx); close(activityDone) }()
	defer func() { <-activityDone }() // the last flush of the counts
	srv := server.New(server.Options{
		Store: store, Metrics: metrics, GeoIP: locator, Log: a.log, AccessLog: accessLog,
		TrustedProxies: cfg.TrustedProxyPrefixes(), DownloadPrefix: cfg.Server.DownloadPrefix, Activity: activity,
	})
	a.log.Info("serving", slog.String("listen", l.Addr().String()), slog.Bool("geoip", locator != nil),
		slog.String("origin", cfg.Origin.URL))
	if err := srv.Serve(ctx, l, 10*time.Second); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	a.log.Info("stopped")
	return nil
}
