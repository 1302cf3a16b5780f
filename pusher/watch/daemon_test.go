package watch

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
	"github.com/regionmirror/regionmirror/pusher"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const repo1, repo2 = "demo/1/x86_64/os", "demo/2/x86_64/os"

// fixture: the sample origin with a second repository (a copy of the first), a migrated
// database with both registered, a file region served over HTTP, and the real pusher
// behind a wrapper that records every PushWith call.
type fixture struct {
	t      *testing.T
	db     *db.DB
	origin string
	pusher *countingPusher
}

type pushCall struct {
	scope      []string
	regions    []string
	status     map[string]string // by region, from the result
	start, end time.Time
	err        error
}

// countingPusher wraps the real pusher and records its calls.
type countingPusher struct {
	p     *pusher.Pusher
	mu    sync.Mutex
	calls []*pushCall
}

func (c *countingPusher) PushWith(ctx context.Context, regions []*model.Region, opts pusher.Options) (*pusher.Result, error) {
	call := &pushCall{scope: slices.Clone(opts.Scope), start: time.Now()}
	for _, r := range regions {
		call.regions = append(call.regions, r.Name)
	}
	c.mu.Lock()
	c.calls = append(c.calls, call)
	c.mu.Unlock()
	res, err := c.p.PushWith(ctx, regions, opts)
	c.mu.Lock()
	call.end, call.err = time.Now(), err
	if res != nil {
		call.status = map[string]string{}
		for _, r := range res.Regions {
			call.status[r.Region] = r.Status
		}
	}
	c.mu.Unlock()
	return res, err
}

// finished returns copies of the calls, and whether every one has returned.
func (c *countingPusher) finished() ([]pushCall, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]pushCall, len(c.calls))
	all := true
	for i, call := range c.calls {
		out[i] = *call
		all = all && !call.end.IsZero()
	}
	return out, all
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	d, _ := testenv.NewDB(t)
	origin := testenv.SampleOrigin(t, t.TempDir())
	if err := os.CopyFS(filepath.Join(origin, repo2), os.DirFS(filepath.Join(origin, repo1))); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, dir := range []string{repo1, repo2} {
		if err := d.CreateRepository(ctx, &model.Repository{Name: "demo-" + strconv.Itoa(i+1), Arch: "x86_64", Directory: dir}); err != nil {
			t.Fatal(err)
		}
	}
	f := &fixture{t: t, db: d, origin: origin}
	f.fileRegion("us-east-1")
	cfg := pusher.DefaultConfig()
	cfg.Concurrency = 4
	p := &pusher.Pusher{DB: d, Origin: pusher.OSOrigin{Root: origin}, Log: slog.New(slog.DiscardHandler), Config: cfg}
	f.pusher = &countingPusher{p: p}
	return f
}

// fileRegion adds a region in a directory served over HTTP.
func (f *fixture) fileRegion(name string) {
	f.t.Helper()
	dir := f.t.TempDir()
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	f.t.Cleanup(srv.Close)
	r := &model.Region{Name: name, Kind: model.KindFile, Dir: dir, PublicURL: srv.URL, Country: "US", Enabled: true}
	if err := r.Normalize(); err != nil {
		f.t.Fatal(err)
	}
	if err := f.db.CreateRegion(context.Background(), r); err != nil {
		f.t.Fatal(err)
	}
}

// daemon returns a daemon of the fixture's origin, set up by mod, running until the test
// ends.
func (f *fixture) daemon(watchTree bool, mod func(*Daemon)) *Daemon {
	f.t.Helper()
	dm := &Daemon{DB: f.db, Pusher: f.pusher, Root: f.origin, Settle: 500 * time.Millisecond, Watch: watchTree,
		Host: "test", PID: os.Getpid(), BeatInterval: 200 * time.Millisecond, Log: testLogger(f.t), Metrics: NewMetrics(nil)}
	if mod != nil {
		mod(dm)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- dm.Run(ctx) }()
	f.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			f.t.Errorf("daemon: %v", err)
		}
	})
	return dm
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// waitStartPush waits for the daemon's start push (a full one) to return.
func (f *fixture) waitStartPush() {
	f.t.Helper()
	waitFor(f.t, 60*time.Second, "the start push returned", func() bool {
		calls, done := f.pusher.finished()
		return len(calls) >= 1 && done
	})
	calls, _ := f.pusher.finished()
	if calls[0].scope != nil || calls[0].err != nil {
		f.t.Fatalf("the start push: scope %q, err %v; want a full push without error", calls[0].scope, calls[0].err)
	}
}

// coverage reads what live watchers of the origin have seen.
func (f *fixture) coverage() model.WatchCoverage {
	f.t.Helper()
	cov, err := f.db.WatchCoverage(context.Background(), f.origin, 30*time.Second)
	if err != nil {
		f.t.Fatal(err)
	}
	return cov
}

