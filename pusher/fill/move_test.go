package fill

import (
	"context"
	"testing"

	"github.com/regionmirror/regionmirror/internal/model"
)

// TestMoveWhileRegionsCached: a worker reuses the regions it read for up to a second
// (regionsTTL). A region moved to another bucket within that second gets its next job
// copied into the OLD bucket, yet CompleteFill records the copy as present in the region,
// whose URL is now the new bucket: servers then send clients to an object that is not
// there. The job carries no region version and CompleteFill checks none.
func TestMoveWhileRegionsCached(t *testing.T) {
	f := newFixture(t, 0)
	od := f.s3Region("od-1", model.FillOnDemand)
	w := f.worker(testConfig())
	f.queue(od, hello)
	f.runOnce(w) // reads and caches the regions
	f.checkCopied(od, hello)

	newBucket := f.srv.NewBucket(t, true)
	moved, mv, err := f.db.UpdateRegion(context.Background(), od.Name, func(r *model.Region) error {
		r.Bucket = newBucket
		r.PublicURL = f.srv.Endpoint + "/" + newBucket
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("moved: %+v", mv)
	// A client in the region misses at once (the move forgot every copy): a job is queued
	// and a worker that ran a job less than a second ago claims it.
	f.queue(moved, hello)
	f.runOnce(w)
	file, _ := f.db.GetFile(context.Background(), hello)
	if o := f.object(moved, hello); o.Holds(file) {
		if code, _ := get(t, moved, hello); code != 200 {
			t.Fatalf("the moved region's copy is recorded present (%+v), but its URL answers %d: clients are sent to nothing", o, code)
		}
	}
}
