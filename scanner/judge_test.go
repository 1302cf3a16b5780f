package scanner

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/objstore"
	"github.com/regionmirror/regionmirror/internal/testenv"
	"github.com/regionmirror/regionmirror/pusher"
)

// inventory records the origin's current state (what a push's first step does).
func (f *fixture) inventory() {
	f.t.Helper()
	if _, err := pusher.TakeInventory(context.Background(), f.db, pusher.OSOrigin{Root: f.origin}, 2, false, slog.New(slog.DiscardHandler)); err != nil {
		f.t.Fatal(err)
	}
}

// putBack writes body to the region's object for path and records it as the region's copy,
// the way a push that got no further than that object leaves it.
func (f *fixture) putBack(r *model.Region, srv *testenv.S3Server, path string, body []byte) {
	f.t.Helper()
	ctx := context.Background()
	sum := sha256.Sum256(body)
	if _, err := srv.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: &r.Bucket, Key: aws.String(r.Prefix + "/" + path),
		Body: bytes.NewReader(body), ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sum[:]))}); err != nil {
		f.t.Fatal(err)
	}
	file, err := f.db.GetFile(ctx, path)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.db.RecordObjects(ctx, db.NoFence, r.ID, []db.ObjectUpdate{{FileID: file.ID, Size: int64(len(body)), SHA256: sum[:], State: model.ObjectPresent, Pushed: true}}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) repoError(r *model.Region) string {
	states, _ := f.db.RegionRepos(context.Background())
	for _, s := range states {
		if s.RegionID == r.ID {
			return s.Error
		}
	}
	return ""
}

