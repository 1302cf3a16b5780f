package server

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/filetable"
	"github.com/regionmirror/regionmirror/internal/model"
)

// gateLoader blocks LoadSnapshot while gate is set and counts per-file updates.
type gateLoader struct {
	gate    atomic.Pointer[chan struct{}]
	entered chan struct{}
	updates atomic.Int64
}

func (l *gateLoader) LoadSnapshot(ctx context.Context) (*model.SnapshotData, error) {
	if g := l.gate.Load(); g != nil {
		select {
		case l.entered <- struct{}{}:
		default:
		}
		<-*g
	}
	return &model.SnapshotData{ReadAt: time.Now()}, nil
}
func (l *gateLoader) LoadFileTable(context.Context) (*filetable.Table, error) {
	return filetable.NewBuilder(0, 0).Table(), nil
}
func (l *gateLoader) UpdateFileTable(_ context.Context, base *filetable.Table) (*filetable.Table, db.FileTableChanges, error) {
	l.updates.Add(1)
	return base, db.FileTableChanges{}, nil
}
func (l *gateLoader) ReconcileFileTable(_ context.Context, base *filetable.Table) (*filetable.Table, db.FileTableChanges, error) {
	return base, db.FileTableChanges{}, nil
}
func (l *gateLoader) Listen(ctx context.Context, _ func(), _ func(string)) error {
	<-ctx.Done()
	return ctx.Err()
}

// Review 2: the store reads repositories before per-file data and relies on a files
// notification to read the per-file data after it. Notify drops a payload when the
// trigger channel is full ("a rebuild is queued anyway"), but the queued rebuild may be a
// filesKeep one: a push that records objects ("objects") and then flips a region
// ("region_repos") while the channel is full of non-files payloads (a long rebuild, a
// push flipping many repositories in many regions) gets a snapshot showing the new
// repomd.xml with per-file data that lacks its files until the next timer tick.
func TestDroppedFilesNotificationIsStillRead(t *testing.T) {
	l := &gateLoader{entered: make(chan struct{}, 1)}
	s := NewStore(l, StoreOptions{LoadFiles: true, Interval: time.Hour, Debounce: 5 * time.Millisecond, FilesMinInterval: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	deadline := time.Now().Add(5 * time.Second)
	for s.Snapshot() == nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if s.Snapshot() == nil {
		t.Fatal("no first build")
	}
	g := make(chan struct{})
	l.gate.Store(&g)
	s.Notify("region_repos")
	<-l.entered // a rebuild is running and blocked
	for range 64 {
		s.Notify("region_repos") // a push flipping many repositories in many regions
	}
	before := l.updates.Load()
	s.Notify("objects") // the objects the next flip names: dropped
	s.Notify("region_repos")
	l.gate.Store(nil)
	close(g)
	time.Sleep(500 * time.Millisecond)
	if l.updates.Load() == before {
		t.Errorf("an \"objects\" notification sent while the trigger channel was full never led to a per-file update (the next is the %v timer): snapshots show repositories newer than their per-file data", time.Hour)
	}
}
