package fill

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/objstore"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

const helperEnv = "REGIONMIRROR_FILL_HELPER"

// helperMain is the worker process the takeover test kills: a Worker whose S3 requests go
// through a proxy that slows every part copy down (the one fault injected: versitygw
// copies a part too fast for a kill to land mid-copy), so the test can SIGKILL it while
// its multipart copy is under way.
func helperMain() int {
	ctx := context.Background()
	d, err := db.Open(ctx, os.Getenv(helperEnv), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	proxy := slowPartsProxy(os.Getenv("REGIONMIRROR_FILL_HELPER_S3"))
	cfg := testConfig()
	cfg.Workers = 1
	w := &Worker{DB: d, Config: cfg, OriginRoot: os.Getenv("REGIONMIRROR_FILL_HELPER_ORIGIN"),
		Log: slog.New(slog.NewTextHandler(os.Stderr, nil)), ID: "doomed", OpenStore: proxy.openStore}
	if _, err := w.Run(ctx, false); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// partsProxy sits before versitygw and slows every part request down (the one fault
// injected: versitygw copies a 5MiB part too fast for a kill or a cancel to land mid-copy).
type partsProxy struct{ url string }

func slowPartsProxy(endpoint string) *partsProxy {
	target, _ := url.Parse(endpoint)
	rp := httputil.NewSingleHostReverseProxy(target) // keeps the Host header SigV4 signed
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("partNumber") {
			time.Sleep(400 * time.Millisecond)
		}
		rp.ServeHTTP(w, r)
	}))
	return &partsProxy{url: srv.URL}
}

// openStore opens a region's store through the proxy.
func (p *partsProxy) openStore(ctx context.Context, r *model.Region) (objstore.Store, error) {
	slow := *r
	slow.Endpoint = p.url
	return objstore.Open(ctx, &slow, storeOptions)
}

