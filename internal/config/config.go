package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"
)

// EnvPrefix starts every environment override; EnvConfig names the config file.
const (
	EnvPrefix = "REGIONMIRROR_"
	EnvConfig = "REGIONMIRROR_CONFIG"
)

// Config is the whole configuration. It is parsed once and passed down; nothing reads it
// from a global.
type Config struct {
	DatabaseURL string    `yaml:"database_url"`
	Origin      Origin    `yaml:"origin"`
	Server      Server    `yaml:"server"`
	Push        Push      `yaml:"push"`
	Scan        Scan      `yaml:"scan"`
	Metalink    Metalink  `yaml:"metalink"`
	OnDemand    OnDemand  `yaml:"ondemand"`
	Fill        Fill      `yaml:"fill"`
	Schedules   Schedules `yaml:"schedules"`
	Cron        Cron      `yaml:"cron"`
	Watch       Watch     `yaml:"watch"`
	Log         Log       `yaml:"log"`
}

// Origin is the canonical tree.
type Origin struct {
	Path string `yaml:"path"` // a local directory
	URL  string `yaml:"url"`  // where the origin is served; the clients' last resort
}

// Server configures `regionmirror serve`.
type Server struct {
	Listen         string   `yaml:"listen"`
	DownloadPrefix string   `yaml:"download_prefix"`
	TrustedProxies []string `yaml:"trusted_proxies"`
	GeoIPDatabase  string   `yaml:"geoip_database"`
	// TLSCert and TLSKey make serve terminate TLS itself; the files are reloaded when
	// they change (a renewal needs no restart).
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// SnapshotInterval rebuilds the snapshot even without a notification (a safety net).
	SnapshotInterval Duration `yaml:"snapshot_interval"`
	// ProbeInterval is how often serve checks that it can reach each region's public URL,
	// so that a dead region leaves answers within seconds (0 disables).
	ProbeInterval Duration `yaml:"probe_interval"`
	ProbeTimeout  Duration `yaml:"probe_timeout"`
	// FilesCache is where serve keeps its per-file data between starts ("" for nowhere):
	// starting from it takes a fraction of a second where reading the database takes
	// seconds at a million files.
	FilesCache string `yaml:"files_cache"`
	// PublicURL is where clients reach this service (https://mirrors.example.org): a
	// metalink lists an on-demand region by PublicURL + /r/<region>/, so that dnf asks
	// here for every file and a miss can be answered elsewhere. Without it, on-demand
	// regions are left out of metalinks and mirror lists (downloads still use them).
	PublicURL string `yaml:"public_url"`
	// AdminTokens are the hashes ("sha256:" + 64 hex digits, from `regionmirror config
	// hash-token`) of the bearer tokens the admin API accepts; empty disables it.
	AdminTokens []string `yaml:"admin_tokens"`
}

// OnDemand configures how servers answer for on-demand regions and when copies expire.
type OnDemand struct {
	// MaxWait is how long a request that missed an on-demand region waits for the copy to
	// be verified before it is answered elsewhere (0: never wait; at most 25s, since apt
	// gives up after 30s).
	MaxWait Duration `yaml:"max_wait"`
	// ExpireAfter removes an on-demand copy no client asked for in that long.
	ExpireAfter Duration `yaml:"expire_after"`
	// StaleAfter: a server whose per-file data is older than this (it cannot reach the
	// database) stops sending clients to on-demand copies, and gc and purge keep an
	// on-demand copy marked deleting at least this long before its object goes. It must
	// exceed server.snapshot_interval, which bounds a healthy server's data age.
	StaleAfter Duration `yaml:"stale_after"`
}

// Fill configures fill workers (`regionmirror fill`, and `cron` when Workers > 0).
type Fill struct {
	// Workers is the number of copies one process makes at once; for cron, 0 runs none.
	Workers int `yaml:"workers"`
	// Lease is how long a job is a worker's before another may take it over; a worker
	// extends it while its copy runs.
	Lease Duration `yaml:"lease"`
	// MaxAttempts: a job that failed that often is given up (until a later miss).
	MaxAttempts int `yaml:"max_attempts"`
	// RetryBackoff is the wait after the first failure, doubled after each (at most 10m).
	RetryBackoff Duration `yaml:"retry_backoff"`
	// PollInterval: workers look for jobs this often even without a notification.
	PollInterval Duration `yaml:"poll_interval"`
	// MultipartCopyThreshold: a server-side copy above it is made in parts
	// (UploadPartCopy) of CopyPartSize; S3 copies at most 5GiB in one CopyObject.
	MultipartCopyThreshold Size `yaml:"multipart_copy_threshold"`
	CopyPartSize           Size `yaml:"copy_part_size"`
}

