//go:build ignore

// Command snapshot measures what serve's snapshot costs at scale: a full read of the
// per-file data, updates after changes of several sizes, a small-table rebuild, and the
// process's resident memory after each and at its peak during each. Load a database with
// fill.sql first (any file and region count: the changes below scale with them, 10,000
// files changed whatever the count); the run leaves it as it found it. Run from the
// repository root:
//
//	go run testdata/bench/snapshot.go postgres://postgres@127.0.0.1:55432/bench [-first]
//
// With -first it stops after the first full read.
// It runs itself again with -start FILE to measure a start from the table file
// (server.files_cache) in a fresh process.
package main

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/filetable"
	"github.com/regionmirror/regionmirror/server"
	"github.com/regionmirror/regionmirror/server/selection"
)

// procStatus returns VmRSS and VmHWM (peak RSS) from /proc/self/status.
func procStatus() (rss, hwm string) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "?", "?"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		switch k {
		case "VmRSS":
			rss = strings.TrimSpace(v)
		case "VmHWM":
			hwm = strings.TrimSpace(v)
		}
	}
	return rss, hwm
}

// resetPeak starts a new peak RSS measurement (Linux: clear_refs 5 resets VmHWM).
func resetPeak() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

func report(what string, took time.Duration, snap *selection.Snapshot) {
	runtime.GC()
	rss, hwm := procStatus()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("%-44s %8s; %s; heap %d MiB, RSS %s, peak RSS %s\n",
		what, took.Round(time.Millisecond), snap.Stats(), ms.HeapAlloc>>20, rss, hwm)
}