// waitUpload waits for a multipart upload to be under way in r's bucket.
func (f *fixture) waitUpload(r *model.Region) {
	f.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for f.uploads(r) == 0 {
		if time.Now().After(deadline) {
			f.t.Fatal("no multipart copy started")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFillShutdownAbortsCopy: a worker stopped (SIGTERM cancels its context) during a
// multipart copy aborts the upload and gives the job back untried: queued, the attempt
// not counted, nothing recorded.
func TestFillShutdownAbortsCopy(t *testing.T) {
	f := newFixture(t, 30<<20)
	src := f.s3Region("src", model.FillPush)
	f.push(src)
	dst := f.s3Region("dst", model.FillOnDemand)
	f.queue(dst, bigFile)
	w := f.worker(testConfig())
	w.OpenStore = slowPartsProxy(f.srv.Endpoint).openStore
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Summary, 1)
	go func() {
		s, err := w.Run(ctx, false)
		if err != nil {
			t.Error(err)
		}
		done <- s
	}()
	f.waitUpload(dst)
	cancel()
	s := <-done
	if s.Copied != 0 || s.Failed != 0 {
		t.Fatalf("summary %+v", s)
	}
	jobs := f.jobs(dst)
	if len(jobs) != 1 || jobs[0].State != model.FillQueued || jobs[0].Attempts != 0 || jobs[0].Worker != "" {
		t.Fatalf("jobs after shutdown %+v, want one queued, untried", jobs)
	}
	if n := f.uploads(dst); n != 0 {
		t.Errorf("%d incomplete uploads after shutdown", n)
	}
	if o := f.object(dst, bigFile); o != nil {
		t.Errorf("recorded %+v", o)
	}
}

// TestFillLeaseLost: when the job is taken from under a running copy (here a purge marks
// the copy deleting, which removes the job), the next lease extension fails, the copy is
// cancelled and its upload aborted, and nothing is recorded.
func TestFillLeaseLost(t *testing.T) {
	f := newFixture(t, 30<<20)
	src := f.s3Region("src", model.FillPush)
	f.push(src)
	dst := f.s3Region("dst", model.FillOnDemand)
	f.queue(dst, bigFile)
	w := f.worker(testConfig())
	w.OpenStore = slowPartsProxy(f.srv.Endpoint).openStore
	done := make(chan Summary, 1)
	go func() {
		s, err := w.Run(context.Background(), true)
		if err != nil {
			t.Error(err)
		}
		done <- s
	}()
	f.waitUpload(dst)
	file, err := f.db.GetFile(context.Background(), bigFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.MarkCopiesDeleting(context.Background(), db.Fence{}, dst.ID, []int64{file.ID}); err != nil {
		t.Fatal(err)
	}
	s := <-done
	if s.Lost != 1 || s.Copied != 0 || s.Failed != 0 {
		t.Fatalf("summary %+v, want the job lost", s)
	}
	if n := f.uploads(dst); n != 0 {
		t.Errorf("%d incomplete uploads after the lost job", n)
	}
	if o := f.object(dst, bigFile); o != nil {
		t.Errorf("recorded %+v", o)
	}
	if _, err := f.store(dst).Head(context.Background(), bigFile); err == nil {
		t.Error("an object was completed")
	}
}

// TestFillTakeover: a worker process SIGKILLed during a multipart copy leaves its job
// running under a lease; another worker takes it over once the lease has passed and
// completes it. No record says present before the copy was complete, and the second
// worker leaves no incomplete upload (the dead one's is gc's to clean).
func TestFillTakeover(t *testing.T) {
	f := newFixture(t, 40<<20)
	src := f.s3Region("src", model.FillPush)
	f.push(src)
	dst := f.s3Region("dst", model.FillOnDemand)
	f.queue(dst, bigFile)

	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+f.url, "REGIONMIRROR_FILL_HELPER_S3="+f.srv.Endpoint,
		"REGIONMIRROR_FILL_HELPER_ORIGIN="+f.origin)
	log := &testenv.Buffer{}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	// Wait for its multipart copy to be under way, then kill it.
	deadline := time.Now().Add(60 * time.Second)
	for f.uploads(dst) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the helper never started its multipart copy; its log:\n%s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // a part or two in
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killed = true
	jobs := f.jobs(dst)
	if len(jobs) != 1 || jobs[0].State != model.FillRunning || jobs[0].Worker != "doomed" {
		t.Fatalf("after the kill: jobs %+v, want one running on the dead worker", jobs)
	}
	if o := f.object(dst, bigFile); o != nil {
		t.Fatalf("recorded before the copy finished: %+v", o)
	}
	if _, err := f.store(dst).Head(context.Background(), bigFile); err == nil {
		t.Fatal("an object is visible before the copy finished")
	}
	deadUploads := f.uploads(dst)

	// Watch the record while the second worker runs: whenever it says present, the
	// object must be whole.
	var sawPresent, badPresent atomic.Bool
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			file, err := f.db.GetFile(context.Background(), bigFile)
			if err != nil {
				continue
			}
			objs, err := f.db.ObjectsOfFile(context.Background(), file.ID)
			if err != nil {
				continue
			}
			for _, o := range objs {
				if o.RegionID == dst.ID && o.State == model.ObjectPresent {
					sawPresent.Store(true)
					if info, err := f.store(dst).Head(context.Background(), bigFile); err != nil || info.Size != file.Size {
						badPresent.Store(true)
					}
				}
			}
		}
	}()
	var s Summary
	w := f.worker(testConfig())
	w.ID = "heir"
	for range 200 {
		got := f.runOnce(w)
		s.Copied += got.Copied
		if s.Copied > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond) // the lease has to pass first
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	<-watched
	if s.Copied != 1 {
		t.Fatalf("the second worker copied %d", s.Copied)
	}
	if badPresent.Load() || !sawPresent.Load() {
		t.Fatalf("present seen %v, while the object was not whole %v", sawPresent.Load(), badPresent.Load())
	}
	f.checkCopied(dst, bigFile)
	if n := f.uploads(dst); n != deadUploads {
		t.Errorf("%d incomplete uploads after the takeover, %d before: the second worker left one", n, deadUploads)
	}
}
