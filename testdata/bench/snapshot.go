//go:build ignore

// Command snapshot measures what serve's snapshot costs at scale: how long a full rebuild
// (small tables plus per-file data) and a small-table rebuild take, and the process's
// resident memory while serving from it and at its peak (two file tables exist while the
// new one is built). Load a database with fill.sql first. Run from the repository root:
//
//	go run testdata/bench/snapshot.go postgres://postgres@127.0.0.1:55432/bench
package main

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/server"
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

func main() {
	ctx := context.Background()
	d, err := db.Open(ctx, os.Args[1], nil)
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	store := server.NewStore(d, server.StoreOptions{LoadFiles: true, Policy: server.Policy{AlternatesMaxAge: 72 * time.Hour}})
	for i := 1; i <= 3; i++ {
		start := time.Now()
		if err := store.Refresh(ctx, true); err != nil {
			log.Fatal(err)
		}
		full := time.Since(start)
		start = time.Now()
		if err := store.Refresh(ctx, false); err != nil {
			log.Fatal(err)
		}
		small := time.Since(start)
		runtime.GC()
		rss, hwm := procStatus()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		snap := store.Snapshot()
		fmt.Printf("rebuild %d: full %s, small tables %s; %s; heap %d MiB, RSS %s, peak RSS %s\n",
			i, full.Round(time.Millisecond), small.Round(time.Millisecond), snap.Stats(), ms.HeapAlloc>>20, rss, hwm)
	}
	snap := store.Snapshot()
	start := time.Now()
	n := 0
	for i := range 100000 {
		path := fmt.Sprintf("fedora/linux/releases/40/Everything/x86_64/os/Packages/%c/python3-package-number-%d-1.2.3-1.fc40.noarch.rpm", 'a'+byte((i+1)%26), i+1)
		if _, ok := snap.Files.Lookup(path); ok {
			n++
		}
	}
	fmt.Printf("path lookups: %d of 100000 found, %s each (incl. formatting the path)\n", n, time.Since(start)/100000)
}
