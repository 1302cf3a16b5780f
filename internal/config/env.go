package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// EnvVar is the environment variable for a YAML key path: server.trusted_proxies becomes
// REGIONMIRROR_SERVER_TRUSTED_PROXIES.
func EnvVar(path string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

// fields lists every settable leaf of the config by its YAML key path.
func fields(v reflect.Value, prefix string, out map[string]reflect.Value) {
	t := v.Type()
	for i := range t.NumField() {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		path := tag
		if prefix != "" {
			path = prefix + "." + tag
		}
		f := v.Field(i)
		if f.Kind() == reflect.Struct {
			fields(f, path, out)
			continue
		}
		out[path] = f
	}
}

// Keys returns every configuration key path, sorted; the README's reference lists them.
func Keys() []string {
	cfg := Default()
	m := map[string]reflect.Value{}
	fields(reflect.ValueOf(&cfg).Elem(), "", m)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// applyEnv sets every key that has a REGIONMIRROR_* variable. An unknown REGIONMIRROR_*
// variable is an error: a misspelt override would otherwise be ignored without a word.
func applyEnv(cfg *Config, environ []string) error {
	m := map[string]reflect.Value{}
	fields(reflect.ValueOf(cfg).Elem(), "", m)
	byEnv := make(map[string]string, len(m))
	for path := range m {
		byEnv[EnvVar(path)] = path
	}
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) || name == EnvConfig {
			continue
		}
		path, known := byEnv[name]
		if !known {
			return &Error{Key: name, Value: redactIfSecret(name, value), Reason: "unknown environment override (see `regionmirror config keys`)"}
		}
		if err := setField(m[path], value); err != nil {
			return &Error{Key: name, Value: redactIfSecret(name, value), Reason: err.Error()}
		}
	}
	return nil
}

func redactIfSecret(name, value string) string {
	if name == EnvVar("database_url") {
		return RedactURL(value)
	}
	return value
}

func setField(f reflect.Value, value string) error {
	switch f.Addr().Interface().(type) {
	case *Duration:
		d, err := ParseDuration(value)
		if err != nil {
			return err
		}
		f.SetInt(int64(d))
		return nil
	case *Size:
		s, err := ParseSize(value)
		if err != nil {
			return err
		}
		f.SetInt(int64(s))
		return nil
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(value)
	case reflect.Int:
		n, err := strconv.Atoi(strings.TrimSpace(value))
		if err != nil {
			return fmt.Errorf("not an integer")
		}
		f.SetInt(int64(n))
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(value))
		if err != nil {
			return fmt.Errorf("not a boolean (true or false)")
		}
		f.SetBool(b)
	case reflect.Slice:
		// Lists are comma-separated in the environment.
		var items []string
		for item := range strings.SplitSeq(value, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		f.Set(reflect.ValueOf(append([]string{}, items...)))
	default:
		return fmt.Errorf("cannot be set from the environment")
	}
	return nil
}
