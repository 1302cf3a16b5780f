package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/pusher/watch"
)

func (a *app) watchCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "watch",
		Short: "Push what changes under the origin as it changes (inotify), and take push triggers",
		Long: `Follow every directory under origin.path with inotify and push what changed once it has
been quiet for push.watch_settle (a repository that never stops changing is pushed at ten
times that at the latest): each push covers only the changed repositories and directories,
in the usual phases, with repomd.xml last and read back. Every scope due at once goes into
one push; one push runs at a time. It starts with one full push. On a kernel event queue
overflow it drops its coverage claim and runs a full push at once.

While it runs, the watcher is registered in the database with what it has seen, so a
scheduled push ('regionmirror cron') that finds nothing changed ends without walking the
origin. Run 'regionmirror cron' beside it for the periodic full push (the safety net for
anything a watch missed), or run cron with push.watch: true instead of this command.

watch.listen serves /healthz, /metrics and POST /api/v1/push (body {"paths": [...]},
bearer token from server.admin_tokens). When the kernel's inotify watch limit is reached,
it logs the sysctl command that raises it and runs without claiming coverage; to raise
it for good, put fs.inotify.max_user_watches=N (about twice the origin's directories) in
/etc/sysctl.d/90-regionmirror.conf and run 'sysctl --system'. SIGTERM lets
a running push finish within cron.shutdown_timeout and removes the watcher's record.`,
		Example: `  regionmirror watch
  curl -H "Authorization: Bearer $TOKEN" -d '{"paths": ["fedora/40/x86_64/os"]}' http://127.0.0.1:9102/api/v1/push`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			holdHangups()
			ctx := cmd.Context()
			d, err := a.openDB(ctx, true)
			if err != nil {
				return err
			}
			if a.cfg.Origin.Path == "" {
				return usagef("origin.path is not set (config file, or REGIONMIRROR_ORIGIN_PATH); watch follows it")
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			dm, err := a.newWatchDaemon(ctx, d, true, reg)
			if err != nil {
				return err
			}
			var srv *http.Server
			if addr := a.cfg.Watch.Listen; addr != "" {
				ln, err := net.Listen("tcp", addr)
				if err != nil {
					return fmt.Errorf("watch: listen on %s: %w", addr, err)
				}
				mux := http.NewServeMux()
				a.daemonRoutes(mux, d, reg)
				mux.Handle("/api/v1/push", a.triggerHandler(dm))
				srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
				go srv.Serve(ln)
				a.log.Info("watch listening", slog.String("addr", ln.Addr().String()))
			}
			err = dm.Run(ctx)
			if srv != nil {
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = srv.Shutdown(sctx)
			}
			if err != nil {
				return err
			}
			a.log.Info("watch stopped")
			return nil
		}),
	}
}

// newWatchDaemon wires the watch daemon from the configuration: tree follows origin.path
// with inotify; without it only triggers are pushed.
func (a *app) newWatchDaemon(ctx context.Context, d *db.DB, tree bool, reg prometheus.Registerer) (*watch.Daemon, error) {
	p, err := a.newPusher(ctx)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	return &watch.Daemon{
		DB:              d,
		Pusher:          p,
		Root:            a.cfg.Origin.Path,
		Settle:          a.cfg.Push.WatchSettle.Std(),
		Watch:           tree,
		Log:             a.log.With(slog.String("component", "watch")),
		Metrics:         watch.NewMetrics(reg),
		Host:            host,
		PID:             os.Getpid(),
		ShutdownTimeout: a.cfg.Cron.ShutdownTimeout.Std(),
	}, nil
}

// triggerHandler is POST /api/v1/push into dm's queue, with the tokens configured at the
// start (a reload applies on restart).
func (a *app) triggerHandler(dm *watch.Daemon) http.Handler {
	tokens := a.cfg.Server.AdminTokens
	return &watch.TriggerHandler{Root: a.cfg.Origin.Path, Tokens: func() []string { return tokens }, Queue: dm, Metrics: dm.Metrics}
}

// daemonRoutes are /healthz and /metrics, as cron serves them.
func (a *app) daemonRoutes(mux *http.ServeMux, d *db.DB, reg *prometheus.Registry) {
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		pctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if _, err := d.SchemaVersion(pctx); err != nil {
			http.Error(w, "database unreachable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
}
