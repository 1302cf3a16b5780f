package server

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/geo"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
	"github.com/regionmirror/regionmirror/server/selection"
)

const (
	demoDir  = "demo/1/x86_64/os"
	demoRepo = "../testdata/origin/" + demoDir
	testCity = "../testdata/geoip/regionmirror-test-city.mmdb"
)

// requireTool fails (never skips) when a real component is missing.
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is missing: install it with: apt-get install -y %s (or run ./.ci/deps)", name, pkg)
	}
	return p
}

// upload copies a yum repository tree into bucket under prefix, as the pusher would:
// keys with "+" are also written with spaces, because older dnf sends "+" unencoded and S3
// reads it as a space.
func upload(t *testing.T, c *s3.Client, bucket, dir, prefix string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		body, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		key := prefix + "/" + filepath.ToSlash(rel)
		keys := []string{key}
		if strings.Contains(key, "+") {
			keys = append(keys, strings.ReplaceAll(key, "+", " "))
		}
		for _, k := range keys {
			if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: bytes.NewReader(body)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("upload %s to %s: %v", dir, bucket, err)
	}
}

var timestampRE = regexp.MustCompile(`<timestamp>(\d+)</timestamp>`)

// repomdVersion describes a repomd.xml as the inventory records it.
func repomdVersion(t *testing.T, repoID int64, path string) *model.RepomdVersion {
	t.Helper()
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, s1, s2, s5 := md5.Sum(body), sha1.Sum(body), sha256.Sum256(body), sha512.Sum512(body)
	var ts int64
	for _, match := range timestampRE.FindAllSubmatch(body, -1) {
		n, _ := strconv.ParseInt(string(match[1]), 10, 64)
		ts = max(ts, n)
	}
	return &model.RepomdVersion{RepositoryID: repoID, MD5: m[:], SHA1: s1[:], SHA256: s2[:], SHA512: s5[:], Size: int64(len(body)), Timestamp: ts}
}

// olderRepo builds an older version of the demo repository (without libc++-compat) with
// createrepo_c, as the origin published it before.
func olderRepo(t *testing.T) string {
	t.Helper()
	requireTool(t, "createrepo_c", "createrepo-c")
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "Packages"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"hello-1.0-1.noarch.rpm", "greet-2.1-1.noarch.rpm"} {
		b, err := os.ReadFile(filepath.Join(demoRepo, "Packages", p))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "Packages", p), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("createrepo_c", "--quiet", "--no-database", dir).CombinedOutput(); err != nil {
		t.Fatalf("createrepo_c: %v\n%s", err, out)
	}
	return dir
}

// dnfClient runs the real dnf against a private installroot and repo directory.
type dnfClient struct {
	t    *testing.T
	dir  string
	root string
}

