// Package scanner verifies what every region really holds: it lists each region's storage
// and compares it with what is recorded, reads every repository's repomd.xml through the
// region's public URL as clients do, and keeps each region's health with hysteresis.
package scanner

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/objstore"
	"github.com/regionmirror/regionmirror/internal/repocheck"
	"github.com/regionmirror/regionmirror/pusher"
)

// Config tunes a scan.
type Config struct {
	Concurrency  int // listings in flight per region
	DownAfter    int // failed probes before a region is down
	UpAfter      int // good probes before it is up again
	Timeout      time.Duration
	Deep         bool // check contents by SHA-256 where ETags cannot tell
	StoreOptions objstore.Options
	HTTPClient   *http.Client
}

// Scanner verifies regions.
type Scanner struct {
	DB     *db.DB
	Config Config
	Log    *slog.Logger
	// OpenStore opens a region's storage (default objstore.Open).
	OpenStore func(ctx context.Context, r *model.Region) (objstore.Store, error)
}

// StatusBusy: another scan of the region was running; this one did nothing.
const StatusBusy = "busy"

// RepoReport is what a region serves for one repository.
type RepoReport struct {
	Repo       string `json:"repo"`
	Arch       string `json:"arch"`
	State      string `json:"state"`
	HTTPStatus int    `json:"http_status,omitempty"`
	Via        string `json:"via,omitempty"`
	Error      string `json:"error,omitempty"`
}

