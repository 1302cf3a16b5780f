package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/objstore"
	"github.com/regionmirror/regionmirror/internal/testenv"
	"github.com/regionmirror/regionmirror/pusher"
)

// pushScenario: the generated tree into 3 regions, on fresh buckets (and, for
// regionmirror, a fresh database) every time: regionmirror's one push to the 3 regions,
// then rclone sync --checksum once per region, then aws s3 sync once per region, each
// round in that order.
func (b *bench) pushScenario(ctx context.Context) error {
	origin := filepath.Join(b.tmp, "origin")
	files, repos := planTree(treeSpec{Files: b.o.files, Bytes: b.o.bytes, Seed: b.o.seed})
	logf("generating %d files, about %d MiB, under %s", len(files), b.o.bytes>>20, origin)
	start := time.Now()
	total, err := writeTree(origin, files, b.o.seed)
	if err != nil {
		return err
	}
	twins := 0
	for _, f := range files {
		if strings.Contains(f.path, "+") {
			twins++
		}
	}
	logf("generated %d files, %.1f MiB (%d with '+') in %s", len(files), float64(total)/(1<<20), twins, time.Since(start).Round(time.Millisecond))
	// Three sequential commands, as an operator would script them.
	note := fmt.Sprintf("%d files, %.0f MiB, 3 regions", len(files), float64(total)/(1<<20))

	for round := 1; round <= b.o.rounds; round++ {
		// regionmirror: one command for the 3 regions.
		bucket := fmt.Sprintf("r%d-regionmirror", round)
		if err := b.newBuckets(ctx, bucket, b.servers); err != nil {
			return err
		}
		env, err := b.setupRegionmirror(ctx, origin, bucket, b.servers, repos)
		if err != nil {
			return err
		}
		logf("round %d: regionmirror push to 3 regions", round)
		m, res, err := b.push(ctx, env)
		if err != nil {
			return err
		}
		for _, r := range res.Regions {
			if r.Uploaded != len(files) {
				return fmt.Errorf("regionmirror uploaded %d files to %s, want %d", r.Uploaded, r.Region, len(files))
			}
		}
		if err := b.check(ctx, bucket, len(files)+twins, total); err != nil {
			return err
		}
		b.record(result{scenario: "push", tool: "regionmirror push (3 regions, one command)", m: m, baseline: true, round: round,
			note: fmt.Sprintf("%s; inventory %.1fs", note, time.Duration(res.Inventory.Duration).Seconds())})
		if err := b.dropBuckets(bucket, b.servers); err != nil {
			return err
		}

		if b.skipped("rclone") {
			continue
		}
		// rclone sync --checksum, once per region.
		bucket = fmt.Sprintf("r%d-rclone", round)
		if err := b.newBuckets(ctx, bucket, b.servers); err != nil {
			return err
		}
		var sum measured
		for i := range b.servers {
			logf("round %d: rclone sync --checksum to region %d", round, i+1)
			m, err := runCmd(ctx, b.rcloneEnv(), nil, b.rclone, b.rcloneArgs(true, origin, fmt.Sprintf("r%d:%s", i, bucket))...)
			if err != nil {
				return err
			}
			sum.add(m)
		}
		if err := b.check(ctx, bucket, len(files), total); err != nil {
			return err
		}
		b.record(result{scenario: "push", tool: "rclone sync --checksum x3 (sequential)", m: sum, round: round,
			note: fmt.Sprintf("--transfers %d --checkers %d", b.o.concurrency, b.o.concurrency)})
		if err := b.dropBuckets(bucket, b.servers); err != nil {
			return err
		}

		if b.skipped("aws") {
			continue
		}
		bucket = fmt.Sprintf("r%d-aws", round)
		if err := b.newBuckets(ctx, bucket, b.servers); err != nil {
			return err
		}
		sum = measured{}
		for i, s := range b.servers {
			logf("round %d: aws s3 sync to region %d", round, i+1)
			m, err := runCmd(ctx, b.awsEnv(), nil, b.aws, b.awsArgs(origin, bucket, s)...)
			if err != nil {
				return err
			}
			sum.add(m)
		}
		if err := b.check(ctx, bucket, len(files), total); err != nil {
			return err
		}
		b.record(result{scenario: "push", tool: "aws s3 sync x3 (sequential)", m: sum, round: round,
			note: fmt.Sprintf("max_concurrent_requests %d", b.o.concurrency)})
		if err := b.dropBuckets(bucket, b.servers); err != nil {
			return err
		}
	}
	if b.o.profileDir != "" {
		if err := b.newBuckets(ctx, "prof-regionmirror", b.servers); err != nil {
			return err
		}
		env, err := b.setupRegionmirror(ctx, origin, "prof-regionmirror", b.servers, repos)
		if err != nil {
			return err
		}
		if err := b.profile(ctx, env, origin, "push"); err != nil {
			return err
		}
		if err := b.dropBuckets("prof-regionmirror", b.servers); err != nil {
			return err
		}
	}
	return os.RemoveAll(origin)
}