func newDNF(t *testing.T, repoLine string) *dnfClient {
	t.Helper()
	requireTool(t, "dnf", "dnf")
	dir := t.TempDir()
	repos := filepath.Join(dir, "repos.d")
	if err := os.MkdirAll(repos, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := "[test]\nname=regionmirror test\n" + repoLine + "\ngpgcheck=0\nenabled=1\n"
	if err := os.WriteFile(filepath.Join(repos, "test.repo"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return &dnfClient{t: t, dir: dir, root: filepath.Join(dir, "root")}
}

func (d *dnfClient) run(args ...string) (string, error) {
	d.t.Helper()
	base := []string{"-y", "--setopt=reposdir=" + filepath.Join(d.dir, "repos.d"), "--installroot=" + d.root,
		"--releasever=1", "--nogpgcheck", "--disablerepo=*", "--enablerepo=test",
		"--setopt=skip_if_unavailable=False", "--setopt=install_weak_deps=False"}
	cmd := exec.Command("dnf", append(base, args...)...)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	out, err := cmd.CombinedOutput()
	d.t.Logf("dnf %s:\n%s", strings.Join(args, " "), out)
	return string(out), err
}

func (d *dnfClient) must(args ...string) string {
	d.t.Helper()
	out, err := d.run(args...)
	if err != nil {
		d.t.Fatalf("dnf %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// cachedRepomd returns the sha256 of the repomd.xml dnf accepted.
func (d *dnfClient) cachedRepomd() [32]byte {
	d.t.Helper()
	matches, _ := filepath.Glob(filepath.Join(d.root, "var/cache/dnf/test-*/repodata/repomd.xml"))
	if len(matches) != 1 {
		d.t.Fatalf("cached repomd.xml: %v", matches)
	}
	b, err := os.ReadFile(matches[0])
	if err != nil {
		d.t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// metalinkURLs returns the <url> elements of a metalink, in order.
func metalinkURLs(body string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`<url [^>]*>([^<]*)</url>`).FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestDNFEndToEnd publishes the demo repository to three public versitygw buckets, records
// their state in PostgreSQL the way push and scan do, and points the real dnf at the
// server's metalink and mirror list.
func TestDNFEndToEnd(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, _ := testenv.NewDB(t)
	s3srv := testenv.SharedS3(t)
	c := s3srv.Client()
	old := olderRepo(t)

	// us-east-1 and eu-central-1 hold the current repository; ap-southeast-2 still the
	// older one, which the origin replaced a moment ago (an alternate within the window).
	type regionDef struct {
		name, country string
		lat, lon      float64
		tree          string
	}
	defs := []regionDef{
		{"us-east-1", "US", 38.9, -77.4, demoRepo},
		{"eu-central-1", "DE", 50.1, 8.7, demoRepo},
		{"ap-southeast-2", "AU", -33.9, 151.2, old},
	}
	repo := &model.Repository{Name: "demo-1", Arch: "x86_64", Directory: demoDir}
	if err := d.CreateRepository(ctx, repo); err != nil {
		t.Fatal(err)
	}
	oldV := repomdVersion(t, repo.ID, filepath.Join(old, "repodata/repomd.xml"))
	curV := repomdVersion(t, repo.ID, filepath.Join(demoRepo, "repodata/repomd.xml"))
	for _, v := range []*model.RepomdVersion{oldV, curV} {
		if _, err := d.RecordRepomdVersion(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	regions := map[string]*model.Region{}
	buckets := map[string]string{}
	for _, def := range defs {
		r := newS3Region(t, d, s3srv, def.name, def.country, def.lat, def.lon)
		bucket := r.Bucket
		upload(t, c, bucket, def.tree, demoDir)
		regions[def.name], buckets[def.name] = r, bucket
		state, sum := model.RepoFresh, curV.SHA256
		if def.tree == old {
			state, sum = model.RepoAlternate, oldV.SHA256
		}
		if err := d.SetRegionRepo(ctx, db.NoFence, model.RegionRepo{RegionID: r.ID, RepositoryID: repo.ID, RepomdSHA256: sum, State: state, HTTPStatus: 200}); err != nil {
			t.Fatal(err)
		}
	}

	g, err := geo.OpenGeoIP(testCity, nil)
	if err != nil {
		t.Fatal(err)
	}
	store := NewStore(d, StoreOptions{Policy: selection.Policy{AlternatesMaxAge: 72 * time.Hour}, Debounce: 20 * time.Millisecond, Interval: time.Hour})
	go store.Run(ctx)
	waitFor(t, "the first snapshot", func() bool { return store.Snapshot() != nil })
	act := NewActivity(d, ActivityOptions{})
	srv := New(Options{Store: store, GeoIP: g, Log: slog.New(slog.DiscardHandler), Activity: act})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ctx, l, time.Second) }()
	base := "http://" + l.Addr().String()
	regionURL := func(name string) string {
		return s3srv.URL(buckets[name], demoDir+"/repodata/repomd.xml")
	}

	t.Run("metalink with location: the named region first and the others by distance", func(t *testing.T) {
		_, body := httpGet(t, base+"/metalink?repo=demo-1&arch=x86_64&location=us-east-1")
		if got := metalinkURLs(body); len(got) != 3 || got[0] != regionURL("us-east-1") || got[1] != regionURL("eu-central-1") || got[2] != regionURL("ap-southeast-2") {
			t.Errorf("URLs %v", got)
		}
		dnf := newDNF(t, "metalink="+base+"/metalink?repo=demo-$releasever&arch=$basearch&location=us-east-1")
		dnf.must("makecache")
		if dnf.cachedRepomd() != [32]byte(curV.SHA256) {
			t.Error("dnf did not keep the current repomd.xml")
		}
		dnf.must("install", "hello", "libc++-compat")
		for _, f := range []string{"usr/share/regionmirror-demo/hello.txt", "usr/share/regionmirror-demo/libc++-compat.txt"} {
			if _, err := os.Stat(filepath.Join(dnf.root, f)); err != nil {
				t.Errorf("installed file: %v", err)
			}
		}
	})

	t.Run("metalink without location: GeoIP order (127.0.0.1 is in Frankfurt)", func(t *testing.T) {
		_, body := httpGet(t, base+"/metalink?repo=demo-1&arch=x86_64&countme=1")
		if got := metalinkURLs(body); len(got) != 3 || got[0] != regionURL("eu-central-1") || got[1] != regionURL("us-east-1") {
			t.Errorf("URLs %v", got)
		}
		// dnf's own countme: it adds countme=1 (a machine in its first week) to one
		// metadata request of the week, picked at random among the first four (libdnf's
		// COUNTME_BUDGET): five metalink fetches carry exactly one.
		dnf := newDNF(t, "metalink="+base+"/metalink?repo=demo-$releasever&arch=$basearch\ncountme=1")
		dnf.must("makecache")
		dnf.must("install", "greet")
		for range 4 {
			dnf.must("makecache", "--refresh")
		}
		act.Round(ctx)
		now := time.Now()
		u, err := d.Usage(ctx, model.WeekStart(now), now.Add(time.Hour), "")
		if err != nil {
			t.Fatal(err)
		}
		want := model.UsageWeekOf("demo-1", "x86_64", model.WeekStart(now), [4]int64{2, 0, 0, 0})
		if len(u.Countme) != 1 || u.Countme[0] != want {
			t.Errorf("countme of curl's and dnf's requests: %+v, want %+v", u.Countme, want)
		}
	})

	t.Run("mirrorlist", func(t *testing.T) {
		_, body := httpGet(t, base+"/mirrorlist?repo=demo-1&arch=x86_64&location=eu-central-1")
		if lines := strings.Split(body, "\n"); len(lines) < 2 || lines[1] != s3srv.URL(buckets["eu-central-1"], demoDir+"/") {
			t.Errorf("mirrorlist:\n%s", body)
		}
		dnf := newDNF(t, "mirrorlist="+base+"/mirrorlist?repo=demo-$releasever&arch=$basearch&location=eu-central-1")
		dnf.must("makecache")
		dnf.must("install", "libc++-compat")
	})

	t.Run("an alternate within the window is accepted", func(t *testing.T) {
		dnf := newDNF(t, "metalink="+base+"/metalink?repo=demo-$releasever&arch=$basearch&location=ap-southeast-2")
		dnf.must("makecache")
		if dnf.cachedRepomd() != [32]byte(oldV.SHA256) {
			t.Error("dnf did not take the alternate repomd.xml from ap-southeast-2")
		}
		dnf.must("install", "hello")
	})

	t.Run("a region serving a stale repomd.xml is skipped", func(t *testing.T) {
		// us-east-1's bucket now serves a repomd.xml the origin never published; the
		// database does not know yet (no scan since), so the metalink still lists it first.
		stale := bytes.Replace(mustRead(t, filepath.Join(demoRepo, "repodata/repomd.xml")), []byte("<revision>"), []byte("<revision>stale"), 1)
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(buckets["us-east-1"]), Key: aws.String(demoDir + "/repodata/repomd.xml"), Body: bytes.NewReader(stale)}); err != nil {
			t.Fatal(err)
		}
		dnf := newDNF(t, "metalink="+base+"/metalink?repo=demo-$releasever&arch=$basearch&location=us-east-1")
		dnf.must("makecache")
		if dnf.cachedRepomd() != [32]byte(curV.SHA256) {
			t.Error("dnf accepted the stale repomd.xml")
		}
		// librepo's log shows the rejection of the first URL and the fall back to the next.
		lg := string(mustRead(t, filepath.Join(dnf.root, "var/log/dnf.librepo.log")))
		rejected := strings.Index(lg, "checksum doesn't match")
		next := strings.Index(lg, "Downloading: "+regionURL("eu-central-1"))
		if !strings.Contains(lg, "Downloading: "+regionURL("us-east-1")) || rejected < 0 || next < rejected {
			t.Errorf("librepo did not reject us-east-1's repomd.xml and move on:\n%s", lg)
		}
		dnf.must("install", "hello")

		// Once a scan records it, the server leaves the region out.
		if err := d.SetRegionRepo(ctx, db.NoFence, model.RegionRepo{RegionID: regions["us-east-1"].ID, RepositoryID: repo.ID, RepomdSHA256: sha256Of(stale), State: model.RepoStale, HTTPStatus: 200}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the stale region to leave the metalink", func() bool {
			_, body := httpGet(t, base+"/metalink?repo=demo-1&arch=x86_64&location=us-east-1")
			got := metalinkURLs(body)
			return len(got) == 2 && got[0] == regionURL("eu-central-1")
		})
	})

	t.Run("unknown repository: 404 that dnf reports", func(t *testing.T) {
		status, body := httpGet(t, base+"/metalink?repo=demo-2&arch=x86_64")
		if status != 404 || !strings.Contains(body, "# repo=demo-1&arch=x86_64") {
			t.Errorf("%d %s", status, body)
		}
		dnf := newDNF(t, "metalink="+base+"/metalink?repo=demo-2&arch=$basearch")
		out, err := dnf.run("makecache")
		if err == nil || !strings.Contains(out, "404") {
			t.Errorf("dnf makecache of an unknown repository: %v", err)
		}
	})
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sha256Of(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}
