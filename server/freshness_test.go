package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
	"github.com/regionmirror/regionmirror/server/selection"
)

// TestFreshnessOf: a region's lag is the current version's publication there, "not yet"
// while it does not serve it, and the summary covers every publication it served.
func TestFreshnessOf(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { x := t0.Add(d); return &x }
	const a, b, c = 1, 2, 3 // region IDs
	pub := func(ver int64, region int64, seen, verified time.Duration) model.Publication {
		p := model.Publication{RepositoryID: 7, VersionID: ver, Timestamp: 1000 + ver, FirstSeen: t0.Add(seen), RegionID: region}
		if region != 0 {
			p.VerifiedAt = at(verified)
		}
		return p
	}
	pubs := []model.Publication{
		pub(1, a, 0, 4*time.Second), pub(1, b, 0, 10*time.Second),
		pub(2, a, time.Hour, time.Hour+2*time.Second), pub(2, b, time.Hour, time.Hour+6*time.Second),
		pub(3, a, 2*time.Hour, 2*time.Hour+3*time.Second),
	}
	cur := &selection.Version{Timestamp: 1003, FirstSeen: t0.Add(2 * time.Hour)}
	f := func(s float64) *float64 { return &s }
	for _, tt := range []struct {
		name          string
		pubs          []model.Publication
		region        int64
		cur           *selection.Version
		servesCurrent bool
		last          *float64
		notYet        bool
		median        *float64
		min, max      *float64
		n             int
	}{
		{"serves the current version", pubs, a, cur, true, f(3), false, f(3), f(2), f(4), 3},
		{"still on an older one", pubs, b, cur, false, nil, true, f(8), f(6), f(10), 2},
		{"never served anything", pubs, c, cur, false, nil, true, nil, nil, nil, 0},
		{"no repomd.xml yet", nil, a, nil, false, nil, false, nil, nil, nil, 0},
		{"serves it, publication not read yet", pubs[:4], a, cur, true, nil, false, f(3), f(2), f(4), 2},
		{"a version published again: its old publication says nothing", append([]model.Publication{pub(9, a, 3*time.Hour, time.Second)}, pubs...),
			a, cur, true, f(3), false, f(3), f(2), f(4), 3},
		{"a version no region served", append(pubs, pub(4, 0, 3*time.Hour, 0)), a, &selection.Version{Timestamp: 1004, FirstSeen: t0.Add(3 * time.Hour)}, false,
			nil, true, f(3), f(2), f(4), 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := freshnessOf(tt.pubs, tt.region, tt.cur, tt.servesCurrent)
			eq := func(what string, got, want *float64) {
				if (got == nil) != (want == nil) || got != nil && *got != *want {
					t.Errorf("%s = %s, want %s", what, lagText(got), lagText(want))
				}
			}
			eq("last", v.LastLagSeconds, tt.last)
			eq("median", v.MedianLagSeconds, tt.median)
			eq("min", v.MinLagSeconds, tt.min)
			eq("max", v.MaxLagSeconds, tt.max)
			if v.NotYet != tt.notYet || v.Publications != tt.n || len(v.Samples) != tt.n {
				t.Errorf("not yet %v, %d publications (%d samples); want %v, %d", v.NotYet, v.Publications, len(v.Samples), tt.notYet, tt.n)
			}
			if (v.Plot != nil) != (tt.n > 0) {
				t.Fatalf("plot %v with %d publications", v.Plot, tt.n)
			}
			if v.Plot != nil {
				if len(v.Plot.Bars) != tt.n {
					t.Errorf("%d bars for %d publications", len(v.Plot.Bars), tt.n)
				}
				tallest := 0.0
				for i, bar := range v.Plot.Bars {
					if bar.H < 1 || bar.Y+bar.H != float64(v.Plot.Height) || bar.X+bar.W > float64(v.Plot.Width) {
						t.Errorf("bar %d %+v outside the %dx%d plot", i, bar, v.Plot.Width, v.Plot.Height)
					}
					tallest = max(tallest, bar.H)
				}
				if tallest != float64(v.Plot.Height) {
					t.Errorf("the largest lag's bar is %v high, want the plot's %d", tallest, v.Plot.Height)
				}
			}
		})
	}
	if got := median([]time.Duration{1, 2, 3, 10}); got != 2 {
		t.Errorf("median of 1 2 3 10 = %v, want 2 (the two middle values' mean, rounded down)", got)
	}
}

