package config

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// FuzzLoad decodes arbitrary YAML and one arbitrary REGIONMIRROR_* override: nothing
// panics, and a configuration that validates prints (config show) without the database
// password and loads again from what it printed.
func FuzzLoad(f *testing.F) {
	f.Add("database_url: postgres://rm:s3cretpw@db/rm\norigin:\n  path: /srv/pub\n", "SERVER_LISTEN", ":8080")
	f.Add("server:\n  trusted_proxies: [10.0.0.0/8, '::1']\npush:\n  delete_grace: 4d\n", "PUSH_PART_SIZE", "16MiB")
	f.Add("schedules:\n  push: '*/5 * * * *'\n", "SCHEDULES_GC", "")
	f.Add("database_url: host=db password='a b\\'c' user=rm\n", "LOG_LEVEL", "debug")
	f.Add("push: {concurrency: 0}", "PUSH_CONCURRENCY", "99999999999999999999")
	f.Add("metalink: {alternates_max_age: -1h}", "SCAN_TIMEOUT", "1d")
	f.Fuzz(func(t *testing.T, doc, key, value string) {
		cfg := Default()
		if err := decodeYAML([]byte(doc), &cfg); err != nil {
			return
		}
		if err := applyEnv(&cfg, []string{EnvPrefix + key + "=" + value}); err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			if pw := password(cfg.DatabaseURL); pw != "" && leaks(err.Error(), cfg.DatabaseURL, pw) {
				t.Fatalf("validation error shows the password %q: %v", pw, err)
			}
			return
		}
		out, err := cfg.YAML()
		if err != nil {
			t.Fatalf("valid configuration does not print: %v", err)
		}
		if pw := password(cfg.DatabaseURL); pw != "" && leaks(string(out), cfg.DatabaseURL, pw) {
			t.Fatalf("config show prints the password %q:\n%s", pw, out)
		}
		again := Default()
		if err := decodeYAML(out, &again); err != nil {
			t.Fatalf("config show output does not load: %v\n%s", err, out)
		}
		if err := again.Validate(); err != nil {
			t.Fatalf("config show output does not validate: %v\n%s", err, out)
		}
	})
}

// FuzzRedactURL: whatever the connection string, the password pgx would use is not in
// its redacted form.
func FuzzRedactURL(f *testing.F) {
	for _, s := range []string{
		"postgres://rm:s3cretpw@db:5432/rm", "postgresql://rm:pa%40ss@db/rm?sslmode=disable", "postgres://db/rm?password=hunter22",
		"host=db user=rm password=s3cret dbname=rm", "host=db password='with space' user=rm", `password = 'q\'uo\\te' host=x`,
		"postgres://u:p@h1:5432,h2:5432/db", "postgres://rm:s3cret@[::1]:5432/rm", "postgres://:onlypassword@db/rm",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pw := password(s)
		if pw == "" {
			return
		}
		if out := RedactURL(s); leaks(out, s, pw) {
			t.Fatalf("RedactURL(%q) = %q keeps the password %q", s, out, pw)
		}
	})
}

// password is what pgx would send as the password for s ("" when s does not parse or
// has none).
func password(s string) string {
	if s == "" {
		return ""
	}
	cfg, err := pgconn.ParseConfig(s)
	if err != nil {
		return ""
	}
	return cfg.Password
}

// leaks reports whether out shows pw. Short passwords, and ones that occur in the
// connection string outside the password too (a password equal to the user name), cannot
// be told apart from the rest and are not judged.
func leaks(out, connString, pw string) bool {
	if len(pw) < 4 || strings.Contains(redacted, pw) || strings.Count(connString, pw) > 1 {
		return false
	}
	rest := strings.Replace(connString, pw, "", 1)
	if strings.Contains(rest, pw) {
		return false
	}
	// The password must not appear in the output more often than it appears elsewhere
	// in the input (it may be a substring of the host name, say).
	return strings.Count(out, pw) > strings.Count(rest, pw)
}
