package pusher

import (
	"context"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/objstore"
)

// Review 2: an on-demand copy of a file the origin deleted is removed by gcDeleted, which
// waits only UpdateDelay (push.announce_delay, 3s by default) after marking it, not
// OnDemandDelay (ondemand.stale_after + announce). A server cut off from the database
// just before the mark keeps redirecting to that copy (deleted files go only to the
// regions that hold them) until its per-file data is stale_after old: it is sent to an
// object already gone.
func TestGCDeletedOnDemandCopyWaitsStaleAfter(t *testing.T) {
	f := newOnDemandFixture(t, 2, 0)
	gone := "ci/f0.bin"
	f.fill(gone)
	if s := objectState(t, f.db, f.od, gone); s != model.ObjectPresent {
		t.Fatalf("%s after fill: %s", gone, s)
	}
	f.deleteAtOrigin([]*model.Region{f.od}, gone)
	const onDemandDelay = 2 * time.Second
	var deletedAfter time.Duration
	start := time.Now()
	f.pusher.OpenStore = func(ctx context.Context, r *model.Region) (objstore.Store, error) {
		st, err := objstore.Open(ctx, r, f.pusher.Config.StoreOptions)
		return observedStore{Store: st, beforeDelete: func(key string) error {
			if key == gone && deletedAfter == 0 {
				deletedAfter = time.Since(start)
			}
			return nil
		}}, err
	}
	runGC(t, f.pusher, []*model.Region{f.od}, GCOptions{ExpireAfter: 14 * 24 * time.Hour, UpdateDelay: 0, OnDemandDelay: onDemandDelay, UploadAge: -1})
	if deletedAfter == 0 {
		t.Fatalf("gc did not delete %s (state %s)", gone, objectState(t, f.db, f.od, gone))
	}
	if deletedAfter < onDemandDelay {
		t.Errorf("the on-demand copy of the deleted %s went %v after gc began, before OnDemandDelay %v: a server cut off just before the mark still sends clients there", gone, deletedAfter, onDemandDelay)
	}
}
