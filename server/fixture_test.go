package server

import (
	"testing"

	"github.com/regionmirror/regionmirror/internal/model"
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
