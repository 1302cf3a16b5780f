package server

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

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

func TestRepositoryStateOfCell(t *testing.T) {
	for cell, want := range map[string]string{
		model.RepoFresh: "fresh", model.RepoAlternate: "alternate", model.RepoStale: "stale", model.RepoMissing: "missing",
		model.RepoUnverified: "stale", model.RepoUnreachable: "missing", model.RepoExcluded: "", "": "",
	} {
		if got := repositoryState(cell); got != want {
			t.Errorf("%q: %q, want %q", cell, got, want)
		}
	}
}

// TestRepositoryStateMetric: regionmirror_repository_state has, for every region carrying a
// repository, one series per state, 1 for the snapshot's verdict; promtool accepts the
// exposition.
func TestRepositoryStateMetric(t *testing.T) {
	promtool := requireTool(t, "promtool", "prometheus")
	store := NewStore(nil, StoreOptions{})
	m := NewMetrics(store)
	m.now = func() time.Time { return now }
	states := func() map[string]map[string]float64 {
		t.Helper()
		families, err := m.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]map[string]float64{}
		for _, f := range families {
			if f.GetName() != "regionmirror_repository_state" {
				continue
			}
			for _, s := range f.GetMetric() {
				l := map[string]string{}
				for _, p := range s.GetLabel() {
					l[p.GetName()] = p.GetValue()
				}
				k := l["region"] + " " + l["repo"] + "/" + l["arch"]
				if out[k] == nil {
					out[k] = map[string]float64{}
				}
				out[k][l["state"]] = s.GetGauge().GetValue()
			}
		}
		return out
	}
	if got := states(); len(got) != 0 {
		t.Errorf("series before the first snapshot: %v", got)
	}
	store.Swap(fixture(t, "https://dl.example.org/pub"))
	got := states()
	for region, want := range map[string]string{
		"us-east-1": "fresh", "ap-northeast-1": "alternate", "ca-central-1": "stale", "ap-south-1": "stale",
		"eu-south-1": "missing", "eu-west-3": "missing",
	} {
		s := got[region+" demo-1/x86_64"]
		if len(s) != len(RepositoryStates) {
			t.Errorf("%s: %v, want all of %v", region, s, RepositoryStates)
		}
		for _, st := range RepositoryStates {
			if w := map[bool]float64{true: 1}[st == want]; s[st] != w {
				t.Errorf("%s state %s = %v, want %v", region, st, s[st], w)
			}
		}
	}
	if s, ok := got["me-south-1 demo-1/x86_64"]; ok {
		t.Errorf("a region excluding the repository has series %v", s)
	}
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(rec.Body.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
