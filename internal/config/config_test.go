package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "regionmirror.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsValidate(t *testing.T) {
	cfg, err := Load("", nil)
	if err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if cfg.Push.Concurrency != 16 || cfg.Push.DeleteGrace.Std() != 96*time.Hour || cfg.Server.DownloadPrefix != "/pub" {
		t.Errorf("unexpected defaults: %+v", cfg)
	}
	// Probing may be disabled, and its timeout then does not matter.
	if _, err := Load(writeFile(t, "server:\n  probe_interval: 0s\n  probe_timeout: 0s\n"), nil); err != nil {
		t.Errorf("probe_interval 0 refused: %v", err)
	}
}

func TestLoadFileAndEnv(t *testing.T) {
	p := writeFile(t, `
database_url: postgres://rm:s3cret@db.example:5432/regionmirror
origin:
  path: /srv/pub
  url: https://dl.example.org/pub
server:
  listen: "[::1]:9090"
  trusted_proxies: [10.0.0.0/8, 192.0.2.1]
push:
  concurrency: 4
  delete_grace: 4d
  multipart_threshold: 128MiB
metalink:
  alternates_max_age: 48h
schedules:
  push: "@every 5m"
`)
	env := []string{
		"REGIONMIRROR_PUSH_CONCURRENCY=32",
		"REGIONMIRROR_PUSH_WATCH=true",
		"REGIONMIRROR_SERVER_TRUSTED_PROXIES=10.0.0.0/8, 172.16.0.0/12",
		"REGIONMIRROR_CONFIG=" + p, // names the file; not a key
		"HOME=/root",
	}
	cfg, err := Load(p, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Push.Concurrency != 32 {
		t.Errorf("env override: concurrency = %d, want 32", cfg.Push.Concurrency)
	}
	if !cfg.Push.Watch {
		t.Error("env override: push.watch not set")
	}
	if got := cfg.Server.TrustedProxies; len(got) != 2 || got[1] != "172.16.0.0/12" {
		t.Errorf("trusted proxies = %q", got)
	}
	if cfg.Push.DeleteGrace.Std() != 96*time.Hour || cfg.Push.MultipartThreshold != 128<<20 {
		t.Errorf("delete_grace %v multipart %v", cfg.Push.DeleteGrace, cfg.Push.MultipartThreshold)
	}
	if cfg.Server.Listen != "[::1]:9090" || cfg.Origin.Path != "/srv/pub" {
		t.Errorf("file values lost: %+v", cfg.Server)
	}
	// Keys the file does not set keep their defaults.
	if cfg.Scan.DownAfter != 3 || cfg.Schedules.Scan != "@hourly" {
		t.Errorf("defaults lost: %+v %+v", cfg.Scan, cfg.Schedules)
	}
	if n := len(cfg.TrustedProxyPrefixes()); n != 2 {
		t.Errorf("TrustedProxyPrefixes: %d", n)
	}
}

func TestLoadRejects(t *testing.T) {
	tests := []struct {
		name, yaml string
		env        []string
		key        string // the key the error must name
	}{
		{"unknown key", "serevr:\n  listen: :80\n", nil, ""},
		{"bad listen", "server:\n  listen: localhost\n", nil, "server.listen"},
		{"hostname listen", "server:\n  listen: example.org:80\n", nil, "server.listen"},
		{"prefix without slash", "server:\n  download_prefix: pub\n", nil, "server.download_prefix"},
		{"prefix with trailing slash", "server:\n  download_prefix: /pub/\n", nil, "server.download_prefix"},
		{"prefix colliding", "server:\n  download_prefix: /metalink\n", nil, "server.download_prefix"},
		{"bad proxy", "server:\n  trusted_proxies: [banana]\n", nil, "server.trusted_proxies"},
		{"proxy with host bits", "server:\n  trusted_proxies: [10.1.0.0/8]\n", nil, "server.trusted_proxies"},
		{"relative origin", "origin:\n  path: srv/pub\n", nil, "origin.path"},
		{"ftp origin url", "origin:\n  url: ftp://x/pub\n", nil, "origin.url"},
		{"zero concurrency", "push:\n  concurrency: 0\n", nil, "push.concurrency"},
		{"bad duration", "push:\n  delete_grace: soon\n", nil, ""},
		{"grace shorter than alternates", "push:\n  delete_grace: 1h\n", nil, "push.delete_grace"},
		{"tiny part size", "push:\n  part_size: 1MiB\n", nil, "push.part_size"},
		{"threshold below part size", "push:\n  multipart_threshold: 8MiB\n  part_size: 16MiB\n", nil, "push.multipart_threshold"},
		{"bad cron spec", "schedules:\n  push: every now and then\n", nil, "schedules.push"},
		{"bad log level", "log:\n  level: loud\n", nil, "log.level"},
		{"tiny access buffer", "log:\n  access_buffer: 1KiB\n", nil, "log.access_buffer"},
		{"bad when full", "log:\n  access_when_full: block\n", nil, "log.access_when_full"},
		{"bad db url", "database_url: mysql://x\n", nil, "database_url"},
		{"not yaml", "server: [\n", nil, ""},
		{"wrong type", "push:\n  concurrency: many\n", nil, ""},
		{"unknown env", "", []string{"REGIONMIRROR_PUSH_CONCURENCY=3"}, "REGIONMIRROR_PUSH_CONCURENCY"},
		{"bad env int", "", []string{"REGIONMIRROR_PUSH_CONCURRENCY=lots"}, "REGIONMIRROR_PUSH_CONCURRENCY"},
		{"bad env bool", "", []string{"REGIONMIRROR_PUSH_WATCH=maybe"}, "REGIONMIRROR_PUSH_WATCH"},
		{"bad env duration", "", []string{"REGIONMIRROR_PUSH_DELETE_GRACE=3 days"}, "REGIONMIRROR_PUSH_DELETE_GRACE"},
		{"bad env size", "", []string{"REGIONMIRROR_PUSH_PART_SIZE=-5"}, "REGIONMIRROR_PUSH_PART_SIZE"},
		{"env breaks validation", "", []string{"REGIONMIRROR_SCAN_DOWN_AFTER=0"}, "scan.down_after"},
		{"probe interval too short", "server:\n  probe_interval: 10ms\n", nil, "server.probe_interval"},
		{"negative probe interval", "server:\n  probe_interval: -1s\n", nil, "server.probe_interval"},
		{"probe timeout above a minute", "server:\n  probe_timeout: 2m\n", nil, "server.probe_timeout"},
		{"zero probe timeout", "server:\n  probe_timeout: 0s\n", nil, "server.probe_timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeFile(t, tc.yaml), tc.env)
			if err == nil {
				t.Fatal("Load accepted a broken config")
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is %T, want *config.Error", err, err)
			}
			if ce.Key != tc.key {
				t.Errorf("error names key %q, want %q: %v", ce.Key, tc.key, err)
			}
			if tc.key == "" && !strings.Contains(err.Error(), "regionmirror.yaml") {
				t.Errorf("file error does not name the file: %v", err)
			}
		})
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load("/nonexistent/regionmirror.yaml", nil)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/regionmirror.yaml does not exist") {
		t.Fatalf("Load(missing) = %v", err)
	}
}

