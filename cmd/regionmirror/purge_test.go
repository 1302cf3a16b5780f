package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/objstore"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

// TestOnDemandRegionCommands: with an on-demand region beside the push regions, push
// --dry-run plans only its metadata, status shows its fill mode, bytes against its cap
// and its jobs, locate shows a copy in flight with its error, purge removes its copy
// database-first (and only forgets the push regions'), gc --dry-run lists what would go
// and why, and bad input exits 2.
func TestOnDemandRegionCommands(t *testing.T) {
	env, _, _ := pushEnv(t)
	env = append(env, "REGIONMIRROR_PUSH_ANNOUNCE_DELAY=1s", "REGIONMIRROR_SERVER_SNAPSHOT_INTERVAL=1s", "REGIONMIRROR_ONDEMAND_STALE_AFTER=2s")
	srv := testenv.SharedS3(t)
	bucket := srv.NewBucket(t, true)
	mustCLI(t, env, "region", "add", "od-1", "--bucket", bucket, "--endpoint", srv.Endpoint,
		"--public-url", srv.Endpoint+"/"+bucket, "--country", "FR", "--fill", "on-demand", "--max-bytes", "1MiB")

	var plan struct {
		Regions []struct {
			Region     string `json:"region"`
			Planned    int    `json:"planned_files"`
			PhaseFiles []int  `json:"phase_files"`
		} `json:"regions"`
	}
	if err := json.Unmarshal([]byte(mustCLI(t, env, "push", "--dry-run", "--json")), &plan); err != nil {
		t.Fatal(err)
	}
	for _, r := range plan.Regions {
		if r.Region == "od-1" && (r.Planned != 4 || r.PhaseFiles[0] != 0) {
			t.Errorf("dry run plans %d files into the on-demand region (phases %v), want only its 4 metadata files", r.Planned, r.PhaseFiles)
		}
		if r.Region == "eu-central-1" && r.PhaseFiles[0] == 0 {
			t.Errorf("dry run plans no packages into the push region: %+v", r)
		}
	}
	mustCLI(t, env, "push")

	// A fill made hello's copy; greet's failed.
	ctx := context.Background()
	d, err := db.Open(ctx, getenv(env, "REGIONMIRROR_DATABASE_URL"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	od, err := d.GetRegion(ctx, "od-1")
	if err != nil {
		t.Fatal(err)
	}
	st, err := objstore.Open(ctx, od, objstore.Options{AccessKey: testenv.S3AccessKey, SecretKey: testenv.S3SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	origin := getenv(env, "REGIONMIRROR_ORIGIN_PATH")
	hello, greet := "demo/1/x86_64/os/Packages/hello-1.0-1.noarch.rpm", "demo/1/x86_64/os/Packages/greet-2.1-1.noarch.rpm"
	if _, err := d.QueueFills(ctx, []model.FillMiss{{RegionID: od.ID, Path: hello}, {RegionID: od.ID, Path: greet}}); err != nil {
		t.Fatal(err)
	}
	jobs, err := d.ClaimFills(ctx, "test-worker", 2, time.Minute)
	if err != nil || len(jobs) != 2 {
		t.Fatalf("claim: %v %v", jobs, err)
	}
	for i := range jobs {
		j := &jobs[i]
		if j.Path == greet {
			if err := d.FailFill(ctx, j, "copy from eu-central-1: AccessDenied", time.Hour, true); err != nil {
				t.Fatal(err)
			}
			continue
		}
		body, err := os.ReadFile(filepath.Join(origin, j.Path))
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Put(ctx, j.Path, bytes.NewReader(body), int64(len(body)), objstore.PutOptions{SHA256: j.SHA256}); err != nil {
			t.Fatal(err)
		}
		if err := d.CompleteFill(ctx, j, j.Size, j.SHA256); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.QueueFills(ctx, []model.FillMiss{{RegionID: od.ID, Path: "demo/1/iso/demo-1-x86_64.iso"}}); err != nil {
		t.Fatal(err)
	}

	var rep statusReport
	if err := json.Unmarshal([]byte(mustCLI(t, env, "status", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	var seen bool
	for _, r := range rep.Regions {
		switch r.Name {
		case "od-1":
			seen = true
			if r.Fill != model.FillOnDemand || r.OnDemand == nil || r.OnDemand.MaxBytes != 1<<20 || r.OnDemand.HeldBytes == 0 ||
				r.OnDemand.Queued != 1 || r.OnDemand.Failed != 1 || r.OnDemand.Running != 0 || r.OnDemand.OldestQueued == nil {
				t.Errorf("status of the on-demand region: %+v %+v", r, r.OnDemand)
			}
		default:
			if r.Fill != model.FillPush || r.OnDemand != nil {
				t.Errorf("status of push region %s: %+v", r.Name, r)
			}
		}
	}
	if !seen {
		t.Fatal("status does not show od-1")
	}
	out := mustCLI(t, env, "status")
	for _, want := range []string{"FILL", "on-demand", "ON-DEMAND REGION", "of 1.0 MiB"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}

	out = mustCLI(t, env, "locate", greet)
	if !strings.Contains(out, "copies in flight") || !strings.Contains(out, "AccessDenied") || !strings.Contains(out, "not-copied") {
		t.Errorf("locate of a failed copy:\n%s", out)
	}
	var loc locateReport
	if err := json.Unmarshal([]byte(mustCLI(t, env, "locate", "--json", hello)), &loc); err != nil {
		t.Fatal(err)
	}
	for _, c := range loc.Copies {
		if c.Region == "od-1" && (c.State != model.ObjectPresent || !c.Current || c.Fill != model.FillOnDemand) {
			t.Errorf("locate of the on-demand copy: %+v", c)
		}
	}
	if len(loc.InFlight) != 0 {
		t.Errorf("a copy made is no longer in flight: %+v", loc.InFlight)
	}

	// gc --dry-run: nothing expired yet, the region under its cap.
	if out := mustCLI(t, env, "gc", "--dry-run"); strings.Contains(out, "would remove") || !strings.Contains(out, "ON-DEMAND EXPIRED") {
		t.Errorf("gc --dry-run:\n%s", out)
	}

	start := time.Now()
	out = mustCLI(t, env, "purge", hello)
	if time.Since(start) < time.Second {
		t.Errorf("purge returned before the servers' update delay")
	}
	if !strings.Contains(out, "od-1 (on-demand): removed the on-demand copy") || !strings.Contains(out, "eu-central-1 (push): forgot") ||
		!strings.Contains(out, "forgot 2 copies") {
		t.Errorf("purge:\n%s", out)
	}
	if _, err := st.Head(ctx, hello); !errors.Is(err, objstore.ErrNotExist) {
		t.Errorf("the on-demand copy is still in the bucket after purge: %v", err)
	}
	if objs, _ := d.ObjectsOfFile(ctx, mustFileID(t, d, hello)); len(objs) != 0 {
		t.Errorf("records after purge: %+v", objs)
	}
	runs, err := d.RecentRuns(ctx, model.RunPurge, 10)
	if err != nil || len(runs) != 3 {
		t.Errorf("purge runs: %d %v", len(runs), err)
	}
	if out := mustCLI(t, env, "purge", greet, "--region", "od-1"); !strings.Contains(out, "holds no copy") {
		t.Errorf("purge of a copy never made:\n%s", out)
	}
	for _, args := range [][]string{{"purge", "no/such/file.rpm", "--region", "od-1"}, {"purge", "../etc/passwd"}, {"purge", hello, "--region", "nowhere"}} {
		if _, errs, code := cli(t, env, args...); code != exitBadInput || errs == "" {
			t.Errorf("%v: exit %d %q", args, code, errs)
		}
	}
	if _, errs, _ := cli(t, env, "purge", "no/such/file.rpm"); !strings.Contains(errs, "not in the origin's inventory") {
		t.Errorf("purge of a path not in the inventory: %q", errs)
	}
	bad := []string{"REGIONMIRROR_DATABASE_URL=postgres://nobody@127.0.0.1:1/none?connect_timeout=2"}
	if _, _, code := cli(t, bad, "purge", hello); code != 1 {
		t.Errorf("purge with the database unreachable: exit %d, want 1", code)
	}
}

func mustFileID(t *testing.T, d *db.DB, p string) int64 {
	t.Helper()
	f, err := d.GetFile(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return f.ID
}
