package main

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/config"
)

// runDemo starts the real binary's demo and returns once it prints that it serves.
func runDemo(t *testing.T, bin, dir, listen, regions string) (*exec.Cmd, string, chan error) {
	t.Helper()
	cmd := exec.Command(bin, "demo", "--dir", dir, "--listen", listen, "--regions-listen", regions,
		"--origin", "../../testdata/origin", "--geoip", "../../testdata/geoip/regionmirror-test-city.mmdb")
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	// The reader goroutine owns the output; it hands over a copy once the demo is ready.
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		var out strings.Builder
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "skip_if_unavailable=False") {
				ready <- out.String()
			}
		}
		if out.Len() > 0 {
			select {
			case ready <- out.String():
			default:
			}
		}
		done <- cmd.Wait()
	}()
	var out string
	select {
	case out = <-ready:
	case err := <-done:
		t.Fatalf("demo exited: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("demo not ready")
	}
	return cmd, out, done
}

func TestDemoStartsServesAndStops(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "regionmirror")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := filepath.Join(t.TempDir(), "demo")
	listen, regions := freeAddr(t), freeAddr(t)
	cmd, out, done := runDemo(t, bin, dir, listen, regions)
	t.Logf("demo printed:\n%s", out)
	if !strings.Contains(out, "eu-central-1    ok      9") {
		t.Errorf("first run did not push the sample:\n%s", out)
	}

	body := httpGet(t, "http://"+listen+"/metalink?repo=demo-1&arch=x86_64&location=sydney")
	if !strings.Contains(body, `location="AU" preference="100">http://`+regions+"/ap-southeast-2/") {
		t.Errorf("metalink for location=sydney:\n%s", body)
	}
	// A download through the server: a redirect to the nearest region (GeoIP places
	// 127.0.0.1 in Frankfurt), followed to the bytes.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get("http://" + listen + "/pub/demo/1/x86_64/os/Packages/hello-1.0-1.noarch.rpm")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, "http://"+regions+"/eu-central-1/") {
		t.Errorf("download: %s to %q", resp.Status, loc)
	}
	rpm := httpGet(t, "http://"+listen+"/pub/demo/1/x86_64/os/Packages/hello-1.0-1.noarch.rpm")
	want, _ := os.ReadFile("../../testdata/origin/demo/1/x86_64/os/Packages/hello-1.0-1.noarch.rpm")
	if rpm != string(want) {
		t.Errorf("download differs from the origin (%d bytes)", len(rpm))
	}

	// The on-demand region (Dublin): the metalink lists it through the server's /r/; the
	// first download from there is another region's copy and queues one, which the demo's
	// fill workers make; then downloads go into eu-west-1, with the origin's bytes.
	if body := httpGet(t, "http://"+listen+"/metalink?repo=demo-1&arch=x86_64&location=dublin"); !strings.Contains(body, ">http://"+listen+"/r/eu-west-1/demo/1/x86_64/os/repodata/repomd.xml<") {
		t.Errorf("metalink for location=dublin lacks the /r/ URL:\n%s", body)
	}
	odLoc := func() string {
		resp, err := noFollow.Get("http://" + listen + "/pub/demo/1/x86_64/os/Packages/hello-1.0-1.noarch.rpm?location=eu-west-1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("Location")
	}
	if loc := odLoc(); strings.Contains(loc, "/eu-west-1/") {
		t.Errorf("the first download from eu-west-1 went into it before any copy: %s", loc)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(odLoc(), "/eu-west-1/") {
		if time.Now().After(deadline) {
			t.Fatalf("the demo never copied the package into eu-west-1 (last answer %s)", odLoc())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := httpGet(t, odLoc()); got != string(want) {
		t.Errorf("eu-west-1's copy differs from the origin (%d bytes)", len(got))
	}

	runPrintedCommands(t, out, dir, bin)

	// Ctrl-C: everything stops, PostgreSQL too.
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("demo after Ctrl-C: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop")
	}
	if _, err := os.Stat(filepath.Join(dir, "pg", "data", "postmaster.pid")); err == nil {
		t.Error("PostgreSQL still running after the demo stopped")
	}

	// A second run reuses the state: nothing to upload.
	cmd, out, done = runDemo(t, bin, dir, listen, regions)
	if !strings.Contains(out, "0 hashed") || !strings.Contains(out, "eu-central-1    ok      0 ") {
		t.Errorf("second run did not reuse the state:\n%s", out)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	<-done
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	return string(b)
}

// runPrintedCommands runs every command the demo printed (the lines after demoPrompt) as
// a user in a second shell would: sh -c, in another directory, none of the test's
// REGIONMIRROR_* variables; and fetches the browser URLs it printed. Each must succeed.
func runPrintedCommands(t *testing.T, out, dir, bin string) {
	t.Helper()
	cfgFile := filepath.Join(dir, "regionmirror.yaml")
	if st, err := os.Stat(cfgFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v, %v; want a file of mode 0600", cfgFile, st, err)
	}
	// The file is the loader's format and holds what the demo runs on.
	cfg, err := config.Load(cfgFile, nil)
	if err != nil {
		t.Fatalf("the demo's configuration does not load: %v", err)
	}
	if !strings.HasPrefix(cfg.DatabaseURL, "postgres") || !filepath.IsAbs(cfg.Origin.Path) || !filepath.IsAbs(cfg.Server.GeoIPDatabase) ||
		cfg.Server.FilesCache != filepath.Join(dir, "files.cache") || !strings.HasPrefix(cfg.Origin.URL, "http://") || !strings.HasPrefix(cfg.Server.PublicURL, "http://") {
		t.Errorf("the demo's configuration: %+v", cfg)
	}

	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGIONMIRROR_") {
			env = append(env, kv)
		}
	}
	var commands, urls []string
	urlRE := regexp.MustCompile(`https?://\S+`)
	inBrowser := false
	for line := range strings.SplitSeq(out, "\n") {
		switch {
		case strings.HasPrefix(line, demoPrompt):
			commands = append(commands, strings.TrimPrefix(line, demoPrompt))
		case strings.HasPrefix(line, "  # in a browser"):
			inBrowser = true
		case inBrowser && strings.TrimSpace(line) == "":
			inBrowser = false
		case inBrowser:
			urls = append(urls, urlRE.FindAllString(line, -1)...)
		}
	}
	self, _ := filepath.Abs(bin)
	var cli []string
	for _, c := range commands {
		if strings.HasPrefix(c, self+" ") {
			cli = append(cli, strings.Fields(c)[3])
			if !strings.HasPrefix(c, self+" --config "+cfgFile+" ") {
				t.Errorf("printed without --config %s: %s", cfgFile, c)
			}
		}
	}
	if want := "status explain locate region stats scan push"; strings.Join(cli, " ") != want {
		t.Errorf("printed CLI commands %q, want %q", cli, want)
	}
	if len(urls) < 4 {
		t.Errorf("printed browser URLs %q", urls)
	}
	for _, u := range urls {
		commands = append(commands, "curl -fsS -o /dev/null '"+u+"'")
	}
	work := t.TempDir()
	for _, c := range commands {
		sh := exec.Command("sh", "-c", c)
		sh.Dir, sh.Env = work, env
		b, err := sh.CombinedOutput()
		if err != nil {
			t.Errorf("printed command failed: %s: %v\n%s", c, err, b)
			continue
		}
		t.Logf("$ %s\n%s", c, b)
	}
}
