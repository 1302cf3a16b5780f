package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

// usageServer is a server answering from the fixture snapshot whose Activity counts into d,
// both on clock.
func usageServer(t *testing.T, src ActivitySource, clock func() time.Time) (*Server, *Activity) {
	t.Helper()
	store := NewStore(nil, StoreOptions{})
	store.Swap(fixture(t, "https://dl.example.org/pub"))
	act := NewActivity(src, ActivityOptions{Now: clock})
	return New(Options{
		Store: store, Metrics: NewMetrics(store), GeoIP: fakeGeo{},
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Now:            clock, Activity: act,
	}), act
}

// TestCountmeAcrossServers: a countme=2 metalink request to one of two servers sharing a
// database is counted once, in the ISO week and bucket it was made in, and the other
// server's stats API shows it after its round. HEAD, bad values, unknown repositories and
// requests without countme= count nothing.
func TestCountmeAcrossServers(t *testing.T) {
	ctx := context.Background()
	d, _ := testenv.NewDB(t)
	clock := func() time.Time { return now }
	s1, a1 := usageServer(t, d, clock)
	s2, a2 := usageServer(t, d, clock)

	for _, r := range []struct {
		s              *Server
		method, target string
		status         int
	}{
		{s1, http.MethodGet, "/metalink?repo=demo-1&arch=x86_64&countme=2", 200},
		{s1, http.MethodHead, "/metalink?repo=demo-1&arch=x86_64&countme=2", 200},
		{s1, http.MethodGet, "/metalink?repo=demo-1&arch=x86_64&countme=9", 200},
		{s1, http.MethodGet, "/metalink?repo=demo-1&arch=x86_64&countme=%32x", 200},
		{s1, http.MethodGet, "/metalink?repo=demo-2&arch=x86_64&countme=2", 404},
		{s1, http.MethodGet, "/metalink?repo=demo-1&arch=x86_64&country=zz&countme=2", 400},
		{s2, http.MethodGet, "/metalink?repo=demo-1&arch=x86_64", 200},
		{s2, http.MethodGet, "/mirrorlist?repo=demo-1&arch=x86_64", 200},
	} {
		if res, body := do(t, r.s, r.method, r.target); res.StatusCode != r.status {
			t.Fatalf("%s %s: %d, want %d\n%s", r.method, r.target, res.StatusCode, r.status, body)
		}
	}
	// Before its first round the second server has no figures: 503, as the other answers
	// that need data not read yet.
	if res, body := do(t, s2, http.MethodGet, "/api/v1/stats"); res.StatusCode != 503 || !json.Valid([]byte(body)) {
		t.Errorf("stats before the first read: %d %s", res.StatusCode, body)
	}
	a1.Round(ctx)
	a2.Round(ctx)
	for _, a := range []*Activity{a1, a2} {
		if v := a.View(); v.Error != "" || v.Usage == nil {
			t.Fatalf("round: %q", v.Error)
		}
	}
	week := model.WeekStart(now)
	want := []model.UsageWeek{model.UsageWeekOf("demo-1", "x86_64", week, [4]int64{0, 1, 0, 0})}
	u, err := d.Usage(ctx, week, now.Add(time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	if !equalWeeks(u.Countme, want) || want[0].Week != "2026-W47" {
		t.Errorf("db.Usage countme %+v, want %+v", u.Countme, want)
	}
	res, body := do(t, s2, http.MethodGet, "/api/v1/stats")
	var got model.UsageStats
	if err := json.Unmarshal([]byte(body), &got); res.StatusCode != 200 || err != nil {
		t.Fatalf("stats: %d %v %s", res.StatusCode, err, body)
	}
	if !equalWeeks(got.Countme, want) {
		t.Errorf("second server's stats countme %+v, want %+v", got.Countme, want)
	}
	// The default window: this ISO week and the 25 before, to the end of this hour.
	if !got.From.Equal(week.AddDate(0, 0, -7*(model.DefaultUsageWeeks-1))) || !got.To.Equal(now.Truncate(time.Hour).Add(time.Hour)) {
		t.Errorf("default window %s .. %s", got.From, got.To)
	}
	// Another round on both adds nothing.
	a1.Round(ctx)
	a2.Round(ctx)
	if u, err := d.Usage(ctx, week, now.Add(time.Hour), ""); err != nil || !equalWeeks(u.Countme, want) {
		t.Errorf("after a second round: %+v %v", u.Countme, err)
	}
}

func equalWeeks(a, b []model.UsageWeek) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// faultySource is the database with AddUsage failing while fail is set.
type faultySource struct {
	*db.DB
	fail  atomic.Bool
	calls atomic.Int64
}

func (f *faultySource) AddUsage(ctx context.Context, delta model.UsageDelta) error {
	f.calls.Add(1)
	if f.fail.Load() {
		return errors.New("fault injected: connection reset")
	}
	return f.DB.AddUsage(ctx, delta)
}

// testClock is a clock a test sets.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// TestActivityHoursAndFailedFlush: redirects go to the hour of the window they were counted
// in; a flush that fails (faultySource) keeps the hourly, countme and total deltas, and the
// next one writes each once.
func TestActivityHoursAndFailedFlush(t *testing.T) {
	ctx := context.Background()
	d, _ := testenv.NewDB(t)
	src := &faultySource{DB: d}
	h12 := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	clock := &testClock{t: h12.Add(10 * time.Minute)}
	a := NewActivity(src, ActivityOptions{Now: clock.Now})

	// 12:10-13:00: two redirects to us-east-1, one to the origin, one countme.
	a.Redirected("us-east-1", 100)
	a.Redirected("us-east-1", 100)
	a.Redirected("", 50)
	a.Countme("demo-1", "x86_64", 1)
	clock.Set(h12.Add(time.Hour))
	src.fail.Store(true)
	a.Round(ctx)
	if v := a.View(); v.Error == "" {
		t.Fatal("the failed round left no error")
	}
	// 13:00-14:00: one more, and a countme; the flush works again.
	a.Redirected("us-east-1", 10)
	a.Countme("demo-1", "x86_64", 2)
	clock.Set(h12.Add(2 * time.Hour))
	src.fail.Store(false)
	a.Round(ctx)
	if v := a.View(); v.Error != "" {
		t.Fatalf("round: %s", v.Error)
	}
	// 14:00-15:00: nothing; a round adds nothing.
	clock.Set(h12.Add(3 * time.Hour))
	a.Round(ctx)
	if n := src.calls.Load(); n != 2 {
		t.Errorf("AddUsage called %d times, want 2 (the empty round writes nothing)", n)
	}

	u, err := d.Usage(ctx, h12.Add(-time.Hour), h12.Add(4*time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	wantHours := []model.UsageHour{
		{Hour: h12, Region: "", Requests: 1, Bytes: 50},
		{Hour: h12, Region: "us-east-1", Requests: 2, Bytes: 200},
		{Hour: h12.Add(time.Hour), Region: "us-east-1", Requests: 1, Bytes: 10},
	}
	if len(u.Hourly) != len(wantHours) {
		t.Fatalf("hours %+v, want %+v", u.Hourly, wantHours)
	}
	for i, h := range u.Hourly {
		if w := wantHours[i]; !h.Hour.Equal(w.Hour) || h.Region != w.Region || h.Requests != w.Requests || h.Bytes != w.Bytes {
			t.Errorf("hour %d: %+v, want %+v", i, h, w)
		}
	}
	wantWeeks := []model.UsageWeek{model.UsageWeekOf("demo-1", "x86_64", model.WeekStart(h12), [4]int64{1, 1, 0, 0})}
	if !equalWeeks(u.Countme, wantWeeks) {
		t.Errorf("countme %+v, want %+v", u.Countme, wantWeeks)
	}
	totals, err := d.RedirectCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byRegion := map[string]model.RedirectCount{}
	for _, c := range totals {
		byRegion[c.Region] = c
	}
	if o, us := byRegion[""], byRegion["us-east-1"]; o.Requests != 1 || o.Bytes != 50 || us.Requests != 3 || us.Bytes != 210 {
		t.Errorf("totals %+v", totals)
	}
	// The view the stats API answers from holds the same.
	if v := a.View(); v.Usage == nil || len(v.Usage.Hourly) != 3 || !equalWeeks(v.Usage.Countme, wantWeeks) {
		t.Errorf("view usage %+v", v.Usage)
	}
}

// TestStatsWindow: the stats API's from, to and repo, their defaults and what is refused.
func TestStatsWindow(t *testing.T) {
	clock := time.Date(2026, 12, 2, 15, 30, 0, 0, time.UTC) // a Wednesday in 2026-W49
	defFrom := time.Date(2026, 6, 8, 0, 0, 0, 0, time.UTC)  // the Monday 25 weeks before 2026-11-30
	defTo := time.Date(2026, 12, 2, 16, 0, 0, 0, time.UTC)  // the end of the clock's hour, as the CLI's
	for _, tt := range []struct {
		query    map[string]string
		from, to time.Time
		repo     string
		bad      string
	}{
		{query: nil, from: defFrom, to: defTo},
		{query: map[string]string{"from": "2026-11-30", "to": "2026-12-01", "repo": "demo-1"},
			from: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), to: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), repo: "demo-1"},
		{query: map[string]string{"from": "2026-12-01T10:00:00+02:00"}, from: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC), to: defTo},
		{query: map[string]string{"to": "2026-11-01"}, from: defFrom, to: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)},
		{query: map[string]string{"from": "2024-12-10"}, from: time.Date(2024, 12, 10, 0, 0, 0, 0, time.UTC), to: defTo},
		{query: map[string]string{"from": "yesterday"}, bad: "parameter from: not a time"},
		{query: map[string]string{"to": "2026-13-01"}, bad: "parameter to: not a time"},
		{query: map[string]string{"from": "2026-12-01", "to": "2026-12-01"}, bad: "from must be before to"},
		{query: map[string]string{"from": "2026-12-02", "to": "2026-12-01"}, bad: "from must be before to"},
		{query: map[string]string{"from": "2020-01-01"}, bad: "window longer than two years"},
		{query: map[string]string{"from": strings.Repeat("9", 100)}, bad: "parameter from: not a time"},
		{query: map[string]string{"repo": strings.Repeat("r", 300)}, bad: "parameter repo: longer than"},
	} {
		from, to, repo, err := statsWindow(func(k string) string { return tt.query[k] }, clock)
		if tt.bad != "" {
			if err == nil || !strings.Contains(err.Error(), tt.bad) {
				t.Errorf("%v: %v, want %q", tt.query, err, tt.bad)
			}
			continue
		}
		if err != nil || !from.Equal(tt.from) || !to.Equal(tt.to) || repo != tt.repo {
			t.Errorf("%v: %s %s %q %v, want %s %s %q", tt.query, from, to, repo, err, tt.from, tt.to, tt.repo)
		}
	}
}

