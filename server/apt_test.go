package server

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/config"
	"github.com/regionmirror/regionmirror/internal/geo"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/objstore"
	"github.com/regionmirror/regionmirror/internal/repomd"
	"github.com/regionmirror/regionmirror/internal/testenv"
	"github.com/regionmirror/regionmirror/pusher"
	"github.com/regionmirror/regionmirror/scanner"
	"github.com/regionmirror/regionmirror/server/selection"
)

// aptVersion describes an InRelease as the inventory records it.
func aptVersion(t *testing.T, repoID int64, path string) *model.RepomdVersion {
	t.Helper()
	rel, err := repomd.ParseRelease(bytes.NewReader(mustRead(t, path)))
	if err != nil {
		t.Fatal(err)
	}
	return &model.RepomdVersion{RepositoryID: repoID, MD5: rel.MD5, SHA1: rel.SHA1, SHA256: rel.SHA256, SHA512: rel.SHA512,
		Size: rel.Size, Timestamp: rel.Date.Unix(), ValidUntil: rel.ValidUntil}
}

// TestAptMirrorLists publishes a signed by-hash APT archive to three public versitygw
// buckets (one holding the previous revision, one serving an InRelease the origin never
// published), records their state as push and scan do, and points the real apt at the
// server's mirror lists.
func TestAptMirrorLists(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, _ := testenv.NewDB(t)
	s3srv := testenv.SharedS3(t)
	c := s3srv.Client()

	const dir = "debian"
	archive := testenv.NewAptArchive(t, filepath.Join(t.TempDir(), dir), "stable", true, true)
	hello := testenv.AptPackage{Name: "hello", Version: "1.0", Content: "hello"}
	greet := testenv.AptPackage{Name: "greet", Version: "2.0", Content: "greet"}
	archive.Publish(t, []testenv.AptPackage{hello}, testenv.PublishOptions{Date: time.Now().Add(-time.Hour)})
	old := filepath.Join(t.TempDir(), dir)
	if out, err := exec.Command("cp", "-a", archive.Root, old).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	archive.Publish(t, []testenv.AptPackage{hello, greet}, testenv.PublishOptions{ValidUntil: 12 * time.Hour})

	repo := &model.Repository{Name: "deb", Kind: model.RepoApt, Suite: "stable", Directory: dir, ReleaseFile: "InRelease"}
	if err := repo.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateRepository(ctx, repo); err != nil {
		t.Fatal(err)
	}
	yum := &model.Repository{Name: "demo-1", Arch: "x86_64", Directory: demoDir}
	if err := d.CreateRepository(ctx, yum); err != nil {
		t.Fatal(err)
	}
	release := "dists/stable/InRelease"
	oldV := aptVersion(t, repo.ID, filepath.Join(old, release))
	curV := aptVersion(t, repo.ID, filepath.Join(archive.Root, release))
	for _, v := range []*model.RepomdVersion{oldV, curV} {
		if _, err := d.RecordRepomdVersion(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	// eu-central-1 (first for 127.0.0.1, which GeoIP puts in Frankfurt) lags a revision;
	// ap-southeast-2 serves an InRelease the origin never published.
	type regionDef struct {
		name, country string
		lat, lon      float64
		tree, state   string
		sum           []byte
	}
	defs := []regionDef{
		{"us-east-1", "US", 38.9, -77.4, archive.Root, model.RepoFresh, curV.SHA256},
		{"eu-central-1", "DE", 50.1, 8.7, old, model.RepoAlternate, oldV.SHA256},
		{"ap-southeast-2", "AU", -33.9, 151.2, archive.Root, model.RepoStale, []byte("not a recorded revision.........")},
	}
	buckets := map[string]string{}
	regions := map[string]*model.Region{}
	for _, def := range defs {
		r := newS3Region(t, d, s3srv, def.name, def.country, def.lat, def.lon)
		bucket := r.Bucket
		upload(t, c, bucket, def.tree, dir)
		buckets[def.name], regions[def.name] = bucket, r
		if err := d.SetRegionRepo(ctx, db.NoFence, model.RegionRepo{RegionID: r.ID, RepositoryID: repo.ID, RepomdSHA256: def.sum, State: def.state, HTTPStatus: 200}); err != nil {
			t.Fatal(err)
		}
	}
	stale := bytes.Replace(mustRead(t, filepath.Join(archive.Root, release)), []byte("Origin: "), []byte("Origin: stale-"), 1)
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(buckets["ap-southeast-2"]), Key: aws.String(dir + "/" + release), Body: bytes.NewReader(stale)}); err != nil {
		t.Fatal(err)
	}

	g, err := geo.OpenGeoIP(testCity, nil)
	if err != nil {
		t.Fatal(err)
	}
	const originURL = "http://127.0.0.1:9/origin"
	store := NewStore(d, StoreOptions{Policy: selection.Policy{AlternatesMaxAge: 72 * time.Hour, OriginURL: originURL}, Debounce: 20 * time.Millisecond, Interval: time.Hour})
	go store.Run(ctx)
	waitFor(t, "the first snapshot", func() bool { return store.Snapshot() != nil })
	srv := New(Options{Store: store, GeoIP: g, Log: slog.New(slog.DiscardHandler), Metrics: NewMetrics(store)})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ctx, l, time.Second) }()
	base := "http://" + l.Addr().String()
	entry := func(region string) string { return s3srv.URL(buckets[region], dir+"/") }
	originEntry := originURL + "/" + dir + "/"
	sources := func(list string) string {
		return "deb [signed-by=" + archive.Keyring + "] mirror+" + base + "/apt/" + list + " stable main"
	}

	t.Run("the list: best first with priorities, the origin last, the stale region left out", func(t *testing.T) {
		res, err := http.Get(base + "/apt/deb.list")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		body := string(raw)
		want := entry("eu-central-1") + "\tpriority:1\n" + entry("us-east-1") + "\tpriority:2\n" + originEntry + "\tpriority:3\n"
		if res.StatusCode != 200 || body != want {
			t.Errorf("%d:\n%s\nwant:\n%s", res.StatusCode, body, want)
		}
		if ct, cc := res.Header.Get("Content-Type"), res.Header.Get("Cache-Control"); ct != "text/plain; charset=utf-8" || cc != "private, max-age=30" {
			t.Errorf("Content-Type %q, Cache-Control %q", ct, cc)
		}
		_, body = httpGet(t, base+"/apt/deb.list?location=us-east-1")
		if !strings.HasPrefix(body, entry("us-east-1")+"\tpriority:1\n") {
			t.Errorf("location=us-east-1:\n%s", body)
		}
	})

	t.Run("the per-region list puts that region first", func(t *testing.T) {
		status, body := httpGet(t, base+"/apt/deb/us-east-1.list")
		want := entry("us-east-1") + "\tpriority:1\n" + entry("eu-central-1") + "\tpriority:2\n" + originEntry + "\tpriority:3\n"
		if status != 200 || body != want {
			t.Errorf("%d:\n%s", status, body)
		}
		// A region that does not serve the suite is not listed, even when named.
		if _, body := httpGet(t, base+"/apt/deb/ap-southeast-2.list"); strings.Contains(body, entry("ap-southeast-2")) {
			t.Errorf("stale region listed:\n%s", body)
		}
	})

	t.Run("errors: unknown or yum repository, unknown region, hostile names", func(t *testing.T) {
		for path, want := range map[string]int{
			"/apt/nope.list": 404, "/apt/demo-1.list": 404, "/apt/deb/nowhere.list": 404, "/apt/deb": 404,
			"/apt/deb/a/b.list": 404, "/apt/%00.list": 404, "/apt/deb%0a.list": 404, "/apt/" + strings.Repeat("x", 5000) + ".list": 404,
			"/apt/deb.list?country=zz": 400, "/metalink?repo=deb&arch=all": 404,
		} {
			status, body := httpGet(t, base+path)
			if status != want || len(body) > 512 {
				t.Errorf("%.60s: %d %q, want %d", path, status, body, want)
			}
		}
	})

	t.Run("apt through the per-region list gets the current revision", func(t *testing.T) {
		apt := testenv.NewAptRoot(t, sources("deb/us-east-1.list"))
		mustApt(t, apt, "update")
		mustApt(t, apt, "download", "hello", "greet")
		for _, p := range []testenv.AptPackage{hello, greet} {
			if _, err := os.Stat(filepath.Join(apt.Dir, "download", filepath.Base(testenv.DebPath(p)))); err != nil {
				t.Error(err)
			}
		}

	})

	t.Run("a machine whose first region lags after its update fetches the new pool files from the next entry", func(t *testing.T) {
		// eu-central-1 out of the list while the machine updates (us-east-1 first: the
		// current revision), back in as an alternate before it downloads.
		setState := func(state string, sum []byte) {
			t.Helper()
			if err := d.SetRegionRepo(ctx, db.NoFence, model.RegionRepo{RegionID: regions["eu-central-1"].ID, RepositoryID: repo.ID, RepomdSHA256: sum, State: state, HTTPStatus: 200}); err != nil {
				t.Fatal(err)
			}
		}
		setState(model.RepoStale, oldV.SHA256)
		waitFor(t, "eu-central-1 to leave the list", func() bool {
			_, body := httpGet(t, base+"/apt/deb.list")
			return strings.HasPrefix(body, entry("us-east-1"))
		})
		apt := testenv.NewAptRoot(t, sources("deb.list"))
		mustApt(t, apt, "update")
		setState(model.RepoAlternate, oldV.SHA256)
		waitFor(t, "eu-central-1 back first in the list", func() bool {
			_, body := httpGet(t, base+"/apt/deb.list")
			return strings.HasPrefix(body, entry("eu-central-1"))
		})
		// greet is not in eu-central-1's pool: 404 there, then the next entry.
		out := mustApt(t, apt, "download", "hello", "greet", "-o", "Debug::Acquire::http=true")
		if !strings.Contains(out, "/"+buckets["eu-central-1"]+"/"+dir+"/"+testenv.DebPath(greet)) || !strings.Contains(out, "/"+buckets["us-east-1"]+"/"+dir+"/"+testenv.DebPath(greet)) {
			t.Error("apt did not ask the lagging region for greet, then the next entry")
		}
		for _, p := range []testenv.AptPackage{hello, greet} {
			if _, err := os.Stat(filepath.Join(apt.Dir, "download", filepath.Base(testenv.DebPath(p)))); err != nil {
				t.Error(err)
			}
		}
		// Another update with the lagging region first: apt 2.6 keeps the newer InRelease
		// it has (the older one is read and set aside), so greet stays known and its pool
		// file still comes from the next entry.
		os.RemoveAll(filepath.Join(apt.Dir, "download"))
		os.MkdirAll(filepath.Join(apt.Dir, "download"), 0o755)
		mustApt(t, apt, "update")
		mustApt(t, apt, "download", "greet")
		if _, err := os.Stat(filepath.Join(apt.Dir, "download", filepath.Base(testenv.DebPath(greet)))); err != nil {
			t.Error(err)
		}
	})

	t.Run("a new machine whose first region lags gets every package of the revision it serves", func(t *testing.T) {
		apt := testenv.NewAptRoot(t, sources("deb.list"))
		mustApt(t, apt, "update")
		mustApt(t, apt, "download", "hello")
		if _, err := os.Stat(filepath.Join(apt.Dir, "download", filepath.Base(testenv.DebPath(hello)))); err != nil {
			t.Error(err)
		}
	})

	t.Run("the lists are counted as apt-list", func(t *testing.T) {
		_, body := httpGet(t, base+"/metrics")
		if !strings.Contains(body, `code="200",endpoint="apt-list"`) || !strings.Contains(body, `code="404",endpoint="apt-list"`) {
			t.Errorf("no apt-list series:\n%s", body)
		}
	})

	t.Run("the views show the kind, the suite and the Valid-Until warning", func(t *testing.T) {
		_, body := httpGet(t, base+"/api/v1/repositories")
		for _, s := range []string{`"kind":"apt"`, `"suite":"stable"`, `"valid_until":`, `"valid_until_warning":"the current revision's Valid-Until`, `"kind":"yum"`} {
			if !strings.Contains(body, s) {
				t.Errorf("API lacks %s:\n%s", s, body)
			}
		}
		_, page := httpGet(t, base+"/")
		if !strings.Contains(page, "apt stable") || !strings.Contains(page, "Valid-Until</span> deb:") {
			t.Errorf("dashboard lacks the APT repository's kind or warning")
		}
	})
}