// TestBurstMakesOnePushPerRepository writes 5,000 files as fast as possible across two
// repositories under a real inotify watch: each repository is pushed once, not
// thousands of times. A second push of a repository is allowed only when events for it
// truly arrived after the first push of it began.
func TestBurstMakesOnePushPerRepository(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	lastEvent := map[string]time.Time{}
	f.daemon(true, func(d *Daemon) {
		d.eventSeen = func(key string, at time.Time) {
			mu.Lock()
			lastEvent[key] = at
			mu.Unlock()
		}
	})
	f.waitStartPush()
	waitFor(t, 10*time.Second, "coverage is claimed", func() bool { return f.coverage().Since != nil })

	for i := range 5000 {
		dir := filepath.Join(f.origin, []string{repo1, repo2}[i%2], "Packages")
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("burst-%04d.rpm", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wroteAt := time.Now()

	// Wait until both repositories were pushed, every push returned, and a while longer
	// (several settle periods) to see whether more pushes come.
	pushedBoth := func(calls []pushCall) bool {
		return slices.ContainsFunc(calls[1:], func(c pushCall) bool { return slices.Contains(c.scope, repo1) }) &&
			slices.ContainsFunc(calls[1:], func(c pushCall) bool { return slices.Contains(c.scope, repo2) })
	}
	waitFor(t, 60*time.Second, "both repositories were pushed", func() bool {
		calls, done := f.pusher.finished()
		return done && pushedBoth(calls) && f.coverage().Pending == 0
	})
	time.Sleep(2 * time.Second)
	calls, done := f.pusher.finished()
	if !done {
		t.Fatal("a push started long after the burst")
	}
	for _, repo := range []string{repo1, repo2} {
		var pushes []pushCall
		for _, c := range calls[1:] {
			if c.err != nil {
				t.Errorf("push %q: %v", c.scope, c.err)
			}
			if c.scope == nil {
				t.Errorf("a full push after the start: the burst must be pushed by scope")
			}
			if slices.Contains(c.scope, repo) {
				pushes = append(pushes, c)
			}
		}
		mu.Lock()
		last := lastEvent[repo]
		mu.Unlock()
		switch {
		case len(pushes) == 1:
		case len(pushes) == 2 && last.After(pushes[0].start):
			t.Logf("%s pushed twice: events for it arrived %v after its first push began", repo, last.Sub(pushes[0].start))
		default:
			t.Errorf("%s pushed %d times (last event %v after the writes); want once", repo, len(pushes), last.Sub(wroteAt))
		}
	}
	t.Logf("%d pushes after the start push: %v", len(calls)-1, scopes(calls[1:]))

	// The pushed inventory holds the burst: the scoped pushes took the files.
	files, err := f.db.ListFiles(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, file := range files {
		if strings.Contains(file.Path, "/Packages/burst-") {
			n++
		}
	}
	if n != 5000 {
		t.Errorf("%d burst files recorded, want 5000", n)
	}
}

func scopes(calls []pushCall) [][]string {
	var out [][]string
	for _, c := range calls {
		out = append(out, c.scope)
	}
	return out
}

// TestOverflowLeadsToAFullInventory makes the kernel's event queue really overflow: the
// daemon stops consuming events (a test hook), more files are created than
// fs.inotify.max_queued_events holds, and consuming resumes. The watcher drops its
// coverage claim at once (WatchCoverage.Since nil) and a full push follows, whose
// inventory holds every file created.
func TestOverflowLeadsToAFullInventory(t *testing.T) {
	raw, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events")
	if err != nil {
		t.Fatal(err)
	}
	limit, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || limit > 1<<20 {
		t.Fatalf("fs.inotify.max_queued_events %q: too many files to make it overflow here", raw)
	}
	f := newFixture(t)
	// The directory exists before the daemon: its watch is in place while events are
	// held (a directory made meanwhile would get its watch only once they flow again).
	dir := filepath.Join(f.origin, "flood")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	dropped := make(chan model.WatchCoverage, 1)
	dm := f.daemon(true, func(d *Daemon) {
		d.holdEvents = hold
		d.overflowed = func() {
			select {
			case dropped <- f.coverage():
			default:
			}
		}
	})
	f.waitStartPush()
	waitFor(t, 10*time.Second, "coverage is claimed", func() bool { return f.coverage().Since != nil })

	n := limit + 2000
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%06d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	close(hold)
	select {
	case cov := <-dropped:
		if cov.Since != nil {
			t.Errorf("after the overflow the watcher still claims coverage since %v", cov.Since)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no overflow was reported")
	}
	waitFor(t, 120*time.Second, "a full push after the overflow returned", func() bool {
		calls, done := f.pusher.finished()
		return done && slices.ContainsFunc(calls[1:], func(c pushCall) bool { return c.scope == nil })
	})
	files, err := f.db.ListFiles(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for _, file := range files {
		if strings.HasPrefix(file.Path, "flood/") {
			got++
		}
	}
	if got != n {
		t.Errorf("%d flood files in the inventory, want %d", got, n)
	}
	waitFor(t, 10*time.Second, "coverage is claimed again", func() bool { return f.coverage().Since != nil })
	if v := counterValue(dm.Metrics.Overflows); v < 1 {
		t.Errorf("overflows counted: %v", v)
	}
}
