package scanner

import (
	"context"
	"errors"
	"hash/fnv"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/objstore"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

// lockHolderPID finds the backend holding the named advisory lock, as an operator would:
// through pg_locks (the key is db's: FNV-64a of "regionmirror/" + name).
func lockHolderPID(ctx context.Context, conn *pgx.Conn, name string) (int, error) {
	h := fnv.New64a()
	h.Write([]byte("regionmirror/" + name))
	key := int64(h.Sum64())
	var pid int
	err := conn.QueryRow(ctx, `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND classid = ($1::bigint >> 32)::bit(32)::int::oid AND objid = ($1::bigint & 4294967295)::bit(32)::int::oid
		AND objsubid = 1`, key).Scan(&pid)
	return pid, err
}

// killLockOnList is a store that, at its first listing, terminates the database session
// holding a lock (pg_terminate_backend) and waits until PostgreSQL has released it: a lock
// connection cut in the middle of a scan.
type killLockOnList struct {
	objstore.Store
	t      *testing.T
	url    string
	lock   string
	once   sync.Once
	killed bool
}

func (k *killLockOnList) List(ctx context.Context, prefix, startAfter string, fn func(objstore.Info) error) error {
	k.once.Do(func() {
		bg := context.Background()
		conn, err := pgx.Connect(bg, k.url)
		if err != nil {
			k.t.Error(err)
			return
		}
		defer conn.Close(bg)
		pid, err := lockHolderPID(bg, conn, k.lock)
		if err != nil {
			k.t.Errorf("find the holder of %s: %v", k.lock, err)
			return
		}
		if _, err := conn.Exec(bg, "SELECT pg_terminate_backend($1)", pid); err != nil {
			k.t.Error(err)
			return
		}
		for range 500 {
			if _, err := lockHolderPID(bg, conn, k.lock); err == pgx.ErrNoRows {
				k.killed = true
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		k.t.Errorf("%s still held 5 s after its session was terminated", k.lock)
	})
	return k.Store.List(ctx, prefix, startAfter, fn)
}

// TestLostLockStopsTheScan (defect 2, scan side): when the session holding the scan's lock
// (its own, or the region's write lock) is terminated mid-scan, the scan stops, reports the
// loss, and records nothing after it: no object state, no repository state, no health probe.
func TestLostLockStopsTheScan(t *testing.T) {
	for _, lock := range []string{"write", "scan"} {
		t.Run(lock, func(t *testing.T) {
			f := newFixture(t, 0)
			ctx := context.Background()
			srv := testenv.SharedS3(t)
			a := f.s3Region("eu-north-"+lock, srv)
			f.push(a)
			f.scan(a) // a health record and a repository state to compare with
			before, _ := f.db.RegionRepos(ctx)
			healthBefore, _ := f.db.RegionHealth(ctx)
			gone := repoDir + "/Packages/hello-1.0-1.noarch.rpm"
			if _, err := srv.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &a.Bucket, Key: aws.String(a.Prefix + "/" + gone)}); err != nil {
				t.Fatal(err)
			}
			name := db.WriteLock(a.Name)
			if lock == "scan" {
				name = db.ScanLock(a.Name)
			}
			var k *killLockOnList
			f.scanner.OpenStore = func(ctx context.Context, r *model.Region) (objstore.Store, error) {
				st, err := objstore.Open(ctx, r, f.scanner.Config.StoreOptions)
				k = &killLockOnList{Store: st, t: t, url: f.dbURL, lock: name}
				return k, err
			}
			rep := f.scan(a)[0]
			if k == nil || !k.killed {
				t.Fatal("the lock's session was not terminated")
			}
			if rep.Status != model.RunFailed || !strings.Contains(rep.Error, "lock lost") {
				t.Errorf("scan after losing its %s lock: status %s, error %q", lock, rep.Status, rep.Error)
			}
			if s := f.objectState(a, gone); s != model.ObjectPresent {
				t.Errorf("object recorded %s after the loss", s)
			}
			after, _ := f.db.RegionRepos(ctx)
			if len(after) != 1 || len(before) != 1 || !after[0].VerifiedAt.Equal(*before[0].VerifiedAt) || after[0].State != before[0].State {
				t.Errorf("repository recorded after the loss: before %+v, after %+v", before, after)
			}
			healthAfter, _ := f.db.RegionHealth(ctx)
			if len(healthAfter) != 1 || len(healthBefore) != 1 || !healthAfter[0].LastProbeAt.Equal(*healthBefore[0].LastProbeAt) {
				t.Errorf("health probe recorded after the loss: before %+v, after %+v", healthBefore, healthAfter)
			}
			runs, _ := f.db.RecentRuns(ctx, model.RunScan, 1)
			if len(runs) != 1 || runs[0].Status != model.RunFailed || !strings.Contains(runs[0].Error, "lock lost") {
				t.Errorf("the run records no loss: %+v", runs)
			}
		})
	}
}

// TestBusyWriteLockRecordsOnlyUnreachable (defect 3): while a push holds the region's
// write lock, what the region serves may be half-written and the versions may move; the
// scan records nothing that takes the region away except a repository clients cannot
// reach, and says so.
func TestBusyWriteLockRecordsOnlyUnreachable(t *testing.T) {
	f := newFixture(t, 0)
	ctx := context.Background()
	srv := testenv.SharedS3(t)
	a := f.s3Region("af-south-1", srv)
	f.push(a)
	push, err := f.db.Hold(ctx, db.WriteLock(a.Name))
	if err != nil {
		t.Fatal(err)
	}
	defer push.Release()
	// Mid-push: a repomd.xml whose version the scan has not seen.
	if _, err := srv.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: &a.Bucket, Key: aws.String(a.Prefix + "/" + model.RepomdPath(repoDir)),
		Body: strings.NewReader("<repomd>not yet recorded</repomd>")}); err != nil {
		t.Fatal(err)
	}
	rep := f.scan(a)[0]
	if s := f.repoState(a); s != model.RepoFresh || !strings.Contains(rep.Skipped, "only unreachable") {
		t.Fatalf("scan beside a push: repository recorded %s, report %+v", s, rep)
	}
	// A region clients cannot reach is recorded so whoever holds the write lock.
	if _, err := srv.Client().DeleteBucketPolicy(ctx, &s3.DeleteBucketPolicyInput{Bucket: &a.Bucket}); err != nil {
		t.Fatal(err)
	}
	f.scan(a)
	if s := f.repoState(a); s != model.RepoUnreachable {
		t.Fatalf("unreachable region beside a push: %s", s)
	}
}

