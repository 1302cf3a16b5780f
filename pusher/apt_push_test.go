package pusher

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/objstore"
	"github.com/regionmirror/regionmirror/internal/repomd"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

const aptDir, aptSuite = "deb", "stable"

// aptFixture is the push fixture with an APT archive (real dpkg-deb, apt-ftparchive and
// gpg) at aptDir registered as an APT repository beside the yum one, and two regions on
// versitygw whose writes are recorded in order.
type aptFixture struct {
	*fixture
	archive *testenv.AptArchive
	repo    model.Repository
	regions []*model.Region
	stores  *recordingStores
}

func newAptFixture(t *testing.T, byHash bool) *aptFixture {
	t.Helper()
	f := newFixture(t)
	a := testenv.NewAptArchive(t, filepath.Join(f.origin, aptDir), aptSuite, byHash, true)
	a.Publish(t, aptPkgs, testenv.PublishOptions{ValidUntil: 7 * 24 * time.Hour})
	repo := model.Repository{Name: "deb", Arch: model.AptArch, Directory: aptDir, Kind: model.RepoApt, Suite: aptSuite,
		ReleaseFile: "InRelease", Keyring: a.Keyring}
	if err := f.db.CreateRepository(context.Background(), &repo); err != nil {
		t.Fatal(err)
	}
	srv := testenv.SharedS3(t)
	af := &aptFixture{fixture: f, archive: a, repo: repo, stores: &recordingStores{keys: map[string][]string{}}}
	af.regions = []*model.Region{f.s3Region("eu-west-1", srv), f.s3Region("us-east-2", srv)}
	opts := f.pusher.Config.StoreOptions
	f.pusher.OpenStore = func(ctx context.Context, r *model.Region) (objstore.Store, error) {
		s, err := objstore.Open(ctx, r, opts)
		if err != nil {
			return nil, err
		}
		return &recordingStore{Store: s, region: r.Name, all: af.stores}, nil
	}
	return af
}

// recordingStores keeps, per region, the keys written, in the order the writes ended;
// fail (when set) injects a failure into a write before it is made.
type recordingStores struct {
	mu   sync.Mutex
	keys map[string][]string
	fail func(region, key string) error
}

type recordingStore struct {
	objstore.Store
	region string
	all    *recordingStores
}

func (s *recordingStore) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts objstore.PutOptions) error {
	s.all.mu.Lock()
	fail := s.all.fail
	s.all.mu.Unlock()
	if fail != nil {
		if err := fail(s.region, key); err != nil {
			return err
		}
	}
	if err := s.Store.Put(ctx, key, body, size, opts); err != nil {
		return err
	}
	s.all.mu.Lock()
	s.all.keys[s.region] = append(s.all.keys[s.region], key)
	s.all.mu.Unlock()
	return nil
}

func (f *aptFixture) setFail(fn func(region, key string) error) {
	f.stores.mu.Lock()
	f.stores.fail = fn
	f.stores.mu.Unlock()
}

// forget drops the writes recorded so far.
func (f *aptFixture) forget() {
	f.stores.mu.Lock()
	f.stores.keys = map[string][]string{}
	f.stores.mu.Unlock()
}

func (f *aptFixture) written(region string) []string {
	f.stores.mu.Lock()
	defer f.stores.mu.Unlock()
	var out []string
	for _, k := range f.stores.keys[region] {
		if k = strings.TrimPrefix(k, "pub/"); strings.HasPrefix(k, aptDir+"/") {
			out = append(out, k)
		}
	}
	return out
}

func (f *aptFixture) suitePath(name string) string { return aptDir + "/dists/" + aptSuite + "/" + name }

func (f *aptFixture) originBytes(p string) []byte {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(f.origin, filepath.FromSlash(p)))
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// served is what the region answers for p through its public URL.
func (f *aptFixture) served(r *model.Region, p string) []byte {
	f.t.Helper()
	resp, err := http.Get(r.URL(p))
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	return b
}

