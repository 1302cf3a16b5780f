package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/config"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
	"github.com/regionmirror/regionmirror/server/selection"
)

// onDemandWorld is the real server on a loopback socket over a real database: a push
// region "push" holding every file verified, an on-demand region "od" holding none, the
// demo repository fresh in both, and the background loops serve runs (store, activity,
// fills). The fill worker is the test: ClaimFills and CompleteFill, as it would.
type onDemandWorld struct {
	d        *db.DB
	dbURL    string
	url      string
	od, push *model.Region
	files    map[string]*model.File
	fills    *Fills
	store    *Store
}

const (
	odHello = "demo/1/x86_64/os/Packages/hello-1.0-1.noarch.rpm"
	odGreet = "demo/1/x86_64/os/Packages/greet-2.1-1.noarch.rpm"
	odCrowd = "demo/1/x86_64/os/Packages/crowd-1.0-1.noarch.rpm"
	odGone  = "demo/1/x86_64/os/Packages/gone-1.0-1.noarch.rpm"
)

type onDemandOptions struct {
	maxWait   time.Duration
	publicURL string
	tokens    []string
	noOrigin  bool // no origin.url: the last resort is gone
}

func startOnDemand(t *testing.T, opt onDemandOptions) *onDemandWorld {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d, dbURL := testenv.NewDB(t)
	w := &onDemandWorld{d: d, dbURL: dbURL, files: map[string]*model.File{}}
	w.push = createRegion(t, d, "push")
	od := &model.Region{Name: "od", Kind: model.KindS3, Bucket: "bucket-od", PublicURL: "https://od.example", Weight: 100, Enabled: true,
		Fill: model.FillOnDemand}
	if err := od.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateRegion(ctx, od); err != nil {
		t.Fatal(err)
	}
	w.od = od
	var inv []model.File
	for _, p := range []string{odHello, odGreet, odCrowd, odGone} {
		inv = append(inv, dbFile(p, "content of "+p))
	}
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Upsert: inv}); err != nil {
		t.Fatal(err)
	}
	var ups []db.ObjectUpdate
	for _, f := range inv {
		got, err := d.GetFile(ctx, f.Path)
		if err != nil {
			t.Fatal(err)
		}
		w.files[f.Path] = got
		ups = append(ups, db.ObjectUpdate{FileID: got.ID, Size: f.Size, SHA256: f.SHA256, State: model.ObjectPresent, Verified: true})
	}
	if err := d.RecordObjects(ctx, db.NoFence, w.push.ID, ups); err != nil {
		t.Fatal(err)
	}
	// The origin deletes odGone (the push region still holds it, in its grace period).
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Deleted: []string{odGone}}); err != nil {
		t.Fatal(err)
	}
	repo := &model.Repository{Name: "demo-1", Arch: "x86_64", Directory: demoDir}
	if err := d.CreateRepository(ctx, repo); err != nil {
		t.Fatal(err)
	}
	v := repomdVersion(t, repo.ID, filepath.Join(demoRepo, "repodata/repomd.xml"))
	if _, err := d.RecordRepomdVersion(ctx, v); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*model.Region{w.push, w.od} {
		if err := d.SetRegionRepo(ctx, db.NoFence, model.RegionRepo{RegionID: r.ID, RepositoryID: repo.ID, RepomdSHA256: v.SHA256, State: model.RepoFresh, HTTPStatus: 200}); err != nil {
			t.Fatal(err)
		}
	}

	originURL := "https://origin.example/pub"
	if opt.noOrigin {
		originURL = ""
	}
	w.store = NewStore(d, StoreOptions{LoadFiles: true, Debounce: 20 * time.Millisecond, Interval: time.Hour, FilesMinInterval: 20 * time.Millisecond,
		Policy: selection.Policy{OriginURL: originURL, AlternatesMaxAge: 72 * time.Hour, PublicURL: opt.publicURL}})
	if err := w.store.Refresh(ctx, true); err != nil {
		t.Fatal(err)
	}
	go w.store.Run(ctx)
	metrics := NewMetrics(w.store)
	act := NewActivity(d, ActivityOptions{Interval: 50 * time.Millisecond})
	w.fills = NewFills(d, FillOptions{Interval: 50 * time.Millisecond, MaxWait: opt.maxWait, Metrics: metrics})
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { defer bg.Done(); act.Run(ctx) }()
	go func() { defer bg.Done(); w.fills.Run(ctx) }()
	srv := New(Options{Store: w.store, Metrics: metrics, Activity: act, Fills: w.fills, DownloadPrefix: "/pub",
		Admin: NewAdmin(d, opt.tokens, slog.New(slog.DiscardHandler))})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		bg.Wait()
	})
	w.url = "http://" + l.Addr().String()
	return w
}

