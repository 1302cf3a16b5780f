package db_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func open(t *testing.T, url string) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

func TestMigrateFreshRerunAndRefusal(t *testing.T) {
	ctx := context.Background()
	url := testenv.NewDatabase(t)
	d := open(t, url)

	var se *db.SchemaError
	if err := d.CheckSchema(ctx); !errors.As(err, &se) || se.Have != 0 || !strings.Contains(err.Error(), "regionmirror migrate") {
		t.Fatalf("empty database: CheckSchema = %v, want a SchemaError telling to run regionmirror migrate", err)
	}
	applied, err := d.Migrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != db.LatestVersion() || applied[0] != "0001_initial" {
		t.Errorf("applied %q, want all %d migrations", applied, db.LatestVersion())
	}
	if err := d.CheckSchema(ctx); err != nil {
		t.Fatalf("after migrate: %v", err)
	}
	again, err := d.Migrate(ctx)
	if err != nil || len(again) != 0 {
		t.Fatalf("second migrate applied %q, %v; want nothing", again, err)
	}
	// Every table of the design exists.
	for _, table := range []string{"regions", "files", "region_objects", "repositories", "repomd_versions", "region_repos", "runs", "region_health"} {
		if queryInt(t, url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = $1", table) != 1 {
			t.Errorf("table %s missing", table)
		}
	}
}

func TestOutdatedAndNewerSchemaRefused(t *testing.T) {
	ctx := context.Background()
	d, url := testenv.NewDB(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// Pretend the database is one version ahead (a newer binary migrated it).
	if _, err := conn.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, 'future')", db.LatestVersion()+1); err != nil {
		t.Fatal(err)
	}
	if err := d.CheckSchema(ctx); err == nil || !strings.Contains(err.Error(), "upgrade regionmirror") {
		t.Errorf("newer schema: CheckSchema = %v", err)
	}
	if _, err := d.Migrate(ctx); err == nil {
		t.Error("Migrate ran against a newer schema")
	}
	// And one behind.
	if _, err := conn.Exec(ctx, "DELETE FROM schema_migrations WHERE version >= $1", db.LatestVersion()); err != nil {
		t.Fatal(err)
	}
	var se *db.SchemaError
	if err := d.CheckSchema(ctx); !errors.As(err, &se) || se.Have != db.LatestVersion()-1 {
		t.Errorf("outdated schema: CheckSchema = %v", err)
	}
}