// TestStatsAnswer: the window's weeks and hours out of what is held; a window reaching
// before it is clipped, and From says where it starts.
func TestStatsAnswer(t *testing.T) {
	w := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	held := &model.UsageStats{From: w(2026, 11, 16), To: w(2026, 12, 3),
		Countme: []model.UsageWeek{
			model.UsageWeekOf("a", "x86_64", w(2026, 11, 16), [4]int64{1, 0, 0, 0}),
			model.UsageWeekOf("b", "x86_64", w(2026, 11, 16), [4]int64{0, 2, 0, 0}),
			model.UsageWeekOf("a", "x86_64", w(2026, 11, 23), [4]int64{0, 0, 3, 0}),
		},
		Hourly: []model.UsageHour{{Hour: w(2026, 11, 23).Add(5 * time.Hour), Region: "us-east-1", Requests: 4, Bytes: 40},
			{Hour: w(2026, 11, 24), Region: "", Requests: 1, Bytes: 10}},
	}
	got := statsAnswer(held, w(2026, 1, 1), w(2026, 12, 3), "")
	if !got.From.Equal(held.From) || len(got.Countme) != 3 || len(got.Hourly) != 2 {
		t.Errorf("clipped: %+v", got)
	}
	got = statsAnswer(held, w(2026, 11, 23), w(2026, 11, 24), "a")
	if len(got.Countme) != 1 || got.Countme[0].Buckets[2] != 3 || len(got.Hourly) != 1 || got.Hourly[0].Requests != 4 {
		t.Errorf("one week of a: %+v", got)
	}
	got = statsAnswer(held, w(2025, 1, 1), w(2025, 2, 1), "")
	if len(got.Countme) != 0 || len(got.Hourly) != 0 || got.Countme == nil || !got.From.Equal(held.From) {
		t.Errorf("before what is held: %+v", got)
	}
}

