package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/config"
	"github.com/regionmirror/regionmirror/internal/localpg"
	"github.com/regionmirror/regionmirror/internal/model"
)

// demoRegions are three file regions on three continents, and an on-demand one beside
// the first: it is pushed the metadata only, and copies a package the first time a client
// there asks for it.
var demoRegions = []struct {
	name, country string
	lat, lon      float64
	aliases       []string
	fill          string
}{
	{"eu-central-1", "DE", 50.11, 8.68, []string{"frankfurt"}, model.FillPush},
	{"us-east-1", "US", 38.9, -77.4, []string{"virginia"}, model.FillPush},
	{"ap-southeast-2", "AU", -33.87, 151.21, []string{"sydney"}, model.FillPush},
	{"eu-west-1", "IE", 53.35, -6.26, []string{"dublin"}, model.FillOnDemand},
}

func (a *app) demoCmd() *cobra.Command {
	var (
		dir, origin, listen, regionsListen, geoipDB string
		reset                                       bool
		fillWorkers                                 int
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run everything on embedded defaults: a private PostgreSQL, three local regions, a sample repository",
		Long: `Start a private PostgreSQL (the system's binaries) in --dir, migrate, create three file
regions (Germany, the United States, Australia) under --dir served on --regions-listen,
register the sample repository, push, scan, and serve on --listen. It prints URLs to try and
a dnf .repo snippet. Ctrl-C stops everything; a second run reuses the state in --dir
(--reset starts afresh). Nothing outside --dir is written.`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			if fillWorkers < 0 {
				return usagef("demo: --fill-workers %d: must be 0 or more", fillWorkers)
			}
			return a.demo(cmd.Context(), dir, origin, listen, regionsListen, geoipDB, reset, fillWorkers)
		}),
	}
	cmd.Flags().StringVar(&dir, "dir", "regionmirror-demo", "where the demo keeps its database and regions")
	cmd.Flags().StringVar(&origin, "origin", "testdata/origin", "the origin tree to mirror (the sample from the source tree by default)")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address of the regionmirror server")
	cmd.Flags().StringVar(&regionsListen, "regions-listen", "127.0.0.1:8081", "address serving the regions' directories (what a bucket's public URL would be)")
	cmd.Flags().StringVar(&geoipDB, "geoip", "testdata/geoip/regionmirror-test-city.mmdb", "GeoIP City database (\"\" for none); the test database places 127.0.0.1 in Frankfurt")
	cmd.Flags().BoolVar(&reset, "reset", false, "remove the demo's previous state in --dir first")
	cmd.Flags().IntVar(&fillWorkers, "fill-workers", 2, "fill workers for the on-demand region (0: none, e.g. to run `regionmirror fill` yourself)")
	return cmd
}