func TestRedaction(t *testing.T) {
	for _, tc := range []struct{ in, secret string }{
		{"postgres://rm:hunter2@db:5432/rm", "hunter2"},
		{"postgres://db/rm?password=hunter2&sslmode=require", "hunter2"},
		{"host=db user=rm password=hunter2 dbname=rm", "hunter2"},
		{"host=db password='hunter 2' dbname=rm", "hunter 2"},
		{"postgres://rm:hun%zzter2@db/rm", "hun%zzter2"},
		// Found by FuzzRedactURL: pgx reads userinfo up to the first '@', so '#' and '?'
		// belong to the password, where url.Parse saw a fragment or a query.
		{"postgres://rm:hunt#er2@db/rm", "er2"},
		{"postgres://rm:hunt?er2@db/rm", "er2"},
		{"postgres://:0000000#0000000@", "0000000#0000000"},
	} {
		if got := RedactURL(tc.in); strings.Contains(got, tc.secret) {
			t.Errorf("RedactURL(%q) = %q keeps the secret", tc.in, got)
		}
	}
	if got := RedactURL("postgres://rm@db/rm"); got != "postgres://rm@db/rm" {
		t.Errorf("RedactURL changed a URL without a password: %q", got)
	}

	cfg := Default()
	cfg.DatabaseURL = "postgres://rm:hunter2@db/rm"
	out, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "hunter2") || !strings.Contains(string(out), "REDACTED") {
		t.Errorf("config dump:\n%s", out)
	}
	// A bad override of the database URL must not echo the password either.
	_, err = Load("", []string{"REGIONMIRROR_DATABASE_URL=mysql://rm:hunter2@db/rm"})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("validation error leaks the password: %v", err)
	}
}

func TestSizeAndDuration(t *testing.T) {
	for in, want := range map[string]Size{"64MiB": 64 << 20, "100MB": 100e6, "1048576": 1 << 20, "5 GiB": 5 << 30, "12B": 12} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5GiB", "lots", "99999999999TiB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
	if s := Size(64 << 20).String(); s != "64MiB" {
		t.Errorf("Size.String = %q", s)
	}
	if d, err := ParseDuration("3d"); err != nil || d.Std() != 72*time.Hour {
		t.Errorf("ParseDuration(3d) = %v, %v", d, err)
	}
	if _, err := ParseDuration("3 days"); err == nil {
		t.Error("ParseDuration accepted 3 days")
	}
}

func TestKeysHaveEnvNames(t *testing.T) {
	keys := Keys()
	if len(keys) < 20 {
		t.Fatalf("only %d keys", len(keys))
	}
	for _, k := range keys {
		// Every key must be settable from the environment.
		env := EnvVar(k)
		if strings.ContainsAny(env, ".-") {
			t.Errorf("key %s maps to a bad variable name %s", k, env)
		}
	}
}

func TestExampleConfigLoads(t *testing.T) {
	cfg, err := Load("../../configs/regionmirror.example.yaml", nil)
	if err != nil {
		t.Fatalf("the shipped example config does not load: %v", err)
	}
	if cfg.Origin.Path != "/srv/pub" || cfg.Push.MultipartThreshold != 64<<20 || cfg.Scan.UpAfter != 2 {
		t.Errorf("example config read wrongly: %+v", cfg)
	}
	// The example must mention every key, so that it documents the whole configuration.
	data, err := os.ReadFile("../../configs/regionmirror.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range Keys() {
		leaf := k[strings.LastIndex(k, ".")+1:]
		if !strings.Contains(string(data), leaf+":") {
			t.Errorf("example config does not show key %s", k)
		}
	}
}

func TestREADMEDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range Keys() {
		if !strings.Contains(string(data), "| `"+k+"` |") {
			t.Errorf("README's configuration reference lacks %s", k)
		}
	}
}