func TestConcurrentMigrate(t *testing.T) {
	ctx := context.Background()
	url := testenv.NewDatabase(t)
	var wg sync.WaitGroup
	var total atomic.Int64
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			d, err := db.Open(ctx, url, nil)
			if err != nil {
				errs <- err
				return
			}
			defer d.Close()
			applied, err := d.Migrate(ctx)
			total.Add(int64(len(applied)))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if total.Load() != int64(db.LatestVersion()) {
		t.Errorf("concurrent migrations applied %d in all, want %d (each once)", total.Load(), db.LatestVersion())
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	_, err := db.Open(ctx, "postgres://rm:hunter2@127.0.0.1:1/regionmirror?connect_timeout=2", nil)
	var ce *db.ConnectError
	if !errors.As(err, &ce) {
		t.Fatalf("unreachable: err = %v, want ConnectError", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "127.0.0.1:1") || strings.Contains(msg, "hunter2") {
		t.Errorf("error must name the host and hide the password: %s", msg)
	}
	_, err = db.Open(ctx, "postgres://rm:hunter2@127.0.0.1:99999999/x", nil)
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("unparsable URL: %v", err)
	}
	if _, err := db.Open(ctx, "", nil); err == nil {
		t.Error("empty URL accepted")
	}
}

func sampleRegion(name string) *model.Region {
	lat, lon := 50.1, 8.7
	r := &model.Region{Name: name, Kind: model.KindS3, Bucket: "bucket-" + name, Endpoint: "http://127.0.0.1:9000",
		PublicURL: "http://127.0.0.1:9000/bucket-" + name, Country: "DE", Latitude: &lat, Longitude: &lon,
		Aliases: []string{name + "-alias"}, Netblocks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")},
		Includes: []string{"fedora"}, Weight: 100, Enabled: true}
	if err := r.Normalize(); err != nil {
		panic(err)
	}
	return r
}

func TestRegionCRUD(t *testing.T) {
	ctx := context.Background()
	d, _ := testenv.NewDB(t)
	r := sampleRegion("eu-central-1")
	if err := d.CreateRegion(ctx, r); err != nil {
		t.Fatal(err)
	}
	if r.ID == 0 || r.CreatedAt.IsZero() {
		t.Errorf("ID/timestamps not set: %+v", r)
	}
	got, err := d.GetRegion(ctx, "eu-central-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Continent != "EU" || *got.Latitude != 50.1 || len(got.Netblocks) != 2 || got.Netblocks[1].String() != "2001:db8::/32" ||
		got.Aliases[0] != "eu-central-1-alias" || got.Includes[0] != "fedora" || got.S3Region != "us-east-1" {
		t.Errorf("round trip lost data: %+v", got)
	}

	if err := d.CreateRegion(ctx, sampleRegion("eu-central-1")); !errors.Is(err, db.ErrExists) {
		t.Errorf("duplicate name: %v, want ErrExists", err)
	}
	clash := sampleRegion("eu-west-1")
	clash.Aliases = []string{"eu-central-1-alias"}
	if err := d.CreateRegion(ctx, clash); !errors.Is(err, db.ErrExists) || !strings.Contains(err.Error(), "eu-central-1") {
		t.Errorf("alias clash: %v", err)
	}
	byAlias := sampleRegion("eu-central-1-alias")
	if err := d.CreateRegion(ctx, byAlias); !errors.Is(err, db.ErrExists) {
		t.Errorf("name equal to another region's alias: %v", err)
	}

	if _, err := d.GetRegion(ctx, "nowhere"); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("GetRegion(unknown) = %v", err)
	}
	updated, _, err := d.UpdateRegion(ctx, "eu-central-1", func(r *model.Region) error {
		r.Weight = 7
		r.Enabled = false
		r.Latitude, r.Longitude = nil, nil
		return r.Normalize()
	})
	if err != nil || updated.Weight != 7 || updated.Enabled || !updated.UpdatedAt.After(r.UpdatedAt) {
		t.Fatalf("update: %+v %v", updated, err)
	}
	// An edit that fails writes nothing.
	_, _, err = d.UpdateRegion(ctx, "eu-central-1", func(r *model.Region) error {
		r.Weight = 99
		return errors.New("refused")
	})
	if err == nil {
		t.Fatal("failing edit returned nil")
	}
	if got, _ := d.GetRegion(ctx, "eu-central-1"); got.Weight != 7 || got.Latitude != nil {
		t.Errorf("failing edit changed the row: %+v", got)
	}
	if _, _, err := d.UpdateRegion(ctx, "nowhere", func(*model.Region) error { return nil }); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("update unknown: %v", err)
	}

	if err := d.CreateRegion(ctx, sampleRegion("ap-south-1")); err != nil {
		t.Fatal(err)
	}
	list, err := d.ListRegions(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "ap-south-1" {
		t.Fatalf("list: %v %v", list, err)
	}
	if err := d.DeleteRegion(ctx, "ap-south-1"); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteRegion(ctx, "ap-south-1"); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
}

func TestRepositoryCRUD(t *testing.T) {
	ctx := context.Background()
	d, _ := testenv.NewDB(t)
	r := &model.Repository{Name: "fedora-40", Arch: "x86_64", Directory: "fedora/40/x86_64/os"}
	if err := d.CreateRepository(ctx, r); err != nil || r.ID == 0 {
		t.Fatalf("create: %v", err)
	}
	dup := &model.Repository{Name: "fedora-40", Arch: "x86_64", Directory: "elsewhere"}
	if err := d.CreateRepository(ctx, dup); !errors.Is(err, db.ErrExists) {
		t.Errorf("duplicate: %v", err)
	}
	if err := d.CreateRepository(ctx, &model.Repository{Name: "fedora-40", Arch: "aarch64", Directory: "fedora/40/aarch64/os"}); err != nil {
		t.Fatal(err)
	}
	list, err := d.ListRepositories(ctx)
	if err != nil || len(list) != 2 || list[0].Arch != "aarch64" {
		t.Fatalf("list: %v %v", list, err)
	}
	if _, err := d.GetRepository(ctx, "fedora-40", "ppc64le"); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("get unknown: %v", err)
	}
	if err := d.DeleteRepository(ctx, "fedora-40", "x86_64"); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteRepository(ctx, "fedora-40", "x86_64"); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
}