// state is the APT repository's record in the region.
func (f *aptFixture) state(r *model.Region) *model.RegionRepo {
	f.t.Helper()
	states, err := f.db.RegionRepos(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return findRegionRepo(states, r.ID, f.repo.ID)
}

func (f *aptFixture) pushAll() *Result { return f.push(f.regions...) }

// TestPushAptArchive: an APT archive goes to two regions whole, in the order pool,
// by-hash, plain indices, Release files (InRelease last), its revision is recorded with
// Valid-Until, and each region is verified fresh on the InRelease's SHA-256.
func TestPushAptArchive(t *testing.T) {
	f := newAptFixture(t, true)
	// The announce delay comes before the plain index files, so that the window between
	// them and the Release files stays short.
	const delay = time.Second
	f.pusher.Config.AnnounceDelay = delay
	hook := &phaseHook{}
	f.pusher.Progress = hook
	res := f.pushAll()
	inRelease := f.originBytes(f.suitePath("InRelease"))
	sum := sha256.Sum256(inRelease)
	versions, err := f.db.RepomdVersions(context.Background(), f.repo.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(versions) != 1 || !bytes.Equal(versions[0].SHA256, sum[:]) || versions[0].Size != int64(len(inRelease)) {
		t.Fatalf("revisions %+v, want the InRelease's", versions)
	}
	if waited := hook.at[PhaseIndex].Sub(versions[0].FirstSeen); waited < delay-50*time.Millisecond {
		t.Errorf("the index phase began %v after the revision was recorded, want the announce delay %v", waited, delay)
	}
	if vu := versions[0].ValidUntil; vu.Before(time.Now().Add(6*24*time.Hour)) || vu.After(time.Now().Add(8*24*time.Hour)) {
		t.Errorf("valid_until %v, want a week ahead", vu)
	}
	if d := time.Unix(versions[0].Timestamp, 0); time.Since(d) > time.Hour || time.Since(d) < -time.Minute {
		t.Errorf("timestamp %v, want the Release's Date", d)
	}
	for _, rr := range res.Regions {
		if rr.Status != model.RunOK {
			t.Fatalf("region %s: %+v", rr.Region, rr)
		}
	}
	for _, r := range f.regions {
		f.checkRegionHasOrigin(r)
		st := f.state(r)
		if st == nil || st.State != model.RepoFresh || !bytes.Equal(st.RepomdSHA256, sum[:]) {
			t.Errorf("region %s: %+v, want fresh on the InRelease", r.Name, st)
		}
		checkAptOrder(t, r.Name, f.written(r.Name))
	}
	// The real apt reads the region: update, then download a package.
	root := f.aptClient(f.regions[0])
	aptGet(t, root, "update")
	aptGet(t, root, "download", "hello")
	if _, err := os.Stat(filepath.Join(root.Dir, "download", "hello_1.0_amd64.deb")); err != nil {
		t.Errorf("apt-get download: %v", err)
	}
}

// checkAptOrder proves the writes into a region went pool, by-hash, plain indices,
// Release files, with Release.gpg, Release, InRelease last of all.
func checkAptOrder(t *testing.T, region string, keys []string) {
	t.Helper()
	if len(keys) == 0 {
		t.Fatalf("region %s: nothing of the APT archive written", region)
	}
	seen := [NumPhases]int{}
	last := PhaseFiles
	for _, k := range keys {
		ph := PhaseOf(k)
		seen[ph]++
		if ph < last {
			t.Errorf("region %s: %s (phase %s) written after phase %s began: %v", region, k, PhaseNames[ph], PhaseNames[last], keys)
		}
		last = max(last, ph)
	}
	for ph := range NumPhases {
		if seen[ph] == 0 {
			t.Errorf("region %s: nothing of phase %s written: %v", region, PhaseNames[ph], keys)
		}
	}
	n := len(keys)
	if n < 3 || !strings.HasSuffix(keys[n-3], "/Release.gpg") || !strings.HasSuffix(keys[n-2], "/Release") || !strings.HasSuffix(keys[n-1], "/InRelease") {
		t.Errorf("region %s: the Release files went up as %v, want Release.gpg, Release, InRelease last", region, keys[max(0, n-3):])
	}
}

// TestPushAptRefusesBadRevisions: a new revision that apt would refuse, or that does
// not match the origin, goes to no region: the run fails naming why, and every region
// keeps serving (and is recorded fresh on) the previous revision.
func TestPushAptRefusesBadRevisions(t *testing.T) {
	next := []testenv.AptPackage{aptPkgs[0], {Name: "world", Version: "3.0", Content: "world 3"}}
	bin := filepath.Join("dists", aptSuite, "main", "binary-amd64")
	for _, tc := range []struct {
		name    string
		opt     testenv.PublishOptions
		breakIt func(t *testing.T, root string)
		want    string
	}{
		{name: "Valid-Until passed", opt: testenv.PublishOptions{Date: time.Now().Add(-3 * time.Hour), ValidUntil: time.Hour}, want: "Valid-Until"},
		{name: "Date in the future", opt: testenv.PublishOptions{Date: time.Now().Add(2 * time.Hour)}, want: "in the future"},
		{name: "listed index missing at the origin", breakIt: func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, bin, "Packages"))
			os.Remove(filepath.Join(root, bin, "Packages.gz"))
		}, want: "which the origin does not have"},
		{name: "by-hash twin disagrees", breakIt: func(t *testing.T, root string) {
			b, _ := os.ReadFile(filepath.Join(root, bin, "Packages.gz"))
			s := sha256.Sum256(b)
			writeFile(t, filepath.Join(root, bin, "by-hash", "SHA256", hex.EncodeToString(s[:])), "not the index")
		}, want: "by-hash twin"},
		{name: "bad signature with a keyring", breakIt: func(t *testing.T, root string) {
			p := filepath.Join(root, "dists", aptSuite, "InRelease")
			b, _ := os.ReadFile(p)
			writeFile(t, p, strings.Replace(string(b), "Origin: regionmirror-tests", "Origin: regionmirror-tesTs", 1))
		}, want: "signature of InRelease"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newAptFixture(t, true)
			if res := f.pushAll(); res.Failed() {
				t.Fatalf("first push: %+v", res.Regions[0])
			}
			old := f.originBytes(f.suitePath("InRelease"))
			oldSum := sha256.Sum256(old)
			time.Sleep(1100 * time.Millisecond) // a new Date
			opt := tc.opt
			if opt.Date.IsZero() {
				opt.ValidUntil = 7 * 24 * time.Hour
			}
			f.archive.Publish(t, next, opt)
			if tc.breakIt != nil {
				tc.breakIt(t, f.archive.Root)
			}
			f.forget()
			res := f.pushAll()
			for _, rr := range res.Regions {
				if rr.Status != model.RunFailed || !strings.Contains(rr.Error, tc.want) || !strings.Contains(rr.Error, "repository "+aptDir) {
					t.Errorf("region %s: %s %q, want a failure saying %q", rr.Region, rr.Status, rr.Error, tc.want)
				}
			}
			for _, r := range f.regions {
				if got := f.served(r, f.suitePath("InRelease")); !bytes.Equal(got, old) {
					t.Errorf("region %s serves another InRelease than the previous revision's", r.Name)
				}
				if st := f.state(r); st == nil || st.State != model.RepoFresh || !bytes.Equal(st.RepomdSHA256, oldSum[:]) {
					t.Errorf("region %s: %+v, want still fresh on the previous revision", r.Name, st)
				}
				for _, k := range f.written(r.Name) {
					if PhaseOf(k) != PhaseFiles && !strings.Contains(k, "/by-hash/") {
						// By-hash names are new, but a withheld repository gets none of
						// its metadata anyway.
						t.Errorf("region %s: %s written for a withheld revision", r.Name, k)
					}
				}
			}
		})
	}
}