// newRevision rewrites the sample repomd.xml with another revision: a new version of the
// repository naming the same files.
func (f *fixture) newRevision(rev string) {
	f.t.Helper()
	p := filepath.Join(f.origin, repoDir, "repodata", "repomd.xml")
	raw, err := os.ReadFile(p)
	if err != nil {
		f.t.Fatal(err)
	}
	out := regexp.MustCompile(`<revision>[^<]*</revision>`).ReplaceAll(raw, []byte("<revision>"+rev+"</revision>"))
	if bytes.Equal(out, raw) {
		f.t.Fatal("no revision replaced")
	}
	if err := os.WriteFile(p, out, 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// TestPushBetweenRegionScansLeavesThemFresh (defect 3): a push landing a new repomd.xml
// while a scan is under way (here: after the scan started, before it reaches the region)
// must not make the freshly pushed region stale.
func TestPushBetweenRegionScansLeavesThemFresh(t *testing.T) {
	f := newFixture(t, 0)
	srv := testenv.SharedS3(t)
	a := f.s3Region("eu-west-1", srv)
	b := f.s3Region("eu-west-2", srv)
	f.push(a, b)
	pushed := false
	f.scanner.OpenStore = func(ctx context.Context, r *model.Region) (objstore.Store, error) {
		if r.ID == b.ID && !pushed {
			pushed = true
			f.newRevision("2000000000")
			f.push(b)
			if s := f.repoState(b); s != model.RepoFresh {
				t.Fatalf("after the push: %s", s)
			}
		}
		return objstore.Open(ctx, r, f.scanner.Config.StoreOptions)
	}
	reps := f.scan(a, b)
	if !pushed {
		t.Fatal("the push did not run")
	}
	if s := f.repoState(b); s != model.RepoFresh || reps[1].Status != model.RunOK {
		t.Fatalf("region pushed during the scan: %s (%s), report %+v", s, f.repoError(b), reps[1])
	}
	// The region scanned first serves the previous version: still offered, as an alternate.
	if s := f.repoState(a); s != model.RepoFresh && s != model.RepoAlternate {
		t.Errorf("region not pushed: %s", s)
	}
}

// simpleRepodata regenerates the sample repository's repodata with createrepo_c
// --simple-md-filenames: repomd.xml names primary.xml.gz and the others, rewritten in place.
func (f *fixture) simpleRepodata() {
	f.t.Helper()
	out, err := exec.Command("createrepo_c", "--simple-md-filenames", "--no-database", filepath.Join(f.origin, repoDir)).CombinedOutput()
	if err != nil {
		f.t.Fatalf("createrepo_c: %v\n%s", err, out)
	}
}

// TestServedRepomdNamingOtherBytesIsStale (defect 4, scan side): with repodata rewritten
// under the same names, a push whose last phase failed leaves the region with the new
// primary.xml.gz and the old repomd.xml. That repomd.xml is a version the origin published,
// but the files it names are not what the region holds: stale, not alternate.
func TestServedRepomdNamingOtherBytesIsStale(t *testing.T) {
	f := newFixture(t, 0)
	srv := testenv.SharedS3(t)
	a := f.s3Region("sa-east-1", srv)
	f.simpleRepodata()
	f.push(a)
	if rep := f.scan(a)[0]; f.repoState(a) != model.RepoFresh {
		t.Fatalf("first scan: %s %+v", f.repoState(a), rep)
	}
	repomdPath := repoDir + "/repodata/repomd.xml"
	old, err := os.ReadFile(filepath.Join(f.origin, repomdPath))
	if err != nil {
		t.Fatal(err)
	}
	// A second package: every metadata file changes, under the same names.
	pkgs := filepath.Join(f.origin, repoDir, "Packages")
	rpm, _ := os.ReadFile(filepath.Join(pkgs, "hello-1.0-1.noarch.rpm"))
	os.WriteFile(filepath.Join(pkgs, "hello-copy-1.0-1.noarch.rpm"), rpm, 0o644)
	f.simpleRepodata()
	f.push(a)
	// Phase 3 failed: the region still serves, and records, the old repomd.xml.
	f.putBack(a, srv, repomdPath, old)

	rep := f.scan(a)[0]
	if s := f.repoState(a); s != model.RepoStale || !strings.Contains(f.repoError(a), "primary.xml.gz") {
		t.Fatalf("region serving the old repomd.xml beside the new primary.xml.gz: %s (%q), report %+v", s, f.repoError(a), rep.Repos)
	}
	// The next push repairs it.
	f.push(a)
	if f.scan(a); f.repoState(a) != model.RepoFresh {
		t.Fatalf("after the repair: %s (%s)", f.repoState(a), f.repoError(a))
	}
}

// TestMismatchedSignatureIsStale (defect 14, scan side): a region serving the current
// repomd.xml beside an older repomd.xml.asc fails every client with repo_gpgcheck=1.
func TestMismatchedSignatureIsStale(t *testing.T) {
	f := newFixture(t, 0)
	srv := testenv.SharedS3(t)
	a := f.s3Region("me-south-1", srv)
	ascPath := repoDir + "/repodata/repomd.xml.asc"
	oldSig := []byte("-----BEGIN PGP SIGNATURE-----\nfirst\n-----END PGP SIGNATURE-----\n")
	os.WriteFile(filepath.Join(f.origin, ascPath), oldSig, 0o644)
	f.push(a)
	if f.scan(a); f.repoState(a) != model.RepoFresh {
		t.Fatalf("first scan: %s (%s)", f.repoState(a), f.repoError(a))
	}
	f.newRevision("2100000000")
	os.WriteFile(filepath.Join(f.origin, ascPath), []byte("-----BEGIN PGP SIGNATURE-----\nsecond\n-----END PGP SIGNATURE-----\n"), 0o644)
	f.push(a)
	// The signature's upload failed: the new repomd.xml beside the old signature.
	f.putBack(a, srv, ascPath, oldSig)
	rep := f.scan(a)[0]
	if s := f.repoState(a); s != model.RepoStale || !strings.Contains(f.repoError(a), "repomd.xml.asc") {
		t.Fatalf("region serving a mismatched pair: %s (%q), report %+v", s, f.repoError(a), rep.Repos)
	}
	f.push(a)
	if f.scan(a); f.repoState(a) != model.RepoFresh {
		t.Fatalf("after the repair: %s (%s)", f.repoState(a), f.repoError(a))
	}
}

var etagInXML = regexp.MustCompile(`<ETag>(&#34;|&quot;|")?([0-9a-fA-F]{32})(&#34;|&quot;|")?</ETag>`)

// fakeETag is what an SSE-KMS bucket answers instead of the MD5: 32 hex digits that are not it.
func fakeETag(etag string) string {
	m := md5.Sum([]byte("kms:" + strings.Trim(etag, `"`)))
	return hex.EncodeToString(m[:])
}

// kmsProxy stands in front of versitygw and makes its answers look like an SSE-KMS
// bucket's: every ETag (listings and Heads) is replaced by 32 hex digits that are not the
// MD5, and Heads and Gets say x-amz-server-side-encryption: aws:kms. A fault injector:
// versitygw has no KMS, and a real KMS setup is not available here. Stored checksums pass
// through untouched, as S3 keeps them for KMS objects.
func kmsProxy(t *testing.T, endpoint string) string {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		if e := resp.Header.Get("ETag"); e != "" {
			resp.Header.Set("ETag", `"`+fakeETag(e)+`"`)
			resp.Header.Set("X-Amz-Server-Side-Encryption", "aws:kms")
		}
		if resp.Request.Method == http.MethodGet && resp.Request.URL.Query().Get("list-type") == "2" {
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			body = etagInXML.ReplaceAllFunc(body, func(m []byte) []byte {
				sub := etagInXML.FindSubmatch(m)
				return []byte("<ETag>&#34;" + fakeETag(string(sub[2])) + "&#34;</ETag>")
			})
			resp.Body = io.NopCloser(bytes.NewReader(body))
			resp.ContentLength = int64(len(body))
			resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		}
		return nil
	}
	hs := httptest.NewServer(rp)
	t.Cleanup(hs.Close)
	return hs.URL
}

// TestKMSBucketObjectsAreNotCondemnedByETag (defect 7): in an SSE-KMS bucket a 32-hex ETag
// is not the MD5; the stored x-amz-checksum-sha256 decides, and only it condemns.
func TestKMSBucketObjectsAreNotCondemnedByETag(t *testing.T) {
	f := newFixture(t, 0)
	srv := testenv.SharedS3(t)
	a := f.s3Region("eu-west-7", srv)
	f.push(a)
	// The scanner reaches the bucket through the KMS look-alike.
	proxy := kmsProxy(t, srv.Endpoint)
	f.scanner.OpenStore = func(ctx context.Context, r *model.Region) (objstore.Store, error) {
		viaKMS := *r
		viaKMS.Endpoint = proxy
		return objstore.Open(ctx, &viaKMS, f.scanner.Config.StoreOptions)
	}
	rep := f.scan(a)[0]
	if rep.Corrupt != 0 || rep.Missing != 0 || rep.Verified == 0 || f.repoState(a) != model.RepoFresh || rep.Status != model.RunOK {
		t.Fatalf("scan of a KMS bucket: %+v, repository %s (%s)", rep, f.repoState(a), f.repoError(a))
	}
	// Real damage is still found: same size, other bytes, their own stored checksum.
	p := repoDir + "/Packages/greet-2.1-1.noarch.rpm"
	file, _ := f.db.GetFile(context.Background(), p)
	other := bytes.Repeat([]byte("Z"), int(file.Size))
	sum := sha256.Sum256(other)
	if _, err := srv.Client().PutObject(context.Background(), &s3.PutObjectInput{Bucket: &a.Bucket, Key: aws.String(a.Prefix + "/" + p),
		Body: bytes.NewReader(other), ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sum[:]))}); err != nil {
		t.Fatal(err)
	}
	rep = f.scan(a)[0]
	if rep.Corrupt != 1 || f.objectState(a, p) != model.ObjectCorrupt {
		t.Fatalf("scan of a KMS bucket with one damaged object: %+v", rep)
	}
}