// check lists the bucket on every server: each must hold n objects, and at least the
// tree's bytes.
func (b *bench) check(ctx context.Context, bucket string, n int, bytes int64) error {
	for _, s := range b.servers {
		got, size, err := countObjects(ctx, s, bucket)
		if err != nil {
			return err
		}
		if got != n || size < bytes {
			return fmt.Errorf("bucket %s on %s holds %d objects, %d bytes; want %d objects, %d bytes", bucket, s.Endpoint, got, size, n, bytes)
		}
	}
	return nil
}

// noopScenario: a tree of many small files pushed once to one region (not timed), then
// pushed again with nothing to do, interleaved with rclone's no-op syncs of the same tree
// to another bucket of the same server (with --checksum, and with its default
// size+modtime comparison) and aws s3 sync's.
func (b *bench) noopScenario(ctx context.Context) error {
	origin := filepath.Join(b.tmp, "origin-noop")
	files := smallTree(b.o.noopFiles, b.o.noopSize)
	logf("generating %d files of %d bytes under %s", len(files), b.o.noopSize, origin)
	total, err := writeTree(origin, files, b.o.seed)
	if err != nil {
		return err
	}
	servers := b.servers[:1]
	s := servers[0]
	note := fmt.Sprintf("%d files, %.0f MiB, 1 region", len(files), float64(total)/(1<<20))

	// Initial copies, timed for information.
	if err := b.newBuckets(ctx, "noop-regionmirror", servers); err != nil {
		return err
	}
	env, err := b.setupRegionmirror(ctx, origin, "noop-regionmirror", servers, nil)
	if err != nil {
		return err
	}
	// What a live `regionmirror watch` of the origin leaves in the database: a watcher
	// holding its lock, beating, that has seen every change since before the first full
	// walk. This process holds it (and beats before each scheduled push) so that the
	// scheduled no-op is measured alone.
	watcher, err := b.watch(ctx, env, origin)
	if err != nil {
		return err
	}
	defer watcher.close()
	logf("noop: initial regionmirror push")
	m, _, err := b.push(ctx, env)
	if err != nil {
		return err
	}
	b.record(result{scenario: "initial", tool: "regionmirror push (first copy)", m: m, baseline: true, note: note})
	rclone := !b.skipped("rclone")
	if rclone {
		if err := b.newBuckets(ctx, "noop-rclone", servers); err != nil {
			return err
		}
		logf("noop: initial rclone sync")
		m, err = runCmd(ctx, b.rcloneEnv(), nil, b.rclone, b.rcloneArgs(true, origin, "r0:noop-rclone")...)
		if err != nil {
			return err
		}
		b.record(result{scenario: "initial", tool: "rclone sync --checksum (first copy)", m: m, note: note})
	}
	if !b.skipped("aws") {
		if err := b.newBuckets(ctx, "noop-aws", servers); err != nil {
			return err
		}
		logf("noop: initial aws s3 sync")
		m, err = runCmd(ctx, b.awsEnv(), nil, b.aws, b.awsArgs(origin, "noop-aws", s)...)
		if err != nil {
			return err
		}
		b.record(result{scenario: "initial", tool: "aws s3 sync (first copy)", m: m, note: note})
	}

	for round := 1; round <= b.o.noopRounds; round++ {
		logf("noop round %d: regionmirror push", round)
		m, res, err := b.push(ctx, env)
		if err != nil {
			return err
		}
		if r := res.Regions[0]; r.Uploaded != 0 || r.UpToDate != len(files) || res.Inventory.Hashed != 0 {
			return fmt.Errorf("no-op push uploaded %d, found %d up to date, hashed %d; want 0, %d, 0", r.Uploaded, r.UpToDate, res.Inventory.Hashed, len(files))
		}
		b.record(result{scenario: "noop", tool: "regionmirror push (no-op)", m: m, baseline: true, round: round,
			note: fmt.Sprintf("%s; inventory %.2fs", note, time.Duration(res.Inventory.Duration).Seconds())})

		logf("noop round %d: regionmirror push --scheduled (watcher live)", round)
		if err := watcher.beat(ctx); err != nil {
			return err
		}
		m, res, err = b.push(ctx, env, "--scheduled")
		if err != nil {
			return err
		}
		if !res.Noop || len(res.Regions) != 1 || !res.Regions[0].Skipped {
			return fmt.Errorf("scheduled push with a live watcher was not a no-op: noop %v, note %q", res.Noop, res.Note)
		}
		b.record(result{scenario: "noop", tool: "regionmirror push --scheduled (no-op, watcher live)", m: m, round: round,
			note: "watcher registered and beating in the database, since before the last full walk (as a live regionmirror watch leaves it); no walk, no region records read"})

		if rclone {
			logf("noop round %d: rclone sync --checksum", round)
			if m, err = runCmd(ctx, b.rcloneEnv(), nil, b.rclone, b.rcloneArgs(true, origin, "r0:noop-rclone")...); err != nil {
				return err
			}
			b.record(result{scenario: "noop", tool: "rclone sync --checksum (no-op)", m: m, round: round, note: "compares MD5 with listed ETags"})
		}

		if rclone && !b.skipped("rclone-modtime") {
			logf("noop round %d: rclone sync (size, modtime)", round)
			if m, err = runCmd(ctx, b.rcloneEnv(), nil, b.rclone, b.rcloneArgs(false, origin, "r0:noop-rclone")...); err != nil {
				return err
			}
			b.record(result{scenario: "noop", tool: "rclone sync (no-op, default size+modtime)", m: m, round: round, note: "a HEAD per object for its mtime"})
		}
		if !b.skipped("aws") {
			logf("noop round %d: aws s3 sync", round)
			if m, err = runCmd(ctx, b.awsEnv(), nil, b.aws, b.awsArgs(origin, "noop-aws", s)...); err != nil {
				return err
			}
			b.record(result{scenario: "noop", tool: "aws s3 sync (no-op)", m: m, round: round, note: "compares size and listed LastModified"})
		}
		if !b.skipped("scan") {
			// Verifying a 100k-object region: regionmirror compares the listing (ETags)
			// with the recorded MD5s; rclone check hashes the local tree and lists the bucket.
			logf("scan round %d: regionmirror scan", round)
			var out strings.Builder
			if m, err = runCmd(ctx, env, &out, b.bin, "scan", "--json"); err != nil {
				return fmt.Errorf("regionmirror scan: %w\n%s", err, out.String())
			}
			if !strings.Contains(out.String(), fmt.Sprintf(`"verified": %d`, len(files))) {
				return fmt.Errorf("scan did not verify %d objects:\n%.600s", len(files), out.String())
			}
			b.record(result{scenario: "scan", tool: "regionmirror scan", m: m, baseline: true, round: round, note: "listing vs recorded MD5s"})
			if !rclone {
				continue
			}
			logf("scan round %d: rclone check", round)
			args := []string{"check", origin, "r0:noop-rclone", "--checkers", strconv.Itoa(b.o.concurrency)}
			if m, err = runCmd(ctx, b.rcloneEnv(), nil, b.rclone, args...); err != nil {
				return err
			}
			b.record(result{scenario: "scan", tool: "rclone check", m: m, round: round, note: "hashes the local tree, lists the bucket"})
		}
	}
	if b.o.profileDir != "" {
		return b.profile(ctx, env, origin, "noop")
	}
	return nil
}