// errInjected is a write failure a test injects.
var errInjected = errors.New("injected write failure")

// TestPushAptInterruptedAfterByHash: a push that stops while the plain index files are
// rewritten (after the by-hash phase) leaves a by-hash suite's regions fresh on the old
// revision, serving the old InRelease and every by-hash file it names: apt clients of
// the old revision read those. Without by-hash, the rewrite took the region out first.
func TestPushAptInterruptedAfterByHash(t *testing.T) {
	next := []testenv.AptPackage{aptPkgs[0], {Name: "world", Version: "3.0", Content: "world 3"}}
	// "turning by-hash on": the old revision is plain, the new one by-hash. Its clients read
	// the plain names, so the push must treat it as plain (it did not before: found by
	// review).
	for _, mode := range []string{"by-hash", "plain", "turning by-hash on"} {
		byHash := mode == "by-hash"
		t.Run(mode, func(t *testing.T) {
			f := newAptFixture(t, byHash)
			if res := f.pushAll(); res.Failed() {
				t.Fatalf("first push: %+v", res.Regions[0])
			}
			old := f.originBytes(f.suitePath("InRelease"))
			oldSum := sha256.Sum256(old)
			time.Sleep(1100 * time.Millisecond)
			if mode == "turning by-hash on" {
				f.archive.ByHash = true
			}
			f.archive.Publish(t, next, testenv.PublishOptions{ValidUntil: 7 * 24 * time.Hour})
			// The first plain index goes up in each region, the next write of that phase fails.
			wrote := map[string]bool{}
			var mu sync.Mutex
			f.setFail(func(region, key string) error {
				if PhaseOf(strings.TrimPrefix(key, "pub/")) != PhaseIndex {
					return nil
				}
				mu.Lock()
				defer mu.Unlock()
				if !wrote[region] {
					wrote[region] = true
					return nil
				}
				return errInjected
			})
			res := f.pushAll()
			f.setFail(nil)
			failed := 0
			for _, rr := range res.Regions {
				if rr.Status == model.RunFailed {
					failed++
				}
			}
			if failed == 0 {
				t.Fatalf("no region failed: %+v", res.Regions)
			}
			for i, r := range f.regions {
				st := f.state(r)
				if !bytes.Equal(f.served(r, f.suitePath("InRelease")), old) {
					t.Errorf("region %s: the InRelease of the new revision went up", r.Name)
				}
				if byHash {
					// Clients of the old revision read by-hash names, which are all there.
					if st == nil || st.State != model.RepoFresh || !bytes.Equal(st.RepomdSHA256, oldSum[:]) {
						t.Errorf("region %s: %+v, want fresh on the old revision", r.Name, st)
					}
					checkByHashServed(t, f, r, old)
					// The real apt, as a client of the old revision, reads the region
					// fine although a plain index there is already the new one.
					root := f.aptClient(r)
					aptGet(t, root, "update")
					aptGet(t, root, "download", "world")
					if _, err := os.Stat(filepath.Join(root.Dir, "download", "world_2.0_amd64.deb")); err != nil {
						t.Errorf("apt-get download of the old revision's package: %v", err)
					}
					continue
				}
				// Without by-hash the first region is taken out before its plain indices
				// are rewritten; the second, then the last one serving, defers them.
				if i == 0 && (st == nil || st.State == model.RepoFresh) {
					t.Errorf("region %s: %+v, want out of the answers after a partial rewrite", r.Name, st)
				}
				if i == 1 {
					if st == nil || st.State != model.RepoFresh {
						t.Errorf("region %s: %+v, want still serving the old revision (deferred)", r.Name, st)
					}
					// Deferred whole: the real apt reads the old revision there.
					root := f.aptClient(r)
					aptGet(t, root, "update")
					aptGet(t, root, "download", "world")
				}
			}
			// The next push completes every region.
			res = f.pushAll()
			if !byHash {
				res = f.pushAll() // the deferred region follows once the other serves the new one
			}
			newSum := sha256.Sum256(f.originBytes(f.suitePath("InRelease")))
			for _, r := range f.regions {
				if st := f.state(r); st == nil || st.State != model.RepoFresh || !bytes.Equal(st.RepomdSHA256, newSum[:]) {
					t.Errorf("repair: region %s: %+v (%+v)", r.Name, st, res.Regions)
				}
				f.checkRegionHasOrigin(r)
			}
		})
	}
}