// TestStatsAPIErrors: bad windows are 400 with a JSON error, a server without usage
// figures 503, and none names more than the parameter.
func TestStatsAPIErrors(t *testing.T) {
	s, _ := usageServer(t, nil, func() time.Time { return now })
	for target, status := range map[string]int{
		"/api/v1/stats": 503,
		"/api/v1/stats?from=2026-11-20&to=2026-11-19":      400,
		"/api/v1/stats?from=%3Cscript%3E":                  400,
		"/api/v1/stats?from=2019-01-01":                    400,
		"/api/v1/stats?to=2026-11-22T00:00:00Z&repo=x%00y": 503,
	} {
		res, body := do(t, s, http.MethodGet, target)
		var e struct{ Error string }
		if res.StatusCode != status || json.Unmarshal([]byte(body), &e) != nil || e.Error == "" || strings.Contains(body, "script") {
			t.Errorf("%s: %d %s, want %d with a JSON error", target, res.StatusCode, body, status)
		}
	}
}

// recordingSource keeps the deltas added.
type recordingSource struct{ deltas []model.UsageDelta }

func (r *recordingSource) AddUsage(_ context.Context, d model.UsageDelta) error {
	r.deltas = append(r.deltas, d)
	return nil
}
func (r *recordingSource) RedirectCounts(context.Context) ([]model.RedirectCount, error) {
	return nil, nil
}
func (r *recordingSource) RecentRuns(context.Context, string, int) ([]model.Run, error) {
	return nil, nil
}
func (r *recordingSource) LastRuns(context.Context) ([]model.LastRun, error) { return nil, nil }