func main() {
	ctx := context.Background()
	url := os.Args[1]
	d, err := db.Open(ctx, url, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	// Changes are written the way the writers write them (triggers keep the change
	// marks), but in bulk SQL: the benchmark measures the reader.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)
	run := func(sql string) {
		if _, err := conn.Exec(ctx, sql); err != nil {
			log.Fatal(err)
		}
	}
	if len(os.Args) == 4 && os.Args[2] == "-start" {
		store := server.NewStore(d, server.StoreOptions{LoadFiles: true, TableFile: os.Args[3], Policy: selection.Policy{AlternatesMaxAge: 72 * time.Hour}})
		start := time.Now()
		if err := store.Refresh(ctx, true); err != nil {
			log.Fatal(err)
		}
		report("start from the table file and an update", time.Since(start), store.Snapshot())
		return
	}
	store := server.NewStore(d, server.StoreOptions{LoadFiles: true, Policy: selection.Policy{AlternatesMaxAge: 72 * time.Hour}})
	timed := func(what string, f func(context.Context) error) {
		resetPeak()
		start := time.Now()
		if err := f(ctx); err != nil {
			log.Fatal(err)
		}
		report(what, time.Since(start), store.Snapshot())
	}
	update := func(ctx context.Context) error { return store.Refresh(ctx, true) }
	var files, regions int
	if err := conn.QueryRow(ctx, "SELECT (SELECT count(*) FROM files), (SELECT count(*) FROM regions)").Scan(&files, &regions); err != nil {
		log.Fatal(err)
	}
	step := max(files/10000, 1) // every step-th file changes: 10,000 of them
	fmt.Printf("%d files x %d regions\n", files, regions)
	timed("first full read (nothing serving yet)", store.Reload)
	if len(os.Args) == 3 && os.Args[2] == "-first" { // the first full read alone
		return
	}
	timed("small tables only", func(ctx context.Context) error { return store.Refresh(ctx, false) })
	timed("update, nothing changed", update)

	// A push of 1000 new files to every region.
	maxID := 0
	if err := conn.QueryRow(ctx, "SELECT max(id) FROM files").Scan(&maxID); err != nil {
		log.Fatal(err)
	}
	run(fmt.Sprintf(`INSERT INTO files (path, size, sha256, md5, mtime)
		SELECT 'fedora/updates/new/' || g || '.rpm', g, sha256(g::text::bytea), decode(md5(g::text), 'hex'), now()
		FROM generate_series(%d, %d) g`, maxID+1, maxID+1000))
	run(fmt.Sprintf(`INSERT INTO region_objects (region_id, file_id, size, sha256, state, verified_at, current)
		SELECT r.id, f.id, f.size, f.sha256, 'present', now(), true FROM regions r, files f WHERE f.id > %d`, maxID))
	timed(fmt.Sprintf("update: 1000 new files x %d regions", regions), update)

	// 10 000 files change at the origin: no copy holds their bytes any more.
	run(fmt.Sprintf(`UPDATE files SET size = size + 1 WHERE id %% %d = 0`, step))
	run(fmt.Sprintf(`UPDATE region_objects o SET current = false FROM files f WHERE f.id = o.file_id AND f.id %% %d = 0`, step))
	timed(fmt.Sprintf("update: %d files changed (%d copies)", files/step, files/step*regions), update)
	// ... and one region receives them.
	run(fmt.Sprintf(`UPDATE region_objects o SET current = true, size = f.size FROM files f
		WHERE f.id = o.file_id AND f.id %% %d = 0 AND o.region_id = (SELECT min(id) FROM regions)`, step))
	timed(fmt.Sprintf("update: %d copies verified in 1 region", files/step), update)
	// A whole region found broken by a scan.
	run(`UPDATE region_objects SET state = 'missing' WHERE region_id = (SELECT max(id) FROM regions)`)
	timed(fmt.Sprintf("update: %d copies lost in 1 region", files), update)
	run(`UPDATE region_objects SET state = 'present' WHERE region_id = (SELECT max(id) FROM regions)`)
	timed(fmt.Sprintf("update: %d copies back in 1 region", files), update)
	for i := 1; i <= 2; i++ {
		timed(fmt.Sprintf("reconciling read %d (every 6 h)", i), store.Reconcile)
	}
	timed("full read into a new table, the old serving", store.Reload)

	// A restart with server.files_cache: the table written to a file, then a new store
	// that starts from it and an update.
	tableFile := filepath.Join(os.TempDir(), "regionmirror-bench-files.cache")
	defer os.Remove(tableFile)
	start := time.Now()
	f, err := os.Create(tableFile)
	if err != nil {
		log.Fatal(err)
	}
	if err := filetable.Write(f, store.Snapshot().Files.Table()); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
	info, _ := os.Stat(tableFile)
	fmt.Printf("%-44s %8s; %d MB\n", "table file written", time.Since(start).Round(time.Millisecond), info.Size()>>20)
	// In a process of its own, as a restarted server would be: this one's memory is not
	// given back to the system at once.
	cmd := exec.Command(os.Args[0], url, "-start", tableFile)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		log.Fatal(err)
	}
	// Put the database back as fill.sql left it, so that runs can be repeated.
	run(fmt.Sprintf(`DELETE FROM files WHERE id > %d`, maxID))
	run(fmt.Sprintf(`UPDATE files SET size = size - 1 WHERE id %% %d = 0`, step))
	run(fmt.Sprintf(`UPDATE region_objects o SET current = true, size = f.size FROM files f WHERE f.id = o.file_id AND f.id %% %d = 0`, step))
	run(`DELETE FROM snapshot_removals`)

	snap := store.Snapshot()
	start = time.Now()
	n := 0
	for i := range 100000 {
		path := fmt.Sprintf("fedora/linux/releases/40/Everything/x86_64/os/Packages/%c/python3-package-number-%d-1.2.3-1.fc40.noarch.rpm", 'a'+byte((i+1)%26), i+1)
		if _, ok := snap.Files.Lookup(path); ok {
			n++
		}
	}
	fmt.Printf("path lookups: %d of 100000 found, %s each (incl. formatting the path)\n", n, time.Since(start)/100000)
}
