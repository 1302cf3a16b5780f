package pusher

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

// Regression tests of issue 12 on the push side.

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Defect 9: the twin of "a+b" is "a b"; when the origin has "a b" too, the twin must not
// overwrite it.
func TestTwinNeverOverwritesARealFile(t *testing.T) {
	f := newFixture(t)
	r, _ := f.fileRegion("twin-1")
	pkgs := filepath.Join(f.origin, repoDir, "Packages")
	space := repoDir + "/Packages/x y.txt"
	if err := os.WriteFile(filepath.Join(pkgs, "x y.txt"), []byte("the real file with a space"), 0o644); err != nil {
		t.Fatal(err)
	}
	if rr := f.push(r).Regions[0]; rr.Status != model.RunOK {
		t.Fatalf("first push: %+v", rr)
	}
	// A file whose twin key is the real file's path appears at the origin.
	if err := os.WriteFile(filepath.Join(pkgs, "x+y.txt"), []byte("the plus file"), 0o644); err != nil {
		t.Fatal(err)
	}
	rr := f.push(r).Regions[0]
	if rr.Status != model.RunOK {
		t.Fatalf("second push: %+v", rr)
	}
	if code, body := get(t, r.URL(space)); code != 200 || body != "the real file with a space" {
		t.Errorf("the real %q now serves %d %q", space, code, body)
	}
	if code, body := get(t, r.URL(repoDir+"/Packages/x+y.txt")); code != 200 || body != "the plus file" {
		t.Errorf("x+y.txt: %d %q", code, body)
	}
	if rr.TwinsSkipped != 1 {
		t.Errorf("the report must say one twin was not written: %d", rr.TwinsSkipped)
	}
}