// Push configures the pusher.
type Push struct {
	Concurrency        int      `yaml:"concurrency"`
	DeleteGrace        Duration `yaml:"delete_grace"`
	MultipartThreshold Size     `yaml:"multipart_threshold"`
	PartSize           Size     `yaml:"part_size"`
	HashWorkers        int      `yaml:"hash_workers"`
	// AnnounceDelay: a new repomd.xml is in the database this long before any region gets
	// it, so that servers list its hashes first.
	AnnounceDelay Duration `yaml:"announce_delay"`
	// Watch makes cron follow changes under origin.path and push them as they happen (as
	// `regionmirror watch` does).
	Watch bool `yaml:"watch"`
	// WatchSettle: a changed directory is pushed once its files have been quiet this long.
	WatchSettle Duration `yaml:"watch_settle"`
	// FullInventoryInterval: while a live watcher has seen every change, a scheduled push
	// walks the whole origin at most this often (otherwise on every push).
	FullInventoryInterval Duration `yaml:"full_inventory_interval"`
}

// Scan configures the scanner and health hysteresis.
type Scan struct {
	Concurrency int      `yaml:"concurrency"`
	DownAfter   int      `yaml:"down_after"` // consecutive failed probes before a region is down
	UpAfter     int      `yaml:"up_after"`   // consecutive good probes before it is up again
	Timeout     Duration `yaml:"timeout"`
}

// Metalink configures metalink answers.
type Metalink struct {
	AlternatesMaxAge Duration `yaml:"alternates_max_age"`
}

// Schedules are the cron specs of `regionmirror cron`; an empty spec disables the job.
type Schedules struct {
	Push string `yaml:"push"`
	Scan string `yaml:"scan"`
	GC   string `yaml:"gc"`
}

// Cron configures the `regionmirror cron` daemon.
type Cron struct {
	Listen          string   `yaml:"listen"`           // /healthz and /metrics; "" disables
	ShutdownTimeout Duration `yaml:"shutdown_timeout"` // how long running jobs may finish after SIGTERM
}

// Watch configures the `regionmirror watch` daemon.
type Watch struct {
	// Listen serves /healthz, /metrics and POST /api/v1/push; "" disables.
	Listen string `yaml:"listen"`
}

// Log configures log/slog.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
	// Access logs every request serve answers (server errors are logged either way);
	// serve --access-log overrides it.
	Access bool `yaml:"access"`
	// AccessBuffer bounds the memory of request records waiting to be written.
	AccessBuffer Size `yaml:"access_buffer"`
	// AccessWhenFull is what a request does when its record does not fit: drop (counted
	// in regionmirror_access_log_dropped_total) or wait for the writer.
	AccessWhenFull string `yaml:"access_when_full"`
}

// Default returns the configuration used when a key is not set anywhere.
func Default() Config {
	return Config{
		Server: Server{
			Listen:           "127.0.0.1:8080",
			DownloadPrefix:   "/pub",
			TrustedProxies:   []string{},
			SnapshotInterval: Duration(time.Minute),
			ProbeInterval:    Duration(time.Second),
			// A fresh TLS connection to the far side of the earth takes three round trips of
			// ~300 ms: a shorter timeout would call distant regions unreachable.
			ProbeTimeout: Duration(3 * time.Second),
		},
		Push: Push{
			Concurrency:        16,
			DeleteGrace:        Duration(96 * time.Hour),
			MultipartThreshold: 64 << 20,
			PartSize:           16 << 20,
			HashWorkers:        4,
			// Covers a server's rebuild after NOTIFY (250 ms debounce and the load) with a
			// wide margin.
			AnnounceDelay:         Duration(3 * time.Second),
			WatchSettle:           Duration(2 * time.Second),
			FullInventoryInterval: Duration(6 * time.Hour),
		},
		Scan:     Scan{Concurrency: 8, DownAfter: 3, UpAfter: 2, Timeout: Duration(30 * time.Second)},
		Metalink: Metalink{AlternatesMaxAge: Duration(72 * time.Hour)},
		OnDemand: OnDemand{ExpireAfter: Duration(14 * 24 * time.Hour), StaleAfter: Duration(2 * time.Minute)},
		Fill: Fill{Lease: Duration(2 * time.Minute), MaxAttempts: 5, RetryBackoff: Duration(10 * time.Second),
			PollInterval: Duration(5 * time.Second), MultipartCopyThreshold: 5 << 30, CopyPartSize: 512 << 20},
		Schedules: Schedules{Push: "*/15 * * * *", Scan: "@hourly", GC: "@daily"},
		Cron:      Cron{Listen: "127.0.0.1:9101", ShutdownTimeout: Duration(5 * time.Minute)},
		Watch:     Watch{Listen: "127.0.0.1:9102"},
		Log:       Log{Level: "info", Format: "text", Access: true, AccessBuffer: 4 << 20, AccessWhenFull: "drop"},
	}
}

