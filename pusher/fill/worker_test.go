package fill

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/objstore"
	"github.com/regionmirror/regionmirror/internal/testenv"
	"github.com/regionmirror/regionmirror/pusher"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperMain())
	}
	testenv.Main(m)
}

const (
	repoDir = "demo/1/x86_64/os"
	hello   = repoDir + "/Packages/hello-1.0-1.noarch.rpm"
	plusRPM = repoDir + "/Packages/libc++-compat-1.0-1.noarch.rpm"
	bigFile = "demo/1/iso/big.iso"
)

var storeOptions = objstore.Options{AccessKey: testenv.S3AccessKey, SecretKey: testenv.S3SecretKey}

// fixture: a migrated database, the sample origin plus a 12MiB file, its inventory, and
// versitygw.
type fixture struct {
	t      *testing.T
	db     *db.DB
	url    string
	origin string
	srv    *testenv.S3Server
}

func newFixture(t *testing.T, bigSize int) *fixture {
	t.Helper()
	d, url := testenv.NewDB(t)
	origin := testenv.SampleOrigin(t, t.TempDir())
	if bigSize > 0 {
		big := make([]byte, bigSize)
		if _, err := rand.Read(big); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(origin, bigFile), big, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	if err := d.CreateRepository(ctx, &model.Repository{Name: "demo-1", Arch: "x86_64", Directory: repoDir}); err != nil {
		t.Fatal(err)
	}
	if _, err := pusher.TakeInventory(ctx, d, pusher.OSOrigin{Root: origin}, 2, false, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, db: d, url: url, origin: origin, srv: testenv.SharedS3(t)}
}

// s3Region adds a region in a fresh public bucket of versitygw.
func (f *fixture) s3Region(name, fill string) *model.Region {
	f.t.Helper()
	bucket := f.srv.NewBucket(f.t, true)
	r := &model.Region{Name: name, Kind: model.KindS3, Bucket: bucket, Endpoint: f.srv.Endpoint, S3Region: testenv.S3Region,
		PublicURL: f.srv.Endpoint + "/" + bucket, Prefix: "pub", Country: "DE", Enabled: true, Fill: fill}
	f.add(r)
	return r
}

func (f *fixture) add(r *model.Region) {
	f.t.Helper()
	if err := r.Normalize(); err != nil {
		f.t.Fatal(err)
	}
	if err := f.db.CreateRegion(context.Background(), r); err != nil {
		f.t.Fatal(err)
	}
}

// push pushes the origin into a push region, so that it holds every file verified.
func (f *fixture) push(r *model.Region) {
	f.t.Helper()
	cfg := pusher.DefaultConfig()
	cfg.StoreOptions = storeOptions
	p := &pusher.Pusher{DB: f.db, Origin: pusher.OSOrigin{Root: f.origin}, Log: slog.New(slog.DiscardHandler), Config: cfg}
	res, err := p.Push(context.Background(), []*model.Region{r})
	if err != nil || res.Failed() {
		f.t.Fatalf("push: %v %+v", err, res)
	}
}

func (f *fixture) queue(r *model.Region, paths ...string) {
	f.t.Helper()
	var misses []model.FillMiss
	for _, p := range paths {
		misses = append(misses, model.FillMiss{RegionID: r.ID, Path: p})
	}
	n, err := f.db.QueueFills(context.Background(), misses)
	if err != nil || n != len(paths) {
		f.t.Fatalf("queue %v: %d queued, %v", paths, n, err)
	}
}

func testConfig() Config {
	return Config{Workers: 2, Lease: 2e9, MaxAttempts: 3, RetryBackoff: 1e6, PollInterval: 1e8,
		MultipartCopyThreshold: 5 << 20, CopyPartSize: 5 << 20, UploadThreshold: 5 << 20, UploadPartSize: 5 << 20, StoreOptions: storeOptions}
}

func (f *fixture) worker(cfg Config) *Worker {
	return &Worker{DB: f.db, Config: cfg, OriginRoot: f.origin, Log: slog.New(slog.DiscardHandler)}
}

func (f *fixture) runOnce(w *Worker) Summary {
	f.t.Helper()
	s, err := w.Run(context.Background(), true)
	if err != nil {
		f.t.Fatalf("fill run: %v", err)
	}
	return s
}

// object returns a region's record of a path (nil: none).
func (f *fixture) object(r *model.Region, p string) *model.RegionObject {
	f.t.Helper()
	file, err := f.db.GetFile(context.Background(), p)
	if err != nil {
		f.t.Fatal(err)
	}
	objs, err := f.db.ObjectsOfFile(context.Background(), file.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	for i := range objs {
		if objs[i].RegionID == r.ID {
			return &objs[i]
		}
	}
	return nil
}

// get reads a key of a region anonymously, as a redirected client does.
func get(t *testing.T, r *model.Region, key string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(r.URL(key))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (f *fixture) checkCopied(r *model.Region, paths ...string) {
	f.t.Helper()
	for _, p := range paths {
		file, err := f.db.GetFile(context.Background(), p)
		if err != nil {
			f.t.Fatal(err)
		}
		if o := f.object(r, p); !o.Holds(file) {
			f.t.Errorf("%s: %s recorded as %+v, want present with the inventory's hash", r.Name, p, o)
		}
		want, _ := os.ReadFile(filepath.Join(f.origin, p))
		for _, key := range []string{p, model.SpaceTwin(p)} {
			if key == "" {
				continue
			}
			if code, got := get(f.t, r, key); code != 200 || !bytes.Equal(got, want) {
				f.t.Errorf("%s: GET %s: %d, %d bytes (want %d)", r.Name, key, code, len(got), len(want))
			}
		}
	}
}

func (f *fixture) jobs(r *model.Region) []model.FillJob {
	f.t.Helper()
	jobs, err := f.db.FillJobs(context.Background(), r.ID, 0, 100)
	if err != nil {
		f.t.Fatal(err)
	}
	return jobs
}

// TestFillServerSide: files a push region of the same versitygw holds are copied bucket
// to bucket, the 12MiB one in 5MiB parts, verified, recorded, with the "+" twin.
func TestFillServerSide(t *testing.T) {
	f := newFixture(t, 12<<20)
	src := f.s3Region("src", model.FillPush)
	f.push(src)
	dst := f.s3Region("dst", model.FillOnDemand)
	f.queue(dst, hello, plusRPM, bigFile)
	s := f.runOnce(f.worker(testConfig()))
	if s.Copied != 3 || s.ServerSide != 3 || s.FromOrigin != 0 || s.Failed != 0 {
		t.Fatalf("summary %+v, want 3 server-side copies", s)
	}
	f.checkCopied(dst, hello, plusRPM, bigFile)
	info, err := f.store(dst).Head(context.Background(), bigFile)
	if err != nil || !strings.HasSuffix(info.ETag, "-3") {
		t.Fatalf("big file: %+v %v, want a 3-part multipart copy", info, err)
	}
	if n := f.uploads(dst); n != 0 {
		t.Errorf("%d incomplete uploads", n)
	}
	if j := f.jobs(dst); len(j) != 0 {
		t.Errorf("jobs left: %+v", j)
	}
	runs, err := f.db.RecentRuns(context.Background(), model.RunFill, 5)
	if err != nil || len(runs) != 1 || runs[0].Status != model.RunOK || runs[0].Counts["copied"] != 3 || runs[0].Files != 3 {
		t.Fatalf("fill runs %+v %v", runs, err)
	}
}

func (f *fixture) store(r *model.Region) objstore.Store {
	f.t.Helper()
	s, err := objstore.Open(context.Background(), r, storeOptions)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func (f *fixture) uploads(r *model.Region) int {
	f.t.Helper()
	out, err := f.srv.Client().ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(r.Bucket)})
	if err != nil {
		f.t.Fatal(err)
	}
	return len(out.Uploads)
}

// TestFillFromOrigin: with no region of the same service holding the file (the only
// holder is a file region), the copy comes from the origin, into an S3 and a file region,
// in one PUT and in parts.
func TestFillFromOrigin(t *testing.T) {
	f := newFixture(t, 12<<20)
	holder := &model.Region{Name: "holder", Kind: model.KindFile, Dir: t.TempDir(), PublicURL: "http://127.0.0.1:1", Enabled: true}
	f.add(holder)
	f.push(holder)
	dst := f.s3Region("dst", model.FillOnDemand)
	dir := t.TempDir()
	fileDst := &model.Region{Name: "filedst", Kind: model.KindFile, Dir: dir, PublicURL: "http://127.0.0.1:1", Enabled: true, Fill: model.FillOnDemand}
	f.add(fileDst)
	f.queue(dst, hello, plusRPM, bigFile)
	f.queue(fileDst, hello)
	s := f.runOnce(f.worker(testConfig()))
	if s.Copied != 4 || s.FromOrigin != 4 || s.ServerSide != 0 {
		t.Fatalf("summary %+v, want 4 copies from the origin", s)
	}
	f.checkCopied(dst, hello, plusRPM, bigFile)
	if n := f.uploads(dst); n != 0 {
		t.Errorf("%d incomplete uploads", n)
	}
	got, err := os.ReadFile(filepath.Join(dir, hello))
	want, _ := os.ReadFile(filepath.Join(f.origin, hello))
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("file region copy: %v", err)
	}
	if o := f.object(fileDst, hello); o == nil || o.State != model.ObjectPresent {
		t.Errorf("file region record %+v", o)
	}
}

// TestFillRefusesChangedOrigin: origin bytes that no longer hash to the inventory's
// SHA-256 (same size, so only the hash tells) are refused, in one PUT and in parts;
// nothing is recorded and no object appears; the error stays in fill_jobs.error.
func TestFillRefusesChangedOrigin(t *testing.T) {
	f := newFixture(t, 12<<20)
	dst := f.s3Region("dst", model.FillOnDemand)
	for _, p := range []string{hello, bigFile} {
		b, err := os.ReadFile(filepath.Join(f.origin, p))
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)-1] ^= 0xff
		if err := os.WriteFile(filepath.Join(f.origin, p), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f.queue(dst, hello, bigFile)
	cfg := testConfig()
	cfg.MaxAttempts = 1
	s := f.runOnce(f.worker(cfg))
	if s.Copied != 0 || s.Failed != 2 {
		t.Fatalf("summary %+v, want 2 failures", s)
	}
	for _, p := range []string{hello, bigFile} {
		if o := f.object(dst, p); o != nil {
			t.Errorf("%s recorded: %+v", p, o)
		}
		if _, err := f.store(dst).Head(context.Background(), p); err == nil {
			t.Errorf("%s: an object was written", p)
		}
	}
	if n := f.uploads(dst); n != 0 {
		t.Errorf("%d incomplete uploads", n)
	}
	jobs := f.jobs(dst)
	if len(jobs) != 2 {
		t.Fatalf("jobs %+v", jobs)
	}
	for _, j := range jobs {
		if j.State != model.FillFailed || !strings.Contains(j.Error, "checksum") {
			t.Errorf("job %s: state %s, error %q; want failed with a checksum error", j.Path, j.State, j.Error)
		}
	}
}

// TestFillRetriesThenFails: a destination bucket deleted under the region fails every
// attempt; the job is retried until fill.max_attempts and then failed, the error kept in
// fill_jobs.error, and the runs row (shown on the dashboard) carries no error text.
func TestFillRetriesThenFails(t *testing.T) {
	f := newFixture(t, 0)
	dst := f.s3Region("dst", model.FillOnDemand)
	if _, err := f.srv.Client().DeleteBucket(context.Background(), &s3.DeleteBucketInput{Bucket: aws.String(dst.Bucket)}); err != nil {
		t.Fatal(err)
	}
	f.queue(dst, hello)
	cfg := testConfig()
	cfg.Workers = 1
	var failed int64
	for range 50 {
		failed += f.runOnce(f.worker(cfg)).Failed
		if j := f.jobs(dst); len(j) == 1 && j[0].State == model.FillFailed {
			break
		}
	}
	jobs := f.jobs(dst)
	if len(jobs) != 1 || jobs[0].State != model.FillFailed || jobs[0].Attempts != cfg.MaxAttempts || failed != int64(cfg.MaxAttempts) {
		t.Fatalf("jobs %+v after %d failures; want failed after %d attempts", jobs, failed, cfg.MaxAttempts)
	}
	if !strings.Contains(jobs[0].Error, "NoSuchBucket") {
		t.Errorf("error %q, want the S3 error", jobs[0].Error)
	}
	if o := f.object(dst, hello); o != nil {
		t.Errorf("recorded %+v", o)
	}
	runs, err := f.db.RecentRuns(context.Background(), model.RunFill, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		if r.Error != "" {
			t.Errorf("run %d carries an error: %q", r.ID, r.Error)
		}
	}
	// A failed job is given up: further runs do not touch it.
	if s := f.runOnce(f.worker(cfg)); s.Failed != 0 {
		t.Errorf("a failed job was tried again: %+v", s)
	}
}

// writeCounter sits before versitygw and counts the requests that write one key of one
// bucket: PutObject and CopyObject (a PUT without partNumber) and CompleteMultipartUpload
// (a POST with uploadId). It only counts; every request goes on unchanged.
type writeCounter struct {
	url    string
	path   string
	writes atomic.Int64
}

func countWrites(t *testing.T, endpoint, bucket, key string) *writeCounter {
	target, _ := url.Parse(endpoint)
	rp := httputil.NewSingleHostReverseProxy(target) // keeps the Host header SigV4 signed
	c := &writeCounter{path: "/" + bucket + "/" + key}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path == c.path && ((r.Method == http.MethodPut && !q.Has("partNumber")) || (r.Method == http.MethodPost && q.Has("uploadId"))) {
			c.writes.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c.url = srv.URL
	return c
}

func (c *writeCounter) openStore(ctx context.Context, r *model.Region) (objstore.Store, error) {
	counted := *r
	counted.Endpoint = c.url
	return objstore.Open(ctx, &counted, storeOptions)
}

// TestFillConcurrentMisses: 200 misses of one file queued concurrently while two workers
// (two goroutines each) run make exactly one copy: the bucket receives one write of the
// key (counted by a proxy before versitygw), one job is ever queued, and the misses after
// the copy queue nothing.
func TestFillConcurrentMisses(t *testing.T) {
	f := newFixture(t, 0)
	src := f.s3Region("src", model.FillPush)
	f.push(src)
	dst := f.s3Region("dst", model.FillOnDemand)
	counter := countWrites(t, f.srv.Endpoint, dst.Bucket, "pub/"+hello)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var workers sync.WaitGroup
	var total Summary
	var mu sync.Mutex
	for i := range 2 {
		w := f.worker(testConfig())
		w.ID, w.OpenStore = fmt.Sprintf("w%d", i), counter.openStore
		workers.Go(func() {
			s, err := w.Run(ctx, false)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			total.Copied += s.Copied
			total.Lost += s.Lost
			total.Failed += s.Failed
			mu.Unlock()
		})
	}
	var misses sync.WaitGroup
	var queued atomic.Int64
	for i := range 200 {
		misses.Go(func() {
			time.Sleep(time.Duration(i%50) * 4 * time.Millisecond) // spread over the copy
			n, err := f.db.QueueFills(context.Background(), []model.FillMiss{{RegionID: dst.ID, Path: hello}})
			if err != nil {
				t.Error(err)
			}
			queued.Add(int64(n))
		})
	}
	misses.Wait()
	file, err := f.db.GetFile(context.Background(), hello)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); !f.object(dst, hello).Holds(file) || len(f.jobs(dst)) != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("no copy recorded: %+v, jobs %+v", f.object(dst, hello), f.jobs(dst))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Misses after the copy queue nothing.
	if n, err := f.db.QueueFills(context.Background(), []model.FillMiss{{RegionID: dst.ID, Path: hello}}); err != nil || n != 0 {
		t.Fatalf("miss after the copy queued %d: %v", n, err)
	}
	time.Sleep(300 * time.Millisecond) // a second copy would come from a second job: give it a poll interval
	stop()
	workers.Wait()
	if w := counter.writes.Load(); w != 1 || queued.Load() != 1 {
		t.Fatalf("200 concurrent misses: %d writes of the key to the bucket, %d jobs queued; want exactly 1 of each", w, queued.Load())
	}
	if total.Copied != 1 || total.Lost != 0 || total.Failed != 0 {
		t.Fatalf("workers: %+v, want exactly 1 copy", total)
	}
	f.checkCopied(dst, hello)
}

// TestFillTwinNeverOverwritesRealFile: the "+" twin of a copy is not written when the
// origin has a file at the twin's key: the real file copied before stays as it is.
func TestFillTwinNeverOverwritesRealFile(t *testing.T) {
	d, _ := testenv.NewDB(t)
	origin := testenv.SampleOrigin(t, t.TempDir())
	plus, space := "demo/1/iso/x+y.iso", "demo/1/iso/x y.iso"
	for p, body := range map[string]string{plus: "the plus file", space: "the real file with a space"} {
		if err := os.WriteFile(filepath.Join(origin, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pusher.TakeInventory(context.Background(), d, pusher.OSOrigin{Root: origin}, 2, false, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, db: d, origin: origin, srv: testenv.SharedS3(t)}
	dst := f.s3Region("dst", model.FillOnDemand)
	f.queue(dst, space)
	if s := f.runOnce(f.worker(testConfig())); s.Copied != 1 {
		t.Fatalf("summary %+v", s)
	}
	f.queue(dst, plus)
	if s := f.runOnce(f.worker(testConfig())); s.Copied != 1 {
		t.Fatalf("summary %+v", s)
	}
	if code, got := get(t, dst, space); code != 200 || string(got) != "the real file with a space" {
		t.Fatalf("GET %q: %d %q: the twin overwrote the real file", space, code, got)
	}
	if code, got := get(t, dst, plus); code != 200 || string(got) != "the plus file" {
		t.Fatalf("GET %q: %d %q", plus, code, got)
	}
}

// TestFillSourceNotAsRecorded: the source region's object no longer holds the recorded
// bytes (changed behind the database's back): the worker does not copy it, and copies
// from the origin instead.
func TestFillSourceNotAsRecorded(t *testing.T) {
	f := newFixture(t, 0)
	src := f.s3Region("src", model.FillPush)
	f.push(src)
	wrong := []byte("not the package")
	if err := f.store(src).Put(context.Background(), hello, bytes.NewReader(wrong), int64(len(wrong)),
		objstore.PutOptions{SHA256: sha(wrong)}); err != nil {
		t.Fatal(err)
	}
	dst := f.s3Region("dst", model.FillOnDemand)
	f.queue(dst, hello)
	if s := f.runOnce(f.worker(testConfig())); s.Copied != 1 || s.FromOrigin != 1 {
		t.Fatalf("summary %+v, want one copy from the origin", s)
	}
	f.checkCopied(dst, hello)
}

func sha(b []byte) []byte { s := sha256.Sum256(b); return s[:] }