func (a *app) demo(ctx context.Context, dir, origin, listen, regionsListen, geoipDB string, reset bool, fillWorkers int) error {
	out := a.stdout
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if origin, err = filepath.Abs(origin); err != nil {
		return err
	}
	if st, err := os.Stat(origin); err != nil || !st.IsDir() {
		return usagef("demo: origin %s is not a directory: run from the source tree, or pass --origin", origin)
	}
	if _, err := localpg.BinDir(); err != nil {
		return usagef("demo: %v", err)
	}
	if geoipDB != "" {
		// Absolute: the configuration file it goes into is read from other directories.
		if geoipDB, err = filepath.Abs(geoipDB); err != nil {
			return err
		}
		if _, err := os.Stat(geoipDB); err != nil {
			return usagef("demo: GeoIP database %s not found: pass --geoip \"\" to run without", geoipDB)
		}
	}
	if reset {
		// Only what the demo itself made.
		for _, sub := range []string{"pg", "regions"} {
			if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
				return err
			}
		}
	}
	// Bind both addresses before anything starts, so a busy port fails fast.
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return usagef("demo: listen on %s: %v (pass --listen)", listen, err)
	}
	defer ln.Close()
	rln, err := net.Listen("tcp", regionsListen)
	if err != nil {
		return usagef("demo: listen on %s: %v (pass --regions-listen)", regionsListen, err)
	}
	defer rln.Close()

	fmt.Fprintf(out, "demo: starting PostgreSQL in %s\n", filepath.Join(dir, "pg"))
	pg, err := localpg.Start(filepath.Join(dir, "pg"))
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer pg.Stop()
	if err := createDatabase(ctx, pg, "regionmirror"); err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	cfg := config.Default()
	cfg.DatabaseURL = pg.URL("regionmirror")
	cfg.Origin.Path = origin
	cfg.Origin.URL = "http://" + rln.Addr().String() + "/origin"
	cfg.Server.GeoIPDatabase = geoipDB
	cfg.Server.SnapshotInterval = config.Duration(10 * time.Second)
	cfg.Server.FilesCache = filepath.Join(dir, "files.cache")
	// Metalinks list the on-demand region through this server (/r/eu-west-1/).
	cfg.Server.PublicURL = "http://" + ln.Addr().String()
	cfg.Server.Listen = ln.Addr().String()
	cfg.Log.Level = "warn"
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfgFile := filepath.Join(dir, "regionmirror.yaml")
	if err := writeDemoConfig(cfgFile, cfg); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("demo: the path of this binary: %w", err)
	}
	a.cfg, a.log = &cfg, newLogger(a.stderr, cfg.Log)
	d, err := a.openDB(ctx, false)
	if err != nil {
		return err
	}
	if _, err := d.Migrate(ctx); err != nil {
		return err
	}

	regionsDir := filepath.Join(dir, "regions")
	base := "http://" + rln.Addr().String()
	var regions []*model.Region
	for _, dr := range demoRegions {
		r, err := d.GetRegion(ctx, dr.name)
		if errors.Is(err, db.ErrNotFound) {
			lat, lon := dr.lat, dr.lon
			r = &model.Region{Name: dr.name, Kind: model.KindFile, Dir: filepath.Join(regionsDir, dr.name),
				PublicURL: base + "/" + dr.name, Country: dr.country, Latitude: &lat, Longitude: &lon,
				Aliases: dr.aliases, Weight: model.DefaultWeight, Enabled: true, Fill: dr.fill}
			if err := r.Normalize(); err != nil {
				return err
			}
			err = d.CreateRegion(ctx, r)
		}
		if err != nil {
			return err
		}
		// A reused demo may have been started on other ports.
		if r.PublicURL != base+"/"+dr.name {
			if r, _, err = d.UpdateRegion(ctx, dr.name, func(r *model.Region) error {
				r.PublicURL = base + "/" + dr.name
				return r.Normalize()
			}); err != nil {
				return err
			}
		}
		regions = append(regions, r)
	}
	repo := &model.Repository{Name: "demo-1", Arch: "x86_64", Directory: "demo/1/x86_64/os"}
	if err := d.CreateRepository(ctx, repo); err != nil && !errors.Is(err, db.ErrExists) {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("/origin/", http.StripPrefix("/origin", http.FileServer(http.Dir(origin))))
	mux.Handle("/", http.FileServer(http.Dir(regionsDir)))
	rsrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go rsrv.Serve(rln)
	defer rsrv.Close()

	fmt.Fprintln(out, "demo: pushing the sample repository to four regions (eu-west-1 fills on demand: only its metadata)")
	p, err := a.newPusher(ctx)
	if err != nil {
		return err
	}
	res, err := p.Push(ctx, regions)
	if err != nil {
		return err
	}
	printPushSummary(a, res)
	fmt.Fprintln(out, "demo: scanning")
	reports, err := a.newScanner(d, true).Scan(ctx, regions) // small files: check every byte
	if err != nil {
		return err
	}
	printScan(a, reports)
	if res.Failed() {
		return fmt.Errorf("demo: push %w in %s", errRunFailed, failedRegions(res))
	}

	// The copies eu-west-1's clients miss are made in this process, as `regionmirror fill`
	// would make them.
	fillCtx, stopFill := context.WithCancel(ctx)
	defer stopFill()
	if fillWorkers > 0 {
		w := a.newFillWorker(d, nil)
		w.Config.Workers = fillWorkers
		go func() {
			if _, err := w.Run(fillCtx, false); err != nil && fillCtx.Err() == nil {
				a.log.Error("demo: fill workers stopped", slog.Any("err", err))
			}
		}()
	}

	url := "http://" + ln.Addr().String()
	pkg := repo.Directory + "/Packages/hello-1.0-1.noarch.rpm"
	return a.serve(ctx, d, ln, false, func() {
		fmt.Fprint(out, demoGuide(url, dir, shellQuote(self), cfgFile,
			cfg.Server.DownloadPrefix+"/"+model.EscapePath(pkg), pkg))
	})
}