// Error is a configuration problem; the CLI maps it to exit status 2.
type Error struct {
	Key    string // the YAML key path (server.listen) or the environment variable
	Value  string
	Reason string
}

func (e *Error) Error() string {
	if e.Key == "" {
		return "config: " + e.Reason
	}
	return fmt.Sprintf("config: %s = %q: %s", e.Key, e.Value, e.Reason)
}

// Load reads the file at path ("" means: no file, defaults only), applies environment
// overrides from environ (os.Environ form) and validates the result.
func Load(path string, environ []string) (*Config, error) {
	cfg := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, &Error{Reason: fmt.Sprintf("config file %s does not exist", path)}
			}
			return nil, &Error{Reason: fmt.Sprintf("read %s: %v", path, errors.Unwrap(err))}
		}
		if err := decodeYAML(data, &cfg); err != nil {
			return nil, &Error{Reason: fmt.Sprintf("%s: %v", path, err)}
		}
	}
	if err := applyEnv(&cfg, environ); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func decodeYAML(data []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true) // a misspelt key is an error, not a silent default
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// Validate checks every key and names the first bad one.
func (c *Config) Validate() error {
	if c.DatabaseURL != "" {
		if err := CheckDatabaseURL(c.DatabaseURL); err != nil {
			return &Error{Key: "database_url", Value: RedactURL(c.DatabaseURL), Reason: err.Error()}
		}
	}
	if c.Origin.Path != "" && !strings.HasPrefix(c.Origin.Path, "/") {
		return &Error{Key: "origin.path", Value: c.Origin.Path, Reason: "must be an absolute path"}
	}
	if c.Origin.URL != "" {
		if err := checkHTTPURL(c.Origin.URL); err != nil {
			return &Error{Key: "origin.url", Value: RedactURL(c.Origin.URL), Reason: err.Error()}
		}
	}
	if !isListenAddr(c.Server.Listen) {
		return &Error{Key: "server.listen", Value: c.Server.Listen, Reason: "must be HOST:PORT with an IP address, or :PORT"}
	}
	if c.Cron.Listen != "" && !isListenAddr(c.Cron.Listen) {
		return &Error{Key: "cron.listen", Value: c.Cron.Listen, Reason: "must be HOST:PORT with an IP address, :PORT, or empty to disable"}
	}
	if c.Watch.Listen != "" && !isListenAddr(c.Watch.Listen) {
		return &Error{Key: "watch.listen", Value: c.Watch.Listen, Reason: "must be HOST:PORT with an IP address, :PORT, or empty to disable"}
	}
	if c.Cron.ShutdownTimeout <= 0 {
		return &Error{Key: "cron.shutdown_timeout", Value: c.Cron.ShutdownTimeout.String(), Reason: "must be positive"}
	}
	p := c.Server.DownloadPrefix
	if !strings.HasPrefix(p, "/") || p == "/" || strings.HasSuffix(p, "/") || strings.Contains(p, "..") ||
		strings.ContainsAny(p, "?#% ") || strings.Contains(p, "//") {
		return &Error{Key: "server.download_prefix", Value: p, Reason: "must be a path such as /pub (leading slash, no trailing slash)"}
	}
	switch p {
	case "/metalink", "/mirrorlist", "/api", "/healthz", "/readyz", "/metrics", "/static":
		return &Error{Key: "server.download_prefix", Value: p, Reason: "collides with a built-in endpoint"}
	}
	if (c.Server.TLSCert == "") != (c.Server.TLSKey == "") {
		return &Error{Key: "server.tls_cert", Value: c.Server.TLSCert, Reason: "give both server.tls_cert and server.tls_key, or neither"}
	}
	for _, tp := range c.Server.TrustedProxies {
		if _, err := ParseTrustedProxy(tp); err != nil {
			return &Error{Key: "server.trusted_proxies", Value: tp, Reason: err.Error()}
		}
	}
	if c.Server.SnapshotInterval < Duration(time.Second) {
		return &Error{Key: "server.snapshot_interval", Value: c.Server.SnapshotInterval.String(), Reason: "must be at least 1s"}
	}
	if pi := c.Server.ProbeInterval; pi != 0 {
		if pi < Duration(100*time.Millisecond) {
			return &Error{Key: "server.probe_interval", Value: pi.String(), Reason: "must be 0 (disabled) or at least 100ms"}
		}
		if pt := c.Server.ProbeTimeout; pt <= 0 || pt > Duration(time.Minute) {
			return &Error{Key: "server.probe_timeout", Value: pt.String(), Reason: "must be positive and at most 1m"}
		}
	}
	if c.Push.Concurrency < 1 || c.Push.Concurrency > 1024 {
		return &Error{Key: "push.concurrency", Value: fmt.Sprint(c.Push.Concurrency), Reason: "must be between 1 and 1024"}
	}
	if c.Push.HashWorkers < 1 || c.Push.HashWorkers > 256 {
		return &Error{Key: "push.hash_workers", Value: fmt.Sprint(c.Push.HashWorkers), Reason: "must be between 1 and 256"}
	}
	if c.Push.AnnounceDelay < 0 {
		return &Error{Key: "push.announce_delay", Value: c.Push.AnnounceDelay.String(), Reason: "must not be negative"}
	}
	if s := c.Push.WatchSettle.Std(); s < 10*time.Millisecond || s > 10*time.Minute {
		return &Error{Key: "push.watch_settle", Value: c.Push.WatchSettle.String(), Reason: "must be between 10ms and 10m"}
	}
	if c.Push.FullInventoryInterval.Std() < time.Minute {
		return &Error{Key: "push.full_inventory_interval", Value: c.Push.FullInventoryInterval.String(), Reason: "must be at least 1m"}
	}
	// S3 limits: parts of 5 MiB to 5 GiB.
	if c.Push.PartSize < 5<<20 || c.Push.PartSize > 5<<30 {
		return &Error{Key: "push.part_size", Value: c.Push.PartSize.String(), Reason: "must be between 5MiB and 5GiB (S3's part limits)"}
	}
	if c.Push.MultipartThreshold < c.Push.PartSize {
		return &Error{Key: "push.multipart_threshold", Value: c.Push.MultipartThreshold.String(), Reason: "must be at least push.part_size"}
	}
	if c.Metalink.AlternatesMaxAge < 0 {
		return &Error{Key: "metalink.alternates_max_age", Value: c.Metalink.AlternatesMaxAge.String(), Reason: "must not be negative"}
	}
	// Deleting sooner would remove files that an alternate repomd.xml still names.
	if c.Push.DeleteGrace <= c.Metalink.AlternatesMaxAge {
		return &Error{Key: "push.delete_grace", Value: c.Push.DeleteGrace.String(),
			Reason: fmt.Sprintf("must be longer than metalink.alternates_max_age (%s)", c.Metalink.AlternatesMaxAge)}
	}
	if c.Server.PublicURL != "" {
		if err := checkHTTPURL(c.Server.PublicURL); err != nil {
			return &Error{Key: "server.public_url", Value: RedactURL(c.Server.PublicURL), Reason: err.Error()}
		}
		if strings.HasSuffix(c.Server.PublicURL, "/") {
			return &Error{Key: "server.public_url", Value: c.Server.PublicURL, Reason: "must not end in /"}
		}
	}
	for _, h := range c.Server.AdminTokens {
		if !IsTokenHash(h) {
			return &Error{Key: "server.admin_tokens", Value: "(hidden)", Reason: "each must be \"sha256:\" and 64 hex digits, from `regionmirror config hash-token`; never the token itself"}
		}
	}
	if mw := c.OnDemand.MaxWait; mw < 0 || mw > Duration(25*time.Second) {
		return &Error{Key: "ondemand.max_wait", Value: mw.String(), Reason: "must be between 0 and 25s (apt gives up after 30s)"}
	}
	// A healthy server rereads its data every snapshot_interval (plus the read's time): a
	// bound near that would make it distrust data only waiting for its next read.
	if sa := c.OnDemand.StaleAfter; sa < 2*c.Server.SnapshotInterval {
		return &Error{Key: "ondemand.stale_after", Value: sa.String(), Reason: fmt.Sprintf("must be at least twice server.snapshot_interval (%s)", c.Server.SnapshotInterval)}
	}
	if c.OnDemand.ExpireAfter < Duration(time.Minute) {
		return &Error{Key: "ondemand.expire_after", Value: c.OnDemand.ExpireAfter.String(), Reason: "must be at least 1m"}
	}
	if c.Fill.Workers < 0 || c.Fill.Workers > 1024 {
		return &Error{Key: "fill.workers", Value: fmt.Sprint(c.Fill.Workers), Reason: "must be between 0 and 1024"}
	}
	if c.Fill.Lease < Duration(time.Second) {
		return &Error{Key: "fill.lease", Value: c.Fill.Lease.String(), Reason: "must be at least 1s"}
	}
	if c.Fill.MaxAttempts < 1 {
		return &Error{Key: "fill.max_attempts", Value: fmt.Sprint(c.Fill.MaxAttempts), Reason: "must be at least 1"}
	}
	if c.Fill.RetryBackoff <= 0 {
		return &Error{Key: "fill.retry_backoff", Value: c.Fill.RetryBackoff.String(), Reason: "must be positive"}
	}
	if c.Fill.PollInterval < Duration(100*time.Millisecond) {
		return &Error{Key: "fill.poll_interval", Value: c.Fill.PollInterval.String(), Reason: "must be at least 100ms"}
	}
	if c.Fill.CopyPartSize < 5<<20 || c.Fill.CopyPartSize > 5<<30 {
		return &Error{Key: "fill.copy_part_size", Value: c.Fill.CopyPartSize.String(), Reason: "must be between 5MiB and 5GiB (S3's part limits)"}
	}
	if t := c.Fill.MultipartCopyThreshold; t < c.Fill.CopyPartSize || t > 5<<30 {
		return &Error{Key: "fill.multipart_copy_threshold", Value: t.String(), Reason: "must be at least fill.copy_part_size and at most 5GiB (S3's CopyObject limit)"}
	}
	if c.Scan.Concurrency < 1 || c.Scan.Concurrency > 1024 {
		return &Error{Key: "scan.concurrency", Value: fmt.Sprint(c.Scan.Concurrency), Reason: "must be between 1 and 1024"}
	}
	if c.Scan.DownAfter < 1 {
		return &Error{Key: "scan.down_after", Value: fmt.Sprint(c.Scan.DownAfter), Reason: "must be at least 1"}
	}
	if c.Scan.UpAfter < 1 {
		return &Error{Key: "scan.up_after", Value: fmt.Sprint(c.Scan.UpAfter), Reason: "must be at least 1"}
	}
	if c.Scan.Timeout <= 0 {
		return &Error{Key: "scan.timeout", Value: c.Scan.Timeout.String(), Reason: "must be positive"}
	}
	for key, spec := range map[string]string{"schedules.push": c.Schedules.Push, "schedules.scan": c.Schedules.Scan, "schedules.gc": c.Schedules.GC} {
		if spec == "" {
			continue
		}
		if _, err := cron.ParseStandard(spec); err != nil {
			return &Error{Key: key, Value: spec, Reason: err.Error()}
		}
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		return &Error{Key: "log.level", Value: c.Log.Level, Reason: "must be debug, info, warn or error"}
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		return &Error{Key: "log.format", Value: c.Log.Format, Reason: "must be text or json"}
	}
	if c.Log.AccessBuffer < 64<<10 || c.Log.AccessBuffer > 1<<30 {
		return &Error{Key: "log.access_buffer", Value: c.Log.AccessBuffer.String(), Reason: "must be between 64KiB and 1GiB"}
	}
	if c.Log.AccessWhenFull != "drop" && c.Log.AccessWhenFull != "wait" {
		return &Error{Key: "log.access_when_full", Value: c.Log.AccessWhenFull, Reason: "must be drop or wait"}
	}
	return nil
}

func isListenAddr(s string) bool {
	if _, err := netip.ParseAddrPort(s); err == nil {
		return true
	}
	return strings.HasPrefix(s, ":") && isPort(s[1:])
}

func isPort(s string) bool {
	var n int
	_, err := fmt.Sscanf(s, "%d", &n)
	return err == nil && fmt.Sprint(n) == s && n >= 0 && n <= 65535
}

func checkHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("must be an http:// or https:// URL")
	}
	if u.Host == "" {
		return errors.New("has no host")
	}
	if u.User != nil {
		return errors.New("must not contain credentials")
	}
	return nil
}

// ParseTrustedProxy accepts an address or a CIDR.
func ParseTrustedProxy(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		if p.Masked() != p {
			return netip.Prefix{}, fmt.Errorf("has host bits set (did you mean %s?)", p.Masked())
		}
		return p, nil
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return netip.Prefix{}, errors.New("not an IP address or CIDR")
}

// TrustedProxyPrefixes returns the parsed trusted proxies (Validate has checked them).
func (c *Config) TrustedProxyPrefixes() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(c.Server.TrustedProxies))
	for _, s := range c.Server.TrustedProxies {
		if p, err := ParseTrustedProxy(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}