// profile runs one more push in this process with the database and origin of env, with
// the CPU profiled, for `go tool pprof`; the profile is DIR/NAME.cpu.pprof. Its time is
// not in the table.
func (b *bench) profile(ctx context.Context, env []string, origin, name string) error {
	var dbURL string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "REGIONMIRROR_DATABASE_URL="); ok {
			dbURL = v
		}
	}
	d, err := db.Open(ctx, dbURL, nil)
	if err != nil {
		return err
	}
	defer d.Close()
	regions, err := d.ResolveRegions(ctx, nil)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(b.o.profileDir, 0o755); err != nil {
		return err
	}
	cfg := pusher.DefaultConfig()
	cfg.Concurrency = b.o.concurrency
	cfg.StoreOptions = objstore.Options{AccessKey: testenv.S3AccessKey, SecretKey: testenv.S3SecretKey}
	p := &pusher.Pusher{DB: d, Origin: pusher.OSOrigin{Root: origin}, Config: cfg}
	f, err := os.Create(filepath.Join(b.o.profileDir, name+".cpu.pprof"))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	start := time.Now()
	res, err := p.Push(ctx, regions)
	pprof.StopCPUProfile()
	if err != nil {
		return err
	}
	if res.Failed() {
		return fmt.Errorf("profiled %s push failed: %s", name, res.Regions[0].Error)
	}
	logf("profiled in-process push (%s): %s (inventory %s); profile in %s", name, time.Since(start).Round(time.Millisecond),
		res.Inventory.Duration.Round(time.Millisecond), f.Name())
	return nil
}

// benchWatcher is a watcher record of the origin held by this process, standing for a
// live `regionmirror watch`.
type benchWatcher struct {
	d     *db.DB
	w     *db.Watcher
	since time.Time
}

// watch registers a watcher of origin in env's database that has seen every change
// since now (before the first full walk).
func (b *bench) watch(ctx context.Context, env []string, origin string) (*benchWatcher, error) {
	var dbURL string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "REGIONMIRROR_DATABASE_URL="); ok {
			dbURL = v
		}
	}
	d, err := db.Open(ctx, dbURL, nil)
	if err != nil {
		return nil, err
	}
	since, err := d.Now(ctx)
	if err != nil {
		d.Close()
		return nil, err
	}
	w, err := d.RegisterWatcher(ctx, origin, "benchpush", os.Getpid())
	if err != nil {
		d.Close()
		return nil, err
	}
	bw := &benchWatcher{d: d, w: w, since: since}
	if err := bw.beat(ctx); err != nil {
		bw.close()
		return nil, err
	}
	return bw, nil
}

// beat says the watcher is alive, has seen every change since it started, none pending.
func (bw *benchWatcher) beat(ctx context.Context) error { return bw.w.Beat(ctx, &bw.since, 0) }

func (bw *benchWatcher) close() {
	_ = bw.w.Close(context.Background())
	bw.d.Close()
}