// demoPrompt starts every command line the demo prints: one command per line, no
// continuation lines, so a test (and a reader) can copy each one as it is.
const demoPrompt = "  $ "

// demoGuide is what the demo prints once it serves: commands to try from another shell,
// each after demoPrompt, the CLI ones (bin, quoted, with --config cfgFile) on the demo's
// database. dl is the download URL's path of pkg, a path relative to the origin.
func demoGuide(url, dir, bin, cfgFile, dl, pkg string) string {
	cli := bin + " --config " + shellQuote(cfgFile)
	return fmt.Sprintf(`
regionmirror demo is serving on %[1]s (Ctrl-C stops it; state stays in %[2]s)
Its configuration is %[2]s/regionmirror.yaml: the commands below work from another shell.

  # a metalink (GeoIP puts 127.0.0.1 in Frankfurt), and one for a client in Virginia
  $ curl -f '%[1]s/metalink?repo=demo-1&arch=x86_64'
  $ curl -f '%[1]s/metalink?repo=demo-1&arch=x86_64&location=us-east-1'
  # dnf counts each machine once a week (countme=1..4): see stats below after the next flush
  $ curl -f '%[1]s/metalink?repo=demo-1&arch=x86_64&countme=1'
  # a mirror list
  $ curl -f '%[1]s/mirrorlist?repo=demo-1&arch=x86_64&location=sydney'
  # a download, as a browser gets it
  $ curl -fI '%[1]s%[4]s'
  # the same from the on-demand region (Dublin): the first answer is another region's
  # copy and queues one for eu-west-1; ask again
  $ curl -fI '%[1]s%[4]s?location=eu-west-1'
  # the same file for download managers (a metalink with every copy)
  $ aria2c --allow-overwrite=true '%[1]s%[4]s.meta4'
  # usage statistics (countme and requests per region), as JSON
  $ curl -f '%[1]s/api/v1/stats'

  # the CLI on the demo's database (or: export REGIONMIRROR_CONFIG=%[6]s)
  $ %[3]s status
  $ %[3]s explain --repo demo-1 --arch x86_64 --ip 127.0.0.1
  $ %[3]s locate %[5]s
  $ %[3]s region list
  $ %[3]s stats
  $ %[3]s scan
  $ %[3]s push --dry-run

  # in a browser
  dashboard:                 %[1]s/
  where that file is:        %[1]s%[4]s?mirrorlist
  readiness and metrics:     %[1]s/readyz  %[1]s/metrics

A dnf repository file (/etc/yum.repos.d/regionmirror-demo.repo):

[regionmirror-demo]
name=regionmirror demo
metalink=%[1]s/metalink?repo=demo-$releasever&arch=$basearch&location=$location
enabled=1
gpgcheck=0
skip_if_unavailable=False

`, url, dir, cli, dl, shellQuote(pkg), shellQuote(cfgFile))
}

// writeDemoConfig writes the demo's configuration where the other commands read it
// (--config, REGIONMIRROR_CONFIG). 0600 whatever was there before: it holds the database
// URL, which a private PostgreSQL's has no password in, but a reused --dir may be shared.
func writeDemoConfig(path string, cfg config.Config) error {
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	b = append([]byte("# Written by `regionmirror demo` at each start: the demo's private PostgreSQL, origin\n"+
		"# and server. Use it with --config "+path+" while the demo runs.\n"), b...)
	tmp, err := os.CreateTemp(filepath.Dir(path), ".regionmirror.yaml.*") // 0600
	if err != nil {
		return fmt.Errorf("write the configuration: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write the configuration: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write the configuration: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write the configuration: %w", err)
	}
	return nil
}

// shellQuote makes s one word for sh: as it is when it holds only safe characters, else
// in single quotes.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// createDatabase creates a database unless it exists.
func createDatabase(ctx context.Context, pg *localpg.Postgres, name string) error {
	conn, err := pgx.Connect(ctx, pg.AdminURL())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return err
}
