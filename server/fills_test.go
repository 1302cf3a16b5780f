package server

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/filetable"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/server/selection"
)

// failingFills is a FillSource that fails while failing is set: a fake, because a real
// database cannot be made to fail one statement on demand. It records what it received.
type failingFills struct {
	mu       sync.Mutex
	failing  bool
	misses   []model.FillMiss
	requests []model.CopyRequest
}

func (f *failingFills) QueueFills(_ context.Context, m []model.FillMiss) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing {
		return 0, errors.New("connection refused")
	}
	f.misses = append(f.misses, m...)
	return len(m), nil
}

func (f *failingFills) RecordCopyRequests(_ context.Context, r []model.CopyRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing {
		return errors.New("connection refused")
	}
	f.requests = append(f.requests, r...)
	return nil
}

// TestFillsBoundedAndRetried: misses are deduplicated in memory, capped (the excess is
// dropped and counted), kept across a failed flush, and written once the database answers;
// the latest request time of a copy wins.
func TestFillsBoundedAndRetried(t *testing.T) {
	src := &failingFills{failing: true}
	store := NewStore(nil, StoreOptions{})
	f := NewFills(src, FillOptions{MaxPending: 3, Metrics: NewMetrics(store)})
	r := &selection.Region{ID: 7, Name: "od"}
	for i := range 5 {
		f.Missed(r, "a/"+strconv.Itoa(i%4)) // a/0 twice, then a/1..a/3
	}
	if f.Dropped() != 1 {
		t.Errorf("dropped %d, want 1 (the fourth distinct path)", f.Dropped())
	}
	t0 := time.Unix(1000, 0)
	f.Requested(7, "b", t0)
	f.Requested(7, "b", t0.Add(time.Minute))
	f.Flush(context.Background())
	if len(src.misses) != 0 {
		t.Fatal("written while failing")
	}
	src.failing = false
	f.Flush(context.Background())
	if len(src.misses) != 3 {
		t.Errorf("%d misses written after the failure, want 3: %v", len(src.misses), src.misses)
	}
	if len(src.requests) != 1 || !src.requests[0].At.Equal(t0.Add(time.Minute)) {
		t.Errorf("requests %v", src.requests)
	}
	f.Flush(context.Background())
	if len(src.misses) != 3 || len(src.requests) != 1 {
		t.Error("a flush wrote the same misses twice")
	}
}

