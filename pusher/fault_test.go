package pusher

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

// killAfter stops an S3 server once n files were written anywhere.
type killAfter struct {
	mu   sync.Mutex
	n    int
	kill func()
}

func (k *killAfter) Plan(string, int, int64) {}
func (k *killAfter) Phase(string, int)       {}
func (k *killAfter) Finish(string, error)    {}
func (k *killAfter) Done(string, int, int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.n--; k.n == 0 {
		k.kill()
	}
}

func addBulk(t *testing.T, origin string, n int) {
	t.Helper()
	dir := filepath.Join(origin, repoDir, "Packages", "bulk")
	os.MkdirAll(dir, 0o755)
	buf := make([]byte, 32<<10)
	for i := range n {
		rand.Read(buf)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("bulk-%03d.rpm", i)), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// checkRecordsTrue proves every object recorded present is in the bucket with its bytes.
func checkRecordsTrue(t *testing.T, d *db.DB, r *model.Region, origin string) int {
	t.Helper()
	objs, err := d.RegionObjects(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, o := range objs {
		if o.State != model.ObjectPresent {
			continue
		}
		n++
		resp, err := http.Get(r.URL(o.Path))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want, _ := os.ReadFile(filepath.Join(origin, o.Path))
		if resp.StatusCode != 200 || string(got) != string(want) {
			t.Errorf("%s recorded present but the region serves %s (%d bytes)", o.Path, resp.Status, len(got))
		}
	}
	return n
}

func TestS3DiesMidPush(t *testing.T) {
	f := newFixture(t)
	addBulk(t, f.origin, 80)
	srv, err := testenv.StartS3(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	a := f.s3Region("eu-south-1", srv)
	f.pusher.Config.Concurrency = 2
	f.pusher.Config.StoreOptions.MaxAttempts = 2
	f.pusher.Progress = &killAfter{n: 10, kill: srv.Kill}
	res := f.push(a)
	rr := res.Regions[0]
	if rr.Status != model.RunFailed || !strings.Contains(rr.Error, "push eu-south-1") || rr.Failed == 0 {
		t.Fatalf("push with a dying endpoint: %+v", rr)
	}
	t.Logf("error: %s", rr.Error)
	runs, _ := f.db.RecentRuns(context.Background(), model.RunPush, 1)
	if runs[0].Status != model.RunFailed || runs[0].Error == "" {
		t.Errorf("run: %+v", runs[0])
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if n := checkRecordsTrue(t, f.db, a, f.origin); n == 0 || n >= 86 {
		t.Errorf("%d objects recorded present after the failure", n)
	}
	// Metadata never landed: the packages phase did not finish.
	if resp, _ := http.Get(a.URL(repoDir + "/repodata/repomd.xml")); resp.StatusCode == 200 {
		t.Error("repomd.xml was published although packages failed")
	}
	if s := f.repoState(a); s != "none" {
		t.Errorf("repository state %s after a failed push", s)
	}

	f.pusher.Progress = nil
	res = f.push(a)
	if rr := res.Regions[0]; rr.Status != model.RunOK || f.repoState(a) != model.RepoFresh {
		t.Fatalf("repair push: %+v", rr)
	}
	f.checkRegionHasOrigin(a)
}

// failingOrigin cannot read one file, as a disk error or a permission problem would.
type failingOrigin struct {
	OSOrigin
	bad string
}

func (o failingOrigin) Open(p string) (io.ReadSeekCloser, error) {
	if p == o.bad {
		return nil, errors.New("input/output error")
	}
	return o.OSOrigin.Open(p)
}

func TestUnreadableOriginFileWithholdsMetadata(t *testing.T) {
	f := newFixture(t)
	a := f.s3Region("me-south-1", testenv.SharedS3(t))
	bad := repoDir + "/Packages/greet-2.1-1.noarch.rpm"
	real := f.pusher.Origin
	f.pusher.Origin = failingOrigin{OSOrigin: OSOrigin{Root: f.origin}, bad: bad}
	res := f.push(a)
	rr := res.Regions[0]
	if rr.Status != model.RunFailed || !strings.Contains(rr.Error, bad) || len(res.Inventory.Unread) != 1 {
		t.Fatalf("push with an unreadable file: %+v %+v", rr, res.Inventory.Unread)
	}
	if resp, _ := http.Get(a.URL(repoDir + "/repodata/repomd.xml")); resp.StatusCode == 200 {
		t.Error("repomd.xml published although a package it names could not be read")
	}
	if resp, _ := http.Get(a.URL(repoDir + "/Packages/hello-1.0-1.noarch.rpm")); resp.StatusCode != 200 {
		t.Error("readable files were not pushed")
	}
	f.pusher.Origin = real
	if rr := f.push(a).Regions[0]; rr.Status != model.RunOK || f.repoState(a) != model.RepoFresh {
		t.Fatalf("push after the disk recovered: %+v", rr)
	}
	f.checkRegionHasOrigin(a)
}

func TestBadCredentialsAndLocks(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	srv := testenv.SharedS3(t)
	good := f.s3Region("ca-central-1", srv)
	bucket := srv.NewBucket(t, true)
	bad := &model.Region{Name: "ca-west-1", Kind: model.KindS3, Bucket: bucket, Endpoint: srv.Endpoint,
		PublicURL: srv.Endpoint + "/" + bucket, Credentials: "no-such-profile", Enabled: true}
	f.add(bad)
	// Only the named profile may be used: no static test keys for this region.
	f.pusher.Config.StoreOptions.AccessKey = ""
	t.Setenv("AWS_ACCESS_KEY_ID", testenv.S3AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", testenv.S3SecretKey)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	res := f.push(good, bad)
	if res.Regions[0].Status != model.RunOK {
		t.Errorf("the good region failed: %+v", res.Regions[0])
	}
	if rr := res.Regions[1]; rr.Status != model.RunFailed || !strings.Contains(rr.Error, "no-such-profile") || !strings.Contains(rr.Error, "ca-west-1") {
		t.Errorf("bad profile: %+v", rr)
	}
	if strings.Contains(res.Regions[1].Error, testenv.S3SecretKey) {
		t.Error("the secret appears in an error")
	}

	// A second push of a region waits for nobody: it says who holds the lock and fails.
	lock, err := f.db.TryLock(ctx, "push/"+good.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	res = f.push(good)
	rr := res.Regions[0]
	if rr.Status != model.RunBusy || !res.Failed() || !strings.Contains(rr.Error, "is locked by") {
		t.Errorf("locked region: %+v", rr)
	}
}
