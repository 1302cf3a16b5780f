package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/regionmirror/regionmirror/internal/testenv"
)

func TestScanStatusLocatePurge(t *testing.T) {
	env, origin, _ := pushEnv(t)
	// An alternate: the second region keeps an older repomd.xml.
	mustCLI(t, env, "push")
	out := mustCLI(t, env, "scan")
	if !strings.Contains(out, "eu-central-1  ok      up") || !strings.Contains(out, "1 fresh") {
		t.Fatalf("scan:\n%s", out)
	}
	// Mixed state: one region loses a package behind our back, the origin moves on and
	// only one region is pushed.
	regions := mustRegions(t, env)
	var bucket string
	for _, r := range regions {
		if r.Kind == "s3" {
			bucket = r.Bucket
		}
	}
	pkg := "demo/1/x86_64/os/Packages/hello-1.0-1.noarch.rpm"
	if _, err := testenv.SharedS3(t).Client().DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &bucket, Key: aws.String(pkg)}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(origin, "demo/1/x86_64/os/repodata/repomd.xml"), []byte(strings.Replace(
		mustRead(t, filepath.Join(origin, "demo/1/x86_64/os/repodata/repomd.xml")), "<revision>", "<revision>2", 1)), 0o644)
	mustCLI(t, env, "push", "--region", "us-east-1")
	out, errs, code := cli(t, env, "scan")
	if code != exitFailure || !strings.Contains(errs, "scan found problems in eu-central-1") {
		t.Errorf("scan with a damaged region: exit %d\n%s%s", code, out, errs)
	}
	t.Logf("scan of a damaged region:\n%s%s", out, errs)
	status := mustCLI(t, env, "status")
	t.Logf("status:\n%s", status)
	for _, want := range []string{"REPOSITORY", "demo-1/x86_64", "stale", "fresh", "HEALTH", "RUN"} {
		if !strings.Contains(status, want) {
			t.Errorf("status lacks %q", want)
		}
	}
	var st statusReport
	if err := json.Unmarshal([]byte(mustCLI(t, env, "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if c := st.Repositories[0].Regions["us-east-1"]; c.State != "fresh" || c.VerifiedAt == nil {
		t.Errorf("us-east-1 cell: %+v", c)
	}
	if c := st.Repositories[0].Regions["eu-central-1"]; c.State != "stale" {
		t.Errorf("eu-central-1 cell: %+v", c)
	}

	loc := mustCLI(t, env, "locate", pkg)
	t.Logf("locate:\n%s", loc)
	if !strings.Contains(loc, "eu-central-1  missing") || !strings.Contains(loc, "us-east-1     present  yes") {
		t.Errorf("locate:\n%s", loc)
	}
	if out := mustCLI(t, env, "purge", pkg, "--region", "us-east-1"); !strings.Contains(out, "forgot 1 copies") {
		t.Errorf("purge: %s", out)
	}
	if loc := mustCLI(t, env, "locate", pkg); !strings.Contains(loc, "us-east-1     not-pushed") {
		t.Errorf("after purge:\n%s", loc)
	}
	out = mustCLI(t, env, "push")
	// eu-central-1 also gets the new repomd.xml it was not pushed yet.
	if !strings.Contains(out, "eu-central-1  ok      2 ") || !strings.Contains(out, "us-east-1     ok      1 ") {
		t.Errorf("push after purge and loss must rewrite the package in both:\n%s", out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"locate", "../etc/passwd"}, "must not contain .."},
		{[]string{"locate", "/abs/path"}, "must be relative"},
		{[]string{"locate", "no/such/file"}, "not in the origin's inventory"},
		{[]string{"purge", pkg, "--region", "nowhere"}, `region "nowhere": not found`},
		{[]string{"scan", "--region", "nowhere"}, `region "nowhere": not found`},
	} {
		if _, errs, code := cli(t, env, tc.args...); code != exitBadInput || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d %q", tc.args, code, errs)
		}
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
