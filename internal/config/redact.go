package config

import (
	"errors"
	"net/url"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

const redacted = "REDACTED"

var kvPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// RedactURL hides the password of a database URL or key=value connection string.
func RedactURL(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		// Userinfo ends at the first '@' before any '/', as libpq and pgx read it: a
		// password may hold '#', '?' or ':', which url.Parse would take for a fragment, a
		// query or a port.
		scheme, rest := s[:i+3], s[i+3:]
		if j := strings.IndexAny(rest, "@/"); j >= 0 && rest[j] == '@' {
			if user, _, has := strings.Cut(rest[:j], ":"); has {
				rest = user + ":" + redacted + rest[j:]
			}
		}
		return scheme + queryPassword.ReplaceAllString(rest, "${1}"+redacted)
	}
	return kvPassword.ReplaceAllString(s, "${1}"+redacted)
}

// queryPassword is a password= parameter of a URL's query.
var queryPassword = regexp.MustCompile(`(?i)([?&]password=)[^&]*`)

// CheckDatabaseURL accepts a postgres:// URL or a key=value connection string.
func CheckDatabaseURL(s string) error {
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		u, err := url.Parse(s)
		if err != nil {
			return errors.New("not a valid URL")
		}
		if u.Path != "" && strings.Count(strings.Trim(u.Path, "/"), "/") > 0 {
			return errors.New("the path must be only the database name")
		}
		return nil
	}
	if strings.Contains(s, "://") {
		return errors.New("must be a postgres:// URL or a key=value connection string")
	}
	if !strings.Contains(s, "=") {
		return errors.New("must be a postgres:// URL or a key=value connection string")
	}
	return nil
}

// Redacted returns a copy safe to print or log.
func (c Config) Redacted() Config {
	c.DatabaseURL = RedactURL(c.DatabaseURL)
	return c
}

// YAML renders the redacted configuration.
func (c Config) YAML() ([]byte, error) {
	return yaml.Marshal(c.Redacted())
}
