package pusher

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/objstore"
	"github.com/regionmirror/regionmirror/internal/testenv"
	"github.com/regionmirror/regionmirror/server"
)

// onDemandFixture is an on-demand region in a fresh versitygw bucket, with ci/ files at
// the origin (sizes 1000, 2000, ...) and a pinned file, pushed once (metadata and pin).
type onDemandFixture struct {
	*fixture
	side  *pgx.Conn
	od    *model.Region
	store objstore.Store
}

func newOnDemandFixture(t *testing.T, files int, maxBytes int64) *onDemandFixture {
	t.Helper()
	f, url := newGCFixture(t)
	for i := range files {
		dir := filepath.Join(f.origin, "ci")
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d.bin", i)), bytes.Repeat([]byte{'a' + byte(i)}, 1000*(i+1)), 0o644)
	}
	os.MkdirAll(filepath.Join(f.origin, "pinned"), 0o755)
	os.WriteFile(filepath.Join(f.origin, "pinned", "big.bin"), bytes.Repeat([]byte("p"), 50000), 0o644)
	srv := testenv.SharedS3(t)
	bucket := srv.NewBucket(t, true)
	od := &model.Region{Name: "od-1", Kind: model.KindS3, Bucket: bucket, Endpoint: srv.Endpoint, PublicURL: srv.Endpoint + "/" + bucket,
		Prefix: "pub", Enabled: true, Fill: model.FillOnDemand, Pins: []string{"pinned"}, MaxBytes: maxBytes}
	f.add(od)
	if res := f.push(od); res.Failed() {
		t.Fatalf("push: %+v", res.Regions[0])
	}
	side, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { side.Close(context.Background()) })
	st, err := objstore.Open(context.Background(), od, f.pusher.Config.StoreOptions)
	if err != nil {
		t.Fatal(err)
	}
	return &onDemandFixture{fixture: f, side: side, od: od, store: st}
}

// fill copies origin files into the region as a fill worker does: queued, claimed, the
// object written, the job completed (recorded present, verified, requested now).
func (f *onDemandFixture) fill(paths ...string) {
	f.t.Helper()
	ctx := context.Background()
	var misses []model.FillMiss
	for _, p := range paths {
		misses = append(misses, model.FillMiss{RegionID: f.od.ID, Path: p})
	}
	if n, err := f.db.QueueFills(ctx, misses); err != nil || n != len(paths) {
		f.t.Fatalf("queue fills: %d %v", n, err)
	}
	jobs, err := f.db.ClaimFills(ctx, "test", len(paths), time.Minute)
	if err != nil || len(jobs) != len(paths) {
		f.t.Fatalf("claim fills: %d %v", len(jobs), err)
	}
	for i := range jobs {
		j := &jobs[i]
		file, err := f.db.GetFile(ctx, j.Path)
		if err != nil {
			f.t.Fatal(err)
		}
		body, err := os.ReadFile(filepath.Join(f.origin, j.Path))
		if err != nil {
			f.t.Fatal(err)
		}
		if err := f.store.Put(ctx, j.Path, bytes.NewReader(body), int64(len(body)), objstore.PutOptions{SHA256: file.SHA256}); err != nil {
			f.t.Fatal(err)
		}
		if err := f.db.CompleteFill(ctx, j, file.Size, file.SHA256); err != nil {
			f.t.Fatal(err)
		}
	}
}

// requestedAgo sets a copy's last request back in time (servers only move it forward).
func (f *onDemandFixture) requestedAgo(p string, ago time.Duration) {
	f.t.Helper()
	tag, err := f.side.Exec(context.Background(), `UPDATE region_objects o SET last_requested_at = now() - $3::interval
		FROM files f WHERE f.id = o.file_id AND f.path = $2 AND o.region_id = $1`, f.od.ID, p, ago)
	if err != nil || tag.RowsAffected() != 1 {
		f.t.Fatalf("set the last request of %s: %v %v", p, tag, err)
	}
}

func (f *onDemandFixture) inBucket(p string) bool {
	f.t.Helper()
	_, err := f.store.Head(context.Background(), p)
	if err != nil && !strings.Contains(err.Error(), objstore.ErrNotExist.Error()) {
		f.t.Fatal(err)
	}
	return err == nil
}

