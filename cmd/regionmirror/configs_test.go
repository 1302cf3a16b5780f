package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeIMDS answers like EC2's instance metadata service with IMDSv2: a token first, and
// metadata only for requests that carry it.
func fakeIMDS(t *testing.T, region string) *httptest.Server {
	const token = "tok-123"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" && r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") != "":
			w.Write([]byte(token))
		case r.Method == http.MethodGet && r.URL.Path == "/latest/meta-data/placement/region" && r.Header.Get("X-aws-ec2-metadata-token") == token:
			w.Write([]byte(region))
		default:
			http.Error(w, "unauthorized", http.StatusUnauthorized)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestEC2LocationScript(t *testing.T) {
	script, _ := filepath.Abs("../../configs/ec2/regionmirror-location.sh")
	template, err := os.ReadFile("../../configs/apt/regionmirror.sources.in")
	if err != nil {
		t.Fatal(err)
	}
	var sources string
	run := func(imds string) (string, []string, error) {
		dir := t.TempDir()
		dirs := []string{filepath.Join(dir, "dnf/vars"), filepath.Join(dir, "yum/vars")}
		templates := filepath.Join(dir, "regionmirror/apt")
		if err := os.MkdirAll(templates, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(templates, "regionmirror.sources.in"), template, 0o644); err != nil {
			t.Fatal(err)
		}
		sources = filepath.Join(dir, "sources.list.d")
		cmd := exec.Command("sh", script)
		cmd.Env = append(os.Environ(), "IMDS_ENDPOINT="+imds, "VARS_DIRS="+strings.Join(dirs, " "),
			"APT_TEMPLATES="+templates, "APT_SOURCES="+sources)
		out, err := cmd.CombinedOutput()
		return string(out), dirs, err
	}
	out, dirs, err := run(fakeIMDS(t, "eu-central-1").URL)
	if err != nil {
		t.Fatalf("script: %v\n%s (needs curl)", err, out)
	}
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "location"))
		if err != nil || string(b) != "eu-central-1\n" {
			t.Errorf("%s/location = %q, %v", d, b, err)
		}
	}
	// apt has no $location: its sources file is written with the region in the list's path.
	b, err := os.ReadFile(filepath.Join(sources, "regionmirror.sources"))
	if err != nil || !strings.Contains(string(b), "URIs: mirror+https://mirror.example.com/apt/debian-bookworm/eu-central-1.list\n") ||
		strings.Contains(string(b), "@LOCATION@") {
		t.Errorf("apt sources: %v\n%s", err, b)
	}
	// A value that is not a region name never reaches a URL.
	out, dirs, err = run(fakeIMDS(t, "eu-central-1&x=<script>").URL)
	if err == nil || !strings.Contains(out, "unexpected region") {
		t.Errorf("hostile region: %v %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dirs[0], "location")); err == nil {
		t.Error("hostile region written")
	}
	if _, err := os.Stat(filepath.Join(sources, "regionmirror.sources")); err == nil {
		t.Error("hostile region written into the apt sources")
	}
	// Not on EC2: nothing written, no failure at boot.
	out, dirs, err = run("http://127.0.0.1:1")
	if err != nil || !strings.Contains(out, "not on EC2") {
		t.Errorf("without IMDS: %v %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dirs[0], "location")); err == nil {
		t.Error("location written without IMDS")
	}
}

// lookTool finds a tool a test needs, or fails naming the install: a missing validator
// must not pass the suite.
func lookTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is missing: run ./.ci/deps (%v)", name, err)
	}
	return p
}

// TestAlertRules checks configs/prometheus/alerts.yaml and runs its unit tests with the
// real promtool: each alert fires after its for:, not before, not on healthy series.
func TestAlertRules(t *testing.T) {
	promtool := lookTool(t, "promtool")
	for _, args := range [][]string{{"check", "rules", "alerts.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "../../configs/prometheus"
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "SUCCESS") {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
