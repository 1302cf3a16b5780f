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
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			// Unparsable: the password may be anywhere after the scheme.
			if i := strings.Index(s, "://"); i >= 0 {
				return s[:i+3] + redacted
			}
			return redacted
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), redacted)
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", redacted)
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	return kvPassword.ReplaceAllString(s, "${1}"+redacted)
}

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
