package pusher

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/objstore"
	"github.com/regionmirror/regionmirror/internal/repocheck"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const repoDir = "demo/1/x86_64/os"

// fixture is an origin copied from testdata, a migrated database with the sample
// repository, and regions on versitygw and in directories.
type fixture struct {
	t      *testing.T
	db     *db.DB
	url    string // the database's, for a test's own connection
	origin string
	pusher *Pusher
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	d, url := testenv.NewDB(t)
	origin := testenv.SampleOrigin(t, t.TempDir())
	ctx := context.Background()
	if err := d.CreateRepository(ctx, &model.Repository{Name: "demo-1", Arch: "x86_64", Directory: repoDir}); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, db: d, url: url, origin: origin}
	cfg := DefaultConfig()
	cfg.Concurrency = 4
	cfg.StoreOptions = objstore.Options{AccessKey: testenv.S3AccessKey, SecretKey: testenv.S3SecretKey}
	f.pusher = &Pusher{DB: d, Origin: OSOrigin{Root: origin}, Log: slog.New(slog.DiscardHandler), Config: cfg}
	return f
}

// s3Region adds a region in a fresh public bucket of srv.
func (f *fixture) s3Region(name string, srv *testenv.S3Server) *model.Region {
	f.t.Helper()
	bucket := srv.NewBucket(f.t, true)
	r := &model.Region{Name: name, Kind: model.KindS3, Bucket: bucket, Endpoint: srv.Endpoint,
		PublicURL: srv.Endpoint + "/" + bucket, Prefix: "pub", Country: "DE", Enabled: true}
	f.add(r)
	return r
}

