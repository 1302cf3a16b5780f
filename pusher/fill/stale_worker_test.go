package fill

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/objstore"
	"github.com/regionmirror/regionmirror/pusher"
)

// cutProxy forwards TCP to PostgreSQL until cut: a worker's network path to the database.
type cutProxy struct {
	l     net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{l: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) cut() {
	p.l.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// heldPut is a store whose Put waits for release once it has begun (the request is on the
// wire; S3 completes it whatever the client's context says afterwards).
type heldPut struct {
	objstore.Store
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

func (h *heldPut) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, o objstore.PutOptions) error {
	h.once.Do(func() { close(h.started) })
	<-h.release
	return h.Store.Put(context.WithoutCancel(ctx), key, body, size, o)
}

// TestWorkerPastItsLeaseCannotOverwriteNewerCopy: a worker cut off from PostgreSQL keeps
// copying (ExtendFill's errors other than ErrJobLost are only logged; there is no local
// lease deadline), and its write to the bucket is not fenced: only CompleteFill is. Here
// the origin file is replaced (rename, as CI publishes a stable name) while worker A is
// writing the old bytes; A's lease passes, worker B takes the job over and copies and
// records the new version; then A's write lands. The region's record says the new version,
// the object holds the old bytes: clients are sent to other bytes than the Digest says.
func TestWorkerPastItsLeaseCannotOverwriteNewerCopy(t *testing.T) {
	f := newFixture(t, 0)
	ctx := context.Background()
	od := f.s3Region("od-1", model.FillOnDemand)

	u, err := url.Parse(f.url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newCutProxy(t, u.Host)
	u.Host = proxy.l.Addr().String()
	dbA, err := db.Open(ctx, u.String(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	held := &heldPut{started: make(chan struct{}), release: make(chan struct{})}
	cfg := testConfig()
	cfg.Workers, cfg.Lease = 1, time.Second
	a := &Worker{DB: dbA, Config: cfg, OriginRoot: f.origin, Log: slog.New(slog.DiscardHandler), ID: "A",
		OpenStore: func(ctx context.Context, r *model.Region) (objstore.Store, error) {
			s, err := objstore.Open(ctx, r, storeOptions)
			if err != nil {
				return nil, err
			}
			held.Store = s
			return held, nil
		}}
	f.queue(od, hello)
	actx, stopA := context.WithCancel(ctx)
	defer stopA()
	aDone := make(chan struct{})
	go func() { defer close(aDone); a.Run(actx, true) }()
	<-held.started // A has the job, the old bytes open, its PUT under way
	proxy.cut()

	// The origin publishes a new version under the same name; the inventory records it.
	p := filepath.Join(f.origin, hello)
	old, _ := os.ReadFile(p)
	fresh := bytes.Repeat([]byte("N"), len(old)) // same size
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, fresh, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	os.Chtimes(p, later, later)
	if _, err := pusher.TakeInventory(ctx, f.db, pusher.OSOrigin{Root: f.origin}, 2, false, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}

	// A's lease passes; B takes the job over and copies the new version.
	time.Sleep(cfg.Lease + 500*time.Millisecond)
	b := f.worker(testConfig())
	b.ID = "B"
	if s := f.runOnce(b); s.Copied != 1 {
		t.Fatalf("worker B: %+v", s)
	}
	file, _ := f.db.GetFile(ctx, hello)
	if o := f.object(od, hello); !o.Holds(file) {
		t.Fatalf("after B: %+v", o)
	}
	if _, got := get(t, od, hello); !bytes.Equal(got, fresh) {
		t.Fatalf("after B the object is not the new version")
	}

	// A's PUT lands.
	close(held.release)
	select {
	case <-aDone:
	case <-time.After(20 * time.Second):
		stopA()
		<-aDone
	}
	o := f.object(od, hello)
	_, got := get(t, od, hello)
	if o.Holds(file) && !bytes.Equal(got, fresh) {
		t.Fatalf("od's record says the new version (present, current), the object holds the old bytes (%q...)", got[:8])
	}
}
