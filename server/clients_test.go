package server

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
	"github.com/regionmirror/regionmirror/server/selection"
)

// clientEnv is a real deployment in miniature: PostgreSQL with the inventory, three public
// versitygw buckets holding the files, and the server on a loopback port.
type clientEnv struct {
	base    string // http://127.0.0.1:PORT
	s3      *testenv.S3Server
	buckets map[string]string // region name -> bucket
	prefix  map[string]string // region name -> key prefix
	content map[string][]byte // path -> bytes
	regions map[string]*model.Region
	db      *db.DB
	act     *Activity
	store   *Store
}

// Paths of the client tests: a "+" and spaces, non-ASCII, XML metacharacters.
const (
	cPlus    = "pkgs/libc++ compat-1.0-1.x86_64.rpm"
	cUnicode = "pkgs/ünïcödé & <friends>.rpm"
	cPlain   = "pkgs/plain-2.0-1.noarch.rpm"
	cOnlyUS  = "pkgs/only-us-1.0.rpm"
)

func newClientEnv(t *testing.T, originURL string) *clientEnv {
	t.Helper()
	ctx := context.Background()
	d, _ := testenv.NewDB(t)
	srv := testenv.SharedS3(t)
	c := srv.Client()
	e := &clientEnv{s3: srv, buckets: map[string]string{}, prefix: map[string]string{}, content: map[string][]byte{},
		regions: map[string]*model.Region{}, db: d}
	for _, p := range []string{cPlus, cUnicode, cPlain, cOnlyUS} {
		b := make([]byte, 150<<10)
		_, _ = rand.Read(b)
		e.content[p] = b
	}
	var inv db.InventoryChanges
	for p, b := range e.content {
		s, m := sha256.Sum256(b), md5.Sum(b)
		inv.Upsert = append(inv.Upsert, model.File{Path: p, Size: int64(len(b)), SHA256: s[:], MD5: m[:], Mtime: time.Now()})
	}
	if _, err := d.ApplyInventory(ctx, inv); err != nil {
		t.Fatal(err)
	}
	files, err := d.ListFiles(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	defs := []struct {
		name, country, prefix string
		lat, lon              float64
		paths                 []string
	}{
		{"us-east-1", "US", "mirror", 38.9, -77.4, []string{cPlus, cUnicode, cPlain, cOnlyUS}},
		{"eu-central-1", "DE", "", 50.1, 8.7, []string{cPlus, cUnicode, cPlain}},
		{"ap-southeast-2", "AU", "pub", -33.9, 151.2, []string{cPlus, cUnicode, cPlain}},
	}
	for _, def := range defs {
		bucket := srv.NewBucket(t, true)
		lat, lon := def.lat, def.lon
		r := &model.Region{Name: def.name, Kind: model.KindS3, Bucket: bucket, Endpoint: srv.Endpoint, Prefix: def.prefix,
			PublicURL: srv.URL(bucket, ""), Country: def.country, Latitude: &lat, Longitude: &lon, Weight: 100, Enabled: true,
			Credentials: "secret-profile-name"}
		if err := r.Normalize(); err != nil {
			t.Fatal(err)
		}
		if err := d.CreateRegion(ctx, r); err != nil {
			t.Fatal(err)
		}
		e.regions[def.name], e.buckets[def.name], e.prefix[def.name] = r, bucket, def.prefix
		var ups []db.ObjectUpdate
		for _, p := range def.paths {
			if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(r.Key(p)), Body: bytes.NewReader(e.content[p])}); err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				if f.Path == p {
					ups = append(ups, db.ObjectUpdate{FileID: f.ID, Size: f.Size, SHA256: f.SHA256, State: model.ObjectPresent, Pushed: true, Verified: true})
				}
			}
		}
		if err := d.RecordObjects(ctx, db.NoFence, r.ID, ups); err != nil {
			t.Fatal(err)
		}
		run, err := d.StartRun(ctx, model.RunPush, r)
		if err != nil {
			t.Fatal(err)
		}
		run.Files = int64(len(ups))
		if err := d.FinishRun(ctx, run, nil); err != nil {
			t.Fatal(err)
		}
		if def.name == "ap-southeast-2" {
			run, _ := d.StartRun(ctx, model.RunScan, r)
			if err := d.FinishRun(ctx, run, fmt.Errorf("list bucket: connection reset")); err != nil {
				t.Fatal(err)
			}
		}
	}
	repo := &model.Repository{Name: "demo-1", Arch: "x86_64", Directory: "pkgs"}
	if err := d.CreateRepository(ctx, repo); err != nil {
		t.Fatal(err)
	}
	v := &model.RepomdVersion{RepositoryID: repo.ID, MD5: make([]byte, 16), SHA1: make([]byte, 20), SHA256: bytes.Repeat([]byte{1}, 32), SHA512: make([]byte, 64), Size: 100, Timestamp: 1763726400}
	if _, err := d.RecordRepomdVersion(ctx, v); err != nil {
		t.Fatal(err)
	}
	for name, state := range map[string]string{"us-east-1": model.RepoFresh, "eu-central-1": model.RepoFresh, "ap-southeast-2": model.RepoMissing} {
		rr := model.RegionRepo{RegionID: e.regions[name].ID, RepositoryID: repo.ID, State: state, HTTPStatus: 200}
		if state == model.RepoFresh {
			rr.RepomdSHA256 = v.SHA256
		} else {
			rr.HTTPStatus, rr.Error = 404, "HTTP 404"
		}
		if err := d.SetRegionRepo(ctx, db.NoFence, rr); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	e.store = NewStore(d, StoreOptions{Policy: selection.Policy{OriginURL: originURL, AlternatesMaxAge: 72 * time.Hour}, LoadFiles: true,
		Debounce: 20 * time.Millisecond, Interval: time.Hour, FilesMinInterval: 50 * time.Millisecond})
	if err := e.store.Refresh(ctx, true); err != nil {
		t.Fatal(err)
	}
	go e.store.Run(ctx)
	e.act = NewActivity(d, ActivityOptions{Interval: 100 * time.Millisecond})
	go e.act.Run(ctx)
	s := New(Options{Store: e.store, Activity: e.act, DownloadPrefix: "/pub", Log: slog.New(slog.DiscardHandler)})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(ctx, l, time.Second) }()
	e.base = "http://" + l.Addr().String()
	return e
}