func TestLagText(t *testing.T) {
	f := func(s float64) *float64 { return &s }
	for _, tt := range []struct {
		in   any
		want string
	}{
		{(*float64)(nil), "—"}, {f(0.84), "840 ms"}, {f(2.54), "2.5 s"}, {f(12.4), "12 s"}, {185 * time.Second, "3m05s"}, {f(7300), "2h01m"},
	} {
		if got := lagText(tt.in); got != tt.want {
			t.Errorf("lagText(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// freshnessEnv is a real database with three regions and one repository whose repomd.xml
// was published n times: us-east-1 and eu-central-1 served every version, ap-southeast-2
// all but the last (it is still on the previous one).
type freshnessEnv struct {
	db      *db.DB
	regions []*model.Region
	srv     *httptest.Server
}

func newFreshnessEnv(t *testing.T, n int) *freshnessEnv {
	t.Helper()
	ctx := context.Background()
	d, _ := testenv.NewDB(t)
	e := &freshnessEnv{db: d}
	for _, name := range []string{"us-east-1", "eu-central-1", "ap-southeast-2"} {
		e.regions = append(e.regions, createRegion(t, d, name))
	}
	repo := &model.Repository{Name: "demo-1", Arch: "x86_64", Directory: "pkgs"}
	if err := d.CreateRepository(ctx, repo); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		sum := bytes.Repeat([]byte{byte(i + 1)}, 32)
		v := &model.RepomdVersion{RepositoryID: repo.ID, MD5: make([]byte, 16), SHA1: make([]byte, 20), SHA256: sum,
			SHA512: make([]byte, 64), Size: 100, Timestamp: 1763726400 + int64(i)}
		if _, err := d.RecordRepomdVersion(ctx, v); err != nil {
			t.Fatal(err)
		}
		for _, r := range e.regions {
			if r.Name == "ap-southeast-2" && i == n-1 {
				continue // still on the previous version
			}
			if err := d.SetRegionRepo(ctx, db.NoFence, model.RegionRepo{RegionID: r.ID, RepositoryID: repo.ID, State: model.RepoFresh,
				HTTPStatus: 200, RepomdSHA256: sum}); err != nil {
				t.Fatal(err)
			}
		}
	}
	store := NewStore(d, StoreOptions{Policy: selection.Policy{AlternatesMaxAge: 72 * time.Hour}, Interval: time.Hour})
	if err := store.Refresh(ctx, false); err != nil {
		t.Fatal(err)
	}
	act := NewActivity(d, ActivityOptions{})
	act.Round(ctx) // the background round, once: requests only read what it read
	if v := act.View(); v.Error != "" || v.ReadAt.IsZero() {
		t.Fatalf("activity round: %q", v.Error)
	}
	s := New(Options{Store: store, Activity: act, DownloadPrefix: "/pub", Log: slog.New(slog.DiscardHandler)})
	e.srv = httptest.NewServer(s.Handler())
	t.Cleanup(e.srv.Close)
	return e
}

func (e *freshnessEnv) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get(e.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v\n%s", path, resp.StatusCode, err, b)
	}
	return string(b)
}

// TestDashboardPlotsFreshness: the dashboard draws each region's lags of the last
// publications as inline SVG with a text alternative and the values in a table, says "not
// yet" where the current version is not served, and names no bucket.
func TestDashboardPlotsFreshness(t *testing.T) {
	const n = 55 // more than the PublicationsPerRepo shown
	e := newFreshnessEnv(t, n)
	page := e.get(t, "/")
	i := strings.Index(page, `id="freshness"`)
	if i < 0 {
		t.Fatalf("no freshness table on the dashboard")
	}
	table := page[i:]
	table = table[:strings.Index(table, "\n</table></div>")]
	cell := func(region string) string {
		j := strings.Index(table, `<td data-region="`+region+`"`)
		if j < 0 {
			t.Fatalf("no freshness cell for %s", region)
		}
		c := table[j:]
		if k := strings.Index(c[1:], `<td data-region="`); k >= 0 {
			c = c[:k+1]
		}
		return c
	}
	summaryRE := regexp.MustCompile(`<title>Freshness lag of demo-1/x86_64 in ([a-z0-9-]+) over its last (\d+) publications: min [0-9.]+ m?s, median [0-9.]+ m?s, max [0-9.]+ m?s</title>`)
	for region, want := range map[string]int{"us-east-1": PublicationsPerRepo, "eu-central-1": PublicationsPerRepo, "ap-southeast-2": PublicationsPerRepo - 1} {
		c := cell(region)
		if !strings.Contains(c, `<svg class="lag"`) || !strings.Contains(c, `role="img"`) || !strings.Contains(c, `aria-label="Freshness lag of demo-1/x86_64 in `+region) {
			t.Errorf("%s: no labelled inline SVG plot:\n%s", region, c)
		}
		m := summaryRE.FindStringSubmatch(c)
		if m == nil || m[1] != region || m[2] != strconv.Itoa(want) {
			t.Errorf("%s: the plot's text alternative is not min/median/max over %d publications:\n%s", region, want, c)
		}
		if got := strings.Count(c, "<rect "); got != want {
			t.Errorf("%s: %d bars, want %d", region, got, want)
		}
		if got := strings.Count(c, `<tr><td class="num">`); got != want || !strings.Contains(c, "<details>") {
			t.Errorf("%s: %d values in the details table, want %d", region, got, want)
		}
		notYet := strings.Contains(c, "not yet")
		if notYet != (region == "ap-southeast-2") {
			t.Errorf("%s: says not yet: %v\n%s", region, notYet, c)
		}
		if !notYet && !regexp.MustCompile(`last <strong>[0-9.]+ m?s</strong>`).MatchString(c) {
			t.Errorf("%s: no last lag:\n%s", region, c)
		}
	}
	for _, r := range e.regions {
		if strings.Contains(page, r.Bucket) {
			t.Errorf("the dashboard names bucket %s", r.Bucket)
		}
	}
	if strings.Contains(page, "<script") || regexp.MustCompile(`(src|href)="https?:`).MatchString(table) {
		t.Error("the freshness plots load something or run scripts")
	}
}

// TestAPICarriesFreshness: /api/v1/repositories and /api/v1/status carry each region's
// freshness: the last lag (null while not yet served), the median over the last
// publications and how many there were.
func TestAPICarriesFreshness(t *testing.T) {
	const n = 4
	e := newFreshnessEnv(t, n)
	type fresh struct {
		LastLagSeconds   *float64 `json:"last_lag_seconds"`
		MedianLagSeconds *float64 `json:"median_lag_seconds"`
		Publications     *int     `json:"publications"`
		NotYet           bool     `json:"not_yet"`
	}
	type repos struct {
		Repositories []struct {
			Name    string `json:"name"`
			Regions map[string]struct {
				State     string `json:"state"`
				Freshness *fresh `json:"freshness"`
			} `json:"regions"`
		} `json:"repositories"`
	}
	for _, path := range []string{"/api/v1/repositories", "/api/v1/status"} {
		body := e.get(t, path)
		var got repos
		if err := json.Unmarshal([]byte(body), &got); err != nil || len(got.Repositories) != 1 {
			t.Fatalf("%s: %v\n%s", path, err, body)
		}
		for _, r := range e.regions {
			cell := got.Repositories[0].Regions[r.Name]
			f := cell.Freshness
			if f == nil || f.Publications == nil || f.MedianLagSeconds == nil {
				t.Errorf("%s: %s: freshness %+v", path, r.Name, f)
				continue
			}
			wantN, notYet := n, false
			if r.Name == "ap-southeast-2" {
				wantN, notYet = n-1, true
			}
			if *f.Publications != wantN || f.NotYet != notYet || (f.LastLagSeconds == nil) != notYet || *f.MedianLagSeconds < 0 {
				t.Errorf("%s: %s (%s): %d publications, not yet %v, last %s, median %s; want %d, %v",
					path, r.Name, cell.State, *f.Publications, f.NotYet, lagText(f.LastLagSeconds), lagText(f.MedianLagSeconds), wantN, notYet)
			}
		}
		for _, r := range e.regions {
			if strings.Contains(body, r.Bucket) {
				t.Errorf("%s names bucket %s", path, r.Bucket)
			}
		}
	}
}