func TestSchemaRefusesTraversalPaths(t *testing.T) {
	// The last line of defence: even a buggy writer cannot store a path outside the tree.
	ctx := context.Background()
	_, url := testenv.NewDB(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, p := range []string{"../etc/passwd", "a/../../b", "/abs", "a//b", "a/./b", "", ".."} {
		_, err := conn.Exec(ctx, `INSERT INTO files (path, size, sha256, md5, mtime) VALUES ($1, 1, $2, $3, now())`,
			p, make([]byte, 32), make([]byte, 16))
		if err == nil {
			t.Errorf("files accepted path %q", p)
		}
	}
	_, err = conn.Exec(ctx, `INSERT INTO files (path, size, sha256, md5, mtime) VALUES ('a/b..c/d.rpm', 1, $1, $2, now())`,
		make([]byte, 32), make([]byte, 16))
	if err != nil {
		t.Errorf("files refused a legal path with dots: %v", err)
	}
}

func TestWritersNotifyAfterCommit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, _ := testenv.NewDB(t)
	got := make(chan string, 10)
	ready := make(chan struct{})
	lctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Listen(lctx, func() { close(ready) }, func(p string) { got <- p }) }()
	<-ready

	// A failed write (duplicate) must not notify.
	if err := d.CreateRegion(ctx, sampleRegion("us-east-2")); err != nil {
		t.Fatal(err)
	}
	if p := <-got; p != "regions" {
		t.Errorf("payload %q, want regions", p)
	}
	_ = d.CreateRegion(ctx, sampleRegion("us-east-2"))
	if err := d.CreateRepository(ctx, &model.Repository{Name: "r", Arch: "x86_64", Directory: "r"}); err != nil {
		t.Fatal(err)
	}
	// The rolled-back duplicate sent nothing, so the next one is the repository's.
	if p := <-got; p != "repositories" {
		t.Errorf("payload %q after a failed write, want repositories", p)
	}
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Listen returned %v", err)
	}
}

func TestTransactRetriesSerializationFailures(t *testing.T) {
	ctx := context.Background()
	d, url := testenv.NewDB(t)
	if err := d.Transact(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "CREATE TABLE counter (n int); INSERT INTO counter VALUES (0)")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	increment := func(tx pgx.Tx) (int, error) {
		var n int
		if err := tx.QueryRow(ctx, "SELECT n FROM counter").Scan(&n); err != nil {
			return 0, err
		}
		return n, nil
	}
	// The first attempt reads, then another transaction commits an update, so the first
	// attempt's update is a serialization failure; Transact must run it again.
	attempts := 0
	err := d.Transact(ctx, func(tx pgx.Tx) error {
		attempts++
		n, err := increment(tx)
		if err != nil {
			return err
		}
		if attempts == 1 {
			if err := d.Transact(ctx, func(other pgx.Tx) error {
				_, err := other.Exec(ctx, "UPDATE counter SET n = n + 1")
				return err
			}); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, "UPDATE counter SET n = $1", n+1)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if attempts != 2 {
		t.Errorf("attempts = %d, want 2 (one failure, one retry)", attempts)
	}
	if n := queryInt(t, url, "SELECT n FROM counter"); n != 2 {
		t.Errorf("counter = %d, want 2: an increment was lost", n)
	}

	// An error that is not a serialization failure is returned at once.
	attempts = 0
	err = d.Transact(ctx, func(tx pgx.Tx) error {
		attempts++
		_, err := tx.Exec(ctx, "SELECT * FROM no_such_table")
		return err
	})
	if err == nil || attempts != 1 {
		t.Errorf("non-retryable error: attempts %d, err %v", attempts, err)
	}
}

func queryInt(t *testing.T, url, sql string, args ...any) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}