func mustApt(t *testing.T, r *testenv.AptRoot, args ...string) string {
	t.Helper()
	out, err := r.Run(args...)
	t.Logf("apt-get %s:\n%s", strings.Join(args, " "), out)
	if err != nil {
		t.Fatalf("apt-get %s: %v", strings.Join(args, " "), err)
	}
	if strings.Contains(string(out), "\nW: ") || strings.Contains(string(out), "\nE: ") {
		t.Errorf("apt-get %s warned or failed", strings.Join(args, " "))
	}
	return string(out)
}

// TestAptCorruptIndexLeavesTheList: a region whose index files are corrupted (same
// names and sizes, other bytes) breaks apt update for the clients sent there (apt 2.6
// does not fall back to the next mirror on a hash mismatch); the scan finds it and the
// region leaves the mirror list, after which apt works again. Real push, scan, apt.
func TestAptCorruptIndexLeavesTheList(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, _ := testenv.NewDB(t)
	s3srv := testenv.SharedS3(t)
	origin := t.TempDir()
	const dir = "debian"
	archive := testenv.NewAptArchive(t, filepath.Join(origin, dir), "stable", true, false)
	hello := testenv.AptPackage{Name: "hello", Version: "1.0", Content: "hello"}
	archive.Publish(t, []testenv.AptPackage{hello}, testenv.PublishOptions{})
	repo := &model.Repository{Name: "deb", Kind: model.RepoApt, Suite: "stable", Directory: dir, ReleaseFile: "Release"}
	if err := repo.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateRepository(ctx, repo); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	if _, err := pusher.TakeInventory(ctx, d, pusher.OSOrigin{Root: origin}, 2, false, log); err != nil {
		t.Fatal(err)
	}
	if _, err := d.RecordRepomdVersion(ctx, aptVersion(t, repo.ID, filepath.Join(origin, repo.MetadataPath()))); err != nil {
		t.Fatal(err)
	}
	opts := objstore.Options{AccessKey: testenv.S3AccessKey, SecretKey: testenv.S3SecretKey, MaxAttempts: 1, Timeout: 5 * time.Second}
	regions := map[string]*model.Region{}
	var all []*model.Region
	for _, def := range []struct {
		name, country string
		lat, lon      float64
	}{{"eu-central-1", "DE", 50.1, 8.7}, {"us-east-1", "US", 38.9, -77.4}} {
		r := newS3Region(t, d, s3srv, def.name, def.country, def.lat, def.lon)
		regions[def.name] = r
		all = append(all, r)
	}
	pcfg := pusher.DefaultConfig()
	pcfg.StoreOptions = opts
	p := &pusher.Pusher{DB: d, Origin: pusher.OSOrigin{Root: origin}, Log: log, Config: pcfg}
	if res, err := p.Push(ctx, all); err != nil || res.Failed() {
		t.Fatalf("push: %v %+v", err, res)
	}
	scfg := scanner.NewConfig(config.Scan{Concurrency: 2, DownAfter: 3, UpAfter: 2, Timeout: config.Duration(5 * time.Second)})
	scfg.StoreOptions = opts
	sc := &scanner.Scanner{DB: d, Log: log, Config: scfg}
	scan := func() {
		t.Helper()
		reps, err := sc.Scan(ctx, all)
		if err != nil {
			t.Fatal(err)
		}
		for _, rep := range reps {
			t.Logf("scan %s: %+v", rep.Region, rep.Repos)
		}
	}
	scan()

	store := NewStore(d, StoreOptions{Policy: selection.Policy{AlternatesMaxAge: 72 * time.Hour}, Debounce: 20 * time.Millisecond, Interval: time.Hour})
	go store.Run(ctx)
	waitFor(t, "the first snapshot", func() bool { return store.Snapshot() != nil })
	g, err := geo.OpenGeoIP(testCity, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := New(Options{Store: store, GeoIP: g, Log: log})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ctx, l, time.Second) }()
	base := "http://" + l.Addr().String()
	entry := func(r *model.Region) string { return s3srv.URL(r.Bucket, dir+"/") }
	both := entry(regions["eu-central-1"]) + "\tpriority:1\n" + entry(regions["us-east-1"]) + "\tpriority:2\n"
	waitFor(t, "both regions in the list", func() bool { _, body := httpGet(t, base+"/apt/deb.list"); return body == both })
	sources := "deb [trusted=yes] mirror+" + base + "/apt/deb.list stable main"
	mustApt(t, testenv.NewAptRoot(t, sources), "update")

	// Every index file of eu-central-1 gets other bytes of the same size.
	c := s3srv.Client()
	bin := filepath.Join(archive.Root, "dists", "stable", "main", "binary-amd64")
	err = filepath.WalkDir(bin, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		body := mustRead(t, p)
		body[len(body)/2] ^= 0xff
		rel, _ := filepath.Rel(origin, p)
		_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(regions["eu-central-1"].Bucket), Key: aws.String(filepath.ToSlash(rel)), Body: bytes.NewReader(body)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	apt := testenv.NewAptRoot(t, sources)
	out, err := apt.Run("update")
	t.Logf("apt-get update against the corrupted region:\n%s", out)
	if !strings.Contains(string(out), "Hash Sum mismatch") {
		t.Errorf("apt took the corrupted region's index without a hash mismatch (exit: %v)", err)
	}

	scan()
	st, why := "", ""
	states, _ := d.RegionRepos(ctx)
	for _, s := range states {
		if s.RegionID == regions["eu-central-1"].ID && s.RepositoryID == repo.ID {
			st, why = s.State, s.Error
		}
	}
	if st != model.RepoStale || !strings.Contains(why, "other bytes") {
		t.Errorf("corrupted region after the scan: %s (%s)", st, why)
	}
	waitFor(t, "the corrupted region to leave the list", func() bool {
		_, body := httpGet(t, base+"/apt/deb.list")
		return body == entry(regions["us-east-1"])+"\tpriority:1\n"
	})
	apt = testenv.NewAptRoot(t, sources)
	mustApt(t, apt, "update")
	mustApt(t, apt, "download", "hello")
}