// TestCountmeWeeks: countme requests go to the ISO week they were made in, across a week's
// end and back (a clock set back), as the cached week must not hide.
func TestCountmeWeeks(t *testing.T) {
	src := &recordingSource{}
	sunday := time.Date(2026, 11, 29, 23, 59, 0, 0, time.UTC) // end of 2026-W48
	clock := &testClock{t: sunday}
	a := NewActivity(src, ActivityOptions{Now: clock.Now})
	a.Countme("r", "x", 1)
	clock.Set(sunday.Add(2 * time.Minute)) // Monday of 2026-W49
	a.Countme("r", "x", 1)
	a.Countme("r", "x", 1)
	clock.Set(sunday.Add(-time.Hour))
	a.Countme("r", "x", 4)
	a.Countme("r", "x", 0) // ignored
	a.Countme("r", "x", 5) // ignored
	a.Round(context.Background())
	if len(src.deltas) != 1 {
		t.Fatalf("deltas %+v", src.deltas)
	}
	got := map[string]int64{}
	for _, c := range src.deltas[0].Countme {
		got[model.ISOWeek(c.Week)+" "+strconv.Itoa(c.Bucket)] += c.Hits
	}
	if len(got) != 3 || got["2026-W48 1"] != 1 || got["2026-W49 1"] != 2 || got["2026-W48 4"] != 1 {
		t.Errorf("countme %v", got)
	}
}
