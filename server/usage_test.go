package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
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
	// The default window: this ISO week and the 25 before, to now.
	if !got.From.Equal(week.AddDate(0, 0, -7*(StatsDefaultWeeks-1))) || !got.To.Equal(now) {
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
