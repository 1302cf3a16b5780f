package scanner

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/config"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/objstore"
	"github.com/regionmirror/regionmirror/internal/testenv"
	"github.com/regionmirror/regionmirror/pusher"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const repoDir = "demo/1/x86_64/os"

type fixture struct {
	t       *testing.T
	db      *db.DB
	dbURL   string
	origin  string
	pusher  *pusher.Pusher
	scanner *Scanner
}

func newFixture(t *testing.T, bulk int) *fixture {
	t.Helper()
	d, dbURL := testenv.NewDB(t)
	origin := testenv.SampleOrigin(t, t.TempDir())
	for i := range bulk {
		dir := filepath.Join(origin, "bulk", fmt.Sprintf("d%02d", i%7))
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%04d.bin", i)), []byte(strings.Repeat("b", 100+i)), 0o644)
	}
	if err := d.CreateRepository(context.Background(), &model.Repository{Name: "demo-1", Arch: "x86_64", Directory: repoDir}); err != nil {
		t.Fatal(err)
	}
	opts := objstore.Options{AccessKey: testenv.S3AccessKey, SecretKey: testenv.S3SecretKey, MaxAttempts: 1, Timeout: 5 * time.Second}
	pcfg := pusher.DefaultConfig()
	pcfg.StoreOptions = opts
	scfg := NewConfig(config.Scan{Concurrency: 4, DownAfter: 3, UpAfter: 2, Timeout: config.Duration(5 * time.Second)})
	scfg.StoreOptions = opts
	log := slog.New(slog.DiscardHandler)
	return &fixture{t: t, db: d, dbURL: dbURL, origin: origin,
		pusher:  &pusher.Pusher{DB: d, Origin: pusher.OSOrigin{Root: origin}, Log: log, Config: pcfg},
		scanner: &Scanner{DB: d, Log: log, Config: scfg}}
}

func (f *fixture) add(r *model.Region) *model.Region {
	f.t.Helper()
	r.Enabled = true
	if err := r.Normalize(); err != nil {
		f.t.Fatal(err)
	}
	if err := f.db.CreateRegion(context.Background(), r); err != nil {
		f.t.Fatal(err)
	}
	return r
}

func (f *fixture) s3Region(name string, srv *testenv.S3Server) *model.Region {
	bucket := srv.NewBucket(f.t, true)
	return f.add(&model.Region{Name: name, Kind: model.KindS3, Bucket: bucket, Endpoint: srv.Endpoint,
		PublicURL: srv.Endpoint + "/" + bucket, Prefix: "pub"})
}

func (f *fixture) push(regions ...*model.Region) {
	f.t.Helper()
	res, err := f.pusher.Push(context.Background(), regions)
	if err != nil || res.Failed() {
		f.t.Fatalf("push: %v %+v", err, res.Regions[0])
	}
}

func (f *fixture) scan(regions ...*model.Region) []*RegionReport {
	f.t.Helper()
	reps, err := f.scanner.Scan(context.Background(), regions)
	if err != nil {
		f.t.Fatal(err)
	}
	return reps
}

func (f *fixture) objectState(r *model.Region, path string) string {
	f.t.Helper()
	objs, _ := f.db.RegionObjects(context.Background(), r.ID)
	for _, o := range objs {
		if o.Path == path {
			return o.State
		}
	}
	return "none"
}

func (f *fixture) repoState(r *model.Region) string {
	states, _ := f.db.RegionRepos(context.Background())
	for _, s := range states {
		if s.RegionID == r.ID {
			return s.State
		}
	}
	return "none"
}

func TestScanFindsMissingCorruptAndExtra(t *testing.T) {
	f := newFixture(t, 150)
	srv := testenv.SharedS3(t)
	a := f.s3Region("eu-central-1", srv)
	f.push(a)
	rep := f.scan(a)[0]
	files := 9 + 150
	if rep.Status != model.RunOK || rep.Verified != files || rep.Missing+rep.Corrupt+rep.Extra != 0 || rep.Listed != files+1 || rep.Health != model.HealthUp {
		t.Fatalf("clean scan: %+v", rep) // +1: the libc++ package's twin with spaces
	}

	ctx := context.Background()
	c := srv.Client()
	gone := repoDir + "/Packages/hello-1.0-1.noarch.rpm"
	changed := "bulk/d03/f0010.bin"
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &a.Bucket, Key: aws.String("pub/" + gone)}); err != nil {
		t.Fatal(err)
	}
	// Same size, other bytes: only the checksum can tell.
	other := bytes.Repeat([]byte("X"), 110)
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &a.Bucket, Key: aws.String("pub/" + changed), Body: bytes.NewReader(other)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &a.Bucket, Key: aws.String("pub/stray/file.txt"), Body: strings.NewReader("?")}); err != nil {
		t.Fatal(err)
	}
	rep = f.scan(a)[0]
	if rep.Missing != 1 || rep.Corrupt != 1 || rep.Extra != 1 || rep.Extras[0] != "stray/file.txt" {
		t.Fatalf("scan after tampering: %+v", rep)
	}
	if s := f.objectState(a, gone); s != model.ObjectMissing {
		t.Errorf("deleted object: state %s", s)
	}
	if s := f.objectState(a, changed); s != model.ObjectCorrupt {
		t.Errorf("overwritten object: state %s", s)
	}
	// The region serves metadata naming a file it lacks: not fresh any more.
	if s := f.repoState(a); s != model.RepoStale {
		t.Errorf("repository with a missing package: %s", s)
	}

	// The next push repairs exactly those two, and the scan agrees.
	res, err := f.pusher.Push(ctx, []*model.Region{a})
	if err != nil || res.Regions[0].Uploaded != 2 {
		t.Fatalf("repair push: %+v %v", res.Regions[0], err)
	}
	rep = f.scan(a)[0]
	if rep.Verified != files || rep.Missing+rep.Corrupt != 0 || f.repoState(a) != model.RepoFresh {
		t.Fatalf("scan after repair: %+v, repo %s", rep, f.repoState(a))
	}
}