// Defect 11: a region whose includes cover repodata/ but not the packages gets no metadata.
func TestRepodataOnlyWhereTheRepositoryIsCarried(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	include := func(r *model.Region, inc string) *model.Region {
		r, _, err := f.db.UpdateRegion(ctx, r.Name, func(r *model.Region) error { r.Includes = []string{inc}; return nil })
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	part, dir := f.fileRegion("partial-1")
	part = include(part, repoDir+"/repodata")
	whole, _ := f.fileRegion("whole-1")
	whole = include(whole, repoDir)
	res := f.push(part, whole)
	if rr := res.Regions[0]; rr.Status != model.RunOK || rr.Uploaded != 0 || len(rr.Repos) != 0 {
		t.Errorf("region carrying only repodata/: %+v", rr)
	}
	if _, err := os.Stat(filepath.Join(dir, repoDir, "repodata")); !os.IsNotExist(err) {
		t.Errorf("repodata written to a region that does not carry the repository: %v", err)
	}
	if s := f.repoState(part); s != "none" {
		t.Errorf("partial region's repository state %s", s)
	}
	if rr := res.Regions[1]; rr.Status != model.RunOK || len(rr.Repos) != 1 || rr.Repos[0].State != model.RepoFresh {
		t.Errorf("region carrying the repository: %+v", rr)
	}
}

// Defect 5: a repomd.xml the inventory cannot parse is withheld, and the run fails for it.
func TestUnparsableRepomdIsWithheld(t *testing.T) {
	f := newFixture(t)
	r, _ := f.fileRegion("bad-repomd-1")
	f.push(r)
	repomd := repoDir + "/repodata/repomd.xml"
	_, before := get(t, r.URL(repomd))
	if err := os.WriteFile(filepath.Join(f.origin, repomd), []byte("<repomd><data"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A dry run says so too.
	f.pusher.Config.DryRun = true
	if rr := f.push(r).Regions[0]; len(rr.Withheld) != 1 || rr.Withheld[0].Dir != repoDir || rr.PhaseFiles[PhaseRepomd] != 0 {
		t.Errorf("dry run: withheld %+v, phases %v", rr.Withheld, rr.PhaseFiles)
	}
	f.pusher.Config.DryRun = false
	rr := f.push(r).Regions[0]
	if rr.Status != model.RunFailed || !strings.Contains(rr.Error, "repomd.xml") || !strings.Contains(rr.Error, repoDir) {
		t.Errorf("push of an unparsable repomd.xml: %+v", rr)
	}
	t.Logf("error: %s", rr.Error)
	if _, after := get(t, r.URL(repomd)); after != before {
		t.Errorf("the region now serves %q", after)
	}
	runs, _ := f.db.RecentRuns(context.Background(), model.RunPush, 1)
	if runs[0].Status != model.RunFailed || !strings.Contains(runs[0].Error, "repomd.xml") {
		t.Errorf("run: %+v", runs[0])
	}
}

// phaseClock records when each phase began, and can act there.
type phaseHook struct {
	mu      sync.Mutex
	at      map[int]time.Time
	onPhase func(ph int)
	onDone  func()
}

func (h *phaseHook) Plan(string, int, int64) {}
func (h *phaseHook) Finish(string, error)    {}
func (h *phaseHook) Phase(_ string, ph int) {
	h.mu.Lock()
	if h.at == nil {
		h.at = map[int]time.Time{}
	}
	if _, ok := h.at[ph]; !ok {
		h.at[ph] = time.Now()
	}
	h.mu.Unlock()
	if h.onPhase != nil {
		h.onPhase(ph)
	}
}
func (h *phaseHook) Done(string, int, int64) {
	if h.onDone != nil {
		h.onDone()
	}
}

// Defect 13: the announce delay is measured on the database's clock; a pusher clock ahead
// must not shorten it.
func TestAnnounceDelayUsesTheDatabaseClock(t *testing.T) {
	f := newFixture(t)
	r, _ := f.fileRegion("clock-1")
	f.pusher.Config.AnnounceDelay = 2 * time.Second
	f.pusher.Clock = func() time.Time { return time.Now().Add(time.Minute) }
	hook := &phaseHook{}
	f.pusher.Progress = hook
	if rr := f.push(r).Regions[0]; rr.Status != model.RunOK {
		t.Fatalf("push: %+v", rr)
	}
	repos, _ := f.db.ListRepositories(context.Background())
	vs, err := f.db.RepomdVersions(context.Background(), repos[0].ID)
	if err != nil || len(vs) != 1 {
		t.Fatal(vs, err)
	}
	// This test and the database share one machine clock.
	if waited := hook.at[PhaseRepomd].Sub(vs[0].FirstSeen); waited < 2*time.Second-50*time.Millisecond {
		t.Errorf("repomd.xml went out %v after the version was recorded, want 2s", waited)
	}
}

func createrepoSimple(t *testing.T, dir string) {
	t.Helper()
	os.RemoveAll(filepath.Join(dir, "repodata"))
	out, err := exec.Command("createrepo_c", "--quiet", "--no-database", "--simple-md-filenames", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("createrepo_c: %v\n%s", err, out)
	}
}

// Defect 4: files rewritten under the same name take the region's repository out of the
// answers, database-first, and only the verification brings it back.
func TestInPlaceRewriteTakesTheRepositoryOut(t *testing.T) {
	f := newFixture(t)
	srv, err := testenv.StartS3(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	a := f.s3Region("inplace-1", srv)
	f.pusher.Config.AnnounceDelay = 300 * time.Millisecond
	f.pusher.Config.StoreOptions.MaxAttempts = 1
	repo := filepath.Join(f.origin, repoDir)
	createrepoSimple(t, repo)
	if rr := f.push(a).Regions[0]; rr.Status != model.RunOK || f.repoState(a) != model.RepoFresh {
		t.Fatalf("first push: %+v", rr)
	}
	// A package re-signed under the same name, and repodata regenerated with simple names.
	pkgs := filepath.Join(repo, "Packages")
	greet, _ := os.ReadFile(filepath.Join(pkgs, "greet-2.1-1.noarch.rpm"))
	if err := os.WriteFile(filepath.Join(pkgs, "hello-1.0-1.noarch.rpm"), greet, 0o644); err != nil {
		t.Fatal(err)
	}
	createrepoSimple(t, repo)

	var statesAtPhase []string
	f.pusher.Progress = &phaseHook{onPhase: func(ph int) {
		statesAtPhase = append(statesAtPhase, f.repoState(a))
		if ph == PhaseRepomd {
			srv.Kill() // phase 3 fails
		}
	}}
	rr := f.push(a).Regions[0]
	if rr.Status != model.RunFailed {
		t.Fatalf("push with a dead endpoint in phase 3: %+v", rr)
	}
	for i, s := range statesAtPhase {
		if s == model.RepoFresh {
			t.Errorf("phase %d began with the repository fresh while its files are overwritten", i+1)
		}
	}
	if s := f.repoState(a); s == model.RepoFresh || s == model.RepoAlternate {
		t.Errorf("after a failed in-place rewrite the region is %s", s)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	f.pusher.Progress = nil
	if rr := f.push(a).Regions[0]; rr.Status != model.RunOK || f.repoState(a) != model.RepoFresh {
		t.Fatalf("repair push: %+v, state %s", rr, f.repoState(a))
	}
	f.checkRegionHasOrigin(a)
}

// Defect 14: repomd.xml and its signature go up as a pair; when the second fails, the
// region's repository is not fresh.
func TestRepomdPairSecondUploadFails(t *testing.T) {
	f := newFixture(t)
	srv, err := testenv.StartS3(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	a := f.s3Region("pair-1", srv)
	f.pusher.Config.AnnounceDelay = 0
	f.pusher.Config.StoreOptions.MaxAttempts = 1
	repo := filepath.Join(f.origin, repoDir)
	asc := filepath.Join(repo, "repodata", "repomd.xml.asc")
	if err := os.WriteFile(asc, []byte("signature 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if rr := f.push(a).Regions[0]; rr.Status != model.RunOK || f.repoState(a) != model.RepoFresh {
		t.Fatalf("first push: %+v", rr)
	}
	pkgs := filepath.Join(repo, "Packages")
	os.Remove(filepath.Join(pkgs, "greet-2.1-1.noarch.rpm"))
	createrepo(t, repo)
	if err := os.WriteFile(asc, []byte("signature 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The endpoint dies right after the first file of the pair is written.
	var once sync.Once
	inRepomd := false
	f.pusher.Progress = &phaseHook{
		onPhase: func(ph int) { inRepomd = ph == PhaseRepomd },
		onDone: func() {
			if inRepomd {
				once.Do(srv.Kill)
			}
		},
	}
	rr := f.push(a).Regions[0]
	if rr.Status != model.RunFailed {
		t.Fatalf("push: %+v", rr)
	}
	if s := f.repoState(a); s == model.RepoFresh || s == model.RepoAlternate {
		t.Errorf("a region with half a pair is %s", s)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	f.pusher.Progress = nil
	if rr := f.push(a).Regions[0]; rr.Status != model.RunOK || f.repoState(a) != model.RepoFresh {
		t.Fatalf("repair push: %+v", rr)
	}
	f.checkRegionHasOrigin(a)
}

// terminateLockHolder ends, as a failover or a proxy would, the database session that
// holds the region's write lock, and returns how many objects the region had recorded then.
func terminateLockHolder(t *testing.T, f *fixture, r *model.Region) int {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, f.url)
	if err != nil {
		t.Error(err)
		return -1
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&n)
	if err != nil || n != 1 {
		t.Errorf("terminate the lock's backend: %d sessions, %v", n, err)
	}
	var recorded int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM region_objects WHERE region_id = $1", r.ID).Scan(&recorded); err != nil {
		t.Error(err)
	}
	return recorded
}

// Defect 2: a push whose lock connection is cut stops, fails, and records nothing after.
func TestLockLostMidPushStopsAndRecordsNothing(t *testing.T) {
	f := newFixture(t)
	addBulk(t, f.origin, 60)
	r, _ := f.fileRegion("lock-lost-1")
	f.pusher.Config.Concurrency = 1
	var once sync.Once
	recordedAtLoss, done := -1, 0
	var mu sync.Mutex
	f.pusher.Progress = &phaseHook{onDone: func() {
		mu.Lock()
		defer mu.Unlock()
		if done++; done == 10 {
			once.Do(func() { recordedAtLoss = terminateLockHolder(t, f, r) })
		}
	}}
	rr := f.push(r).Regions[0]
	if rr.Status != model.RunFailed || !strings.Contains(rr.Error, "lock lost") {
		t.Errorf("push that lost its lock: status %s, error %q", rr.Status, rr.Error)
	}
	t.Logf("error: %s", rr.Error)
	var recorded int
	conn, err := pgx.Connect(context.Background(), f.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM region_objects WHERE region_id = $1", r.ID).Scan(&recorded); err != nil {
		t.Fatal(err)
	}
	if recorded != recordedAtLoss {
		t.Errorf("%d objects recorded at the loss, %d after the push: it recorded after losing its lock", recordedAtLoss, recorded)
	}
	if s := f.repoState(r); s != "none" {
		t.Errorf("repository state %s after a push that lost its lock", s)
	}
	runs, _ := f.db.RecentRuns(context.Background(), model.RunPush, 1)
	if runs[0].Status != model.RunFailed || !strings.Contains(runs[0].Error, "lock lost") {
		t.Errorf("run: %+v", runs[0])
	}
	// The next push repairs it.
	f.pusher.Progress = nil
	if rr := f.push(r).Regions[0]; rr.Status != model.RunOK || f.repoState(r) != model.RepoFresh {
		t.Fatalf("repair push: %+v", rr)
	}
	f.checkRegionHasOrigin(r)
}

// Regions with in-place rewrites are pushed one after the other: while one is out of the
// answers, the others still serve the repository.
func TestInPlaceRegionsOneAfterAnother(t *testing.T) {
	f := newFixture(t)
	a, _ := f.fileRegion("seq-a")
	b, _ := f.fileRegion("seq-b")
	f.pusher.Config.AnnounceDelay = 100 * time.Millisecond
	repo := filepath.Join(f.origin, repoDir)
	createrepoSimple(t, repo)
	f.push(a, b)
	os.Remove(filepath.Join(repo, "Packages", "greet-2.1-1.noarch.rpm"))
	createrepoSimple(t, repo)
	var mu sync.Mutex
	serving := map[string]int{}
	f.pusher.Progress = &phaseHook{onPhase: func(int) {
		n := 0
		for _, r := range []*model.Region{a, b} {
			if f.repoState(r) == model.RepoFresh {
				n++
			}
		}
		mu.Lock()
		serving[fmt.Sprint(n)]++
		mu.Unlock()
	}}
	res := f.push(a, b)
	for _, rr := range res.Regions {
		if rr.Status != model.RunOK || len(rr.RewrittenInPlace) != 1 {
			t.Errorf("%s: %+v", rr.Region, rr)
		}
	}
	if serving["0"] > 0 || serving["1"] == 0 {
		t.Errorf("regions serving the repository at each phase start: %v; want always one", serving)
	}
	if f.repoState(a) != model.RepoFresh || f.repoState(b) != model.RepoFresh {
		t.Errorf("states after the push: %s %s", f.repoState(a), f.repoState(b))
	}
}

// Defect 14, verification: the pair is read back together. A region whose public URL
// serves another signature (a stale cache in front of it) is not fresh.
func TestRepomdPairReadBackTogether(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	files := http.FileServer(http.Dir(dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/repomd.xml.asc") {
			io.WriteString(w, "an older signature\n")
			return
		}
		files.ServeHTTP(w, r)
	}))
	defer srv.Close()
	r := &model.Region{Name: "cached-1", Kind: model.KindFile, Dir: dir, PublicURL: srv.URL, Country: "US", Enabled: true}
	f.add(r)
	if err := os.WriteFile(filepath.Join(f.origin, repoDir, "repodata", "repomd.xml.asc"), []byte("signature\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rr := f.push(r).Regions[0]
	if rr.Status != model.RunFailed || !strings.Contains(rr.Error, "repomd.xml.asc") {
		t.Errorf("push to a region serving another signature: %s %q", rr.Status, rr.Error)
	}
	if s := f.repoState(r); s == model.RepoFresh {
		t.Errorf("region serving a mismatched pair is %s", s)
	}
}
