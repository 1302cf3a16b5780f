package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/server"
)

// TestStatsTableAndJSON: figures written by db.AddUsage (two servers' rounds) show in the
// table per week, repository and arch, and per region summed over the window; --json
// decodes to the same figures; --repo filters the countme rows.
func TestStatsTableAndJSON(t *testing.T) {
	env := migratedEnv(t)
	ctx := context.Background()
	d, err := db.Open(ctx, strings.TrimPrefix(env[0], "REGIONMIRROR_DATABASE_URL="), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	now := time.Now().UTC()
	week, lastWeek := model.WeekStart(now), model.WeekStart(now).AddDate(0, 0, -7)
	hour := now.Truncate(time.Hour)
	cm := func(repo string, w time.Time, bucket int, hits int64) model.CountmeCount {
		return model.CountmeCount{CountmeKey: model.CountmeKey{Repo: repo, Arch: "x86_64", Week: w, Bucket: bucket}, Hits: hits}
	}
	hc := func(h time.Time, region string, req, bytes int64) model.HourCount {
		return model.HourCount{HourKey: model.HourKey{Hour: h, Region: region}, Requests: req, Bytes: bytes}
	}
	for _, delta := range []model.UsageDelta{
		{Countme: []model.CountmeCount{cm("fedora-41", week, 1, 3), cm("fedora-41", week, 4, 10), cm("epel-9", lastWeek, 2, 7)},
			Hours: []model.HourCount{hc(hour, "eu-central-1", 5, 5<<20), hc(hour.Add(-time.Hour), "", 2, 2048)}},
		{Countme: []model.CountmeCount{cm("fedora-41", week, 1, 2)},
			Hours: []model.HourCount{hc(hour, "eu-central-1", 1, 1<<20), hc(hour, "us-east-1", 4, 4096)}},
		// Out of a two-week window: not shown with --weeks 2.
		{Countme: []model.CountmeCount{cm("fedora-41", week.AddDate(0, 0, -14), 3, 99)},
			Hours: []model.HourCount{hc(week.AddDate(0, 0, -8), "us-east-1", 99, 99)}},
	} {
		if err := d.AddUsage(ctx, delta); err != nil {
			t.Fatal(err)
		}
	}

	out := mustCLI(t, env, "stats", "--weeks", "2")
	lines := strings.Split(out, "\n")
	wantRows := []string{
		"WEEK      REPO       ARCH    NEW  <1M  <6M  OLDER  TOTAL",
		model.ISOWeek(lastWeek) + "  epel-9     x86_64  0    7    0    0      7",
		model.ISOWeek(week) + "  fedora-41  x86_64  5    0    0    10     15",
		"",
		"REGION        REQUESTS  BYTES",
		"eu-central-1  6         6.0 MiB",
		"us-east-1     4         4.0 KiB",
		"origin        2         2.0 KiB",
	}
	if len(lines) < 2+len(wantRows) || strings.Join(lines[2:2+len(wantRows)], "\n") != strings.Join(wantRows, "\n") {
		t.Errorf("stats table:\n%s\nwant rows:\n%s", out, strings.Join(wantRows, "\n"))
	}
	if !strings.HasPrefix(lines[0], lastWeek.Format(time.DateOnly)+" to ") {
		t.Errorf("window line %q", lines[0])
	}

	var u model.UsageStats
	if err := json.Unmarshal([]byte(mustCLI(t, env, "stats", "--weeks", "2", "--json")), &u); err != nil {
		t.Fatal(err)
	}
	if !u.From.Equal(lastWeek) || !u.To.Equal(hour.Add(time.Hour)) {
		t.Errorf("json window %v to %v", u.From, u.To)
	}
	if len(u.Countme) != 2 || u.Countme[0] != model.UsageWeekOf("epel-9", "x86_64", lastWeek, [4]int64{0, 7, 0, 0}) ||
		u.Countme[1] != model.UsageWeekOf("fedora-41", "x86_64", week, [4]int64{5, 0, 0, 10}) {
		t.Errorf("json countme %+v", u.Countme)
	}
	var sum [3]int64
	for _, h := range u.Hourly {
		sum[0] += h.Requests
		sum[1] += h.Bytes
		sum[2]++
	}
	if sum != [3]int64{12, 6<<20 + 4096 + 2048, 3} {
		t.Errorf("json hourly %+v", u.Hourly)
	}

	// The default window (26 weeks) has the older week too; --repo keeps one repository.
	if out := mustCLI(t, env, "stats"); !strings.Contains(out, "x86_64  0    0    99   0      99") {
		t.Errorf("stats over 26 weeks lacks the week of 14 days ago:\n%s", out)
	}
	out = mustCLI(t, env, "stats", "--repo", "epel-9", "--weeks", "2")
	if strings.Contains(out, "fedora-41") || !strings.Contains(out, "epel-9") {
		t.Errorf("stats --repo epel-9:\n%s", out)
	}
	if out := mustCLI(t, env, "stats", "--repo", "nosuch"); !strings.Contains(out, "no countme requests") {
		t.Errorf("stats --repo nosuch:\n%s", out)
	}
	for _, bad := range [][]string{{"--weeks", "0"}, {"--weeks", "1000"}, {"--weeks", "x"}, {"--repo", "\xff"}, {"--repo", strings.Repeat("r", 200)}, {"--repo", "a b"}} {
		if out, errs, code := cli(t, env, append([]string{"stats"}, bad...)...); code != exitBadInput || out != "" || !strings.Contains(errs, bad[0]) {
			t.Errorf("stats %v: exit %d, %q %q; want 2", bad, code, out, errs)
		}
	}
	closed := freeAddr(t)
	if _, errs, code := cli(t, []string{"REGIONMIRROR_DATABASE_URL=postgres://rm@" + closed + "/rm?connect_timeout=2"}, "stats"); code != exitFailure {
		t.Errorf("stats, database unreachable: exit %d %s; want 1", code, errs)
	}
}

// TestStatsAPIAndCLIAgree: what `serve` counts (a countme metalink request, and figures
// another server added) reaches the database in serve's background round; then its
// /api/v1/stats and `regionmirror stats --json` give the same weeks and hours.
func TestStatsAPIAndCLIAgree(t *testing.T) {
	env := servedEnv(t)
	ctx := context.Background()
	d, err := db.Open(ctx, getenv(env, "REGIONMIRROR_DATABASE_URL"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	now := time.Now().UTC()
	// Another server's round: last week's countme and two hours of redirects.
	other := model.UsageDelta{
		Countme: []model.CountmeCount{{CountmeKey: model.CountmeKey{Repo: "demo-1", Arch: "x86_64", Week: now.AddDate(0, 0, -7), Bucket: 4}, Hits: 3}},
		Hours: []model.HourCount{{HourKey: model.HourKey{Hour: now.Truncate(time.Hour), Region: "us-east-1"}, Requests: 5, Bytes: 5000},
			{HourKey: model.HourKey{Hour: now.Truncate(time.Hour).Add(-time.Hour), Region: ""}, Requests: 1, Bytes: 10},
			// In the 26 weeks, before the 31 days of hours the server holds.
			{HourKey: model.HourKey{Hour: now.Truncate(time.Hour).AddDate(0, 0, -40), Region: "us-east-1"}, Requests: 7, Bytes: 70}},
	}
	if err := d.AddUsage(ctx, other); err != nil {
		t.Fatal(err)
	}
	srv := startServe(t, env)
	res, err := http.Get(srv.base + "/metalink?repo=demo-1&arch=x86_64&countme=2")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("metalink: %s", res.Status)
	}
	// serve flushes and re-reads every 10 s: wait for the request in its answer.
	var api model.UsageStats
	for deadline := time.Now().Add(40 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		res, err := http.Get(srv.base + "/api/v1/stats")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		api = model.UsageStats{}
		if res.StatusCode == http.StatusOK {
			if err := json.Unmarshal(body, &api); err != nil {
				t.Fatalf("stats API: %v\n%s", err, body)
			}
			if n := len(api.Countme); n > 0 && api.Countme[n-1].Buckets[1] == 1 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the countme request never reached the stats API: %d %s", res.StatusCode, body)
		}
	}
	var cli model.UsageStats
	if err := json.Unmarshal([]byte(mustCLI(t, env, "stats", "--json")), &cli); err != nil {
		t.Fatal(err)
	}
	// The same window; the API's hours start where the server's held hours do, and it
	// says so; the CLI's at from.
	if !api.From.Equal(cli.From) || !api.To.Equal(cli.To) || !cli.HourlyFrom.Equal(cli.From) ||
		!api.HourlyFrom.Equal(cli.To.Add(-server.UsageHours*time.Hour)) {
		t.Errorf("windows: API %v-%v hours from %v, CLI %v-%v hours from %v", api.From, api.To, api.HourlyFrom, cli.From, cli.To, cli.HourlyFrom)
	}
	var cliHeld []model.UsageHour
	for _, h := range cli.Hourly {
		if !h.Hour.Before(api.HourlyFrom) {
			cliHeld = append(cliHeld, h)
		}
	}
	if !reflect.DeepEqual(api.Countme, cli.Countme) || !reflect.DeepEqual(api.Hourly, cliHeld) {
		t.Errorf("the API and the CLI disagree:\nAPI countme %+v\nCLI countme %+v\nAPI hourly %+v\nCLI hourly %+v",
			api.Countme, cli.Countme, api.Hourly, cli.Hourly)
	}
	want := []model.UsageWeek{model.UsageWeekOf("demo-1", "x86_64", model.WeekStart(now.AddDate(0, 0, -7)), [4]int64{0, 0, 0, 3}),
		model.UsageWeekOf("demo-1", "x86_64", model.WeekStart(now), [4]int64{0, 1, 0, 0})}
	if !reflect.DeepEqual(cli.Countme, want) {
		t.Errorf("countme %+v, want %+v", cli.Countme, want)
	}
	if len(cli.Hourly) != 3 || len(api.Hourly) != 2 {
		t.Errorf("CLI hourly %+v, want the three hours added; API %+v, want the two of the last 31 days", cli.Hourly, api.Hourly)
	}
}

// TestServeCountsWhatItAnswersWhileDraining: a request serve answers after SIGTERM, in the
// drain, is in the database once serve has exited. The request waits for an on-demand
// copy (ondemand.max_wait) that never comes, then is redirected elsewhere; the counting
// loops used to flush at the signal, before the drain, and lose it.
func TestServeCountsWhatItAnswersWhileDraining(t *testing.T) {
	env, d, _ := fillEnv(t)
	srv := startServe(t, append(env, "REGIONMIRROR_ONDEMAND_MAX_WAIT=2s"))
	answered := make(chan *http.Response, 1)
	go func() {
		// No redirects followed: the answer is the 302.
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		res, err := c.Get(srv.base + "/pub/" + fillPath + "?location=frankfurt-od")
		if err != nil {
			t.Errorf("the drained request: %v", err)
			res = nil
		} else {
			res.Body.Close()
		}
		answered <- res
	}()
	time.Sleep(500 * time.Millisecond) // the request waits for the copy
	srv.stop()
	res := <-answered
	if res == nil {
		t.Fatal(srv.stderr.String())
	}
	if res.StatusCode != http.StatusFound || !strings.Contains(res.Header.Get("Location"), "/"+fillPath) {
		t.Fatalf("the drained request: %s %s", res.Status, res.Header.Get("Location"))
	}
	totals, err := d.RedirectCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	byRegion := map[string]model.RedirectCount{}
	for _, c := range totals {
		byRegion[c.Region] = c
	}
	if byRegion["eu-central-1"].Requests != 1 || byRegion["frankfurt-od"].Misses != 1 {
		t.Errorf("totals after serve exited: %+v, want the drained request's redirect and miss", totals)
	}
	now := time.Now()
	u, err := d.Usage(context.Background(), now.Add(-2*time.Hour), now.Add(time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Hourly) != 1 || u.Hourly[0].Region != "eu-central-1" || u.Hourly[0].Requests != 1 {
		t.Errorf("hourly after serve exited: %+v, want the drained request's", u.Hourly)
	}
}
