// Package config loads regionmirror's configuration: one YAML file, then REGIONMIRROR_*
// environment overrides, then validation that names the bad key and value.
package config