// checkByHashServed proves the region serves, by hash, every index the InRelease lists.
func checkByHashServed(t *testing.T, f *aptFixture, r *model.Region, inRelease []byte) {
	t.Helper()
	rel, err := parseReleaseBytes(inRelease)
	if err != nil {
		t.Fatal(err)
	}
	for _, lf := range rel.Files {
		dir := filepath.ToSlash(filepath.Dir(f.suitePath(lf.Path)))
		p := dir + "/by-hash/SHA256/" + hex.EncodeToString(lf.SHA256)
		got := f.served(r, p)
		if s := sha256.Sum256(got); got == nil || !bytes.Equal(s[:], lf.SHA256) {
			t.Errorf("region %s: %s not served with the listed bytes", r.Name, p)
		}
	}
}

func parseReleaseBytes(b []byte) (*repomd.Release, error) {
	return repomd.ParseRelease(bytes.NewReader(b))
}

// aptClient runs the real apt-get against the region's copy of the archive (no mirror
// list: the region's URL itself), checking signatures with the archive's key.
func (f *aptFixture) aptClient(r *model.Region) *testenv.AptRoot {
	f.t.Helper()
	return testenv.NewAptRoot(f.t, "deb [signed-by="+f.archive.Keyring+"] "+r.URL(aptDir)+" "+aptSuite+" main")
}

// aptGet runs apt-get in root and fails the test with its output when it fails.
func aptGet(t *testing.T, root *testenv.AptRoot, args ...string) string {
	t.Helper()
	out, err := root.Run(args...)
	if err != nil || strings.Contains(string(out), "W: ") || strings.Contains(string(out), "E: ") {
		t.Fatalf("apt-get %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
