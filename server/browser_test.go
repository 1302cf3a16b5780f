package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/db"
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
	screenshot(t, url, shot, 1280, 1100)
	return dom
}

// screenshot saves a screenshot of url, width x height, in screenshotDir as shot.
func screenshot(t *testing.T, url, shot string, width, height int) {
	t.Helper()
	path := filepath.Join(screenshotDir(t), shot)
	_ = os.Remove(path)
	_, console := chromium(t, fmt.Sprintf("--window-size=%d,%d", width, height), "--screenshot="+path, url)
	if len(console) > 0 {
		t.Errorf("%s: console messages:\n%s", url, strings.Join(console, "\n"))
	}
	b, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) || len(b) < 10_000 {
		t.Fatalf("screenshot %s: %v (%d bytes)", path, err, len(b))
	}
	t.Logf("screenshot of %s at %d px: %s", url, width, path)
}

// axeResult is one line of testdata/axe/check.js.
type axeResult struct {
	URL        string `json:"url"`
	Violations []struct {
		ID, Impact, Help string
		Nodes            []string
	} `json:"violations"`
	ScrollWidth int `json:"scrollWidth"`
	InnerWidth  int `json:"innerWidth"`
}

// axeCheck runs axe-core in the system Chromium on urls at width (testdata/axe/check.js)
// and fails on serious or critical findings, and on a page that scrolls sideways.
func axeCheck(t *testing.T, width int, urls ...string) {
	t.Helper()
	node := requireTool(t, "node", "nodejs")
	modules, err := filepath.Abs(filepath.Join("..", ".tmp", "npm", "node_modules"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"axe-core", "puppeteer-core"} {
		if _, err := os.Stat(filepath.Join(modules, m)); err != nil {
			t.Fatalf("%s is missing from %s: run ./.ci/deps", m, modules)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{filepath.Join("..", "testdata", "axe", "check.js"), strconv.Itoa(width)}, urls...)...)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("check.js %d %v: %v\n%s", width, urls, err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(urls) {
		t.Fatalf("check.js: %d results for %d pages:\n%s", len(lines), len(urls), out)
	}
	for _, l := range lines {
		var r axeResult
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("check.js output %q: %v", l, err)
		}
		for _, v := range r.Violations {
			if v.Impact == "serious" || v.Impact == "critical" || strings.HasPrefix(v.ID, "landmark") || v.ID == "region" {
				t.Errorf("axe at %d px on %s: %s (%s): %s\n%s", width, r.URL, v.ID, v.Impact, v.Help, strings.Join(v.Nodes, "\n"))
			} else {
				t.Logf("axe at %d px on %s: %s (%s): %s", width, r.URL, v.ID, v.Impact, v.Help)
			}
		}
		if r.ScrollWidth != r.InnerWidth {
			t.Errorf("%s at %d px scrolls sideways: scrollWidth %d, innerWidth %d", r.URL, width, r.ScrollWidth, r.InnerWidth)
		}
	}
}

// tidyCheck fails when tidy reports errors in the page at url.
func tidyCheck(t *testing.T, url string) {
	t.Helper()
	tidy := requireTool(t, "tidy", "tidy")
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	page, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", url, res.StatusCode, err)
	}
	cmd := exec.Command(tidy, "-errors", "-q")
	cmd.Stdin = bytes.NewReader(page)
	out, err := cmd.CombinedOutput()
	// tidy exits 1 for warnings alone, 2 for errors; -errors prints only the errors.
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) || strings.Contains(string(out), "Error:") {
		t.Errorf("tidy on %s: %v\n%s", url, err, out)
	}
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
	seedUsage(t, e.db, time.Now())
	// And one countme request through the server, counted by its Activity.
	curl(t, "-o", "/dev/null", e.base+"/metalink?repo=demo-1&arch=x86_64&countme=3")
	waitFor(t, "the usage figures", func() bool {
		u := e.act.View().Usage
		// The seeded 1+(3*25)%7+3*3 of bucket 3 this week, and the request's.
		return u != nil && len(u.Countme) == 26 && u.Countme[25].Buckets[2] == 1+(3*25)%7+3*3+1
	})

	dom := render(t, e.base+"/", "dashboard.png")
	// The usage plots (seeded above), drawn below the tables: the whole page, tall.
	for _, want := range []string{`<figure class="plot" id="countme-1-demo-1-x86_64"`, `<figure class="plot" id="redirects-hourly"`,
		`<figure class="plot" id="bytes-hourly"`, `<figure class="plot" id="share-daily"`, "<details", "<main>"} {
		if !strings.Contains(dom, want) {
			t.Errorf("dashboard lacks %s", want)
		}
	}
	screenshot(t, e.base+"/", "dashboard-full.png", 1280, 3000)
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

	// The pages at a phone's width; axe and tidy on them.
	mirrorlist := e.base + "/pub/" + model.EscapePath(cUnicode) + "?mirrorlist&location=ap-southeast-2"
	screenshot(t, e.base+"/", "dashboard-390.png", 390, 6000)
	screenshot(t, mirrorlist, "mirrorlist-390.png", 390, 1400)
	pages := []string{e.base + "/", mirrorlist, e.base + "/pub/" + model.EscapePath(cOnlyUS) + "?mirrorlist"}
	for _, w := range []int{1280, 390} {
		axeCheck(t, w, pages...)
	}
	for _, p := range pages {
		tidyCheck(t, p)
	}
}

// seedUsage adds usage figures as servers would have: countme of demo-1/x86_64 in each of
// the last 26 weeks, and hourly redirects to two regions and the origin over the last 7
// days.
func seedUsage(t *testing.T, d *db.DB, now time.Time) {
	t.Helper()
	var delta model.UsageDelta
	week := model.WeekStart(now)
	for i := range 26 {
		w := week.AddDate(0, 0, -7*(25-i))
		for b := 1; b <= 4; b++ {
			delta.Countme = append(delta.Countme, model.CountmeCount{CountmeKey: model.CountmeKey{Repo: "demo-1", Arch: "x86_64", Week: w, Bucket: b},
				Hits: int64(1 + (b*i)%7 + 3*b)})
		}
	}
	hour := now.UTC().Truncate(time.Hour)
	for i := range 168 {
		h := hour.Add(-time.Duration(i) * time.Hour)
		day := float64(h.Hour())
		for j, region := range []string{"us-east-1", "eu-central-1", ""} {
			n := int64(20 + 15*math.Sin(day/24*2*math.Pi+float64(j)) + float64(10*j))
			delta.Hours = append(delta.Hours, model.HourCount{HourKey: model.HourKey{Hour: h, Region: region}, Requests: n, Bytes: n * 150 << 10})
		}
	}
	if err := d.AddUsage(context.Background(), delta); err != nil {
		t.Fatal(err)
	}
}
