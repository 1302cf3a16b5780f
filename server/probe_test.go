package server

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
	"github.com/regionmirror/regionmirror/server/selection"
)

// Probes are fast in these tests; every wait below is for an eventual state, with a
// deadline far beyond what a loaded machine needs.
const (
	testProbeInterval = 100 * time.Millisecond
	probeDeadline     = 30 * time.Second
)

// probeRegion is a region of a probe test: its public URL and whether it serves the
// repository (a fresh region_repos row, so the prober asks for repomd.xml).
type probeRegion struct {
	name, url    string
	serves       bool
	locationOnly bool
	disabled     bool
}

// probeEnv is the server side of a probe test: PostgreSQL, a store following it, the
// HTTP server, and a prober.
type probeEnv struct {
	store   *Store
	prober  *Prober
	base    string
	ids     map[string]int64
	repomd  []byte
	logs    *testenv.Buffer
	pubPath string
}

const probeFile = demoDir + "/Packages/probe-1.0-1.noarch.rpm"

func newProbeEnv(t *testing.T, regions []probeRegion) *probeEnv {
	t.Helper()
	ctx := context.Background()
	d, _ := testenv.NewDB(t)
	e := &probeEnv{ids: map[string]int64{}, repomd: []byte("<repomd>probe</repomd>\n"), logs: &testenv.Buffer{}, pubPath: probeFile}
	content := []byte("a package")
	s, m := sha256.Sum256(content), md5.Sum(content)
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Upsert: []model.File{{Path: probeFile, Size: int64(len(content)), SHA256: s[:], MD5: m[:], Mtime: time.Now()}}}); err != nil {
		t.Fatal(err)
	}
	files, err := d.ListFiles(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	repo := &model.Repository{Name: "demo-1", Arch: "x86_64", Directory: demoDir}
	if err := d.CreateRepository(ctx, repo); err != nil {
		t.Fatal(err)
	}
	rs := sha256.Sum256(e.repomd)
	v := &model.RepomdVersion{RepositoryID: repo.ID, MD5: make([]byte, 16), SHA1: make([]byte, 20), SHA256: rs[:], SHA512: make([]byte, 64), Size: int64(len(e.repomd)), Timestamp: 1763726400}
	if _, err := d.RecordRepomdVersion(ctx, v); err != nil {
		t.Fatal(err)
	}
	for _, pr := range regions {
		r := &model.Region{Name: pr.name, Kind: model.KindS3, Bucket: "b-" + pr.name, PublicURL: pr.url, Weight: 100,
			Enabled: !pr.disabled, Access: model.AccessPublic}
		if pr.locationOnly {
			r.Access = model.AccessLocationOnly
		}
		if err := r.Normalize(); err != nil {
			t.Fatal(err)
		}
		if err := d.CreateRegion(ctx, r); err != nil {
			t.Fatal(err)
		}
		e.ids[pr.name] = r.ID
		if !pr.serves {
			continue
		}
		if err := d.SetRegionRepo(ctx, db.NoFence, model.RegionRepo{RegionID: r.ID, RepositoryID: repo.ID, State: model.RepoFresh, HTTPStatus: 200, RepomdSHA256: v.SHA256}); err != nil {
			t.Fatal(err)
		}
		if err := d.RecordObjects(ctx, db.NoFence, r.ID, []db.ObjectUpdate{{FileID: files[0].ID, Size: files[0].Size, SHA256: files[0].SHA256, State: model.ObjectPresent, Pushed: true, Verified: true}}); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	e.store = NewStore(d, StoreOptions{Policy: selection.Policy{AlternatesMaxAge: 72 * time.Hour}, LoadFiles: true,
		Debounce: 20 * time.Millisecond, Interval: time.Hour, FilesMinInterval: 50 * time.Millisecond})
	if err := e.store.Refresh(ctx, true); err != nil {
		t.Fatal(err)
	}
	go e.store.Run(ctx)
	srv := httptest.NewServer(New(Options{Store: e.store, DownloadPrefix: "/pub"}).Handler())
	t.Cleanup(srv.Close)
	e.base = srv.URL
	e.prober = NewProber(e.store, ProberOptions{Interval: testProbeInterval, Timeout: testProbeInterval,
		Log: slog.New(slog.NewTextHandler(e.logs, nil))})
	done := make(chan struct{})
	go func() { e.prober.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

func (e *probeEnv) logText() string { return e.logs.String() }

// eventually waits for cond, which explains itself when it is false.
func eventually(t *testing.T, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(probeDeadline)
	last := ""
	for {
		if last = cond(); last == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %s", what, probeDeadline, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// answers fetches the metalink and the /pub redirect (Location and Link headers).
func (e *probeEnv) answers(t *testing.T) (metalink, location string, links []string) {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(e.base + "/metalink?repo=demo-1&arch=x86_64")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp, err = client.Get(e.base + "/pub/" + e.pubPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return string(b), resp.Header.Get("Location"), resp.Header.Values("Link")
}

// listed describes where the answers disagree with want (region public URL -> listed?).
func (e *probeEnv) listed(t *testing.T, want map[string]bool) string {
	metalink, location, links := e.answers(t)
	var bad []string
	for u, w := range want {
		inLinks := strings.Contains(strings.Join(links, " "), u+"/")
		if strings.Contains(metalink, u+"/") != w || inLinks != w {
			bad = append(bad, u)
		}
		if !w && strings.HasPrefix(location, u+"/") {
			bad = append(bad, "Location "+u)
		}
	}
	if len(bad) > 0 {
		return "wrong for " + strings.Join(bad, ", ") + "; metalink:\n" + metalink + "\nLocation: " + location
	}
	return ""
}

// reason is why the decision for the repository leaves region name out ("" if it does not).
func (e *probeEnv) reason(name string) string {
	snap := e.store.Snapshot()
	d := selection.SelectRepository(snap, snap.Repository("demo-1", "x86_64"), selection.Request{Now: time.Now(), Explain: true})
	for _, x := range d.Excluded {
		if x.Region.Name == name {
			return x.Reason
		}
	}
	return ""
}

func putRepomd(t *testing.T, srv *testenv.S3Server, bucket string, body []byte) {
	t.Helper()
	_, err := srv.Client().PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket),
		Key: aws.String(demoDir + "/repodata/repomd.xml"), Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatal(err)
	}
}

// TestProberDropsDeadRegion: a region whose S3 server dies leaves metalinks and /pub
// redirects (Location and Link) within a few probes, with the reason in the decision, and
// comes back once its server answers again.
func TestProberDropsDeadRegion(t *testing.T) {
	victimS3, err := testenv.StartS3(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(victimS3.Stop)
	shared := testenv.SharedS3(t)
	vb, sb := victimS3.NewBucket(t, true), shared.NewBucket(t, true)
	victimURL, steadyURL := victimS3.URL(vb, ""), shared.URL(sb, "")
	victimURL, steadyURL = strings.TrimSuffix(victimURL, "/"), strings.TrimSuffix(steadyURL, "/")
	e := newProbeEnv(t, []probeRegion{
		{name: "victim", url: victimURL, serves: true},
		{name: "steady", url: steadyURL, serves: true},
	})
	putRepomd(t, victimS3, vb, e.repomd)
	putRepomd(t, shared, sb, e.repomd)

	eventually(t, "both regions listed", func() string { return e.listed(t, map[string]bool{victimURL: true, steadyURL: true}) })
	victimS3.Kill()
	eventually(t, "the dead region left the answers", func() string {
		return e.listed(t, map[string]bool{victimURL: false, steadyURL: true})
	})
	if r := e.reason("victim"); !strings.HasPrefix(r, "unreachable from this server: ") || !strings.Contains(r, " since ") {
		t.Errorf("reason for the dead region: %q", r)
	}
	if strings.Contains(e.reason("victim"), victimURL) {
		t.Errorf("the reason repeats the URL: %q", e.reason("victim"))
	}
	if resp, err := http.Get(e.base + "/api/v1/regions"); err != nil {
		t.Fatal(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), `"unreachable":"HEAD demo-1/x86_64 repomd.xml: `) {
			t.Errorf("/api/v1/regions does not say the region is unreachable:\n%s", b)
		}
	}
	if err := victimS3.Restart(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the region back in the answers", func() string {
		return e.listed(t, map[string]bool{victimURL: true, steadyURL: true})
	})
	if r := e.reason("victim"); r != "" {
		t.Errorf("the region is back but still excluded: %q", r)
	}
	logs := e.logText()
	if !strings.Contains(logs, "level=WARN msg=\"region unreachable from this server") || !strings.Contains(logs, "region reachable again") {
		t.Errorf("state changes not logged:\n%s", logs)
	}
}

// switchable answers repomd.xml with status (200 until changed) and counts the failures.
type switchable struct {
	status atomic.Int32
	fails  atomic.Int32
	hits   atomic.Int32
}

func newSwitchable(t *testing.T) (*switchable, string) {
	sw := &switchable{}
	sw.status.Store(200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw.hits.Add(1)
		st := int(sw.status.Load())
		if st != 200 {
			sw.fails.Add(1)
		}
		w.WriteHeader(st)
	}))
	t.Cleanup(srv.Close)
	return sw, srv.URL
}

// TestProberHTTPErrors: an HTTP error answer for repomd.xml takes two in a row before the
// region is left out; two good answers bring it back.
func TestProberHTTPErrors(t *testing.T) {
	flaky, flakyURL := newSwitchable(t)
	_, steadyURL := newSwitchable(t)
	e := newProbeEnv(t, []probeRegion{
		{name: "flaky", url: flakyURL, serves: true},
		{name: "steady", url: steadyURL, serves: true},
	})
	eventually(t, "both regions listed", func() string { return e.listed(t, map[string]bool{flakyURL: true, steadyURL: true}) })
	flaky.status.Store(404)
	eventually(t, "the region answering 404 left the answers", func() string {
		return e.listed(t, map[string]bool{flakyURL: false, steadyURL: true})
	})
	if n := flaky.fails.Load(); n < 2 {
		t.Errorf("left out after %d failed answers, want at least 2", n)
	}
	if r := e.reason("flaky"); !strings.Contains(r, "HTTP 404") {
		t.Errorf("reason: %q", r)
	}
	flaky.status.Store(200)
	eventually(t, "the region back", func() string { return e.listed(t, map[string]bool{flakyURL: true, steadyURL: true}) })
}

// deadURL is an address where nothing listens.
func deadURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// TestProberAllUnreachableExcludesNone: when no region answers, the fault is most likely
// this server's network, and the prober must not empty the answers.
func TestProberAllUnreachableExcludesNone(t *testing.T) {
	a, b := deadURL(t), deadURL(t)
	e := newProbeEnv(t, []probeRegion{{name: "a", url: a, serves: true}, {name: "b", url: b, serves: true}})
	eventually(t, "both regions found unreachable", func() string {
		for _, st := range e.prober.States() {
			if st.Reachable {
				return st.Name + " still reachable"
			}
		}
		return ""
	})
	// A few more rounds of probes change nothing.
	time.Sleep(3 * testProbeInterval)
	if msg := e.listed(t, map[string]bool{a: true, b: true}); msg != "" {
		t.Error(msg)
	}
	for _, n := range []string{"a", "b"} {
		if r := e.reason(n); r != "" {
			t.Errorf("%s excluded: %s", n, r)
		}
	}
	if logs := e.logText(); strings.Count(logs, "no region is reachable from this server") != 1 {
		t.Errorf("want one warning about every region unreachable:\n%s", logs)
	}
}

// TestProberSkipsLocationOnly: location-only and disabled regions are never probed; a
// region that serves no repository is probed at its base URL, where any answer will do.
func TestProberSkipsLocationOnly(t *testing.T) {
	inside, insideURL := newSwitchable(t)
	off, offURL := newSwitchable(t)
	bare, bareURL := newSwitchable(t)
	bare.status.Store(403) // an S3 bucket that refuses listing
	e := newProbeEnv(t, []probeRegion{
		{name: "inside", url: insideURL, serves: true, locationOnly: true},
		{name: "off", url: offURL, serves: true, disabled: true},
		{name: "bare", url: bareURL},
	})
	eventually(t, "probes of the bare region", func() string {
		if bare.hits.Load() < 5 {
			return "too few probes yet"
		}
		return ""
	})
	if n := inside.hits.Load(); n != 0 {
		t.Errorf("the location-only region was probed %d times", n)
	}
	if n := off.hits.Load(); n != 0 {
		t.Errorf("the disabled region was probed %d times", n)
	}
	st := e.prober.States()
	if len(st) != 1 || !st[e.ids["bare"]].Reachable {
		t.Errorf("states: %+v", st)
	}
}

// TestProberHysteresis: one connection failure is enough; an HTTP error needs a second;
// coming back needs two successes.
func TestProberHysteresis(t *testing.T) {
	store := NewStore(nil, StoreOptions{})
	snap := fixture(t, "")
	m := NewMetrics(store)
	p := NewProber(store, ProberOptions{Metrics: m})
	targets := p.due(snap)
	if len(targets) == 0 {
		t.Fatal("nothing to probe")
	}
	for _, tg := range targets {
		if tg.name == "eu-west-1" || tg.name == "us-gov-1" || tg.name == "sa-east-1" {
			t.Errorf("%s is location-only or disabled but probed", tg.name)
		}
	}
	a, b := targets[0], targets[1]
	reachable := func(id int64) bool { return p.States()[id].Reachable }
	conn, httpErr := errors.New("connection refused"), errors.New("HTTP 503")

	gauge := func(name string) float64 {
		fams, err := m.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() != "regionmirror_region_reachable" {
				continue
			}
			for _, mt := range f.GetMetric() {
				if mt.GetLabel()[0].GetValue() == name {
					return mt.GetGauge().GetValue()
				}
			}
		}
		return -1
	}
	if g := gauge(a.name); g != 1 {
		t.Errorf("gauge before any failure: %v", g)
	}
	p.record(a, conn, nil)
	if reachable(a.id) {
		t.Error("reachable after a refused connection")
	}
	if g := gauge(a.name); g != 0 {
		t.Errorf("gauge of an unreachable region: %v", g)
	}
	p.record(a, nil, nil)
	if reachable(a.id) {
		t.Error("reachable after one success")
	}
	p.record(a, nil, nil)
	if !reachable(a.id) {
		t.Error("unreachable after two successes")
	}

	p.record(b, nil, httpErr)
	if !reachable(b.id) {
		t.Error("unreachable after one HTTP error")
	}
	p.record(b, nil, nil)
	p.record(b, nil, httpErr)
	if !reachable(b.id) {
		t.Error("an HTTP error after a success counted with the one before it")
	}
	p.record(b, nil, httpErr)
	if reachable(b.id) {
		t.Error("reachable after two HTTP errors in a row")
	}
	if st := p.States()[b.id]; st.Error != "HTTP 503" || st.Since.IsZero() {
		t.Errorf("state %+v", st)
	}
}
