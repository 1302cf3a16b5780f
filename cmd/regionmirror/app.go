package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/config"
	"github.com/regionmirror/regionmirror/internal/model"
)

// Exit statuses. Bad input (flags, arguments, config, unknown names, no or an unparsable
// database_url, a schema that does not match the binary) is 2, so scripts can tell it from
// a failed run; a dependency that cannot be reached (the database, S3) is a failure, 1.
const (
	exitOK       = 0
	exitFailure  = 1
	exitBadInput = 2
)

// defaultConfigPath is read when neither --config nor REGIONMIRROR_CONFIG names a file and
// it exists.
const defaultConfigPath = "/etc/regionmirror/regionmirror.yaml"

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// app is what every subcommand shares: the streams, the environment, and (once loaded)
// the configuration, logger and database. Nothing of it is global.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	environ        []string
	configPath     string
	// configFile is the file the configuration was read from ("" for none): a reload
	// (SIGHUP) reads it again.
	configFile   string
	configLoaded bool // loadConfig read it (demo builds its own)
	cfg          *config.Config
	log          *slog.Logger
	// level is the logger's level, which a reload changes in place.
	level slog.LevelVar
	db    *db.DB
}

// usageError is bad input found by the CLI itself.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// run executes one command line and returns the exit status; main is only its caller, so
// tests run the whole CLI in-process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, environ []string) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, environ: environ}
	defer a.close()
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	code := exitCode(err)
	if code == exitBadInput && !isRunError(err) {
		msg += fmt.Sprintf(" (see '%s --help')", cmd.CommandPath())
	}
	fmt.Fprintf(stderr, "regionmirror: %s\n", msg)
	return code
}

// runError marks errors returned from a command's action, as opposed to cobra's own
// parsing of flags and arguments.
type runError struct{ err error }

func (e *runError) Error() string { return e.err.Error() }
func (e *runError) Unwrap() error { return e.err }

func isRunError(err error) bool {
	var r *runError
	return errors.As(err, &r)
}

// exitCode maps an error to an exit status, in one place.
func exitCode(err error) int {
	var (
		ce  *config.Error
		dce *db.ConnectError
		se  *db.SchemaError
		ue  *usageError
	)
	switch {
	case err == nil:
		return exitOK
	case !isRunError(err): // cobra: unknown command or flag, wrong number of arguments
		return exitBadInput
	case errors.As(err, &dce):
		if badDatabaseURL(dce) {
			return exitBadInput
		}
		return exitFailure // an outage, not a typo: a scheduler retries it
	case model.IsValidation(err), errors.As(err, &ce), errors.As(err, &se),
		errors.As(err, &ue), errors.Is(err, db.ErrNotFound), errors.Is(err, db.ErrExists):
		return exitBadInput
	default:
		return exitFailure
	}
}

// badDatabaseURL tells a ConnectError that is the configuration's fault (no database_url,
// or one that does not parse) from a database that did not answer; db.Open names no host
// in the former.
func badDatabaseURL(e *db.ConnectError) bool {
	return strings.HasPrefix(e.Target, "(")
}

// action wraps a command's work so its errors are told apart from parse errors.
func action(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := fn(cmd, args); err != nil {
			return &runError{err}
		}
		return nil
	}
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "regionmirror",
		Short: "Mirror yum/dnf repositories into per-region buckets and send clients to the nearest copy",
		Long: `regionmirror copies a canonical tree (yum/dnf repositories, download trees) into one
bucket per region, verifies what each region holds, and answers yum/dnf metalinks and
browser downloads with the nearest region that has a verified copy.

Configuration comes from --config (or REGIONMIRROR_CONFIG, or ` + defaultConfigPath + `
when it exists) and REGIONMIRROR_* environment overrides; see 'regionmirror config keys'.`,
		Version:           buildVersion(),
		SilenceErrors:     true,
		SilenceUsage:      true,
		DisableAutoGenTag: true,
	}
	root.PersistentFlags().StringVarP(&a.configPath, "config", "c", "", "configuration file (default $REGIONMIRROR_CONFIG, else "+defaultConfigPath+" if present)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usagef("%v", err) })
	root.AddCommand(a.migrateCmd(), a.regionCmd(), a.repoCmd(), a.pushCmd(), a.gcCmd(), a.scanCmd(), a.statusCmd(),
		a.locateCmd(), a.statsCmd(), a.purgeCmd(), a.serveCmd(), a.fillCmd(), a.explainCmd(), a.cronCmd(), a.watchCmd(), a.demoCmd(), a.configCmd())
	return root
}

// loadConfig reads the configuration once; every command that needs it calls this.
func (a *app) loadConfig() (*config.Config, error) {
	if a.cfg != nil {
		return a.cfg, nil
	}
	path := a.configPath
	if path == "" {
		path = getenv(a.environ, config.EnvConfig)
	}
	if path == "" {
		if _, err := os.Stat(defaultConfigPath); err == nil {
			path = defaultConfigPath
		}
	}
	cfg, err := config.Load(path, a.environ)
	if err != nil {
		return nil, err
	}
	a.cfg, a.configFile, a.configLoaded = cfg, path, true
	a.log = a.newLevelLogger(cfg.Log)
	a.log.Debug("configuration loaded", slog.String("file", path), slog.String("database_url", config.RedactURL(cfg.DatabaseURL)))
	return cfg, nil
}

// newLevelLogger is the app's logger, whose level follows a.level (see reloadConfig).
func (a *app) newLevelLogger(c config.Log) *slog.Logger {
	_ = a.level.UnmarshalText([]byte(c.Level)) // validated with the config
	opts := &slog.HandlerOptions{Level: &a.level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(a.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(a.stderr, opts))
}

// reloadConfig reads the configuration again, from the file and the environment it was
// first read from, and applies the log level. The caller applies what else it can; on
// error nothing changes and the configuration in use stays.
func (a *app) reloadConfig() (*config.Config, error) {
	if !a.configLoaded {
		return a.cfg, nil // built in code (demo): nothing to read again
	}
	cfg, err := config.Load(a.configFile, a.environ)
	if err != nil {
		return nil, err
	}
	if cfg.Log.Format != a.cfg.Log.Format {
		a.log.Warn("reload: log.format takes effect on restart", slog.String("log.format", cfg.Log.Format))
	}
	_ = a.level.UnmarshalText([]byte(cfg.Log.Level))
	return cfg, nil
}

// holdHangups makes SIGHUP harmless from the start of a daemon until hangups takes it
// over: a reload while it connects must not end it.
func holdHangups() { signal.Ignore(syscall.SIGHUP) }

// hangups delivers SIGHUP (systemctl reload) to the daemon that calls it instead of
// letting it end the process; stop hands the signal back to its default.
func hangups() (ch <-chan os.Signal, stop func()) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGHUP)
	return c, func() { signal.Stop(c) }
}

func newLogger(w io.Writer, c config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated with the config
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// openDB loads the configuration and connects. Every command but migrate requires the
// schema to be exactly this binary's.
func (a *app) openDB(ctx context.Context, checkSchema bool) (*db.DB, error) {
	if a.db != nil {
		return a.db, nil
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	d, err := db.Open(ctx, cfg.DatabaseURL, a.log)
	if err != nil {
		return nil, err
	}
	if checkSchema {
		if err := d.CheckSchema(ctx); err != nil {
			d.Close()
			return nil, err
		}
	}
	a.db = d
	return d, nil
}

func (a *app) close() {
	if a.db != nil {
		a.db.Close()
	}
}

func getenv(environ []string, key string) string {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}