// location asks for target and returns the status and Location.
func (w *onDemandWorld) location(t *testing.T, method, target string) (int, string) {
	t.Helper()
	res, _ := doURL(t, method, w.url+target)
	return res.StatusCode, res.Header.Get("Location")
}

func (w *onDemandWorld) jobs(t *testing.T, path string) []model.FillJob {
	t.Helper()
	jobs, err := w.d.FillJobs(context.Background(), w.od.ID, w.files[path].ID, 100)
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

// complete does what a fill worker does once its copy is verified.
func (w *onDemandWorld) complete(t *testing.T, path string) {
	t.Helper()
	ctx := context.Background()
	jobs, err := w.d.ClaimFills(ctx, "test-worker", 100, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for i := range jobs {
		if jobs[i].Path == path {
			found = true
			f := w.files[path]
			if err := w.d.CompleteFill(ctx, &jobs[i], f.Size, f.SHA256); err != nil {
				t.Fatal(err)
			}
		} else if err := w.d.ReleaseFill(ctx, &jobs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if !found {
		t.Fatalf("no job to claim for %s", path)
	}
}

// lastRequested reads the od copy's last-request time.
func (w *onDemandWorld) lastRequested(t *testing.T, path string) time.Time {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, w.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var at *time.Time
	if err := conn.QueryRow(ctx, `SELECT last_requested_at FROM region_objects WHERE region_id = $1 AND file_id = $2`,
		w.od.ID, w.files[path].ID).Scan(&at); err != nil {
		t.Fatal(err)
	}
	if at == nil {
		return time.Time{}
	}
	return *at
}

func odURL(p string) string   { return "https://od.example/" + p }
func pushURL(p string) string { return "https://push.example/" + p }

// TestOnDemandMissThenHit: a first request from an on-demand region is answered by the
// next verified copy and queues one job; once the copy is recorded the next request goes
// into the region and its request is recorded for expiry. The miss is counted in
// redirect_counters. 200 concurrent first requests for one file make exactly one job.
// A file the origin deleted is never queued.
func TestOnDemandMissThenHit(t *testing.T) {
	w := startOnDemand(t, onDemandOptions{})
	ctx := context.Background()
	if code, loc := w.location(t, http.MethodGet, "/pub/"+odHello+"?location=od"); code != http.StatusFound || loc != pushURL(odHello) {
		t.Fatalf("first request: %d %s, want the push region's copy", code, loc)
	}
	waitFor(t, "the fill job", func() bool { return len(w.jobs(t, odHello)) == 1 })
	if j := w.jobs(t, odHello)[0]; j.State != model.FillQueued {
		t.Errorf("job state %s", j.State)
	}
	waitFor(t, "the miss in redirect_counters", func() bool {
		counts, err := w.d.RedirectCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range counts {
			if c.Region == "od" && c.Misses == 1 {
				return true
			}
		}
		return false
	})

	w.complete(t, odHello)
	waitFor(t, "the redirect into the region", func() bool {
		_, loc := w.location(t, http.MethodGet, "/pub/"+odHello+"?location=od")
		return loc == odURL(odHello)
	})
	if n := len(w.jobs(t, odHello)); n != 0 {
		t.Errorf("%d jobs left after the copy", n)
	}
	// The request of the copy moves its last-request time (the expiry clock).
	before := w.lastRequested(t, odHello)
	time.Sleep(10 * time.Millisecond) // now() moves on in the database
	w.location(t, http.MethodGet, "/pub/"+odHello+"?location=od")
	waitFor(t, "the request recorded", func() bool {
		return w.lastRequested(t, odHello).After(before)
	})

	// 200 concurrent first requests for one file: one job.
	var wg sync.WaitGroup
	errs := make(chan string, 200)
	tr := &http.Transport{MaxIdleConnsPerHost: 200}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := client.Get(w.url + "/pub/" + odCrowd + "?location=od")
			if err != nil {
				errs <- err.Error()
				return
			}
			res.Body.Close()
			if loc := res.Header.Get("Location"); res.StatusCode != http.StatusFound || loc != pushURL(odCrowd) {
				errs <- fmt.Sprintf("%d %s, want the push region's copy", res.StatusCode, loc)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
		break
	}
	waitFor(t, "the crowd's job", func() bool { return len(w.jobs(t, odCrowd)) == 1 })
	time.Sleep(200 * time.Millisecond) // further flushes must not add any
	if n := len(w.jobs(t, odCrowd)); n != 1 {
		t.Errorf("%d jobs for 200 concurrent misses", n)
	}

	// The deleted file: answered from the region that still holds it, never queued.
	if code, loc := w.location(t, http.MethodGet, "/pub/"+odGone+"?location=od"); code != http.StatusFound || loc != pushURL(odGone) {
		t.Errorf("deleted file: %d %s", code, loc)
	}
	w.fills.Flush(ctx)
	if n := len(w.jobs(t, odGone)); n != 0 {
		t.Errorf("%d jobs for a file the origin deleted", n)
	}
	_, metrics := httpGet(t, w.url+"/metrics")
	// 201 misses at least: the first, the crowd's; more while the copy was not in the snapshot yet.
	var misses int
	if _, err := fmt.Sscanf(grepLines(metrics, `regionmirror_ondemand_misses_total{region="od"}`), `regionmirror_ondemand_misses_total{region="od"} %d`, &misses); err != nil || misses < 201 {
		t.Errorf("misses %d (%v):\n%s", misses, err, grepLines(metrics, "ondemand"))
	}
	if !strings.Contains(metrics, "regionmirror_ondemand_copy_requests_recorded_total") || strings.Contains(metrics, "regionmirror_ondemand_copy_requests_recorded_total 0") {
		t.Errorf("no copy request recorded:\n%s", grepLines(metrics, "ondemand"))
	}
}

// TestOnDemandMaxWait: with ondemand.max_wait a first request waits, and is sent into
// the region once the copy is recorded meanwhile (woken by the snapshot, not by polling
// the database); without a copy it falls back to the next verified copy.
func TestOnDemandMaxWait(t *testing.T) {
	t.Run("copied while waiting", func(t *testing.T) {
		w := startOnDemand(t, onDemandOptions{maxWait: 20 * time.Second})
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			path := odHello
			if method == http.MethodHead {
				path = odGreet
			}
			type answer struct {
				code int
				loc  string
			}
			got := make(chan answer, 1)
			go func() {
				res, _ := doURL(t, method, w.url+"/pub/"+path+"?location=od")
				got <- answer{res.StatusCode, res.Header.Get("Location")}
			}()
			// The waiting request's miss is flushed at once: its job appears.
			waitFor(t, "the job of the waiting request", func() bool { return len(w.jobs(t, path)) == 1 })
			select {
			case a := <-got:
				t.Fatalf("%s answered before the copy: %d %s", method, a.code, a.loc)
			default:
			}
			w.complete(t, path)
			a := <-got
			if a.code != http.StatusFound || a.loc != odURL(path) {
				t.Errorf("%s after the copy: %d %s, want %s", method, a.code, a.loc, odURL(path))
			}
		}
	})
	t.Run("timeout", func(t *testing.T) {
		w := startOnDemand(t, onDemandOptions{maxWait: 300 * time.Millisecond})
		if code, loc := w.location(t, http.MethodGet, "/pub/"+odHello+"?location=od"); code != http.StatusFound || loc != pushURL(odHello) {
			t.Errorf("after max_wait: %d %s, want the push region's copy", code, loc)
		}
		if n := len(w.jobs(t, odHello)); n != 1 {
			t.Errorf("%d jobs", n)
		}
		if _, metrics := httpGet(t, w.url+"/metrics"); !strings.Contains(metrics, `regionmirror_ondemand_waits_total{result="timeout"} 1`) ||
			!strings.Contains(metrics, "regionmirror_ondemand_wait_seconds_count 1") {
			t.Errorf("/metrics lacks the timed-out wait")
		}
	})
	t.Run("client gone", func(t *testing.T) {
		w := startOnDemand(t, onDemandOptions{maxWait: 20 * time.Second})
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.url+"/pub/"+odHello+"?location=od", nil)
		errc := make(chan error, 1)
		go func() {
			res, err := http.DefaultTransport.RoundTrip(req)
			if err == nil {
				res.Body.Close()
			}
			errc <- err
		}()
		waitFor(t, "the job", func() bool { return len(w.jobs(t, odHello)) == 1 })
		cancel()
		<-errc
		waitFor(t, "the waiter gone", func() bool { return w.fills.waiting.Load() == 0 })
	})
}

// TestRegionRoute: /r/<region>/<path> answers like /pub/<path>?location=<region>; an
// unknown region is a 404; hostile paths get a 4xx, never a 5xx; a repository's repomd.xml
// goes to the region when it serves the repository.
func TestRegionRoute(t *testing.T) {
	w := startOnDemand(t, onDemandOptions{publicURL: "http://mirror.example.org"})
	repomd := demoDir + "/repodata/repomd.xml"
	for _, tc := range []struct {
		target string
		code   int
		loc    string
	}{
		{"/r/od/" + odHello, http.StatusFound, pushURL(odHello)},   // a miss: elsewhere
		{"/r/push/" + odHello, http.StatusFound, pushURL(odHello)}, // a push region works too
		{"/r/od/" + odHello + "?location=push", http.StatusFound, pushURL(odHello)},
		{"/r/od/" + repomd, http.StatusFound, odURL(repomd)}, // metadata is pushed
		{"/r/push/" + repomd, http.StatusFound, pushURL(repomd)},
		{"/r/nowhere/" + odHello, http.StatusNotFound, ""},
		{"/r/od/nope.rpm", http.StatusNotFound, ""},
		{"/r/od", http.StatusNotFound, ""},
		{"/r/od/", http.StatusNotFound, ""},
		{"/r/", http.StatusBadRequest, ""},
		{"/r/od/demo/../../etc/passwd", http.StatusBadRequest, ""},
		{"/r/od/demo/%2e%2e/x", http.StatusBadRequest, ""},
		{"/r/od/demo/%252e%252e/x", http.StatusBadRequest, ""},
		{"/r/od/a%00b", http.StatusBadRequest, ""},
		{"/r/od/a\\b", http.StatusBadRequest, ""},
		{"/r/od//x", http.StatusBadRequest, ""},
		{"/r/od/" + strings.Repeat("a/", 700) + "b", http.StatusBadRequest, ""},
		{"/r/" + strings.Repeat("x", 300) + "/a", http.StatusBadRequest, ""},
	} {
		code, loc := w.location(t, http.MethodGet, tc.target)
		if code != tc.code || loc != tc.loc {
			t.Errorf("%s: %d %q, want %d %q", tc.target, code, loc, tc.code, tc.loc)
		}
		if hc, _ := w.location(t, http.MethodHead, tc.target); hc != code {
			t.Errorf("HEAD %s: %d, GET %d", tc.target, hc, code)
		}
	}
	// Raw hostile requests.
	for _, raw := range []string{"/r/%zz/x", "/r/od/%zz", "/r/od/..%2f..%2fetc", "/r/..", "/r/od/%C0%AE%C0%AE/x", "/r/od/\xff"} {
		if code, _ := rawRequest(t, w.url, "GET "+raw+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); code >= 500 || code == 0 {
			t.Errorf("%q: %d", raw, code)
		}
	}
	// The /r/ miss was recorded as one: it queued a job.
	waitFor(t, "the /r/ miss's job", func() bool { return len(w.jobs(t, odHello)) == 1 })
}

// TestOnDemandMetalink: a metalink lists the on-demand region by this server's /r/ base
// only with server.public_url; without it, only the push region.
func TestOnDemandMetalink(t *testing.T) {
	for _, publicURL := range []string{"", "http://mirror.example.org/"} {
		w := startOnDemand(t, onDemandOptions{publicURL: publicURL})
		_, body := httpGet(t, w.url+"/metalink?repo=demo-1&arch=x86_64&location=od")
		got := metalinkURLs(body)
		want := []string{"https://push.example/" + demoDir + "/repodata/repomd.xml", "https://origin.example/pub/" + demoDir + "/repodata/repomd.xml"}
		if publicURL != "" {
			want = append([]string{"http://mirror.example.org/r/od/" + demoDir + "/repodata/repomd.xml"}, want...)
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("public_url %q: URLs %v, want %v", publicURL, got, want)
		}
		_, list := httpGet(t, w.url+"/mirrorlist?repo=demo-1&arch=x86_64&location=od")
		if has := strings.Contains(list, "/r/od/"); has != (publicURL != "") {
			t.Errorf("public_url %q: mirror list:\n%s", publicURL, list)
		}
	}
}

func purgeReq(t *testing.T, url, auth string) (int, http.Header, map[string]string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodDelete, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	out := map[string]string{}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Errorf("DELETE %s: not JSON: %q", url, body)
	}
	return res.StatusCode, res.Header, out
}

// TestPurgeAPI: without tokens configured the API is refused; a missing or malformed
// Authorization is 401 with WWW-Authenticate, a wrong token 403, and nothing changes in
// the database then. A valid token marks an on-demand copy deleting (no answer goes there
// afterwards) or forgets a pushed one, records a purge run, and answers 202.
func TestPurgeAPI(t *testing.T) {
	t.Run("no tokens configured", func(t *testing.T) {
		w := startOnDemand(t, onDemandOptions{})
		before := dbState(t, w.dbURL)
		code, h, body := purgeReq(t, w.url+"/api/v1/regions/push/objects/"+odHello, "Bearer anything")
		if code != http.StatusForbidden || !strings.Contains(body["error"], "admin_tokens") || h.Get("Cache-Control") != "no-store" {
			t.Errorf("%d %v %v", code, body, h)
		}
		if dbState(t, w.dbURL) != before {
			t.Error("the database changed")
		}
	})

	w := startOnDemand(t, onDemandOptions{tokens: []string{config.HashToken("other"), config.HashToken("s3cret-token")}})
	// A copy in the on-demand region, to purge.
	w.location(t, http.MethodGet, "/pub/"+odHello+"?location=od")
	waitFor(t, "the job", func() bool { return len(w.jobs(t, odHello)) == 1 })
	w.complete(t, odHello)
	waitFor(t, "the copy served", func() bool {
		_, loc := w.location(t, http.MethodGet, "/pub/"+odHello+"?location=od")
		return loc == odURL(odHello)
	})
	time.Sleep(200 * time.Millisecond) // let the flushes settle: the state compared below must be still
	target := w.url + "/api/v1/regions/od/objects/" + odHello
	before := dbState(t, w.dbURL)
	for _, tc := range []struct {
		auth string
		code int
	}{
		{"", http.StatusUnauthorized},
		{"Basic czNjcmV0LXRva2Vu", http.StatusUnauthorized},
		{"Bearer", http.StatusUnauthorized},
		{"Bearer a b", http.StatusUnauthorized},
		{"Bearer wrong", http.StatusForbidden},
		{"Bearer s3cret-token-and-more", http.StatusForbidden},
		{"Bearer " + config.HashToken("s3cret-token"), http.StatusForbidden}, // the hash is not the token
	} {
		code, h, body := purgeReq(t, target, tc.auth)
		if code != tc.code || body["error"] == "" || h.Get("Cache-Control") != "no-store" {
			t.Errorf("%q: %d %v", tc.auth, code, body)
		}
		if code == http.StatusUnauthorized && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%q: WWW-Authenticate %q", tc.auth, h.Get("WWW-Authenticate"))
		}
	}
	if after := dbState(t, w.dbURL); after != before {
		t.Errorf("refused requests changed the database")
	}
	const ok = "Bearer s3cret-token"
	for _, tc := range []struct {
		target string
		code   int
	}{
		{"/api/v1/regions/nowhere/objects/" + odHello, http.StatusNotFound},
		{"/api/v1/regions/od/objects/not/in/origin.rpm", http.StatusNotFound},
		{"/api/v1/regions/od/objects/demo/../etc", http.StatusBadRequest},
		{"/api/v1/regions/od/" + odHello, http.StatusBadRequest},
		{"/api/v1/regions/od/objects/", http.StatusNotFound},
	} {
		if code, _, body := purgeReq(t, w.url+tc.target, ok); code != tc.code {
			t.Errorf("%s: %d %v", tc.target, code, body)
		}
	}
	if after := dbState(t, w.dbURL); after != before {
		t.Errorf("bad purge requests changed the database")
	}

	code, _, body := purgeReq(t, target, ok)
	if code != http.StatusAccepted || body["state"] != "deleting" || body["region"] != "od" || body["path"] != odHello {
		t.Fatalf("purge: %d %v", code, body)
	}
	waitFor(t, "no redirect into the region", func() bool {
		_, loc := w.location(t, http.MethodGet, "/pub/"+odHello+"?location=od")
		return loc == pushURL(odHello)
	})
	for range 20 {
		if _, loc := w.location(t, http.MethodGet, "/pub/"+odHello+"?location=od"); loc == odURL(odHello) {
			t.Fatal("sent to a copy marked deleting")
		}
	}
	// Again: already deleting. A pushed copy is forgotten; a copy not held is "not held".
	if _, _, body := purgeReq(t, target, ok); body["state"] != "deleting" {
		t.Errorf("second purge: %v", body)
	}
	if _, _, body := purgeReq(t, w.url+"/api/v1/regions/push/objects/"+odGreet, ok); body["state"] != "forgotten" {
		t.Errorf("push region: %v", body)
	}
	if _, _, body := purgeReq(t, w.url+"/api/v1/regions/od/objects/"+odGreet, ok); body["state"] != "not held" {
		t.Errorf("not held: %v", body)
	}
	runs, err := w.d.RecentRuns(context.Background(), model.RunPurge, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 4 {
		t.Errorf("%d purge runs, want 4", len(runs))
	}
}

// TestOnDemandRegionsAPI: /api/v1/regions shows each region's fill mode, cap, what its
// copies hold, the in-region share and its jobs, read in the background; a failed job is
// counted, its error text never shown.
func TestOnDemandRegionsAPI(t *testing.T) {
	w := startOnDemand(t, onDemandOptions{})
	ctx := context.Background()
	w.location(t, http.MethodGet, "/pub/"+odHello+"?location=od")
	w.location(t, http.MethodGet, "/pub/"+odGreet+"?location=od")
	waitFor(t, "two jobs", func() bool { return len(w.jobs(t, odHello)) == 1 && len(w.jobs(t, odGreet)) == 1 })
	w.complete(t, odHello)
	jobs, err := w.d.ClaimFills(ctx, "test-worker", 10, time.Minute)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("claim: %v %v", jobs, err)
	}
	if err := w.d.FailFill(ctx, &jobs[0], "PUT https://bucket-od.s3.example/x: 500 secret-endpoint", time.Hour, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the copy served", func() bool {
		_, loc := w.location(t, http.MethodGet, "/pub/"+odHello+"?location=od")
		return loc == odURL(odHello)
	})
	type view struct {
		Name          string   `json:"name"`
		Fill          string   `json:"fill"`
		Pins          []string `json:"pins"`
		MaxBytes      int64    `json:"max_bytes"`
		HeldBytes     *int64   `json:"held_bytes"`
		HeldFiles     *int64   `json:"held_files"`
		InRegionShare *float64 `json:"in_region_share"`
		Jobs          *struct {
			Queued, Running, Failed int64
		} `json:"jobs"`
	}
	var got map[string]view
	waitFor(t, "the figures", func() bool {
		_, body := httpGet(t, w.url+"/api/v1/regions")
		if strings.Contains(body, "secret-endpoint") || strings.Contains(body, "bucket-od") {
			t.Fatalf("the API shows the error text or the bucket: %s", body)
		}
		var v struct{ Regions []view }
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatal(err)
		}
		got = map[string]view{}
		for _, r := range v.Regions {
			got[r.Name] = r
		}
		od := got["od"]
		return od.Jobs != nil && od.Jobs.Failed == 1 && od.HeldFiles != nil && *od.HeldFiles == 1 && od.InRegionShare != nil
	})
	od, push := got["od"], got["push"]
	if od.Fill != model.FillOnDemand || od.Pins == nil || *od.HeldBytes != w.files[odHello].Size || od.Jobs.Queued != 0 {
		t.Errorf("od: %+v", od)
	}
	if s := *od.InRegionShare; s <= 0 || s >= 1 {
		t.Errorf("od in-region share %v: some requests were misses, some answered in the region", s)
	}
	if push.Fill != model.FillPush || push.Jobs != nil || push.HeldBytes != nil {
		t.Errorf("push: %+v", push)
	}
	// The dashboard shows the same.
	_, page := httpGet(t, w.url+"/")
	if !strings.Contains(page, `id="ondemand"`) || !strings.Contains(page, "copy failed") || strings.Contains(page, "secret-endpoint") {
		t.Errorf("dashboard lacks the on-demand table or shows the error")
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// TestNowhereElseWaitsForTheCopy: with no origin.url and no other region holding the file,
// a request that the on-demand region will soon answer waits for it instead of failing
// with a 503 (which dnf, handed that region by a metalink, would report as an error): the
// copy its miss queued, and metadata a push recorded that this server's per-file data does
// not show yet (a client that read the new repomd.xml asks for it at once).
func TestNowhereElseWaitsForTheCopy(t *testing.T) {
	w := startOnDemand(t, onDemandOptions{noOrigin: true})
	ctx := context.Background()
	const pkg, meta = "demo/1/x86_64/os/Packages/new-1.0-1.noarch.rpm", "demo/1/x86_64/os/repodata/new-primary.xml.gz"
	for _, p := range []string{pkg, meta} {
		f := dbFile(p, "content of "+p)
		if _, err := w.d.ApplyInventory(ctx, db.InventoryChanges{Upsert: []model.File{f}}); err != nil {
			t.Fatal(err)
		}
		got, err := w.d.GetFile(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		w.files[p] = got
		waitFor(t, "the server to know "+p, func() bool { _, ok := w.store.Snapshot().Files.Lookup(p); return ok })
	}
	type answer struct {
		code int
		loc  string
	}
	ask := func(target string) chan answer {
		got := make(chan answer, 1)
		go func() {
			res, _ := doURL(t, http.MethodGet, w.url+target)
			got <- answer{res.StatusCode, res.Header.Get("Location")}
		}()
		return got
	}
	early := func(got chan answer, what string) {
		select {
		case a := <-got:
			t.Fatalf("%s answered before its copy was there: %d %s", what, a.code, a.loc)
		case <-time.After(300 * time.Millisecond):
		}
	}

	got := ask("/r/od/" + pkg)
	waitFor(t, "the job of the waiting miss", func() bool { return len(w.jobs(t, pkg)) == 1 })
	early(got, "the miss")
	w.complete(t, pkg)
	if a := <-got; a.code != http.StatusFound || a.loc != odURL(pkg) {
		t.Errorf("the miss after its copy: %d %s, want %s", a.code, a.loc, odURL(pkg))
	}

	got = ask("/r/od/" + meta)
	early(got, "the metadata")
	f := w.files[meta]
	if err := w.d.RecordObjects(ctx, db.NoFence, w.od.ID, []db.ObjectUpdate{{FileID: f.ID, Size: f.Size, SHA256: f.SHA256, State: model.ObjectPresent, Pushed: true, Verified: true}}); err != nil {
		t.Fatal(err)
	}
	if a := <-got; a.code != http.StatusFound || a.loc != odURL(meta) {
		t.Errorf("the metadata once recorded: %d %s, want %s", a.code, a.loc, odURL(meta))
	}
	if n := len(w.jobs(t, meta)); n != 0 {
		t.Errorf("metadata queued %d fill jobs; a push writes it", n)
	}
}
