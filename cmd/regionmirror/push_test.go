package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"

	"github.com/regionmirror/regionmirror/internal/testenv"
)

// pushEnv is a migrated database, an origin copied from testdata with the sample
// repository registered, and a public versitygw region plus a served file region.
func pushEnv(t *testing.T) (env []string, origin string, fileURL string) {
	t.Helper()
	env = migratedEnv(t)
	origin = testenv.SampleOrigin(t, t.TempDir())
	env = append(env, "REGIONMIRROR_ORIGIN_PATH="+origin)
	srv := testenv.SharedS3(t)
	bucket := srv.NewBucket(t, true)
	// The SDK's default chain finds these, as it would on a real host.
	t.Setenv("AWS_ACCESS_KEY_ID", testenv.S3AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", testenv.S3SecretKey)
	mustCLI(t, env, "region", "add", "eu-central-1", "--bucket", bucket, "--endpoint", srv.Endpoint,
		"--public-url", srv.Endpoint+"/"+bucket, "--country", "DE")
	dir := t.TempDir()
	fs := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(fs.Close)
	mustCLI(t, env, "region", "add", "us-east-1", "--dir", dir, "--public-url", fs.URL, "--country", "US")
	mustCLI(t, env, "repo", "add", "demo-1", "x86_64", "demo/1/x86_64/os")
	return env, origin, fs.URL
}

func TestPushCommand(t *testing.T) {
	env, _, _ := pushEnv(t)
	out, errs, code := cli(t, env, "push", "--dry-run")
	if code != 0 || !strings.Contains(out, "eu-central-1  1 files") || !strings.Contains(out, "4 repomd") {
		t.Fatalf("dry run: %d\n%s\n%s", code, out, errs)
	}
	if out := mustCLI(t, env, "push", "--dry-run"); !strings.Contains(out, "5      ") {
		t.Errorf("a dry run must change nothing; the second shows the same plan:\n%s", out)
	}
	out, errs, code = cli(t, env, "push")
	t.Logf("push output:\n%s", out)
	if code != 0 || !strings.Contains(out, "eu-central-1  ok") || !strings.Contains(out, "1 fresh") {
		t.Fatalf("push: %d\n%s\n%s", code, out, errs)
	}
	var res struct {
		Regions []struct {
			Region   string
			Status   string
			Uploaded int `json:"uploaded_files"`
		}
	}
	if err := json.Unmarshal([]byte(mustCLI(t, env, "push", "--json")), &res); err != nil || len(res.Regions) != 2 || res.Regions[0].Uploaded != 0 {
		t.Fatalf("push --json after a push: %+v %v", res, err)
	}

	// Unknown region: bad input, nothing done.
	if _, errs, code := cli(t, env, "push", "--region", "nowhere"); code != exitBadInput || !strings.Contains(errs, `region "nowhere": not found`) {
		t.Errorf("unknown region: %d %q", code, errs)
	}
	// A failure: exit 1 and a clear line.
	if _, errs, code := cli(t, append(env, "REGIONMIRROR_ORIGIN_PATH=/nonexistent/origin"), "push"); code != exitFailure || !strings.Contains(errs, "/nonexistent/origin") {
		t.Errorf("missing origin: %d %q", code, errs)
	}
	out = mustCLI(t, env, "gc", "--dry-run")
	if !strings.Contains(out, "REGION") {
		t.Errorf("gc --dry-run:\n%s", out)
	}
}

// TestKilledPushIsRepaired kills the real binary in the middle of a push: what it recorded
// is true, no metadata was published, the lock died with it, and the next push repairs.
func TestKilledPushIsRepaired(t *testing.T) {
	env, origin, fileURL := pushEnv(t)
	fileDir := ""
	for _, r := range mustRegions(t, env) {
		if r.Kind == "file" {
			fileDir = r.Dir
		}
	}
	// Enough files that the kill lands mid-push.
	bulk := filepath.Join(origin, "demo/1/x86_64/os/Packages/bulk")
	os.MkdirAll(bulk, 0o755)
	for i := range 300 {
		os.WriteFile(filepath.Join(bulk, fmt.Sprintf("f-%03d.rpm", i)), []byte(strings.Repeat("x", 20000+i)), 0o644)
	}
	bin := filepath.Join(t.TempDir(), "regionmirror")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "push")
	cmd.Env = append(append(os.Environ(), env...), "REGIONMIRROR_PUSH_CONCURRENCY=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill once uploads are under way and some were recorded.
	deadline := time.Now().Add(30 * time.Second)
	for {
		entries, _ := os.ReadDir(filepath.Join(fileDir, "demo/1/x86_64/os/Packages/bulk"))
		if len(entries) >= 40 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if resp, err := http.Get(fileURL + "/demo/1/x86_64/os/repodata/repomd.xml"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("repomd.xml after a push killed among the packages: %v %v", resp.Status, err)
	}
	d, err := db.Open(context.Background(), strings.TrimPrefix(env[0], "REGIONMIRROR_DATABASE_URL="), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	recorded := 0
	for _, r := range mustRegions(t, env) {
		objs, _ := d.RegionObjects(context.Background(), r.ID)
		for _, o := range objs {
			want, _ := os.ReadFile(filepath.Join(origin, o.Path))
			resp, err := http.Get(r.URL(o.Path))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(got) != string(want) {
				t.Errorf("%s recorded in %s but not served right (%s)", o.Path, r.Name, resp.Status)
			}
			recorded++
		}
	}
	t.Logf("the killed push had recorded %d verified objects", recorded)

	// The lock died with the process: the next push runs and repairs.
	out, errs, code := cli(t, env, "push")
	if code != 0 || strings.Contains(out, "failed") {
		t.Fatalf("push after a killed push: %d\n%s\n%s", code, out, errs)
	}
	t.Logf("repair push:\n%s", out)
	runs, _ := d.RecentRuns(context.Background(), "push", 10)
	interrupted := 0
	for _, r := range runs {
		if r.Status == "failed" && strings.Contains(r.Error, "interrupted") {
			interrupted++
		}
		if r.Status == "running" {
			t.Errorf("run %d still recorded as running", r.ID)
		}
	}
	if interrupted != 2 {
		t.Errorf("%d runs marked interrupted, want 2 (one per region)", interrupted)
	}
	if resp, err := http.Get(fileURL + "/demo/1/x86_64/os/repodata/repomd.xml"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("repomd.xml missing after the repair push: %v", err)
	}
}

func mustRegions(t *testing.T, env []string) []model.Region {
	t.Helper()
	var regions []model.Region
	if err := json.Unmarshal([]byte(mustCLI(t, env, "region", "list", "--json")), &regions); err != nil {
		t.Fatal(err)
	}
	return regions
}

// A "+" path whose space twin is a real origin file: the push says it did not write the twin.
func TestPushReportsTwinsNotWritten(t *testing.T) {
	env, origin, fileURL := pushEnv(t)
	pkgs := filepath.Join(origin, "demo/1/x86_64/os/Packages")
	for name, body := range map[string]string{"x y.txt": "real", "x+y.txt": "plus"} {
		if err := os.WriteFile(filepath.Join(pkgs, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, errs, code := cli(t, env, "push")
	if code != 0 || !strings.Contains(out, "note: us-east-1: 1 paths with '+'") {
		t.Fatalf("push: %d\n%s\n%s", code, out, errs)
	}
	resp, err := http.Get(fileURL + "/demo/1/x86_64/os/Packages/x%20y.txt")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "real" {
		t.Errorf("the real file serves %q", body)
	}
}
