package server

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/model"
)

// screenshotDir is where the browser tests leave their screenshots (the repository's .tmp/,
// which git ignores): open them to see the pages.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".tmp", "screenshots"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// chromium runs headless Chromium with the flags that work as root in a container, and
// returns stdout and the console messages it logged.
func chromium(t *testing.T, args ...string) (string, []string) {
	t.Helper()
	bin := requireTool(t, "chromium", "chromium")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir=" + t.TempDir(),
		"--enable-logging=stderr", "--v=0", "--hide-scrollbars"}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var console []string
	for _, l := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(l, ":CONSOLE") || strings.Contains(l, "Refused to") || strings.Contains(l, "Uncaught") {
			console = append(console, l)
		}
	}
	return stdout.String(), console
}

// render checks a page in Chromium: the DOM after loading, no console messages, and a
// screenshot.
func render(t *testing.T, url, shot string) string {
	t.Helper()
	dom, console := chromium(t, "--dump-dom", url)
	if len(console) > 0 {
		t.Errorf("%s: console messages:\n%s", url, strings.Join(console, "\n"))
	}
	path := filepath.Join(screenshotDir(t), shot)
	_ = os.Remove(path)
	_, console = chromium(t, "--window-size=1280,1100", "--screenshot="+path, url)
	if len(console) > 0 {
		t.Errorf("%s: console messages:\n%s", url, strings.Join(console, "\n"))
	}
	b, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) || len(b) < 10_000 {
		t.Fatalf("screenshot %s: %v (%d bytes)", path, err, len(b))
	}
	t.Logf("screenshot of %s: %s", url, path)
	return dom
}

var tagRE = regexp.MustCompile(`<[^>]+>`)

// rowText returns the text of the table row of a region (data-region attribute).
func rowText(dom, table, region string) string {
	i := strings.Index(dom, `id="`+table+`"`)
	if i < 0 {
		return ""
	}
	j := strings.Index(dom[i:], `data-region="`+region+`"`)
	if j < 0 {
		return ""
	}
	row := dom[i+j:]
	row = row[:strings.Index(row, "</tr>")]
	return strings.Join(strings.Fields(tagRE.ReplaceAllString(row, " ")), " ")
}

func TestPagesInChromium(t *testing.T) {
	e := newClientEnv(t, "https://dl.example.org/pub")
	// Some traffic for the counters: two redirects to regions, one to the origin.
	curl(t, "-o", "/dev/null", e.base+"/pub/"+model.EscapePath(cPlus)+"?location=eu-central-1")
	curl(t, "-o", "/dev/null", e.base+"/pub/"+model.EscapePath(cPlain)+"?location=us-east-1")
	waitFor(t, "the activity's first read", func() bool { return !e.act.View().ReadAt.IsZero() })
	if _, err := e.db.ForgetObject(context.Background(), cOnlyUS, e.regions["us-east-1"].ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a redirect to the origin", func() bool {
		_, h := headers(t, curl(t, "-D", "-", "-o", "/dev/null", e.base+"/pub/"+cOnlyUS))
		return strings.HasPrefix(h["location"][0], "https://dl.example.org/")
	})
	waitFor(t, "the runs on the dashboard", func() bool { return len(e.act.View().LastRuns) >= 4 })

	dom := render(t, e.base+"/", "dashboard.png")
	for region, want := range map[string][]string{
		"us-east-1":      {"US", "public", "unknown", "3", "ok", "none"},
		"eu-central-1":   {"DE", "ok"},
		"ap-southeast-2": {"AU", "failed"},
	} {
		row := rowText(dom, "regions", region)
		for _, w := range want {
			if !strings.Contains(row, " "+w+" ") && !strings.HasSuffix(row, " "+w) {
				t.Errorf("dashboard row %s lacks %q: %s", region, w, row)
			}
		}
	}
	for _, want := range []string{`<svg class="map"`, ">us-east-1</text>", ">eu-central-1</text>", ">ap-southeast-2</text>",
		"demo-1/x86_64", `st-fresh">fresh</span>`, `st-missing">missing</span>`, "listing failed: connection reset"} {
		if !strings.Contains(dom, want) {
			t.Errorf("dashboard lacks %s", want)
		}
	}
	if !regexp.MustCompile(`id="saved">Regions served <strong>\d+\.\d%</strong>`).MatchString(dom) || strings.Contains(dom, "<strong>0.0%</strong>") {
		t.Errorf("dashboard lacks the saved share")
	}
	if strings.Contains(dom, "secret-profile-name") {
		t.Error("the dashboard shows a credentials profile")
	}

	dom = render(t, e.base+"/pub/"+model.EscapePath(cUnicode)+"?mirrorlist&location=ap-southeast-2", "mirrorlist.png")
	order := []int{strings.Index(dom, `data-region="ap-southeast-2"`), strings.Index(dom, `data-region="us-east-1"`),
		strings.Index(dom, `data-region="eu-central-1"`), strings.Index(dom, `data-region="origin"`)}
	for i := 1; i < len(order); i++ {
		if order[i-1] < 0 || order[i] < order[i-1] {
			t.Errorf("mirror order (ap-southeast-2, us-east-1, eu-central-1, origin): %v", order)
		}
	}
	for _, want := range []string{"ünïcödé &amp; &lt;friends&gt;.rpm", e.objectURL("ap-southeast-2", cUnicode), "153600 bytes"} {
		if !strings.Contains(dom, strings.ReplaceAll(want, "&", "&amp;")) && !strings.Contains(dom, want) {
			t.Errorf("mirror list lacks %s", want)
		}
	}
	if row := rowText(dom, "mirrors", "us-east-1"); !strings.Contains(row, "US") || !strings.Contains(row, "ago") {
		t.Errorf("mirror list row us-east-1: %s", row)
	}
}