// watch checks, until stop, that every copy the database says present is in the bucket
// while servers may still send clients there (within delay of the read); it returns the
// number of checks and of violations.
func (f *onDemandFixture) watch(stop <-chan struct{}, delay time.Duration) (wait func() (checks, gone int64)) {
	var checks, missing atomic.Int64
	var wg sync.WaitGroup
	ctx := context.Background()
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			read := time.Now()
			objs, err := f.db.RegionObjects(ctx, f.od.ID)
			if err != nil {
				f.t.Error(err)
				return
			}
			for _, o := range objs {
				if o.State != model.ObjectPresent {
					continue
				}
				_, err := f.store.Head(ctx, o.Path)
				if time.Since(read) >= delay {
					break // a server would have reread the database since: the read is stale
				}
				checks.Add(1)
				if err != nil {
					missing.Add(1)
					f.t.Errorf("the database says %s present, the bucket: %v", o.Path, err)
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	return func() (int64, int64) { wg.Wait(); return checks.Load(), missing.Load() }
}

// TestGCExpiresAndEvictsOnDemandCopies: gc removes the copies no client asked for in
// ondemand.expire_after, then the least recently requested until the region is under its
// --max-bytes, and finishes a copy a purge marked deleting; never the metadata or the pin,
// however old; database-first (a watcher finds every copy recorded present in the bucket
// throughout); incomplete multipart uploads are aborted. --dry-run lists it all with
// reasons and changes nothing.
func TestGCExpiresAndEvictsOnDemandCopies(t *testing.T) {
	const day = 24 * time.Hour
	// ci/f0..f6: 1000..7000 bytes; f6 is purged. After the expiry of f0 and f1 the rest
	// holds 3000+4000+5000+6000 = 18000 > 14000: f2 and f3 are evicted, 11000 stay.
	f := newOnDemandFixture(t, 7, 14000)
	ctx := context.Background()
	var all []string
	for i := range 7 {
		all = append(all, fmt.Sprintf("ci/f%d.bin", i))
	}
	f.fill(all...)
	ages := []time.Duration{30 * day, 15 * day, 5 * day, 4 * day, 3 * day, time.Hour, 2 * time.Hour}
	for i, p := range all {
		f.requestedAgo(p, ages[i])
	}
	objs, err := f.db.RegionObjects(ctx, f.od.ID)
	if err != nil {
		t.Fatal(err)
	}
	var pushed []string
	for _, o := range objs {
		if !strings.HasPrefix(o.Path, "ci/") {
			pushed = append(pushed, o.Path)
			f.requestedAgo(o.Path, 100*day) // metadata and pin: never expire
		}
	}
	if !slices.Contains(pushed, "pinned/big.bin") || len(pushed) < 5 {
		t.Fatalf("pushed into the on-demand region: %v", pushed)
	}
	// f6 purged: marked deleting, its object still there for gc to finish.
	f6, err := f.db.GetFile(ctx, all[6])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.MarkCopiesDeleting(ctx, db.Fence{}, f.od.ID, []int64{f6.ID}); err != nil {
		t.Fatal(err)
	}
	// An upload a killed worker left.
	if _, err := f.store.Multipart(ctx, "ci/killed.bin", objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}

	// Dry run: the plan with reasons; nothing changes (the upload is younger than 24h).
	dry := runGC(t, f.pusher, []*model.Region{f.od}, GCOptions{ExpireAfter: 14 * day, DryRun: true})[0]
	reasons := map[string]string{}
	for _, d := range dry.OnDemand {
		reasons[d.Path] = d.Reason
	}
	want := map[string]string{all[0]: RemoveExpired, all[1]: RemoveExpired, all[2]: RemoveEvicted, all[3]: RemoveEvicted, all[6]: RemovePurged}
	if fmt.Sprint(reasons) != fmt.Sprint(want) || dry.ExpiredOnDemand != 2 || dry.Evicted != 2 || dry.Purged != 1 || dry.AbortedUploads != 0 {
		t.Fatalf("dry run: %v (want %v), %+v", reasons, want, dry)
	}
	if dry.HeldBytes != 21000 || dry.KeptBytes != 11000 { // f6, deleting, counts no more
		t.Errorf("dry run: held %d, kept %d", dry.HeldBytes, dry.KeptBytes)
	}
	for _, p := range all {
		if !f.inBucket(p) {
			t.Fatalf("the dry run removed %s", p)
		}
	}

	// A real server's snapshot too: while gc runs, a client asking for every ci/ file is
	// never sent into the region for a copy that is gone.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sstore := server.NewStore(f.db, server.StoreOptions{LoadFiles: true, Debounce: 20 * time.Millisecond,
		FilesMinInterval: 20 * time.Millisecond, Interval: time.Hour})
	go sstore.Run(sctx)
	handler := server.New(server.Options{Store: sstore, Log: slog.New(slog.DiscardHandler)}).Handler()
	redirect := func(p string) string {
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/pub/"+p, nil))
		return rec.Header().Get("Location")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.HasPrefix(redirect(all[0]), f.od.PublicURL) {
		if time.Now().After(deadline) {
			t.Fatalf("the server never sent %s into the on-demand region: %q", all[0], redirect(all[0]))
		}
		time.Sleep(20 * time.Millisecond)
	}

	const delay = 1500 * time.Millisecond
	stop := make(chan struct{})
	wait := f.watch(stop, delay)
	var sent, broken atomic.Int64
	var clients sync.WaitGroup
	clients.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, p := range all {
				if loc := redirect(p); strings.HasPrefix(loc, f.od.PublicURL) {
					sent.Add(1)
					if !served(t, f.od, p) {
						broken.Add(1)
						t.Errorf("the server sent a client to %s, which is gone", loc)
					}
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	start := time.Now()
	res := runGC(t, f.pusher, []*model.Region{f.od}, GCOptions{ExpireAfter: 14 * day, UpdateDelay: delay, UploadAge: -1})[0]
	took := time.Since(start)
	close(stop)
	checks, gone := wait()
	clients.Wait()
	if sent.Load() == 0 || broken.Load() != 0 {
		t.Errorf("server: %d redirects into the region during gc, %d to a copy that was gone", sent.Load(), broken.Load())
	}
	t.Logf("during gc: %d database checks, %d redirects into the region", checks, sent.Load())
	if res.Status != model.RunOK || res.ExpiredOnDemand != 2 || res.Evicted != 2 || res.Purged != 1 || res.Removed != 5 ||
		res.FreedBytes != 1000+2000+3000+4000+7000 || res.AbortedUploads != 1 {
		t.Fatalf("gc: %+v", res)
	}
	if took < delay {
		t.Errorf("gc took %v, less than the servers' update delay", took)
	}
	if checks == 0 || gone != 0 {
		t.Errorf("watcher: %d checks, %d copies recorded present but gone", checks, gone)
	}
	for _, p := range []string{all[0], all[1], all[2], all[3], all[6]} {
		if f.inBucket(p) || objectState(t, f.db, f.od, p) != "none" {
			t.Errorf("%s: in the bucket %v, recorded %s after gc", p, f.inBucket(p), objectState(t, f.db, f.od, p))
		}
	}
	for _, p := range append([]string{all[4], all[5]}, pushed...) {
		if !f.inBucket(p) || objectState(t, f.db, f.od, p) != model.ObjectPresent {
			t.Errorf("%s must stay: in the bucket %v, recorded %s", p, f.inBucket(p), objectState(t, f.db, f.od, p))
		}
	}
	if ups, err := f.store.(objstore.UploadCleaner).ListMultipartUploads(ctx); err != nil || len(ups) != 0 {
		t.Errorf("incomplete uploads after gc: %v %v", ups, err)
	}
	runs, err := f.db.RecentRuns(ctx, model.RunGC, 1)
	if err != nil || len(runs) != 1 || runs[0].Counts["evicted"] != 2 || runs[0].Counts["expired_on_demand"] != 2 || runs[0].Bytes != res.FreedBytes {
		t.Errorf("the gc run: %+v %v", runs, err)
	}
	// Nothing left to do: a second gc removes nothing.
	again := runGC(t, f.pusher, []*model.Region{f.od}, GCOptions{ExpireAfter: 14 * day})[0]
	if again.Removed != 0 || again.ExpiredOnDemand+again.Evicted+again.Purged != 0 {
		t.Errorf("second gc: %+v", again)
	}
}

// TestPurgeOnDemandCopy: a purge of an on-demand copy marks it deleting (its fill job
// goes too), deletes the object only after the servers' update delay, and forgets the
// record last; it is recorded as a purge run. A pushed copy (the pin) is only forgotten.
func TestPurgeOnDemandCopy(t *testing.T) {
	f := newOnDemandFixture(t, 2, 0)
	ctx := context.Background()
	p := "ci/f0.bin"
	f.fill(p)
	file, err := f.db.GetFile(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	const delay = 1500 * time.Millisecond
	var marked atomic.Int64 // UnixNano of the moment the mark was seen committed
	var deletes atomic.Int64
	f.pusher.OpenStore = func(ctx context.Context, r *model.Region) (objstore.Store, error) {
		st, err := objstore.Open(ctx, r, f.pusher.Config.StoreOptions)
		return observedStore{Store: st, beforeDelete: func(key string) error {
			deletes.Add(1)
			if s := objectState(t, f.db, f.od, p); s != model.ObjectDeleting {
				t.Errorf("%s deleted while its copy is %s", key, s)
			}
			if m := marked.Load(); m == 0 || time.Since(time.Unix(0, m)) < delay {
				t.Errorf("%s deleted before the update delay passed since its mark", key)
			}
			return nil
		}}, err
	}
	// Watch for the mark from the side: the moment it is committed.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			var state string
			err := f.side.QueryRow(ctx, `SELECT state FROM region_objects WHERE region_id = $1 AND file_id = $2`, f.od.ID, file.ID).Scan(&state)
			if err == nil && state == model.ObjectDeleting {
				marked.Store(time.Now().UnixNano())
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	res, err := f.pusher.Purge(ctx, f.od, file, delay)
	close(stop)
	wg.Wait()
	if err != nil || res.Action != PurgeRemoved || res.RunID == 0 {
		t.Fatalf("purge: %+v %v", res, err)
	}
	if deletes.Load() != 1 || f.inBucket(p) || objectState(t, f.db, f.od, p) != "none" {
		t.Errorf("after purge: %d deletes, in the bucket %v, recorded %s", deletes.Load(), f.inBucket(p), objectState(t, f.db, f.od, p))
	}
	runs, err := f.db.RecentRuns(ctx, model.RunPurge, 1)
	if err != nil || len(runs) != 1 || runs[0].Status != model.RunOK || runs[0].Files != 1 {
		t.Errorf("purge run: %+v %v", runs, err)
	}

	// A queued fill job of a copy not held: the purge removes the job.
	other := "ci/f1.bin"
	if _, err := f.db.QueueFills(ctx, []model.FillMiss{{RegionID: f.od.ID, Path: other}}); err != nil {
		t.Fatal(err)
	}
	of, _ := f.db.GetFile(ctx, other)
	res, err = f.pusher.Purge(ctx, f.od, of, 0)
	if err != nil || res.Action != PurgeNotHeld {
		t.Fatalf("purge of a copy not held: %+v %v", res, err)
	}
	if jobs, err := f.db.FillJobs(ctx, f.od.ID, of.ID, 10); err != nil || len(jobs) != 0 {
		t.Errorf("fill jobs after the purge: %v %v", jobs, err)
	}

	// The pin is pushed: forgotten, the object left for the next push to rewrite.
	pin, _ := f.db.GetFile(ctx, "pinned/big.bin")
	res, err = f.pusher.Purge(ctx, f.od, pin, time.Hour)
	if err != nil || res.Action != PurgeForgotten || objectState(t, f.db, f.od, pin.Path) != "none" || !f.inBucket(pin.Path) {
		t.Fatalf("purge of a pinned copy: %+v %v, recorded %s", res, err, objectState(t, f.db, f.od, pin.Path))
	}
	if res := f.push(f.od); res.Failed() || res.Regions[0].Uploaded != 1 {
		t.Errorf("the push after purging the pin: %+v", res.Regions[0])
	}
}
