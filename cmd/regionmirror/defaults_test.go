package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/config"
	"github.com/regionmirror/regionmirror/internal/objstore"
)

// The defaults live only in config.Default(): what push, scan, gc and cron hand the pusher
// and the scanner when no key is set must be what the pusher and the scanner used to
// default to themselves (before issue 13), and announce_delay: 0 must reach them as 0.
func TestConfigDefaultsReachPusherAndScanner(t *testing.T) {
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const announce = 3 * time.Second
	for _, tc := range []struct {
		name     string
		path     string // "" for config.Default() itself
		announce time.Duration
	}{
		{"config.Default()", "", announce},
		{"empty file", file("empty.yaml", ""), announce},
		{"file with unrelated keys", file("other.yaml", "log:\n  level: debug\nserver:\n  listen: 127.0.0.1:9000\n"), announce},
		{"announce_delay 0", file("noannounce.yaml", "push:\n  announce_delay: 0s\n"), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			if tc.path != "" {
				loaded, err := config.Load(tc.path, nil)
				if err != nil {
					t.Fatal(err)
				}
				cfg = *loaded
			}
			cfg.Origin.Path = "/origin"
			a := &app{cfg: &cfg, db: &db.DB{}}

			p, err := a.newPusher(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			pc := p.Config
			if pc.Concurrency != 16 || pc.MultipartThreshold != 64<<20 || pc.PartSize != 16<<20 || pc.HashWorkers != 4 ||
				pc.MemoryBudget != 512<<20 || pc.AnnounceDelay != tc.announce || pc.DryRun {
				t.Errorf("pusher config = %+v", pc)
			}
			if pc.HTTPClient == nil || pc.HTTPClient.Timeout != 30*time.Second {
				t.Errorf("pusher HTTP client = %+v, want a 30s timeout", pc.HTTPClient)
			}
			if pc.StoreOptions != (objstore.Options{}) {
				t.Errorf("pusher store options = %+v, want objstore's own", pc.StoreOptions)
			}

			sc := a.newScanner(nil, true).Config
			if sc.Concurrency != 8 || sc.DownAfter != 3 || sc.UpAfter != 2 ||
				sc.StoreOptions.Timeout != 30*time.Second || !sc.Deep {
				t.Errorf("scanner config = %+v", sc)
			}
			if sc.HTTPClient == nil || sc.HTTPClient.Timeout != 30*time.Second {
				t.Errorf("scanner HTTP client = %+v, want a 30s timeout", sc.HTTPClient)
			}

			gc := a.gcOptions(false)
			if gc.Grace != 96*time.Hour || gc.AlternatesMaxAge != 72*time.Hour || gc.UpdateDelay != tc.announce || gc.DryRun {
				t.Errorf("gc options = %+v", gc)
			}
		})
	}
}
