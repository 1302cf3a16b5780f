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
	target, _ := url.Parse(os.Getenv("REGIONMIRROR_FILL_HELPER_S3"))
	rp := httputil.NewSingleHostReverseProxy(target) // keeps the Host header SigV4 signed
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("partNumber") {
			time.Sleep(400 * time.Millisecond)
		}
		rp.ServeHTTP(w, r)
	}))
	cfg := testConfig()
	cfg.Workers = 1
	w := &Worker{DB: d, Config: cfg, OriginRoot: os.Getenv("REGIONMIRROR_FILL_HELPER_ORIGIN"),
		Log: slog.New(slog.NewTextHandler(os.Stderr, nil)), ID: "doomed",
		OpenStore: func(ctx context.Context, r *model.Region) (objstore.Store, error) {
			slow := *r
			slow.Endpoint = proxy.URL
			return objstore.Open(ctx, &slow, storeOptions)
		}}
	if _, err := w.Run(ctx, false); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
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