// fileRegion adds a region in a directory served over HTTP.
func (f *fixture) fileRegion(name string) (*model.Region, string) {
	f.t.Helper()
	dir := f.t.TempDir()
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	f.t.Cleanup(srv.Close)
	r := &model.Region{Name: name, Kind: model.KindFile, Dir: dir, PublicURL: srv.URL, Country: "US", Enabled: true}
	f.add(r)
	return r, dir
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

func (f *fixture) push(regions ...*model.Region) *Result {
	f.t.Helper()
	res, err := f.pusher.Push(context.Background(), regions)
	if err != nil {
		f.t.Fatalf("push: %v", err)
	}
	return res
}

// originFiles lists the origin's paths.
func (f *fixture) originFiles() []string {
	var out []string
	filepath.WalkDir(f.origin, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(f.origin, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	return out
}

// checkRegionHasOrigin reads every origin file back from the region's public URL.
func (f *fixture) checkRegionHasOrigin(r *model.Region) {
	f.t.Helper()
	for _, p := range f.originFiles() {
		want, _ := os.ReadFile(filepath.Join(f.origin, p))
		for _, key := range []string{p, model.SpaceTwin(p)} {
			if key == "" {
				continue
			}
			resp, err := http.Get(r.URL(key))
			if err != nil {
				f.t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !bytes.Equal(got, want) {
				f.t.Errorf("region %s: GET %s: %s, %d bytes (want %d)", r.Name, r.URL(key), resp.Status, len(got), len(want))
			}
		}
	}
}

func (f *fixture) repoState(r *model.Region) string {
	f.t.Helper()
	states, err := f.db.RegionRepos(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	for _, s := range states {
		if s.RegionID == r.ID {
			return s.State
		}
	}
	return "none"
}

func createrepo(t *testing.T, dir string) {
	t.Helper()
	out, err := exec.Command("createrepo_c", "--quiet", "--no-database", "--update", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("createrepo_c (install Debian's createrepo-c): %v\n%s", err, out)
	}
}

func TestFullPushThenNoop(t *testing.T) {
	f := newFixture(t)
	srv := testenv.SharedS3(t)
	a, b := f.s3Region("eu-central-1", srv), f.s3Region("eu-west-1", srv)
	c, _ := f.fileRegion("us-east-1")
	res := f.push(a, b, c)
	files := len(f.originFiles())
	for _, rr := range res.Regions {
		if rr.Status != model.RunOK || rr.Uploaded != files || rr.Failed != 0 {
			t.Fatalf("first push %s: %+v", rr.Region, rr)
		}
		if len(rr.Repos) != 1 || rr.Repos[0].State != model.RepoFresh || rr.Repos[0].Via != repocheck.ViaPublicURL {
			t.Errorf("%s repositories: %+v", rr.Region, rr.Repos)
		}
	}
	if res.Inventory.Hashed != files || res.Inventory.Repomds != 1 {
		t.Errorf("inventory: %+v", res.Inventory)
	}
	for _, r := range []*model.Region{a, b, c} {
		f.checkRegionHasOrigin(r)
		if s := f.repoState(r); s != model.RepoFresh {
			t.Errorf("%s: repository state %s", r.Name, s)
		}
	}
	runs, _ := f.db.RecentRuns(context.Background(), model.RunPush, 10)
	if len(runs) != 3 || runs[0].Status != model.RunOK || runs[0].Files != int64(files) {
		t.Errorf("runs: %+v", runs)
	}

	// Nothing changed: nothing is read or written.
	res = f.push(a, b, c)
	if res.Inventory.Hashed != 0 {
		t.Errorf("no-op push hashed %d files", res.Inventory.Hashed)
	}
	for _, rr := range res.Regions {
		if rr.Status != model.RunOK || rr.Uploaded != 0 || rr.UpToDate != files {
			t.Errorf("no-op push %s: %+v", rr.Region, rr)
		}
	}
}

// mtimes reads, from versitygw's posix backend, when each object of a bucket was written.
func mtimes(t *testing.T, root string) map[string]time.Time {
	t.Helper()
	out := map[string]time.Time{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			st, _ := d.Info()
			rel, _ := filepath.Rel(root, p)
			out[filepath.ToSlash(rel)] = st.ModTime()
		}
		return nil
	})
	return out
}

func TestChangedPackageMovesOnlyItAndMetadataInOrder(t *testing.T) {
	f := newFixture(t)
	srv := testenv.SharedS3(t)
	a := f.s3Region("ap-south-1", srv)
	c, cdir := f.fileRegion("sa-east-1")
	f.push(a, c)

	// The origin replaces one package and regenerates its metadata.
	pkgs := filepath.Join(f.origin, repoDir, "Packages")
	greet, _ := os.ReadFile(filepath.Join(pkgs, "greet-2.1-1.noarch.rpm"))
	if err := os.WriteFile(filepath.Join(pkgs, "hello-1.0-1.noarch.rpm"), greet, 0o644); err != nil {
		t.Fatal(err)
	}
	createrepo(t, filepath.Join(f.origin, repoDir))

	// A client watching the region during the push must never see a repomd.xml that
	// names a file the region does not have yet.
	stop := make(chan struct{})
	var violations, sightings atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() { watchRepomd(t, c, stop, &violations, &sightings) })
	res := f.push(a, c)
	close(stop)
	wg.Wait()
	for _, rr := range res.Regions {
		if rr.Status != model.RunOK {
			t.Fatalf("%s: %+v", rr.Region, rr)
		}
		// One package, the three regenerated repodata files, repomd.xml.
		if rr.PhaseFiles != [NumPhases]int{1, 3, 0, 1} {
			t.Errorf("%s uploaded by phase %v, want [1 3 0 1]", rr.Region, rr.PhaseFiles)
		}
	}
	if violations.Load() != 0 {
		t.Errorf("a client saw repomd.xml before its files %d times", violations.Load())
	}
	t.Logf("watcher read repomd.xml %d times during the push", sightings.Load())
	f.checkRegionHasOrigin(a)
	f.checkRegionHasOrigin(c)

	// On the real servers, repomd.xml was written after every file it names.
	for name, root := range map[string]string{"s3": filepath.Join(srv.Dir, "s3data", a.Bucket, "pub"), "file": cdir} {
		times := mtimes(t, root)
		repomdAt := times[repoDir+"/repodata/repomd.xml"]
		if repomdAt.IsZero() {
			t.Fatalf("%s: no repomd.xml under %s", name, root)
		}
		for k, at := range times {
			if !strings.HasSuffix(k, "repomd.xml") && at.After(repomdAt) {
				t.Errorf("%s: %s written at %v, after repomd.xml (%v)", name, k, at, repomdAt)
			}
		}
	}
}

// watchRepomd polls a region's repomd.xml and checks that every file it names is there.
func watchRepomd(t *testing.T, r *model.Region, stop chan struct{}, violations, sightings *atomic.Int64) {
	var last [32]byte
	for {
		select {
		case <-stop:
			return
		default:
		}
		resp, err := http.Get(r.URL(repoDir + "/repodata/repomd.xml"))
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		sum := sha256.Sum256(body)
		if resp.StatusCode != 200 || sum == last {
			continue
		}
		last = sum
		sightings.Add(1)
		for _, href := range hrefs(body) {
			resp, err := http.Head(r.URL(repoDir + "/" + href))
			if err != nil || resp.StatusCode != 200 {
				violations.Add(1)
				t.Logf("repomd.xml names %s, which the region does not serve", href)
			}
		}
	}
}

func hrefs(repomdXML []byte) []string {
	var out []string
	for _, part := range strings.Split(string(repomdXML), `href="`)[1:] {
		out = append(out, part[:strings.Index(part, `"`)])
	}
	return out
}

func TestGCRespectsGracePeriod(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	srv := testenv.SharedS3(t)
	a := f.s3Region("us-west-1", srv)
	f.push(a)
	gone := repoDir + "/Packages/libc++-compat-1.0-1.noarch.rpm"
	if err := os.Remove(filepath.Join(f.origin, gone)); err != nil {
		t.Fatal(err)
	}
	createrepo(t, filepath.Join(f.origin, repoDir))
	if res := f.push(a); res.Failed() || res.Inventory.Changes.Deleted != 4 { // the package and the old repodata
		t.Fatalf("push after delete: %+v", res.Inventory)
	}
	results, _, err := f.pusher.GC(ctx, []*model.Region{a}, GCOptions{Grace: time.Hour, UpdateDelay: 0})
	if err != nil || results[0].Status != model.RunOK || results[0].Deleted != 0 {
		t.Fatalf("gc within grace: %+v %v", results, err)
	}
	if resp, _ := http.Head(a.URL(gone)); resp.StatusCode != 200 {
		t.Fatalf("file deleted within its grace period: %s", resp.Status)
	}
	// Dry run: says what, deletes nothing.
	results, _, _ = f.pusher.GC(ctx, []*model.Region{a}, GCOptions{DryRun: true})
	// The package and the three repodata files the new metadata no longer names.
	if len(results[0].Paths) != 4 || results[0].Paths[0] != gone {
		t.Errorf("dry run: %+v", results[0])
	}
	results, purged, err := f.pusher.GC(ctx, []*model.Region{a}, GCOptions{UpdateDelay: 0})
	if err != nil || results[0].Deleted != 4 || purged != 4 {
		t.Fatalf("gc after grace: %+v purged %d %v", results, purged, err)
	}
	for _, key := range []string{gone, model.SpaceTwin(gone)} {
		if resp, _ := http.Head(a.URL(key)); resp.StatusCode != 404 && resp.StatusCode != 403 {
			t.Errorf("%s still served after gc: %s", key, resp.Status)
		}
	}
	if _, err := f.db.GetFile(ctx, gone); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("purged file still recorded: %v", err)
	}
	f.checkRegionHasOrigin(a)
}

func TestGCLeavesStaleRegionsAlone(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := f.s3Region("us-west-2", testenv.SharedS3(t))
	f.push(a)
	gone := repoDir + "/Packages/greet-2.1-1.noarch.rpm"
	os.Remove(filepath.Join(f.origin, gone))
	createrepo(t, filepath.Join(f.origin, repoDir))
	// The origin moved on, but this region was not pushed: it still serves metadata
	// that names the deleted file.
	if _, err := TakeInventory(ctx, f.db, f.pusher.Origin, 2, false, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	results, _, _ := f.pusher.GC(ctx, []*model.Region{a}, GCOptions{UpdateDelay: 0})
	if results[0].Status != model.RunFailed || results[0].Deleted != 0 || !strings.Contains(results[0].Error, "not fresh") {
		t.Fatalf("gc of a stale region: %+v", results[0])
	}
}
