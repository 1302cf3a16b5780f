package pusher

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/objstore"
)

// firstWrite records when a store is first written to.
type firstWrite struct {
	objstore.Store
	mu *sync.Mutex
	at *time.Time
}

func (s firstWrite) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts objstore.PutOptions) error {
	s.mu.Lock()
	if s.at.IsZero() {
		*s.at = time.Now()
	}
	s.mu.Unlock()
	return s.Store.Put(ctx, key, body, size, opts)
}

// TestPushAfterAMoveWaitsForTheServers: a region moved to a new URL in front of the same
// storage has its copies forgotten, so its next push sees nothing to take out, yet servers
// offer the old place, with the metadata verified there, until they read the move. The
// push must not overwrite anything before push.announce_delay has passed since the move.
// Before, it wrote at once, and the soak saw clients of the old repomd.xml at the old URL
// get the rewritten repodata.
func TestPushAfterAMoveWaitsForTheServers(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	r, dir := f.fileRegion("us-east-1")
	f.pusher.Config.AnnounceDelay = 0
	if res := f.push(r); res.Failed() {
		t.Fatalf("first push: %+v", res.Regions[0])
	}
	// The region moved to a second listener in front of the same directory: its copies are
	// forgotten, and its push writes them all again.
	second := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer second.Close()
	movedAt := time.Now()
	moved, _, err := f.db.UpdateRegion(ctx, r.Name, func(r *model.Region) error { r.PublicURL = second.URL; return r.Normalize() })
	if err != nil {
		t.Fatal(err)
	}
	const delay = 1500 * time.Millisecond
	f.pusher.Config.AnnounceDelay = delay
	var mu sync.Mutex
	var wrote time.Time
	f.pusher.OpenStore = func(ctx context.Context, r *model.Region) (objstore.Store, error) {
		s, err := objstore.Open(ctx, r, f.pusher.Config.StoreOptions)
		return firstWrite{Store: s, mu: &mu, at: &wrote}, err
	}
	if res := f.push(moved); res.Failed() {
		t.Fatalf("push after the move: %+v", res.Regions[0])
	}
	mu.Lock()
	defer mu.Unlock()
	if wrote.IsZero() {
		t.Fatal("the push after the move wrote nothing")
	}
	if early := movedAt.Add(delay).Sub(wrote); early > 0 {
		t.Fatalf("the push wrote %v before the servers had push.announce_delay to read the move", early)
	}
}