// probeLockTransport tries to take a lock whenever a repomd.xml is fetched, as a push
// starting at that moment would.
type probeLockTransport struct {
	d      *db.DB
	lock   string
	probes int
	taken  int
}

func (p *probeLockTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, "/repomd.xml") {
		p.probes++
		if h, err := p.d.Hold(req.Context(), p.lock); err == nil {
			p.taken++
			h.Release()
		}
	}
	return http.DefaultTransport.RoundTrip(req)
}

// TestWriteLockHeldAcrossRepomdCheck (defect 3): the region's write lock is held from the
// object comparison through the repomd.xml checks, so no push lands a version in between.
func TestWriteLockHeldAcrossRepomdCheck(t *testing.T) {
	f := newFixture(t, 0)
	a := f.s3Region("ca-central-1", testenv.SharedS3(t))
	f.push(a)
	probe := &probeLockTransport{d: f.db, lock: db.WriteLock(a.Name)}
	f.scanner.Config.HTTPClient = &http.Client{Transport: probe, Timeout: 10 * time.Second}
	rep := f.scan(a)[0]
	if probe.probes == 0 || probe.taken != 0 {
		t.Fatalf("a push could take the write lock while the scan checked repomd.xml (%d of %d times); report %+v", probe.taken, probe.probes, rep)
	}
	if f.repoState(a) != model.RepoFresh {
		t.Errorf("repository %s", f.repoState(a))
	}
}

// failingList is a region whose listing fails (a fault a real server cannot be made to
// produce on demand while its public URL still answers).
type failingList struct{ objstore.Store }

func (failingList) List(context.Context, string, string, func(objstore.Info) error) error {
	return errors.New("listing failed: connection refused")
}

// After a failed listing the scan judges nothing, so it lets the write lock go before the
// repomd.xml checks: for a dead region those wait on network timeouts, and a push of the
// region found it busy for all of them (TestFaultInjection: pushes of a region whose S3
// server had just come back were busy for over 20 s). Only unreachable is recorded.
func TestFailedListingReleasesTheWriteLock(t *testing.T) {
	f := newFixture(t, 0)
	a := f.s3Region("sa-west-1", testenv.SharedS3(t))
	f.push(a)
	f.scan(a)
	f.scanner.OpenStore = func(ctx context.Context, r *model.Region) (objstore.Store, error) {
		st, err := objstore.Open(ctx, r, f.scanner.Config.StoreOptions)
		return failingList{st}, err
	}
	probe := &probeLockTransport{d: f.db, lock: db.WriteLock(a.Name)}
	f.scanner.Config.HTTPClient = &http.Client{Transport: probe, Timeout: 10 * time.Second}
	rep := f.scan(a)[0]
	if probe.probes == 0 || probe.taken != probe.probes {
		t.Fatalf("a push could take the write lock in %d of %d repomd.xml checks after the listing failed; report %+v", probe.taken, probe.probes, rep)
	}
	if rep.Status != model.RunFailed || f.repoState(a) != model.RepoFresh {
		t.Errorf("status %s, repository %s: a failed listing records no good news and takes nothing away the public URL still serves", rep.Status, f.repoState(a))
	}
}