// TestRewrittenInPlaceStaysOutUntilPushed: a push that re-signed a package under its name
// took the repository out (stale) and overwrote the package with the origin's new bytes,
// then failed before publishing repomd.xml. The region still serves the older repomd.xml,
// whose primary.xml names the package's old checksum; every object matches the origin.
// Before the fix a scan put the region back as an alternate, and dnf clients of the older
// metadata failed the package's checksum (found by TestConcurrencySoak).
func TestRewrittenInPlaceStaysOutUntilPushed(t *testing.T) {
	f := newFixture(t, 0)
	srv := testenv.SharedS3(t)
	a := f.s3Region("eu-north-1", srv)
	f.push(a)
	if f.scan(a); f.repoState(a) != model.RepoFresh {
		t.Fatalf("first scan: %s (%s)", f.repoState(a), f.repoError(a))
	}
	// The origin publishes a new version; a package is rewritten under its name.
	pkg := repoDir + "/Packages/hello-1.0-1.noarch.rpm"
	resigned, err := os.ReadFile(filepath.Join(f.origin, pkg))
	if err != nil {
		t.Fatal(err)
	}
	resigned = append(resigned, "re-signed"...)
	if err := os.WriteFile(filepath.Join(f.origin, pkg), resigned, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("createrepo_c", "--no-database", filepath.Join(f.origin, repoDir)).CombinedOutput(); err != nil {
		t.Fatalf("createrepo_c: %v\n%s", err, out)
	}
	f.inventory()
	// What the interrupted push left: the repository taken out, the package overwritten.
	repos, _ := f.db.ListRepositories(context.Background())
	states, _ := f.db.RegionRepos(context.Background())
	if len(repos) != 1 || len(states) != 1 {
		t.Fatalf("repositories %d, states %d", len(repos), len(states))
	}
	out := states[0]
	out.State, out.Error = model.RepoStale, "being rewritten in place"
	if err := f.db.SetRegionRepo(context.Background(), db.NoFence, out); err != nil {
		t.Fatal(err)
	}
	f.putBack(a, srv, pkg, resigned)

	rep := f.scan(a)[0]
	if s := f.repoState(a); s != model.RepoStale {
		t.Fatalf("a region serving the older repomd.xml over a package rewritten in place is %s (%q), report %+v", s, f.repoError(a), rep.Repos)
	}
	f.push(a)
	if f.scan(a); f.repoState(a) != model.RepoFresh {
		t.Fatalf("after the push: %s (%s)", f.repoState(a), f.repoError(a))
	}
}

// A push stopped between the signature and repomd.xml of phase 3 (killed, or its lock
// lost, so it could not record the half pair): the region serves the older repomd.xml
// beside the new signature, and every client with repo_gpgcheck=1 fails. Before the fix
// the scan confirmed it as an alternate (found by review).
func TestHalfPairIsNoAlternate(t *testing.T) {
	f := newFixture(t, 0)
	srv := testenv.SharedS3(t)
	a := f.s3Region("ca-west-1", srv)
	asc := filepath.Join(f.origin, repoDir, "repodata", "repomd.xml.asc")
	if err := os.WriteFile(asc, []byte("signature of version 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.push(a)
	if f.scan(a); f.repoState(a) != model.RepoFresh {
		t.Fatalf("first scan: %s (%s)", f.repoState(a), f.repoError(a))
	}
	f.newRevision("2300000000")
	sig2 := []byte("signature of version 2\n")
	if err := os.WriteFile(asc, sig2, 0o644); err != nil {
		t.Fatal(err)
	}
	f.inventory()
	f.putBack(a, srv, repoDir+"/repodata/repomd.xml.asc", sig2)
	rep := f.scan(a)[0]
	if s := f.repoState(a); s != model.RepoStale || !strings.Contains(f.repoError(a), "repomd.xml.asc") {
		t.Fatalf("a region serving the older repomd.xml beside the new signature: %s (%q), report %+v", s, f.repoError(a), rep.Repos)
	}
}

// An origin caught between re-signing a package and running createrepo: its current
// repomd.xml still names the old bytes, which the region holds. The region stays fresh.
// Before the fix the scan, seeing the region not hold the origin's new bytes, took every
// region out of the metalinks for the window (found by TestConcurrencySoak: 503s).
func TestOriginMidUpdateLeavesTheRegionFresh(t *testing.T) {
	f := newFixture(t, 0)
	srv := testenv.SharedS3(t)
	a := f.s3Region("il-central-1", srv)
	f.push(a)
	if f.scan(a); f.repoState(a) != model.RepoFresh {
		t.Fatalf("first scan: %s (%s)", f.repoState(a), f.repoError(a))
	}
	pkg := filepath.Join(f.origin, repoDir, "Packages", "hello-1.0-1.noarch.rpm")
	b, err := os.ReadFile(pkg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pkg, append(b, "re-signed"...), 0o644); err != nil {
		t.Fatal(err)
	}
	f.inventory()
	rep := f.scan(a)[0]
	if s := f.repoState(a); s != model.RepoFresh {
		t.Fatalf("a region holding exactly what its current metadata names is %s (%q), report %+v", s, f.repoError(a), rep.Repos)
	}
}
