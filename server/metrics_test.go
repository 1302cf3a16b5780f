package server

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/filetable"
	"github.com/regionmirror/regionmirror/internal/model"
)

// snapshotLoader serves the small tables only, failing while err is set.
type snapshotLoader struct{ err error }

func (l *snapshotLoader) LoadSnapshot(context.Context) (*model.SnapshotData, error) {
	if l.err != nil {
		return nil, l.err
	}
	return &model.SnapshotData{ReadAt: time.Now().Add(-time.Hour)}, nil
}
func (l *snapshotLoader) LoadFileTable(context.Context) (*filetable.Table, error) {
	return nil, errors.New("no files")
}
func (l *snapshotLoader) UpdateFileTable(context.Context, *filetable.Table) (*filetable.Table, db.FileTableChanges, error) {
	return nil, db.FileTableChanges{}, errors.New("no files")
}
func (l *snapshotLoader) ReconcileFileTable(context.Context, *filetable.Table) (*filetable.Table, db.FileTableChanges, error) {
	return nil, db.FileTableChanges{}, errors.New("no files")
}
func (l *snapshotLoader) Listen(ctx context.Context, _ func(), _ func(string)) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestMetricsOfStore: metrics made from a store count its builds, successful and failed,
// and read its snapshot's age and the database's state, with no wiring but NewMetrics.
func TestMetricsOfStore(t *testing.T) {
	ctx := context.Background()
	loader := &snapshotLoader{}
	var observed []string
	store := NewStore(loader, StoreOptions{OnBuild: func(kind string, _ time.Duration, err error) {
		observed = append(observed, kind)
	}})
	m := NewMetrics(store)
	// value returns the value of the series of name whose labels include labels.
	value := func(name string, labels ...string) float64 {
		t.Helper()
		families, err := m.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() != name {
				continue
			}
		series:
			for _, s := range f.GetMetric() {
				have := map[string]string{}
				for _, l := range s.GetLabel() {
					have[l.GetName()] = l.GetValue()
				}
				for i := 0; i+1 < len(labels); i += 2 {
					if have[labels[i]] != labels[i+1] {
						continue series
					}
				}
				if c := s.GetCounter(); c != nil {
					return c.GetValue()
				}
				return s.GetGauge().GetValue()
			}
		}
		return -2 // no such series
	}
	if age := value("regionmirror_snapshot_age_seconds"); age != -1 {
		t.Errorf("age before the first snapshot: %v", age)
	}
	if err := store.Refresh(ctx, false); err != nil {
		t.Fatal(err)
	}
	if n := value("regionmirror_snapshot_builds_total", "kind", "snapshot", "result", "ok"); n != 1 {
		t.Errorf("%v successful builds counted, want 1", n)
	}
	if age := value("regionmirror_snapshot_age_seconds"); age < 3600 || age > 3700 {
		t.Errorf("snapshot age %v, want an hour", age)
	}
	if up := value("regionmirror_database_up"); up != 1 {
		t.Errorf("database_up %v after a build", up)
	}
	loader.err = errors.New("connection refused")
	if err := store.Refresh(ctx, false); err == nil {
		t.Fatal("a failing load built a snapshot")
	}
	if n := value("regionmirror_snapshot_builds_total", "kind", "snapshot", "result", "error"); n != 1 {
		t.Errorf("%v failed builds counted, want 1", n)
	}
	if up := value("regionmirror_database_up"); up != 0 {
		t.Errorf("database_up %v after a failed build", up)
	}
	if len(observed) != 2 {
		t.Errorf("OnBuild saw %v, want both builds", observed)
	}
}
