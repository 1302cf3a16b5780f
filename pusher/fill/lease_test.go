package fill

import (
	"context"
	"log/slog"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/objstore"
)

// stalledParts is a store whose uploads' second part waits for its request's context to
// end: a copy that takes longer than its lease. (A fault versitygw cannot produce on
// demand; the upload itself is real.)
type stalledParts struct {
	objstore.Store
	stalled   chan struct{} // closed when the second part is waiting
	cancelled chan struct{} // closed when its context ended
	once      sync.Once
}

func (s *stalledParts) Multipart(ctx context.Context, key string, o objstore.PutOptions) (objstore.Upload, error) {
	up, err := s.Store.Multipart(ctx, key, o)
	if err != nil {
		return nil, err
	}
	return &stalledUpload{Upload: up, s: s}, nil
}

type stalledUpload struct {
	objstore.Upload
	s *stalledParts
}

func (u *stalledUpload) PutPart(ctx context.Context, n int, data, sum []byte) error {
	if n < 2 {
		return u.Upload.PutPart(ctx, n, data, sum)
	}
	u.s.once.Do(func() { close(u.s.stalled) })
	<-ctx.Done()
	close(u.s.cancelled)
	return ctx.Err()
}

// TestWorkerCutOffFromTheDatabaseStopsBeforeItsLease: a worker whose database stops
// answering mid-copy cancels the copy by its own clock, while the database still counts
// the lease as its own (so before another worker may take the job over), and aborts its
// multipart upload. Before the local deadline, ExtendFill's failures were only logged and
// such a copy went on past the lease.
func TestWorkerCutOffFromTheDatabaseStopsBeforeItsLease(t *testing.T) {
	f := newFixture(t, 12<<20)
	ctx := context.Background()
	od := f.s3Region("od-1", model.FillOnDemand)
	u, err := url.Parse(f.url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newCutProxy(t, u.Host)
	u.Host = proxy.l.Addr().String()
	dbA, err := db.Open(ctx, u.String(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	st := &stalledParts{stalled: make(chan struct{}), cancelled: make(chan struct{})}
	cfg := testConfig()
	cfg.Workers, cfg.Lease = 1, 4*time.Second
	a := &Worker{DB: dbA, Config: cfg, OriginRoot: f.origin, Log: slog.New(slog.DiscardHandler), ID: "A",
		OpenStore: func(ctx context.Context, r *model.Region) (objstore.Store, error) {
			s, err := objstore.Open(ctx, r, storeOptions)
			st.Store = s
			return st, err
		}}
	f.queue(od, bigFile)
	actx, stopA := context.WithCancel(ctx)
	defer stopA()
	done := make(chan struct{})
	go func() { defer close(done); a.Run(actx, true) }()
	<-st.stalled
	proxy.cut()
	select {
	case <-st.cancelled:
	case <-time.After(time.Minute):
		t.Fatal("the copy of a worker cut off from the database was never cancelled")
	}
	jobs := f.jobs(od)
	if len(jobs) != 1 || jobs[0].Worker != "A" || jobs[0].LeaseUntil == nil {
		t.Fatalf("jobs %+v", jobs)
	}
	now, err := f.db.Now(ctx) // the database's clock, which the lease is counted by
	if err != nil {
		t.Fatal(err)
	}
	if !jobs[0].LeaseUntil.After(now) {
		t.Error("the copy was cancelled only after the database's lease had passed: another worker could hold the job")
	}
	stopA()
	<-done
	if n := f.uploads(od); n != 0 {
		t.Errorf("%d multipart uploads left open", n)
	}
	if o := f.object(od, bigFile); o != nil {
		t.Errorf("recorded %+v", o)
	}
}