// objectURL is where a region serves a path, as the server must write it.
func (e *clientEnv) objectURL(region, p string) string {
	key := p
	if pre := e.prefix[region]; pre != "" {
		key = pre + "/" + p
	}
	return e.s3.URL(e.buckets[region], model.EscapePath(key))
}

// curl runs the real curl and returns its output (headers with -D -).
func curl(t *testing.T, args ...string) string {
	t.Helper()
	requireTool(t, "curl", "curl")
	out, err := exec.Command("curl", append([]string{"-sS", "--max-time", "20"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

var statusLineRE = regexp.MustCompile(`^HTTP/1\.1 (\d{3})`)

// headers parses curl -D - output: the status and the header lines (several per name).
func headers(t *testing.T, out string) (int, map[string][]string) {
	t.Helper()
	h := map[string][]string{}
	lines := strings.Split(strings.ReplaceAll(out, "\r\n", "\n"), "\n")
	m := statusLineRE.FindStringSubmatch(lines[0])
	if m == nil {
		t.Fatalf("no status line in:\n%s", out)
	}
	for _, l := range lines[1:] {
		if l == "" {
			break
		}
		k, v, _ := strings.Cut(l, ": ")
		h[strings.ToLower(k)] = append(h[strings.ToLower(k)], v)
	}
	var status int
	fmt.Sscan(m[1], &status)
	return status, h
}

func TestCurlDownloads(t *testing.T) {
	e := newClientEnv(t, "https://dl.example.org/pub")
	sum := sha256.Sum256(e.content[cPlus])
	b64 := base64.StdEncoding.EncodeToString(sum[:])
	u := e.base + "/pub/" + model.EscapePath(cPlus)

	// GET: the redirect with every header.
	out := curl(t, "-D", "-", "-o", "/dev/null", u+"?location=eu-central-1")
	t.Logf("curl -D - %s?location=eu-central-1:\n%s", u, out)
	status, h := headers(t, out)
	if status != 302 {
		t.Fatalf("status %d", status)
	}
	want := map[string][]string{
		"location": {e.objectURL("eu-central-1", cPlus)},
		"link": {
			"<" + u + `.meta4>; rel=describedby; type="application/metalink4+xml"`,
			"<" + e.objectURL("eu-central-1", cPlus) + ">; rel=duplicate; pri=1; geo=de",
			"<" + e.objectURL("us-east-1", cPlus) + ">; rel=duplicate; pri=2; geo=us",
			"<" + e.objectURL("ap-southeast-2", cPlus) + ">; rel=duplicate; pri=3; geo=au",
			"<https://dl.example.org/pub/" + model.EscapePath(cPlus) + ">; rel=duplicate; pri=4",
		},
		"repr-digest":    {"sha-256=:" + b64 + ":"},
		"digest":         {"SHA-256=" + b64},
		"cache-control":  {"private, no-store"},
		"vary":           {"Accept"},
		"content-length": {"0"},
	}
	for k, v := range want {
		if strings.Join(h[k], "\n") != strings.Join(v, "\n") {
			t.Errorf("%s:\n got %q\nwant %q", k, h[k], v)
		}
	}
	if !strings.Contains(e.objectURL("eu-central-1", cPlus), "libc%2B%2B%20compat") {
		t.Errorf("+ and space not encoded: %s", e.objectURL("eu-central-1", cPlus))
	}
	// HEAD: the same.
	status, h2 := headers(t, curl(t, "-I", u+"?location=eu-central-1"))
	if status != 302 || h2["location"][0] != want["location"][0] || len(h2["link"]) != 5 || h2["repr-digest"][0] != want["repr-digest"][0] {
		t.Errorf("HEAD: %d %v", status, h2)
	}
	// Following the redirect downloads the exact bytes from versitygw, for every name.
	for _, p := range []string{cPlus, cUnicode, cPlain, cOnlyUS} {
		for _, loc := range []string{"us-east-1", "eu-central-1", "ap-southeast-2"} {
			dst := filepath.Join(t.TempDir(), "f")
			curl(t, "-fL", "-o", dst, e.base+"/pub/"+model.EscapePath(p)+"?location="+loc)
			if got, _ := os.ReadFile(dst); !bytes.Equal(got, e.content[p]) {
				t.Errorf("%s via %s: wrong bytes", p, loc)
			}
		}
	}
	// A file only one region holds goes there, whoever asks.
	_, h = headers(t, curl(t, "-D", "-", "-o", "/dev/null", e.base+"/pub/"+cOnlyUS+"?location=ap-southeast-2"))
	if h["location"][0] != e.objectURL("us-east-1", cOnlyUS) {
		t.Errorf("only-us: %v", h["location"])
	}
	// Metalink 4 three ways; browsers get the redirect.
	for _, args := range [][]string{
		{u + "?meta4"}, {u + ".meta4"},
		{"-H", "Accept: */*,application/metalink4+xml,application/metalink+xml", u},
	} {
		out := curl(t, append([]string{"-D", "-"}, args...)...)
		status, h := headers(t, out)
		if status != 200 || h["content-type"][0] != ContentTypeMeta4 || !strings.HasPrefix(h["content-disposition"][0], `attachment; filename="libc++ compat-1.0-1.x86_64.rpm.meta4"`) ||
			!strings.Contains(out, `<hash type="sha-256">`) {
			t.Errorf("meta4 %v:\n%s", args, out)
		}
	}
	status, _ = headers(t, curl(t, "-D", "-", "-o", "/dev/null", "-H", "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", u))
	if status != 302 {
		t.Errorf("browser Accept: %d", status)
	}
	// Errors: unknown files 404; traversal in every spelling 400 or 404, never a redirect.
	for path, codes := range map[string]string{
		"/pub/pkgs/nope.rpm":                        "404",
		"/pub/../etc/passwd":                        "400",
		"/pub/pkgs/../../etc/passwd":                "400",
		"/pub/%2e%2e/etc/passwd":                    "400",
		"/pub/pkgs/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd":  "400",
		"/pub/%252e%252e/etc/passwd":                "400",
		"/pub/%252e%252e%252fetc%252fpasswd":        "400",
		"/pub/pkgs%00/plain-2.0-1.noarch.rpm":       "400",
		"/pub/pkgs%5c..%5c..%5cetc%5cpasswd":        "400",
		"/pub/pkgs\\..\\..\\etc\\passwd":            "400",
		"/pub/%c0%ae%c0%ae/etc/passwd":              "400",
		"/pub//etc/passwd":                          "400",
		"/pub/%zz":                                  "400",
		"/pub/" + strings.Repeat("x", 400) + "/a":   "400",
		"/pub/" + strings.Repeat("ab/", 500) + "c":  "400",
		"/pub/pkgs/plain-2.0-1.noarch.rpm%0d%0aX:1": "400",
	} {
		out := curl(t, "--path-as-is", "-D", "-", "-o", "/dev/null", e.base+path)
		status, h := headers(t, out)
		if fmt.Sprint(status) != codes || len(h["location"]) > 0 {
			t.Errorf("%s: %d (want %s) location %v", path, status, codes, h["location"])
		}
	}
	// Known to the origin, held by no region: the origin (here); without one, see the unit tests.
	if _, err := e.db.ForgetObject(context.Background(), cOnlyUS, e.regions["us-east-1"].ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the forgotten copy to leave the snapshot", func() bool {
		_, h := headers(t, curl(t, "-D", "-", "-o", "/dev/null", e.base+"/pub/"+cOnlyUS))
		return len(h["location"]) == 1 && h["location"][0] == "https://dl.example.org/pub/"+cOnlyUS
	})

	// The counters reach the database in the background.
	waitFor(t, "redirect counts in the database", func() bool {
		counts, err := e.db.RedirectCounts(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var regions, origin int64
		for _, c := range counts {
			if c.Region == "" {
				origin += c.Requests
			} else {
				regions += c.Requests
			}
		}
		return regions >= 14 && origin >= 1
	})
}

// TestAria2Meta4 downloads through our Metalink 4 with aria2c, which checks the sha-256 and
// falls back to the next region when the first region's object is gone.
func TestAria2Meta4(t *testing.T) {
	aria := requireTool(t, "aria2c", "aria2")
	e := newClientEnv(t, "")
	run := func(dir, url string) (string, error) {
		cmd := exec.Command(aria, "-d", dir, "--allow-overwrite=true", "--console-log-level=notice", "--summary-interval=0",
			"--max-tries=1", "--retry-wait=0", "--connect-timeout=5", "--timeout=10", url)
		out, err := cmd.CombinedOutput()
		t.Logf("aria2c %s:\n%s", url, out)
		return string(out), err
	}
	check := func(dir, p string) {
		t.Helper()
		name := filepath.Base(p)
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil && strings.Contains(name, "&") {
			// aria2c 1.36 (libxml2 SAX without entity substitution) turns &amp; in the
			// name attribute into the text "&#38;" whatever the spelling (&amp;, &#38;,
			// &#x26;): its bug, the document is right (encoding/xml reads it back exactly,
			// see TestMeta4).
			got, err = os.ReadFile(filepath.Join(dir, strings.ReplaceAll(name, "&", "&#38;")))
		}
		if err != nil {
			t.Fatalf("aria2c saved nothing: %v", err)
		}
		if !bytes.Equal(got, e.content[p]) {
			t.Errorf("%s: wrong bytes", p)
		}
	}
	for _, p := range []string{cPlus, cUnicode} {
		dir := t.TempDir()
		if _, err := run(dir, e.base+"/pub/"+model.EscapePath(p)+".meta4?location=us-east-1"); err != nil {
			t.Fatalf("aria2c: %v", err)
		}
		check(dir, p)
	}
	// The plain file URL: aria2c asks for Metalink 4 in Accept, gets it and follows it.
	dir := t.TempDir()
	if _, err := run(dir, e.base+"/pub/"+model.EscapePath(cPlain)+"?location=eu-central-1"); err != nil {
		t.Fatalf("aria2c: %v", err)
	}
	check(dir, cPlain)

	// The first region loses the object behind the database's back: aria2c gets a 404
	// there and takes the next URL; the sha-256 still matches.
	ctx := context.Background()
	if _, err := e.s3.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.buckets["us-east-1"]),
		Key: aws.String(e.regions["us-east-1"].Key(cPlus))}); err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	out, err := run(dir, e.base+"/pub/"+model.EscapePath(cPlus)+".meta4?location=us-east-1")
	if err != nil {
		t.Fatalf("aria2c did not fall back: %v", err)
	}
	check(dir, cPlus)
	if !strings.Contains(out, "404") && !strings.Contains(strings.ToLower(out), "not found") {
		t.Errorf("aria2c did not report the missing first copy")
	}
	// A corrupted copy fails aria2c's sha-256 check (exit 32): the hash is the one it verifies.
	if _, err := e.s3.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(e.buckets["us-east-1"]),
		Key: aws.String(e.regions["us-east-1"].Key(cPlain)), Body: bytes.NewReader(bytes.Repeat([]byte("x"), len(e.content[cPlain])))}); err != nil {
		t.Fatal(err)
	}
	_, err = run(t.TempDir(), e.base+"/pub/"+model.EscapePath(cPlain)+".meta4?location=us-east-1")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 32 {
		t.Errorf("aria2c with a corrupt first copy: %v, want exit 32", err)
	}
}
