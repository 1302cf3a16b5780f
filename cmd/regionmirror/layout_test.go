package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestImportRules keeps the layout of README.md's Layout section: dependencies point down,
// server and scanner meet pusher only in the database, the pure cores import no echo, pgx
// or db, and nothing under internal/ but testenv reaches for the SQL package.
func TestImportRules(t *testing.T) {
	const mod = "github.com/regionmirror/regionmirror/"
	deps := func(pkg string) []string {
		out, err := exec.Command("go", "list", "-deps", mod+pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		return strings.Fields(string(out))
	}
	rules := []struct {
		pkg       string
		forbidden []string
	}{
		{"server", []string{mod + "pusher", mod + "scanner"}},
		{"scanner", []string{mod + "pusher", mod + "server"}},
		{"pusher", []string{mod + "scanner", mod + "server"}},
		{"server/selection", []string{mod + "db", "github.com/labstack/echo/v4", "github.com/jackc/pgx/v5"}},
		{"internal/filetable", []string{mod + "db", "github.com/labstack/echo/v4", "github.com/jackc/pgx/v5"}},
		{"internal/model", []string{mod + "db", "github.com/jackc/pgx/v5"}},
	}
	for _, r := range rules {
		d := deps(r.pkg)
		for _, f := range r.forbidden {
			if slices.Contains(d, f) {
				t.Errorf("%s depends on %s", r.pkg, f)
			}
		}
	}
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", mod+"internal/...").Output()
	if err != nil {
		t.Fatalf("go list internal/...: %v", err)
	}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] != mod+"internal/testenv" && slices.Contains(f[1:], mod+"db") {
			t.Errorf("%s imports db: only internal/testenv may", f[0])
		}
	}
}
