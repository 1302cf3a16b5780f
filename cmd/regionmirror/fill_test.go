package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

const fillPath = "demo/1/x86_64/os/Packages/hello-1.0-1.noarch.rpm"

// fillEnv is pushEnv with its S3 region pushed (so it holds every file verified) and an
// on-demand region in another bucket of the same versitygw; it returns the database too.
func fillEnv(t *testing.T) ([]string, *db.DB, *model.Region) {
	t.Helper()
	env, _, _ := pushEnv(t)
	mustCLI(t, env, "push", "--region", "eu-central-1")
	srv := testenv.SharedS3(t)
	bucket := srv.NewBucket(t, true)
	mustCLI(t, env, "region", "add", "frankfurt-od", "--bucket", bucket, "--endpoint", srv.Endpoint,
		"--public-url", srv.Endpoint+"/"+bucket, "--country", "DE", "--fill", "on-demand")
	ctx := context.Background()
	d, err := db.Open(ctx, strings.TrimPrefix(env[0], "REGIONMIRROR_DATABASE_URL="), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	r, err := d.GetRegion(ctx, "frankfurt-od")
	if err != nil {
		t.Fatal(err)
	}
	return env, d, r
}

func queueOne(t *testing.T, d *db.DB, r *model.Region) {
	t.Helper()
	if n, err := d.QueueFills(context.Background(), []model.FillMiss{{RegionID: r.ID, Path: fillPath}}); err != nil || n != 1 {
		t.Fatalf("queue: %d %v", n, err)
	}
}

func held(t *testing.T, d *db.DB, r *model.Region) bool {
	t.Helper()
	f, err := d.GetFile(context.Background(), fillPath)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := d.ObjectsOfFile(context.Background(), f.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.RegionID == r.ID && o.Holds(f) {
			return true
		}
	}
	return false
}

func TestFillCommandOnce(t *testing.T) {
	env, d, r := fillEnv(t)
	queueOne(t, d, r)
	out := mustCLI(t, env, "fill", "--once", "--json", "--workers", "2", "--region", "frankfurt-od")
	var s struct {
		Copied, ServerSide, FromOrigin, Failed int64
	}
	if err := json.Unmarshal([]byte(out), &struct {
		Copied     *int64 `json:"copied"`
		ServerSide *int64 `json:"server_side"`
		FromOrigin *int64 `json:"from_origin"`
		Failed     *int64 `json:"failed"`
	}{&s.Copied, &s.ServerSide, &s.FromOrigin, &s.Failed}); err != nil {
		t.Fatalf("json %q: %v", out, err)
	}
	if s.Copied != 1 || s.ServerSide != 1 || s.Failed != 0 {
		t.Fatalf("summary %+v", s)
	}
	if !held(t, d, r) {
		t.Fatal("the copy is not recorded")
	}
	// Nothing ready: --once exits at once.
	if out := mustCLI(t, env, "fill", "--once"); !strings.Contains(out, "copied 0") {
		t.Errorf("empty queue: %q", out)
	}
}

func TestFillCommandBadInput(t *testing.T) {
	env, _, _ := fillEnv(t)
	for _, args := range [][]string{
		{"fill", "--region", "nowhere", "--once"},
		{"fill", "--region", "eu-central-1", "--once"}, // a push region has no fill jobs
		{"fill", "--json"},
		{"fill", "--workers", "-1", "--once"},
		{"fill", "extra"},
	} {
		if _, errs, code := cli(t, env, args...); code != exitBadInput || errs == "" {
			t.Errorf("%v: exit %d (%q), want %d", args, code, errs, exitBadInput)
		}
	}
	unreachable := []string{"REGIONMIRROR_DATABASE_URL=postgres://postgres@127.0.0.1:1/regionmirror?connect_timeout=2"}
	if _, errs, code := cli(t, unreachable, "fill", "--once"); code != exitFailure {
		t.Errorf("unreachable database: exit %d (%q), want %d", code, errs, exitFailure)
	}
}

// TestFillDaemonAndCron runs the real binary: `fill` as a daemon copies a job queued while
// it starts (whether before or after its LISTEN took effect; the poll interval is a
// minute, so only the notification or the look after LISTEN can find it) and stops
// cleanly on SIGTERM; `cron` with fill.workers set and no schedule does the same, with
// the workers' series on its /metrics.
func TestFillDaemonAndCron(t *testing.T) {
	env, d, r := fillEnv(t)
	bin := buildBinary(t)
	for _, args := range [][]string{{"fill", "--workers", "2"}, {"cron"}} {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(append(os.Environ(), env...), "REGIONMIRROR_FILL_WORKERS=2", "REGIONMIRROR_FILL_POLL_INTERVAL=1m",
			"REGIONMIRROR_SCHEDULES_PUSH=", "REGIONMIRROR_SCHEDULES_SCAN=", "REGIONMIRROR_SCHEDULES_GC=",
			"REGIONMIRROR_CRON_LISTEN=127.0.0.1:0")
		stderr := &testenv.Buffer{}
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if _, err := d.MarkCopiesDeleting(context.Background(), db.Fence{}, r.ID, []int64{mustFileID(t, d, fillPath)}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.ForgetObject(context.Background(), fillPath, r.ID); err != nil {
			t.Fatal(err)
		}
		queueOne(t, d, r)
		deadline := time.Now().Add(30 * time.Second)
		for !held(t, d, r) {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("%v: the queued copy was not made:\n%s", args, stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		if args[0] == "cron" {
			// The workers' metrics are on cron's /metrics.
			m := regexp.MustCompile(`msg="cron listening" addr=(\S+)`).FindStringSubmatch(stderr.String())
			if m == nil {
				t.Fatalf("cron did not say where it listens:\n%s", stderr.String())
			}
			// The counter moves just after the record is written: ask a few times.
			var body []byte
			for range 50 {
				resp, err := http.Get("http://" + m[1] + "/metrics")
				if err != nil {
					t.Fatal(err)
				}
				body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				if regexp.MustCompile(`(?m)^regionmirror_fill_jobs_total\{outcome="copied"\} 1$`).Match(body) &&
					strings.Contains(string(body), "regionmirror_fill_copy_bytes_total{via=\"server-side\"}") {
					body = nil
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if body != nil {
				t.Errorf("cron /metrics lacks the fill series:\n%s", body)
			}
		}
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%v after SIGTERM: %v\n%s", args, err, stderr.String())
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("%v did not stop after SIGTERM", args)
		}
	}
}