// RegionReport is what a scan found in one region.
type RegionReport struct {
	Region   string        `json:"region"`
	Status   string        `json:"status"`
	RunID    int64         `json:"run_id,omitempty"`
	Listed   int           `json:"listed_objects"`
	Verified int           `json:"verified"`  // present with the origin's bytes
	Missing  int           `json:"missing"`   // recorded, but not there
	Corrupt  int           `json:"corrupt"`   // there, with other bytes
	Adopted  int           `json:"adopted"`   // there and right, but not recorded (an interrupted push)
	Unsure   int           `json:"unchecked"` // there with the right size; contents not checkable without --deep
	Outdated int           `json:"outdated"`  // the version recorded before the origin changed: the next push replaces it
	Extra    int           `json:"extra"`     // objects the origin does not have
	Extras   []string      `json:"extra_sample,omitempty"`
	Repos    []RepoReport  `json:"repositories"`
	Health   string        `json:"health"`
	Skipped  string        `json:"skipped,omitempty"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

func (s *Scanner) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func (s *Scanner) cfg() Config {
	c := s.Config
	if c.Concurrency <= 0 {
		c.Concurrency = 8
	}
	if c.DownAfter <= 0 {
		c.DownAfter = 3
	}
	if c.UpAfter <= 0 {
		c.UpAfter = 2
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: c.Timeout}
	}
	if c.StoreOptions.Timeout == 0 {
		c.StoreOptions.Timeout = c.Timeout
	}
	return c
}

// Scan verifies the regions, a few at a time. A region that cannot be reached is reported
// (and recorded) without stopping the others.
func (s *Scanner) Scan(ctx context.Context, regions []*model.Region) ([]*RegionReport, error) {
	files, err := s.DB.ListFiles(ctx, true)
	if err != nil {
		return nil, err
	}
	repos, err := s.DB.ListRepositories(ctx)
	if err != nil {
		return nil, err
	}
	versions := map[int64][]db.RepomdVersion{}
	for _, r := range repos {
		if versions[r.ID], err = s.DB.RepomdVersions(ctx, r.ID); err != nil {
			return nil, err
		}
	}
	reports := make([]*RegionReport, len(regions))
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, r := range regions {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			reports[i] = s.VerifyRegion(ctx, r, files, repos, versions)
		})
	}
	wg.Wait()
	return reports, nil
}

// VerifyRegion scans one region and records what it found.
func (s *Scanner) VerifyRegion(ctx context.Context, r *model.Region, files []db.File, repos []model.Repository, versions map[int64][]db.RepomdVersion) *RegionReport {
	cfg := s.cfg()
	start := time.Now()
	rep := &RegionReport{Region: r.Name}
	// One scan per region at a time, whichever process or machine runs it.
	scanLock, err := s.DB.TryLock(ctx, "scan/"+r.Name)
	if err != nil {
		rep.Status, rep.Error = db.RunFailed, fmt.Sprintf("scan %s: %v", r.Name, err)
		var le *db.LockedError
		if errors.As(err, &le) {
			rep.Status = StatusBusy
		}
		return rep
	}
	defer scanLock.Release()
	run, err := s.DB.StartRun(ctx, db.RunScan, r)
	if err != nil {
		rep.Status, rep.Error = db.RunFailed, err.Error()
		return rep
	}
	rep.RunID = run.ID
	if _, err := s.DB.AbandonRuns(ctx, db.RunScan, r.ID, run.ID); err != nil {
		s.log().Warn("cannot mark interrupted scans", slog.String("region", r.Name), slog.Any("err", err))
	}
	var probeErr, runErr error
	defer func() {
		rep.Duration = time.Since(start)
		run.Files = int64(rep.Listed)
		run.Counts = map[string]int64{"listed": int64(rep.Listed), "verified": int64(rep.Verified), "missing": int64(rep.Missing),
			"corrupt": int64(rep.Corrupt), "adopted": int64(rep.Adopted), "unchecked": int64(rep.Unsure), "outdated": int64(rep.Outdated), "extra": int64(rep.Extra)}
		if runErr == nil {
			runErr = probeErr
		}
		rep.Status = db.RunOK
		if runErr != nil {
			rep.Status, rep.Error = db.RunFailed, runErr.Error()
		}
		bg := context.WithoutCancel(ctx)
		if err := s.DB.FinishRun(bg, run, runErr); err != nil {
			s.log().Error("cannot record the end of the scan", slog.String("region", r.Name), slog.Any("err", err))
		}
		if ctx.Err() == nil {
			// An interrupted scan says nothing about the region's health.
			msg := ""
			if probeErr != nil {
				msg = probeErr.Error()
			}
			if h, err := s.DB.RecordProbe(bg, r.ID, msg, cfg.DownAfter, cfg.UpAfter); err == nil {
				rep.Health = h.State
			}
		}
	}()

	open := s.OpenStore
	if open == nil {
		open = func(ctx context.Context, r *model.Region) (objstore.Store, error) {
			return objstore.Open(ctx, r, cfg.StoreOptions)
		}
	}
	store, err := open(ctx, r)
	if err != nil {
		probeErr = fmt.Errorf("scan %s: %w", r.Name, err)
		return rep
	}

	// Compare objects only while no push writes the region: a push in flight would look
	// like missing files.
	bad := map[string]bool{} // paths missing or corrupt, by path
	if lock, err := s.DB.TryLock(ctx, "push/"+r.Name); err != nil {
		var le *db.LockedError
		if !errors.As(err, &le) {
			runErr = fmt.Errorf("scan %s: %w", r.Name, err)
			return rep
		}
		rep.Skipped = "objects not compared: " + le.Error()
	} else {
		err = s.compareObjects(ctx, cfg, r, store, files, rep, bad)
		lock.Release()
		if err != nil {
			// Still check what clients get: a region whose listing fails is often down
			// for clients too, and recording that takes it out of the metalinks now
			// rather than after scan.down_after scans.
			probeErr = fmt.Errorf("scan %s: %w", r.Name, err)
		}
	}

	unreachable := 0
	var lastUnreachable string
	for _, repo := range repos {
		p := pusher.RepomdPath(repo.Directory)
		vs := versions[repo.ID]
		if len(vs) == 0 || !pusher.Included(r.Includes, p) {
			continue
		}
		res := repocheck.Check(ctx, cfg.HTTPClient, r, store, p, vs)
		if n := countUnder(bad, repo.Directory); n > 0 && (res.State == db.RepoFresh || res.State == db.RepoAlternate) {
			// What it serves names files the region lacks: clients would fail there.
			res.State, res.Error = db.RepoStale, fmt.Sprintf("%d files of the repository are missing or corrupt in this region", n)
		}
		if !res.Reachable {
			unreachable++
			lastUnreachable = res.Error
		}
		// After a failed listing only bad news is recorded: good news needs the files checked.
		good := res.State == db.RepoFresh || res.State == db.RepoAlternate
		if probeErr == nil || !good {
			if err := s.DB.SetRegionRepo(ctx, db.NoFence, res.RegionRepo); err != nil {
				runErr = err
				return rep
			}
		}
		rep.Repos = append(rep.Repos, RepoReport{Repo: repo.Name, Arch: repo.Arch, State: res.State, HTTPStatus: res.HTTPStatus, Via: res.Via, Error: res.Error})
	}
	if unreachable > 0 && probeErr == nil {
		probeErr = fmt.Errorf("scan %s: %d repositories unreachable through the public URL: %s", r.Name, unreachable, lastUnreachable)
	}
	return rep
}

func countUnder(bad map[string]bool, dir string) int {
	n := 0
	for p := range bad {
		if dir == "" || strings.HasPrefix(p, dir+"/") {
			n++
		}
	}
	return n
}

// compareObjects lists the region in parallel key ranges and records what it found for
// every file the region should carry.
func (s *Scanner) compareObjects(ctx context.Context, cfg Config, r *model.Region, store objstore.Store, files []db.File, rep *RegionReport, bad map[string]bool) error {
	var want []*db.File // live files the region carries, by path
	known := make(map[string]bool, len(files)*2)
	for i := range files {
		f := &files[i]
		known[f.Path] = true
		if twin := pusher.SpaceTwin(f.Path); twin != "" {
			known[twin] = true
		}
		if f.DeletedAt == nil && pusher.Included(r.Includes, f.Path) {
			want = append(want, f)
		}
	}
	var points []string
	if r.Kind == model.KindS3 {
		// A directory walk cannot start in the middle; only S3 lists ranges cheaply.
		points = splitPoints(want, cfg.Concurrency)
	}
	listed, err := listParallel(ctx, store, points)
	if err != nil {
		return err
	}
	rep.Listed = len(listed)
	objects, err := s.DB.RegionObjects(ctx, r.ID)
	if err != nil {
		return err
	}
	rows := make(map[int64]*db.RegionObject, len(objects))
	for i := range objects {
		rows[objects[i].FileID] = &objects[i]
	}

	var updates []db.ObjectUpdate
	for _, f := range want {
		row := rows[f.ID]
		info, ok := listed[f.Path]
		twin := pusher.SpaceTwin(f.Path)
		_, twinOK := listed[twin]
		state := db.ObjectPresent
		switch {
		case !ok || (twin != "" && !twinOK):
			state = db.ObjectMissing
		case row != nil && !bytes.Equal(row.SHA256, f.SHA256) && !s.isCurrent(ctx, cfg, store, f, info):
			// The record already says the region holds an older version (the origin
			// changed since): not damage, just not pushed yet. The record stands; the
			// next push replaces it.
			rep.Outdated++
			continue
		case info.Size != f.Size:
			state = db.ObjectCorrupt
		default:
			match, checked, err := s.sameContent(ctx, cfg, store, f, info)
			if err != nil {
				return err
			}
			if !checked {
				rep.Unsure++
				continue // nothing seen either way: the record stands
			}
			if !match {
				state = db.ObjectCorrupt
			}
		}
		switch state {
		case db.ObjectPresent:
			rep.Verified++
			if row == nil || row.State != db.ObjectPresent || !bytes.Equal(row.SHA256, f.SHA256) {
				rep.Adopted++
			}
		case db.ObjectMissing:
			if row == nil {
				// Never pushed here: nothing recorded, and nothing the region serves names
				// it yet (a push uploads metadata only after every file).
				continue
			}
			bad[f.Path] = true
			rep.Missing++
		case db.ObjectCorrupt:
			if row != nil {
				bad[f.Path] = true
			}
			rep.Corrupt++
		}
		updates = append(updates, db.ObjectUpdate{FileID: f.ID, Size: f.Size, SHA256: f.SHA256, State: state, Verified: true})
	}
	for k := range listed {
		if !known[k] {
			rep.Extra++
			if len(rep.Extras) < 20 {
				rep.Extras = append(rep.Extras, k)
			}
		}
	}
	sort.Strings(rep.Extras)
	for len(updates) > 0 {
		n := min(len(updates), 1000)
		if err := s.DB.RecordObjects(ctx, db.NoFence, r.ID, updates[:n]); err != nil {
			return err
		}
		updates = updates[n:]
	}
	return nil
}

// isCurrent reports whether an object is certainly the origin's current file.
func (s *Scanner) isCurrent(ctx context.Context, cfg Config, store objstore.Store, f *db.File, info objstore.Info) bool {
	if info.Size != f.Size {
		return false
	}
	match, checked, err := s.sameContent(ctx, cfg, store, f, info)
	return err == nil && checked && match
}

// sameContent checks an object against the origin's file: by ETag where it is a plain
// MD5, else (with --deep) by the stored SHA-256 or by reading the object.
func (s *Scanner) sameContent(ctx context.Context, cfg Config, store objstore.Store, f *db.File, info objstore.Info) (match, checked bool, err error) {
	if md5 := objstore.ETagMD5(info.ETag); md5 != nil {
		return bytes.Equal(md5, f.MD5), true, nil
	}
	if !cfg.Deep {
		return false, false, nil
	}
	if head, err := store.Head(ctx, f.Path); err == nil && head.SHA256 != nil {
		return bytes.Equal(head.SHA256, f.SHA256), true, nil
	}
	rd, err := store.Get(ctx, f.Path)
	if errors.Is(err, objstore.ErrNotExist) {
		return false, true, nil
	}
	if err != nil {
		return false, false, err
	}
	defer rd.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rd); err != nil {
		return false, false, fmt.Errorf("read %s: %w", f.Path, err)
	}
	return bytes.Equal(h.Sum(nil), f.SHA256), true, nil
}

// splitPoints cuts the key space into about n ranges of equal numbers of known files.
func splitPoints(files []*db.File, n int) []string {
	if n <= 1 || len(files) < 2*n {
		return nil
	}
	points := make([]string, 0, n-1)
	for i := 1; i < n; i++ {
		points = append(points, files[i*len(files)/n].Path)
	}
	return points
}

// listParallel lists every object, one goroutine per range between split points. Ranges
// are (point[i-1], point[i]], so every key lands in exactly one.
func listParallel(ctx context.Context, store objstore.Store, points []string) (map[string]objstore.Info, error) {
	type rng struct{ after, upTo string }
	ranges := []rng{}
	prev := ""
	for _, p := range points {
		ranges = append(ranges, rng{prev, p})
		prev = p
	}
	ranges = append(ranges, rng{prev, ""})
	var (
		mu     sync.Mutex
		out    = map[string]objstore.Info{}
		wg     sync.WaitGroup
		errs   = make([]error, len(ranges))
		cctx   context.Context
		cancel context.CancelFunc
	)
	cctx, cancel = context.WithCancel(ctx)
	defer cancel()
	for i, rg := range ranges {
		wg.Go(func() {
			local := []objstore.Info{}
			err := store.List(cctx, "", rg.after, func(info objstore.Info) error {
				if rg.upTo != "" && info.Key > rg.upTo {
					return objstore.ErrStop
				}
				local = append(local, info)
				return nil
			})
			if err != nil {
				errs[i] = err
				cancel()
				return
			}
			mu.Lock()
			for _, info := range local {
				out[info.Key] = info
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	// One range's failure cancels the others; report the cause, not the cancellations.
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, err
		}
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
