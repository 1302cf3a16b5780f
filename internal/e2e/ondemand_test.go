package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDNFThroughOnDemandRegion is what a dnf user in an on-demand region sees: the
// metalink (location=eu-west-1) lists the region through regionmirror's /r/ URLs; the
// first install is served, with no failed download, from the push region for every
// package the on-demand region lacks, and queues their copies; once `regionmirror fill`
// has made them, a second install in a fresh root is served from the on-demand region
// alone: not one redirect goes anywhere else.
func TestDNFThroughOnDemandRegion(t *testing.T) {
	requireTool(t, "dnf")
	w := newWorld(t, "us-east-1")
	od := w.addOnDemand("eu-west-1", w.regions[0])
	w.mustCLI("push")
	w.mustCLI("scan")
	w.startServe()
	if n := w.checkOnDemandCopies(od); n == 0 {
		t.Fatal("the push wrote no metadata into the on-demand region")
	}
	for p := range w.onDemandCopies(od) {
		if strings.Contains(p, "/Packages/") {
			t.Errorf("the push wrote a package into the on-demand region: %s", p)
		}
	}
	metalink := "metalink=" + w.srvURL + "/metalink?repo=demo-$releasever&arch=$basearch&location=eu-west-1"

	before := w.redirects()
	first := newDNF(t, metalink)
	first.mustInstall("hello", "libc++-compat")
	after := w.redirects()
	t.Logf("first install: redirects %v", diff(before, after))
	if after["us-east-1"] == before["us-east-1"] {
		t.Error("the first install sent nothing to us-east-1: were the packages already in the on-demand region?")
	}

	// The misses queued the copies; fill makes them (server-side, from us-east-1's bucket
	// on the same S3 service) and exits when the queue is empty.
	deadline := time.Now().Add(time.Minute)
	for {
		out, err := w.cli(context.Background(), "fill", "--once")
		if err != nil {
			t.Fatalf("fill --once: %v\n%s", err, out)
		}
		copies := w.onDemandCopies(od)
		if copies["demo/1/x86_64/os/Packages/hello-1.0-1.noarch.rpm"] != "" && copies["demo/1/x86_64/os/Packages/libc++-compat-1.0-1.noarch.rpm"] != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the packages were not copied into the on-demand region: %v", copies)
		}
		time.Sleep(500 * time.Millisecond) // the servers flush misses in batches
	}
	w.checkOnDemandCopies(od)
	w.waitLocate("demo/1/x86_64/os/Packages/hello-1.0-1.noarch.rpm", "eu-west-1")
	w.waitLocate("demo/1/x86_64/os/Packages/libc++-compat-1.0-1.noarch.rpm", "eu-west-1")

	before = w.redirects()
	second := newDNF(t, metalink)
	second.mustInstall("hello", "libc++-compat")
	after = w.redirects()
	got := diff(before, after)
	t.Logf("second install: redirects %v", got)
	for name, n := range got {
		if name != "eu-west-1" && n != 0 {
			t.Errorf("the second install sent %d requests to %q; all should go to eu-west-1", n, name)
		}
	}
	if got["eu-west-1"] < 2 {
		t.Errorf("the second install sent %d requests to eu-west-1, want at least its two packages", got["eu-west-1"])
	}
}

// redirects returns the redirect totals per region from /api/v1/regions.
func (w *world) redirects() map[string]int64 {
	w.t.Helper()
	var doc struct {
		Regions []struct {
			Name      string `json:"name"`
			Redirects struct {
				Requests int64 `json:"requests"`
			} `json:"redirects"`
		} `json:"regions"`
	}
	resp, err := http.Get(w.srvURL + "/api/v1/regions")
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		w.t.Fatal(err)
	}
	out := map[string]int64{}
	for _, r := range doc.Regions {
		out[r.Name] = r.Redirects.Requests
	}
	return out
}

func diff(before, after map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range after {
		out[k] = v - before[k]
	}
	return out
}

// waitLocate waits until the server's /api/v1/locate lists region among those holding
// path verified.
func (w *world) waitLocate(path, region string) {
	w.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		resp, err := http.Get(w.srvURL + "/api/v1/locate?path=" + url.QueryEscape(path))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = string(b)
			var doc struct {
				Regions []struct {
					Name string `json:"name"`
				} `json:"regions"`
			}
			if json.Unmarshal(b, &doc) == nil {
				for _, r := range doc.Regions {
					if r.Name == region {
						return
					}
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.t.Fatalf("the server never listed %s in %s: %s", path, region, last)
}

// dnfRoot runs the real dnf against a private installroot and repo directory.
type dnfRoot struct {
	t    *testing.T
	dir  string
	root string
}

func newDNF(t *testing.T, repoLine string) *dnfRoot {
	t.Helper()
	dir := t.TempDir()
	repos := filepath.Join(dir, "repos.d")
	if err := os.MkdirAll(repos, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := "[test]\nname=regionmirror test\n" + repoLine + "\ngpgcheck=0\nenabled=1\n"
	if err := os.WriteFile(filepath.Join(repos, "test.repo"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return &dnfRoot{t: t, dir: dir, root: filepath.Join(dir, "root")}
}

// mustInstall installs packages and fails the test when dnf fails or librepo logged a
// failed download (a URL that did not work, even if another did).
func (d *dnfRoot) mustInstall(pkgs ...string) {
	d.t.Helper()
	args := append([]string{"-y", "--setopt=reposdir=" + filepath.Join(d.dir, "repos.d"), "--installroot=" + d.root,
		"--releasever=1", "--nogpgcheck", "--disablerepo=*", "--enablerepo=test",
		"--setopt=skip_if_unavailable=False", "--setopt=install_weak_deps=False", "install"}, pkgs...)
	cmd := exec.Command("dnf", args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	out, err := cmd.CombinedOutput()
	d.t.Logf("dnf install %s:\n%s", strings.Join(pkgs, " "), out)
	if err != nil {
		d.t.Fatalf("dnf install %s: %v", strings.Join(pkgs, " "), err)
	}
	if out, err := exec.Command("rpm", append([]string{"--root=" + d.root, "-q"}, pkgs...)...).CombinedOutput(); err != nil {
		d.t.Errorf("rpm -q after the install: %v\n%s", err, out)
	}
	// librepo logs every URL that failed, even when another one then worked.
	lg, _ := os.ReadFile(filepath.Join(d.root, "var/log/dnf.librepo.log"))
	for _, line := range strings.Split(string(lg), "\n") {
		l := strings.ToLower(line)
		if strings.Contains(l, "curl error") || strings.Contains(l, "status code: 4") || strings.Contains(l, "status code: 5") ||
			strings.Contains(l, "checksum doesn't match") {
			d.t.Errorf("librepo logged a failed download: %s", line)
		}
	}
}

func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is not installed: .ci/deps installs it (%v)", name, err)
	}
}
