package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
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
		// A host without yum: its directory cannot be made (under the unit's sandbox, as
		// here under a file), and the others are written all the same.
		if err := os.WriteFile(filepath.Join(dir, "noyum"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		templates := filepath.Join(dir, "regionmirror/apt")
		if err := os.MkdirAll(templates, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(templates, "regionmirror.sources.in"), template, 0o644); err != nil {
			t.Fatal(err)
		}
		sources = filepath.Join(dir, "sources.list.d")
		cmd := exec.Command("sh", script)
		cmd.Env = append(os.Environ(), "IMDS_ENDPOINT="+imds, "VARS_DIRS="+strings.Join(dirs, " ")+" "+filepath.Join(dir, "noyum/vars"),
			"APT_TEMPLATES="+templates, "APT_SOURCES="+sources)
		out, err := cmd.CombinedOutput()
		return string(out), dirs, err
	}
	out, dirs, err := run(fakeIMDS(t, "eu-central-1").URL)
	if err != nil {
		t.Fatalf("script: %v\n%s (needs curl)", err, out)
	}
	if !strings.Contains(out, "noyum/vars (no dnf or yum here?); skipped") {
		t.Errorf("a directory it cannot make is not reported as skipped:\n%s", out)
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

// unitExposure is the highest `systemd-analyze security --offline=yes` exposure each unit
// may have, where each is now: issue 18 asked the location unit for below 5.
var unitExposure = map[string]float64{
	"systemd/regionmirror-serve.service": 1.6,
	"systemd/regionmirror-cron.service":  1.9,
	"systemd/regionmirror-watch.service": 1.9,
	"ec2/regionmirror-location.service":  1.7,
}

// TestSystemdUnits runs the real systemd-analyze on every unit under configs/: verify
// (no error and no warning), the exposure of `security --offline=yes`, and the "-" prefix
// of every sandbox path a host may lack.
//
// What works with systemd 252 here: verify --root=DIR wants a whole unit tree in DIR
// ("Unit sysinit.target not found"), so the units are verified against the host's, from a
// copy whose ExecStart names real executables (the built binary, the script of the source
// tree): verify fails on an executable that does not exist. It exits 0 on warnings (an
// unknown key, a relative path: "ignoring"), so any output fails the test.
func TestSystemdUnits(t *testing.T) {
	analyze := lookTool(t, "systemd-analyze")
	bin := buildBinary(t)
	script, _ := filepath.Abs("../../configs/ec2/regionmirror-location.sh")
	dir := t.TempDir()
	var copies []string
	for name := range unitExposure {
		b, err := os.ReadFile(filepath.Join("../../configs", name))
		if err != nil {
			t.Fatal(err)
		}
		s := strings.NewReplacer("ExecStart=/usr/local/bin/regionmirror ", "ExecStart="+bin+" ",
			"ExecStart=/usr/local/sbin/regionmirror-location.sh", "ExecStart="+script).Replace(string(b))
		if s == string(b) {
			t.Errorf("%s: no ExecStart of the binary or the script", name)
		}
		p := filepath.Join(dir, filepath.Base(name))
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		copies = append(copies, p)
		checkOptionalPaths(t, name, string(b))
	}
	out, err := exec.Command(analyze, append([]string{"verify", "--man=no"}, copies...)...).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	exposureRE := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)
	for name, most := range unitExposure {
		p := filepath.Join(dir, filepath.Base(name))
		out, err := exec.Command(analyze, "security", "--offline=yes", p).CombinedOutput()
		m := exposureRE.FindSubmatch(out)
		if m == nil {
			t.Errorf("systemd-analyze security %s: %v\n%s", name, err, out)
			continue
		}
		got, _ := strconv.ParseFloat(string(m[1]), 64)
		t.Logf("%s: exposure %.1f", name, got)
		if got > most {
			t.Errorf("%s: exposure %.1f, want at most %.1f:\n%s", name, got, most, out)
		}
	}
}

// checkOptionalPaths: every path of the sandbox's ReadOnlyPaths and ReadWritePaths but
// the configuration directory may be missing on a host (no GeoIP database, an origin
// elsewhere, no dnf), and a missing path without "-" stops the unit from starting.
func checkOptionalPaths(t *testing.T, name, unit string) {
	t.Helper()
	for line := range strings.SplitSeq(unit, "\n") {
		key, val, ok := strings.Cut(line, "=")
		if !ok || (key != "ReadOnlyPaths" && key != "ReadWritePaths") {
			continue
		}
		for _, p := range strings.Fields(val) {
			if p != "/etc/regionmirror" && !strings.HasPrefix(p, "-") {
				t.Errorf("%s: %s=%s: a path a host may lack needs the \"-\" prefix", name, key, p)
			}
		}
	}
}
