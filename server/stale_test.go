package server

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/server/selection"
)

// cutLoader is one serve instance's database connection, which the test cuts (a
// partition, a failover): a fault the real database cannot produce for one client alone.
type cutLoader struct {
	*db.DB
	cut atomic.Bool
}

var errCut = errors.New("connection refused")

func (l *cutLoader) LoadSnapshot(ctx context.Context) (*model.SnapshotData, error) {
	if l.cut.Load() {
		return nil, errCut
	}
	return l.DB.LoadSnapshot(ctx)
}

func (l *cutLoader) Listen(ctx context.Context, ready func(), fn func(string)) error {
	if l.cut.Load() {
		return errCut
	}
	return l.DB.Listen(ctx, ready, fn)
}

// TestStaleInstanceStopsUsingOnDemandCopies: a serve instance that cannot reach the
// database keeps serving its last snapshot, but once its per-file data is older than
// ondemand.stale_after it sends no client to an on-demand copy, which gc removes that long
// after marking it (a mark the instance cannot read). Push regions' copies it keeps
// using. (Found by review: before, the instance redirected to the removed copy forever.)
func TestStaleInstanceStopsUsingOnDemandCopies(t *testing.T) {
	w := startOnDemand(t, onDemandOptions{})
	ctx := context.Background()
	w.location(t, http.MethodGet, "/pub/"+odHello+"?location=od")
	waitFor(t, "the fill job", func() bool { return len(w.jobs(t, odHello)) == 1 })
	w.complete(t, odHello)

	const staleAfter = 2 * time.Second
	l := &cutLoader{DB: w.d}
	storeB := NewStore(l, StoreOptions{LoadFiles: true, Debounce: 20 * time.Millisecond, Interval: 100 * time.Millisecond,
		FilesMinInterval: 20 * time.Millisecond, Policy: selection.Policy{OriginURL: "https://origin.example/pub", AlternatesMaxAge: 72 * time.Hour}})
	if err := storeB.Refresh(ctx, true); err != nil {
		t.Fatal(err)
	}
	b := httptest.NewServer(New(Options{Store: storeB, DownloadPrefix: "/pub", OnDemandStaleAfter: staleAfter}).Handler())
	defer b.Close()
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go storeB.Run(bctx)
	time.Sleep(3 * staleAfter) // connected, rebuilding on its timer: never stale
	loc := func() string {
		res, _ := doURL(t, http.MethodGet, b.URL+"/pub/"+odHello+"?location=od")
		return res.Header.Get("Location")
	}
	if got := loc(); got != odURL(odHello) {
		t.Fatalf("instance B, connected: %s, want the od copy", got)
	}
	l.cut.Store(true)

	// gc's removal: mark, wait stale_after (and the announce delay) on the database's
	// clock, delete the object, forget the record.
	start := time.Now()
	file := w.files[odHello]
	if _, err := w.d.MarkCopiesDeleting(ctx, db.NoFence, w.od.ID, []int64{file.ID}); err != nil {
		t.Fatal(err)
	}
	for time.Since(start) < staleAfter+time.Second {
		// The clock is read before the request: the instance's last read began before
		// the cut, so its data is at least this old when it answers. (Read after the
		// answer, it let a request a hair inside stale_after fail the test.)
		sent := time.Since(start)
		if got := loc(); got == odURL(odHello) && sent > staleAfter {
			t.Fatalf("instance B sends clients to the od copy %s after the mark, its data %s old", sent.Round(time.Millisecond), time.Since(storeB.Snapshot().FilesReadFrom).Round(time.Millisecond))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := w.d.ForgetDeletingCopies(ctx, db.NoFence, w.od.ID, []int64{file.ID}); err != nil {
		t.Fatal(err)
	}
	if got := loc(); got != pushURL(odHello) {
		t.Errorf("instance B, cut off: %s, want the push region's copy", got)
	}
}
