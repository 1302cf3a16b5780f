package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
)

func TestPushPathCommand(t *testing.T) {
	env, origin, _ := pushEnv(t)
	ctx := context.Background()
	d, err := db.Open(ctx, strings.TrimPrefix(env[0], "REGIONMIRROR_DATABASE_URL="), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := os.Symlink(filepath.Join(origin, "demo", "1"), filepath.Join(origin, "demo", "link")); err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	bad := map[string]string{
		outside:                     "is not under the origin",
		"../elsewhere":              "",
		"demo/README.txt":           "is not a directory",
		"demo/link":                 "symlink",
		"demo/nope":                 "does not exist",
		filepath.Join(origin, "no"): "does not exist",
	}
	for p, why := range bad {
		_, errs, code := cli(t, env, "push", "--path", "demo/1/iso", "--path", p)
		if code != exitBadInput || !strings.Contains(errs, why) || !strings.Contains(errs, p) {
			t.Errorf("push --path %s: exit %d, %q; want 2 naming the path and %q", p, code, errs, why)
		}
	}
	if _, errs, code := cli(t, env, "push", "--scheduled", "--path", "demo"); code != exitBadInput {
		t.Errorf("--scheduled with --path: exit %d %q", code, errs)
	}
	runs, err := d.RecentRuns(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	files, err := d.ListFiles(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 0 || len(files) != 0 {
		t.Fatalf("bad paths changed the database: %d runs, %d files", len(runs), len(files))
	}

	// A good path pushes only its subtree.
	var res struct {
		Scope   []string
		Regions []struct {
			Region   string
			Status   string
			Uploaded int `json:"uploaded_files"`
		}
	}
	if err := json.Unmarshal([]byte(mustCLI(t, env, "push", "--path", filepath.Join(origin, "demo", "1", "iso"), "--json")), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Scope) != 1 || res.Scope[0] != "demo/1/iso" || len(res.Regions) != 2 {
		t.Fatalf("push --path: %+v", res)
	}
	files, err = d.ListFiles(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("push --path recorded no file")
	}
	for _, f := range files {
		if !model.InScope(f.Path, []string{"demo/1/iso"}) {
			t.Errorf("push --path demo/1/iso recorded %s", f.Path)
		}
	}
	for _, rr := range res.Regions {
		if rr.Status != model.RunOK || rr.Uploaded != len(files) {
			t.Errorf("%s: %+v (want %d uploaded)", rr.Region, rr, len(files))
		}
	}

	// The summary names the scope (a directory inside the repository is widened).
	out := mustCLI(t, env, "push", "--path", "demo/1/x86_64/os/repodata")
	if !strings.Contains(out, "scope: demo/1/x86_64/os\n") || !strings.Contains(out, "1 fresh") {
		t.Errorf("push --path summary:\n%s", out)
	}
	// The scheduled push without a watcher walks and says so; what is synced is skipped.
	mustCLI(t, env, "push")
	out = mustCLI(t, env, "push", "--scheduled")
	if !strings.Contains(out, "scheduled: walking the origin: no live watcher") || !strings.Contains(out, "skipped") {
		t.Errorf("push --scheduled:\n%s", out)
	}
}