func TestPurgeThenPushRewrites(t *testing.T) {
	f := newFixture(t, 0)
	a := f.s3Region("us-east-2", testenv.SharedS3(t))
	f.push(a)
	p := repoDir + "/Packages/greet-2.1-1.noarch.rpm"
	n, err := f.db.ForgetObject(context.Background(), p, a.ID)
	if err != nil || n != 1 {
		t.Fatalf("forget: %d %v", n, err)
	}
	res, err := f.pusher.Push(context.Background(), []*model.Region{a})
	if err != nil || res.Regions[0].Uploaded != 1 || f.objectState(a, p) != model.ObjectPresent {
		t.Fatalf("push after purge: %+v %v", res.Regions[0], err)
	}
	// An object the push wrote but never recorded (it was killed) is adopted by a scan.
	if _, err := f.db.ForgetObject(context.Background(), p, a.ID); err != nil {
		t.Fatal(err)
	}
	if rep := f.scan(a)[0]; rep.Adopted != 1 || f.objectState(a, p) != model.ObjectPresent {
		t.Errorf("scan of an unrecorded object: %+v", rep)
	}
}

func TestPublicReadRemovedMakesRegionUnhealthy(t *testing.T) {
	f := newFixture(t, 0)
	ctx := context.Background()
	srv := testenv.SharedS3(t)
	a := f.s3Region("ap-northeast-1", srv)
	f.push(a)
	if rep := f.scan(a)[0]; rep.Health != model.HealthUp {
		t.Fatalf("first scan: %+v", rep)
	}
	c := srv.Client()
	if _, err := c.DeleteBucketPolicy(ctx, &s3.DeleteBucketPolicyInput{Bucket: &a.Bucket}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{model.HealthUp, model.HealthUp, model.HealthDown} {
		rep := f.scan(a)[0]
		if len(rep.Repos) != 1 || rep.Repos[0].State != model.RepoUnreachable || rep.Repos[0].HTTPStatus != http.StatusForbidden {
			t.Fatalf("scan %d without public read: %+v", i, rep.Repos)
		}
		if rep.Health != want || rep.Status != model.RunFailed {
			t.Fatalf("scan %d: health %s status %s, want %s failed", i, rep.Health, rep.Status, want)
		}
	}
	if _, err := c.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &a.Bucket, Policy: aws.String(testenv.PublicReadPolicy(a.Bucket))}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{model.HealthDown, model.HealthUp} {
		rep := f.scan(a)[0]
		if rep.Health != want || rep.Repos[0].State != model.RepoFresh {
			t.Fatalf("scan %d after restoring: health %s repos %+v, want %s", i, rep.Health, rep.Repos, want)
		}
	}
}

func TestScanFaultsNameTheRegionAndSpareOthers(t *testing.T) {
	f := newFixture(t, 0)
	srv := testenv.SharedS3(t)
	good := f.s3Region("eu-west-3", srv)
	f.push(good)
	noBucket := f.add(&model.Region{Name: "eu-west-9", Kind: model.KindS3, Bucket: "no-such-bucket-here", Endpoint: srv.Endpoint,
		PublicURL: srv.Endpoint + "/no-such-bucket-here"})
	deadEndpoint := f.add(&model.Region{Name: "eu-south-9", Kind: model.KindS3, Bucket: "whatever", Endpoint: "http://127.0.0.1:1",
		PublicURL: "http://127.0.0.1:1/whatever"})
	reps := f.scan(good, noBucket, deadEndpoint)
	if reps[0].Status != model.RunOK {
		t.Errorf("good region: %+v", reps[0])
	}
	for _, rep := range reps[1:] {
		if rep.Status != model.RunFailed || !strings.Contains(rep.Error, "scan "+rep.Region) {
			t.Errorf("%s: %+v", rep.Region, rep)
		}
		t.Logf("%s: %s", rep.Region, rep.Error)
	}
	if !strings.Contains(reps[1].Error, "NoSuchBucket") {
		t.Errorf("missing bucket error: %s", reps[1].Error)
	}
	runs, _ := f.db.RecentRuns(context.Background(), model.RunScan, 10)
	if len(runs) != 3 {
		t.Errorf("%d scan runs recorded, want 3", len(runs))
	}
}