// TestFillsLastFlushSaysLost: when the database fails the flush Run makes on its way out,
// the log says what was lost, not that it is kept for a flush that never comes.
func TestFillsLastFlushSaysLost(t *testing.T) {
	var buf bytes.Buffer
	src := &failingFills{failing: true}
	f := NewFills(src, FillOptions{Log: slog.New(slog.NewTextHandler(&buf, nil))})
	r := &selection.Region{ID: 7, Name: "od"}
	f.Missed(r, "a/1")
	f.Missed(r, "a/2")
	f.Requested(7, "b", time.Unix(1000, 0))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f.Run(ctx)
	out := buf.String()
	if strings.Contains(out, "next flush") {
		t.Errorf("the last flush promised a next one:\n%s", out)
	}
	for _, want := range []string{"level=ERROR msg=\"fills: the last flush failed; these are lost\" what=misses count=2",
		"what=requests count=1"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// TestFillsWaiters: a waiter is released by the snapshot that shows its copy, the limit
// on waiters answers beyond it at once, and without waiters wake does nothing.
func TestFillsWaiters(t *testing.T) {
	b := filetable.NewBuilder(1, 64)
	sum := make([]byte, 32)
	if _, err := b.Add(helloPath, 5, sum, false); err != nil {
		t.Fatal(err)
	}
	specs := []regionSpec{{Name: "od", Country: "DE", Fill: model.FillOnDemand}}
	policy := selection.Policy{}
	empty := selection.BuildSnapshot(fixtureData(t, specs), selection.NewFileIndex(b.Table()), policy, nil)
	withCopy := func() *selection.Snapshot {
		b2 := filetable.NewBuilder(1, 64)
		i, err := b2.Add(helloPath, 5, sum, false)
		if err != nil {
			t.Fatal(err)
		}
		b2.Verify(1, i)
		return selection.BuildSnapshot(fixtureData(t, specs), selection.NewFileIndex(b2.Table()), policy, nil)
	}()
	store := NewStore(nil, StoreOptions{})
	store.Swap(empty)
	f := NewFills(nil, FillOptions{MaxWait: 20 * time.Second, MaxWaiters: 1})
	store.onInstall(f.wake)
	r := empty.Region("od")

	got := make(chan bool)
	go func() { got <- f.wait(context.Background(), r, helloPath, store.Snapshot) }()
	waitFor(t, "the waiter", func() bool { return f.waiting.Load() == 1 })
	// The limit: a second request does not wait.
	if f.wait(context.Background(), r, helloPath, store.Snapshot) {
		t.Error("a waiter beyond the limit waited and saw a copy")
	}
	store.Swap(empty) // a snapshot without the copy wakes nobody
	select {
	case <-got:
		t.Fatal("woken by a snapshot without the copy")
	case <-time.After(50 * time.Millisecond):
	}
	store.Swap(withCopy)
	if !<-got {
		t.Error("the waiter did not see the copy")
	}
	if f.waiting.Load() != 0 || len(f.waiters) != 0 {
		t.Errorf("%d waiting, %d entries left", f.waiting.Load(), len(f.waiters))
	}
	// A copy already there: no wait at all.
	if !f.wait(context.Background(), r, helloPath, store.Snapshot) {
		t.Error("the copy in the current snapshot was not seen")
	}
}

// TestOnDemandAnswersFromFixture: without a database, the miss and hit decisions on the
// request path: the first region carrying the file decides; a push region first records
// nothing; HEAD records a miss as GET does.
func TestOnDemandAnswersFromFixture(t *testing.T) {
	specs := []regionSpec{
		{Name: "od", Country: "DE", Lat: 50, Lon: 8, Fill: model.FillOnDemand, RepoState: model.RepoFresh, RepoVersion: "v3"},
		{Name: "push", Country: "US", Lat: 38, Lon: -77, RepoState: model.RepoFresh, RepoVersion: "v3"},
	}
	b := filetable.NewBuilder(2, 128)
	sum := make([]byte, 32)
	held, err := b.Add(helloPath, 5, sum, false)
	if err != nil {
		t.Fatal(err)
	}
	miss, err := b.Add(plusPath, 5, sum, false)
	if err != nil {
		t.Fatal(err)
	}
	b.Verify(1, held)
	b.Verify(2, held)
	b.Verify(2, miss)
	store := NewStore(nil, StoreOptions{})
	store.Swap(selection.BuildSnapshot(fixtureData(t, specs), selection.NewFileIndex(b.Table()), selection.Policy{}, nil))
	fills := NewFills(nil, FillOptions{})
	act := NewActivity(nil, ActivityOptions{})
	s := New(Options{Store: store, Fills: fills, Activity: act, Now: func() time.Time { return now }})
	for _, tc := range []struct {
		method, target, loc string
		misses, requests    int
	}{
		{"GET", "/pub/" + helloPath + "?location=od", "https://od.example/" + helloPath, 0, 1},
		{"GET", "/pub/" + plusPath + "?location=od", "https://push.example/" + model.EscapePath(plusPath), 1, 1},
		{"HEAD", "/pub/" + plusPath + "?location=od", "https://push.example/" + model.EscapePath(plusPath), 1, 1}, // the same miss
		{"GET", "/pub/" + plusPath + "?location=push", "https://push.example/" + model.EscapePath(plusPath), 1, 1},
		{"GET", "/r/od/" + plusPath, "https://push.example/" + model.EscapePath(plusPath), 1, 1},
	} {
		res, _ := do(t, s, tc.method, tc.target)
		if res.StatusCode != 302 || res.Header.Get("Location") != tc.loc {
			t.Errorf("%s %s: %d %s, want %s", tc.method, tc.target, res.StatusCode, res.Header.Get("Location"), tc.loc)
		}
		fills.mu.Lock()
		m, r := len(fills.misses), len(fills.requests)
		fills.mu.Unlock()
		if m != tc.misses || r != tc.requests {
			t.Errorf("%s %s: %d misses %d requests pending, want %d %d", tc.method, tc.target, m, r, tc.misses, tc.requests)
		}
	}
	// Misses by region for redirect_counters: the GETs only (2), not the HEAD.
	odMisses := int64(-1)
	for _, c := range act.Local() {
		if c.Region == "od" {
			odMisses = c.Misses
		}
	}
	if odMisses != 2 {
		t.Errorf("od misses %d, want 2", odMisses)
	}
}
