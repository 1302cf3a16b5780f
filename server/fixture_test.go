package server

import (
	"context"
	"testing"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
	"github.com/regionmirror/regionmirror/server/selection"
	"github.com/regionmirror/regionmirror/server/selection/selectiontest"
)

// The server's tests answer from the selection tests' world (selectiontest).
var (
	now   = selectiontest.Now
	world = selectiontest.World
)

type regionSpec = selectiontest.Region

func fixtureData(t testing.TB, specs []regionSpec) *model.SnapshotData {
	return selectiontest.Data(t, specs)
}

func fixture(t testing.TB, origin string) *selection.Snapshot {
	return selectiontest.Snapshot(t, origin)
}

// newS3Region registers a public region in a new bucket of srv, at the coordinates given:
// what the real-client tests (dnf, apt) push to and send clients to.
func newS3Region(t testing.TB, d *db.DB, srv *testenv.S3Server, name, country string, lat, lon float64) *model.Region {
	t.Helper()
	bucket := srv.NewBucket(t, true)
	r := &model.Region{Name: name, Kind: model.KindS3, Bucket: bucket, Endpoint: srv.Endpoint,
		PublicURL: srv.URL(bucket, ""), Country: country, Latitude: &lat, Longitude: &lon, Weight: 100, Enabled: true}
	if err := r.Normalize(); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateRegion(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return r
}