func TestDeepScanOfFileRegion(t *testing.T) {
	f := newFixture(t, 0)
	dir := t.TempDir()
	hs := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer hs.Close()
	a := f.add(&model.Region{Name: "local", Kind: model.KindFile, Dir: dir, PublicURL: hs.URL})
	f.push(a)
	p := repoDir + "/Packages/greet-2.1-1.noarch.rpm"
	st, _ := os.Stat(filepath.Join(dir, p))
	os.WriteFile(filepath.Join(dir, p), bytes.Repeat([]byte{0}, int(st.Size())), 0o644)
	// A directory keeps no checksums: without --deep, nothing is claimed either way.
	rep := f.scan(a)[0]
	if rep.Corrupt != 0 || rep.Unsure == 0 || f.objectState(a, p) != model.ObjectPresent {
		t.Fatalf("shallow scan: %+v", rep)
	}
	f.scanner.Config.Deep = true
	rep = f.scan(a)[0]
	if rep.Corrupt != 1 || f.objectState(a, p) != model.ObjectCorrupt {
		t.Fatalf("deep scan: %+v", rep)
	}
}

func TestSplitPointsCoverEveryKey(t *testing.T) {
	var files []*model.File
	for i := range 100 {
		files = append(files, &model.File{Path: fmt.Sprintf("k%03d", i)})
	}
	points := splitPoints(files, 4)
	if len(points) != 3 || points[0] != "k025" || points[2] != "k075" {
		t.Errorf("points %q", points)
	}
	if splitPoints(files[:5], 4) != nil {
		t.Error("few files must not be split")
	}
}

func TestOneScanPerRegion(t *testing.T) {
	f := newFixture(t, 0)
	a := f.s3Region("eu-north-1", testenv.SharedS3(t))
	f.push(a)
	lock, err := f.db.TryLock(context.Background(), "scan/"+a.Name)
	if err != nil {
		t.Fatal(err)
	}
	rep := f.scan(a)[0]
	lock.Release()
	if rep.Status != model.RunBusy || !strings.Contains(rep.Error, "is locked by") {
		t.Fatalf("scan beside another: %+v", rep)
	}
	if runs, _ := f.db.RecentRuns(context.Background(), model.RunScan, 5); len(runs) != 0 {
		t.Errorf("a scan that did nothing recorded a run: %+v", runs)
	}
}

// TestDeadRegionLeavesAtFirstScan: when a region's S3 server dies, the first scan records
// its repository unreachable (which takes it out of the metalinks at once), not only its
// failed listing; health goes down only after scan.down_after scans.
func TestDeadRegionLeavesAtFirstScan(t *testing.T) {
	f := newFixture(t, 0)
	srv, err := testenv.StartS3(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	r := f.s3Region("ap-east-1", srv)
	f.push(r)
	if s := f.repoState(r); s != model.RepoFresh {
		t.Fatalf("after the push: %s", s)
	}
	srv.Kill()
	rep := f.scan(r)[0]
	if rep.Status != model.RunFailed || rep.Health == model.HealthDown {
		t.Errorf("first scan of a dead region: %+v", rep)
	}
	if s := f.repoState(r); s != model.RepoUnreachable {
		t.Errorf("repository state after the first scan of a dead region: %s, want %s", s, model.RepoUnreachable)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if rep := f.scan(r)[0]; rep.Status != model.RunOK || f.repoState(r) != model.RepoFresh {
		t.Errorf("scan after the restart: %+v, repository %s", rep, f.repoState(r))
	}
}

// TestNewFilesNotYetPushedLeaveTheRepositoryServable: between the inventory of new files
// and their push (or after a killed push), the region still serves its older metadata,
// which does not name them; a scan then must not mark the repository stale.
func TestNewFilesNotYetPushedLeaveTheRepositoryServable(t *testing.T) {
	f := newFixture(t, 0)
	a := f.s3Region("eu-south-2", testenv.SharedS3(t))
	f.push(a)
	os.WriteFile(filepath.Join(f.origin, repoDir, "Packages", "new-1.0-1.noarch.rpm"), []byte("new package"), 0o644)
	if _, err := pusher.TakeInventory(context.Background(), f.db, pusher.OSOrigin{Root: f.origin}, 2, false, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	rep := f.scan(a)[0]
	if rep.Missing != 0 || f.repoState(a) != model.RepoFresh {
		t.Fatalf("scan before the new file was pushed: %+v, repository %s", rep, f.repoState(a))
	}
}
