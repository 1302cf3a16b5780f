package scanner

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/config"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/objstore"
	"github.com/regionmirror/regionmirror/internal/repocheck"
	"github.com/regionmirror/regionmirror/internal/repomd"
)

// Config tunes a scan. NewConfig makes one from the configuration file's scan section;
// the defaults live there (config.Default), not here.
type Config struct {
	Concurrency  int  // listings in flight per region
	DownAfter    int  // failed probes before a region is down
	UpAfter      int  // good probes before it is up again
	Deep         bool // check contents by SHA-256 where ETags cannot tell
	StoreOptions objstore.Options
	HTTPClient   *http.Client
}

// NewConfig is the scan configuration that c (scan.* of the configuration file) gives:
// its timeout bounds every read through a public URL and every storage request.
func NewConfig(c config.Scan) Config {
	return Config{
		Concurrency:  c.Concurrency,
		DownAfter:    c.DownAfter,
		UpAfter:      c.UpAfter,
		StoreOptions: objstore.Options{Timeout: c.Timeout.Std()},
		HTTPClient:   &http.Client{Timeout: c.Timeout.Std()},
	}
}

// check refuses a configuration a scan cannot run with (a zero Config would wait forever
// for a listing slot).
func (c Config) check() error {
	switch {
	case c.Concurrency < 1:
		return fmt.Errorf("scan: concurrency %d: must be at least 1 (start from scanner.NewConfig)", c.Concurrency)
	case c.DownAfter < 1 || c.UpAfter < 1:
		return fmt.Errorf("scan: down after %d, up after %d: must be at least 1", c.DownAfter, c.UpAfter)
	case c.HTTPClient == nil:
		return errors.New("scan: no HTTP client")
	}
	return nil
}

// Scanner verifies regions.
type Scanner struct {
	DB     *db.DB
	Config Config
	Log    *slog.Logger
	// OpenStore opens a region's storage (default objstore.Open).
	OpenStore func(ctx context.Context, r *model.Region) (objstore.Store, error)
}

// RepoReport is what a region serves for one repository.
type RepoReport struct {
	Repo       string `json:"repo"`
	Arch       string `json:"arch"`
	State      string `json:"state"`
	HTTPStatus int    `json:"http_status,omitempty"`
	Via        string `json:"via,omitempty"`
	Error      string `json:"error,omitempty"`
	// NotRecorded: a push held the region, so what was read is reported, not recorded.
	NotRecorded bool `json:"not_recorded,omitempty"`
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

// Scan verifies the regions, a few at a time. A region that cannot be reached is reported
// (and recorded) without stopping the others. Each region is judged against the origin's
// files and repomd.xml versions as they are when that region is checked, under its write
// lock: a push may land a new version while other regions are scanned.
func (s *Scanner) Scan(ctx context.Context, regions []*model.Region) ([]*RegionReport, error) {
	if err := s.Config.check(); err != nil {
		return nil, err
	}
	reports := make([]*RegionReport, len(regions))
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, r := range regions {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			reports[i] = s.VerifyRegion(ctx, r)
		})
	}
	wg.Wait()
	return reports, nil
}

// originState is what the database says the origin holds, read under a region's write lock.
type originState struct {
	files    []model.File
	byPath   map[string]*model.File
	repos    []model.Repository
	versions map[int64][]model.RepomdVersion
	served   map[[2]int64]*model.RegionRepo // (region, repository) -> what was last recorded
}

func (s *Scanner) loadOrigin(ctx context.Context) (*originState, error) {
	files, err := s.DB.ListFiles(ctx, true)
	if err != nil {
		return nil, err
	}
	repos, err := s.DB.ListRepositories(ctx)
	if err != nil {
		return nil, err
	}
	o := &originState{files: files, byPath: make(map[string]*model.File, len(files)), repos: repos, versions: map[int64][]model.RepomdVersion{}}
	for i := range files {
		o.byPath[files[i].Path] = &files[i]
	}
	for _, r := range repos {
		if o.versions[r.ID], err = s.DB.RepomdVersions(ctx, r.ID); err != nil {
			return nil, err
		}
	}
	states, err := s.DB.RegionRepos(ctx)
	if err != nil {
		return nil, err
	}
	o.served = make(map[[2]int64]*model.RegionRepo, len(states))
	for i := range states {
		o.served[[2]int64{states[i].RegionID, states[i].RepositoryID}] = &states[i]
	}
	return o, nil
}

// objectsSeen is what the object comparison found, for judging repositories.
type objectsSeen struct {
	verdicts map[string]Verdict // by path, for the live files the region carries
	bad      map[string]bool    // recorded copies missing or corrupt
	standing map[string]bool    // unchecked, but recorded verified with the origin's bytes
	older    map[string][]byte  // there, recorded verified with an older version's sha256
	listed   map[string]objstore.Info
}

// holds reports whether the scan may count the region as holding the origin's file at p:
// seen with its bytes, or there with its size and recorded verified (contents this scan
// could not check).
func (o *objectsSeen) holds(p string) bool { return o.verdicts[p].Holds() || o.standing[p] }

// VerifyRegion scans one region and records what it found.
func (s *Scanner) VerifyRegion(ctx context.Context, r *model.Region) *RegionReport {
	cfg := s.Config
	start := time.Now()
	rep := &RegionReport{Region: r.Name}
	if err := cfg.check(); err != nil {
		rep.Status, rep.Error = model.RunFailed, err.Error()
		return rep
	}
	parent := ctx // ctx becomes the locks' context below; they end before the deferred records
	// One scan per region at a time, whichever process or machine runs it.
	run, err := s.DB.BeginRegionRun(ctx, model.RunScan, r)
	if err != nil {
		rep.Status, rep.Error = model.RunFailed, err.Error()
		if errors.Is(err, db.ErrLocked) {
			rep.Status = model.RunBusy
		}
		return rep
	}
	rep.RunID = run.Run.ID
	if run.Abandoned > 0 {
		s.log().Info("earlier scans marked interrupted", slog.String("region", r.Name), slog.Int("runs", run.Abandoned))
	}
	var (
		probeErr, runErr error
		write            *db.Held // the region's write lock, while held
	)
	// lost is the loss of either lock, if one was lost: the run stops at the next step and
	// records nothing more (writes carry the write lock's fence; the scan lock is checked
	// before each write).
	lost := func() error {
		if err := run.Err(); err != nil {
			return err
		}
		if write != nil {
			return write.Err()
		}
		return nil
	}
	defer func() {
		if write != nil {
			write.Release()
		}
		rep.Duration = time.Since(start)
		run.Run.Files = int64(rep.Listed)
		run.Run.Counts = map[string]int64{"listed": int64(rep.Listed), "verified": int64(rep.Verified), "missing": int64(rep.Missing),
			"corrupt": int64(rep.Corrupt), "adopted": int64(rep.Adopted), "unchecked": int64(rep.Unsure), "outdated": int64(rep.Outdated), "extra": int64(rep.Extra)}
		lostErr := lost()
		if lostErr == nil && errors.Is(runErr, db.ErrLockLost) {
			lostErr = runErr // a fenced write saw it first
		}
		if lostErr != nil {
			runErr = fmt.Errorf("scan %s stopped, nothing recorded after the loss: %w", r.Name, lostErr)
		}
		if runErr == nil {
			runErr = probeErr
		}
		rep.Status = model.RunOK
		if runErr != nil {
			rep.Status, rep.Error = model.RunFailed, runErr.Error()
		}
		if err := run.Finish(parent, runErr); err != nil {
			s.log().Error("cannot record the end of the scan", slog.String("region", r.Name), slog.Any("err", err))
		}
		if parent.Err() == nil && lostErr == nil {
			// An interrupted scan says nothing about the region's health.
			msg := ""
			if probeErr != nil {
				msg = probeErr.Error()
			}
			if h, err := s.DB.RecordProbe(context.WithoutCancel(parent), r.ID, msg, cfg.DownAfter, cfg.UpAfter); err == nil {
				rep.Health = h.State
			}
		}
	}()
	// Everything below stops when the scan lock is lost.
	ctx = run.Context()

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

	// Objects are compared and repositories judged under the region's write lock, held
	// across both, so that no push changes the region or the versions in between: a push
	// in flight would look like missing files, and a version it lands like a stale region.
	// When a push holds it, only what is certainly true whoever writes is recorded: a
	// repository clients cannot reach.
	fence := run.Fence()
	write, err = s.DB.Hold(ctx, db.WriteLock(r.Name))
	switch {
	case errors.Is(err, db.ErrLocked):
		rep.Skipped = "objects not compared and repositories not judged (only unreachable ones recorded): " + err.Error()
	case err != nil:
		runErr = fmt.Errorf("scan %s: %w", r.Name, err)
		return rep
	default:
		// Derived from the scan lock's context: cancelled when either lock is lost.
		ctx, fence = write.Context(), write.Fence()
	}
	judged := write != nil
	// check runs before every write: the fence covers the write lock, this the scan lock.
	check := func() error {
		if err := run.Check(ctx); err != nil {
			return err
		}
		return lost()
	}
	// The origin as it is now, under the lock: versions a push recorded during the scan
	// of other regions count.
	origin, err := s.loadOrigin(ctx)
	if err != nil {
		runErr = fmt.Errorf("scan %s: %w", r.Name, err)
		return rep
	}
	var seen *objectsSeen
	if judged {
		seen, err = s.compareObjects(ctx, cfg, r, store, origin, rep, fence, check)
		if errors.Is(err, db.ErrLockLost) || lost() != nil {
			runErr = err
			return rep
		}
		if err != nil {
			// Still check what clients get: a region whose listing fails is often down
			// for clients too, and recording that takes it out of the metalinks now
			// rather than after scan.down_after scans. Without the listing nothing is
			// judged, so the write lock goes: the checks of a dead region wait on network
			// timeouts, and pushes of the region must not wait on them.
			probeErr = fmt.Errorf("scan %s: %w", r.Name, err)
			seen = nil
			write.Release()
			write, judged = nil, false
			ctx, fence = run.Context(), run.Fence()
			rep.Skipped = "repositories not judged after the listing failed (only unreachable ones recorded)"
		}
	}

	unreachable := 0
	var lastUnreachable string
	for _, repo := range origin.repos {
		vs := origin.versions[repo.ID]
		if len(vs) == 0 || !r.CarriesRepository(repo.Directory) {
			continue
		}
		res := repocheck.Check(ctx, cfg.HTTPClient, r, store, repo.MetadataPath(), vs)
		if seen != nil {
			s.judgeServed(ctx, cfg, r, store, repo, origin, seen, &res)
		}
		// What was read after a loss (or while cancelled) is not evidence.
		if err := lost(); err != nil {
			runErr = err
			return rep
		}
		if ctx.Err() != nil {
			runErr = fmt.Errorf("scan %s: %w", r.Name, context.Cause(ctx))
			return rep
		}
		if !res.Reachable {
			unreachable++
			lastUnreachable = res.Error
		}
		recorded := false
		switch {
		case !judged && res.State != model.RepoUnreachable:
			// A push holds the region (what it serves may be half-written, and the push
			// records the result itself), or the listing failed (good news needs the
			// files checked, and without the write lock a version a push lands meanwhile
			// would look stale).
		default:
			err := check()
			if err == nil {
				err = s.DB.SetRegionRepo(ctx, fence, res.RegionRepo)
			}
			if err != nil {
				runErr = err
				return rep
			}
			recorded = true
		}
		rep.Repos = append(rep.Repos, RepoReport{Repo: repo.Name, Arch: repo.Arch, State: res.State, HTTPStatus: res.HTTPStatus, Via: res.Via, Error: res.Error,
			NotRecorded: !recorded && !judged})
	}
	if unreachable > 0 && probeErr == nil {
		probeErr = fmt.Errorf("scan %s: %d repositories unreachable through the public URL: %s", r.Name, unreachable, lastUnreachable)
	}
	return rep
}

// judgeServed checks a repository that serves a version the origin published against what
// the region holds: no file of the repository missing or corrupt, every file its served
// repomd.xml names with the checksum it names (files rewritten under the same name break
// that), and beside the current repomd.xml the origin's repomd.xml.asc. Any of these
// failing makes it stale, with the reason.
func (s *Scanner) judgeServed(ctx context.Context, cfg Config, r *model.Region, store objstore.Store, repo model.Repository, origin *originState, seen *objectsSeen, res *repocheck.Result) {
	if res.State != model.RepoFresh && res.State != model.RepoAlternate {
		return
	}
	stale := func(format string, args ...any) {
		res.State, res.Error = model.RepoStale, fmt.Sprintf(format, args...)
	}
	if repo.IsApt() {
		s.judgeApt(ctx, cfg, r, store, repo, origin, seen, res)
		return
	}
	if n := countUnder(seen.bad, repo.Directory); n > 0 {
		// What it serves names files the region lacks: clients would fail there.
		stale("%d files of the repository are missing or corrupt in this region", n)
		return
	}
	md, err := repomd.Parse(bytes.NewReader(res.Body))
	if err != nil {
		stale("cannot parse the repomd.xml it serves: %v", err)
		return
	}
	for _, d := range md.Data {
		p := path.Join(repo.Directory, d.Href)
		f := origin.byPath[p]
		ev := DataEvidence(d, f, f != nil && f.DeletedAt == nil && seen.verdicts[p].Holds())
		if ev == Unknown {
			if ev, err = s.dataContent(ctx, store, p, d); err != nil {
				s.log().Warn("cannot check a file the served repomd.xml names", slog.String("region", r.Name), slog.String("path", p), slog.Any("err", err))
				stale("cannot check %s, which the repomd.xml it serves names", d.Href)
				return
			}
		}
		if ev != Match {
			stale("%s does not match the %s checksum the repomd.xml it serves names", d.Href, d.Algorithm)
			return
		}
	}
	if res.State == model.RepoFresh {
		// The current repomd.xml names every package of its primary.xml: each must be
		// there, or clients of this region fail where nothing was ever pushed (a region
		// that moved, or whose packages were never uploaded).
		if why := s.packagesMissing(ctx, r, store, repo, md, seen, origin.byPath); why != "" {
			stale("%s", why)
			return
		}
	}
	if res.State == model.RepoAlternate && !AlternateVerified(origin.served[[2]int64{r.ID, repo.ID}], res.RepomdSHA256) {
		stale("serves an older repomd.xml that was not verified here; the next push publishes the current one")
		return
	}
	ascPath := model.RepomdPath(repo.Directory) + ".asc"
	asc := origin.byPath[ascPath]
	if asc == nil || asc.DeletedAt != nil {
		return
	}
	body, _, status, err := repocheck.Read(ctx, cfg.HTTPClient, r, store, ascPath)
	switch {
	case res.State != model.RepoFresh:
		// An older signature is not in the inventory to compare with, but the current one
		// beside an older repomd.xml is half a pair: a push stopped between the two
		// (found by review).
		if sum := sha256.Sum256(body); err == nil && bytes.Equal(sum[:], asc.SHA256) {
			stale("serves the current repomd.xml.asc beside an older repomd.xml")
		}
	case err != nil && status == http.StatusNotFound:
		stale("serves repomd.xml without its repomd.xml.asc")
	case err != nil:
		res.State, res.Error, res.Reachable = model.RepoUnreachable, err.Error(), false
	default:
		if sum := sha256.Sum256(body); !bytes.Equal(sum[:], asc.SHA256) {
			stale("serves a repomd.xml.asc that is not the signature of the repomd.xml it serves")
		}
	}
}

// judgeApt checks an APT suite a region serves a published revision of: the InRelease
// (or Release) it serves must parse, and every index file it lists that the region is
// meant to hold must be in the listing with the listed size (and, with Acquire-By-Hash,
// its by-hash twin too), and none of them certainly other bytes than listed: apt 2.6
// does not fall back to the next mirror on a hash mismatch, so one bad index breaks
// apt update for every client sent here. An older revision must have been verified here
// as for repomd.xml. Anything else makes it stale, with the reason.
func (s *Scanner) judgeApt(ctx context.Context, cfg Config, r *model.Region, store objstore.Store, repo model.Repository, origin *originState, seen *objectsSeen, res *repocheck.Result) {
	rel, err := repomd.ParseRelease(bytes.NewReader(res.Body))
	if err != nil {
		res.State, res.Error = model.RepoStale, fmt.Sprintf("cannot parse the %s it serves: %v", repo.ReleaseFile, err)
		return
	}
	suite := path.Join(repo.Directory, "dists", repo.Suite)
	in := AptInput{Release: rel, Suite: suite, Listed: seen.listed, Verdicts: seen.verdicts,
		Meant:  func(p string) bool { return origin.byPath[p] != nil && r.Carries(p) },
		Origin: func(p string) *model.File { return origin.byPath[p] }}
	if why := AptIndexProblem(in); why != "" {
		res.State, res.Error = model.RepoStale, why
		return
	}
	if s.aptSignature(ctx, cfg, r, store, repo, suite, origin, res) {
		return
	}
	if n := countUnder(seen.bad, repo.Directory); n > 0 {
		// Pool files the indices name, most likely: clients would fail there.
		res.State, res.Error = model.RepoStale, fmt.Sprintf("%d files of the repository are missing or corrupt in this region", n)
		return
	}
	if res.State == model.RepoFresh {
		// As for primary.xml: every pool file the current indices name must be here, or
		// clients of this region fail where nothing was ever pushed.
		if why := s.aptPackagesMissing(ctx, r, store, repo, AptPackagesIndices(rel, suite, seen.listed), seen, origin.byPath); why != "" {
			res.State, res.Error = model.RepoStale, why
			return
		}
	}
	if res.State == model.RepoAlternate && !AlternateVerified(origin.served[[2]int64{r.ID, repo.ID}], res.RepomdSHA256) {
		res.State, res.Error = model.RepoStale, "serves an older "+repo.ReleaseFile+" that was not verified here; the next push publishes the current one"
	}
}

// aptSignature checks the Release.gpg beside a served Release (a suite identified by
// Release, not InRelease): the pair must match, as repomd.xml and repomd.xml.asc must.
// It reports whether it changed res.
func (s *Scanner) aptSignature(ctx context.Context, cfg Config, r *model.Region, store objstore.Store, repo model.Repository, suite string, origin *originState, res *repocheck.Result) bool {
	before := res.State
	if repo.ReleaseFile != "Release" {
		return false // InRelease carries its signature
	}
	// Release + Release.gpg: a pair, as repomd.xml and repomd.xml.asc are.
	gpgPath := path.Join(suite, "Release.gpg")
	sig := origin.byPath[gpgPath]
	if sig == nil || sig.DeletedAt != nil {
		return false
	}
	body, _, status, err := repocheck.Read(ctx, cfg.HTTPClient, r, store, gpgPath)
	sum := sha256.Sum256(body)
	same := err == nil && bytes.Equal(sum[:], sig.SHA256)
	switch {
	case res.State != model.RepoFresh:
		if same {
			res.State, res.Error = model.RepoStale, "serves the current Release.gpg beside an older Release"
		}
	case err != nil && status == http.StatusNotFound:
		res.State, res.Error = model.RepoStale, "serves Release without its Release.gpg"
	case err != nil:
		res.State, res.Error, res.Reachable = model.RepoUnreachable, err.Error(), false
	case !same:
		res.State, res.Error = model.RepoStale, "serves a Release.gpg that is not the signature of the Release it serves"
	}
	return res.State != before
}

// aptPackagesMissing reads the Packages indices a region serves (already checked against
// the Release it serves) and returns why not every pool file they name is held there, or
// "". As for yum, an on-demand region need not hold what it fills on demand.
func (s *Scanner) aptPackagesMissing(ctx context.Context, r *model.Region, store objstore.Store, repo model.Repository, indices []string, seen *objectsSeen, byPath map[string]*model.File) string {
	for _, p := range indices {
		why := func() string {
			rd, err := store.Get(ctx, p)
			if err != nil {
				return fmt.Sprintf("cannot read %s, which the Release it serves lists", path.Base(p))
			}
			defer rd.Close()
			in, err := repomd.DecompressIndex(p, rd)
			if err != nil {
				return fmt.Sprintf("cannot read %s: %v", path.Base(p), err)
			}
			var t heldTally
			err = repomd.ParsePackages(in, func(pkg repomd.DebPackage) error {
				q := path.Join(repo.Directory, pkg.Filename)
				t.add(r, q, pkg.Filename, AptPackageHeld(pkg, byPath[q], seen.holds(q), seen.older[q]))
				return nil
			})
			if err != nil {
				return fmt.Sprintf("cannot parse %s: %v", path.Base(p), err)
			}
			return t.reason("its Packages index")
		}()
		if why != "" {
			return why
		}
	}
	return ""
}

// packagesMissing reads the primary.xml a region serves (already checked against the
// repomd.xml it serves) and returns why not every package it names is held there, or "".
// An on-demand region need not hold what it fills on demand (a client's first request is
// answered elsewhere and queues the copy), but a copy it holds must be the named bytes.
func (s *Scanner) packagesMissing(ctx context.Context, r *model.Region, store objstore.Store, repo model.Repository, md *repomd.Repomd, seen *objectsSeen, byPath map[string]*model.File) string {
	for _, d := range md.Data {
		if d.Type != "primary" {
			continue
		}
		p := path.Join(repo.Directory, d.Href)
		rd, err := store.Get(ctx, p)
		if err != nil {
			return fmt.Sprintf("cannot read %s, which the repomd.xml it serves names", d.Href)
		}
		defer rd.Close()
		xr, err := repomd.Decompress(p, rd)
		if errors.Is(err, repomd.ErrCompression) {
			return "" // the packages cannot be listed here: the object comparison stands
		}
		if err != nil {
			return fmt.Sprintf("cannot read %s: %v", d.Href, err)
		}
		var t heldTally
		err = repomd.ParsePrimary(xr, func(pkg repomd.Package) error {
			if pkg.Base != "" {
				return nil
			}
			q := path.Join(repo.Directory, pkg.Href)
			t.add(r, q, pkg.Href, PackageHeld(pkg, byPath[q], seen.holds(q), seen.older[q]))
			return nil
		})
		if err != nil {
			return fmt.Sprintf("cannot parse %s: %v", d.Href, err)
		}
		return t.reason("its primary.xml")
	}
	return ""
}

// heldTally counts the packages an index names that a region does not hold as named
// (yum's primary.xml, APT's Packages), and the first of them for the reason.
type heldTally struct {
	missing, differ int
	first           string
}

// add counts one package at q (named as name in the index): a copy an on-demand region
// fills later need not be there, but a copy it holds must be the named bytes.
func (t *heldTally) add(r *model.Region, q, name string, e Evidence) {
	switch {
	case e == Match:
		return
	case e == Differs:
		t.differ++
	case r.FillsOnDemand(q):
		return
	default:
		t.missing++
	}
	if t.first == "" {
		t.first = name
	}
}

// reason is why the region does not serve the index whole ("" when it does).
func (t *heldTally) reason(index string) string {
	switch {
	case t.missing > 0:
		return fmt.Sprintf("%d packages %s names are not verified in this region (%s, ...)", t.missing, index, t.first)
	case t.differ > 0:
		return fmt.Sprintf("%d packages in this region have other bytes than %s names (%s, ...)", t.differ, index, t.first)
	}
	return ""
}

// dataContent checks an object against a data entry of repomd.xml: by the stored SHA-256
// when the entry is sha256 and the store keeps one, else by reading it.
func (s *Scanner) dataContent(ctx context.Context, store objstore.Store, p string, d repomd.Data) (Evidence, error) {
	want, err := hex.DecodeString(d.Checksum)
	if err != nil {
		return Differs, nil
	}
	head, err := store.Head(ctx, p)
	if errors.Is(err, objstore.ErrNotExist) {
		return Differs, nil
	}
	if err != nil {
		return Unknown, err
	}
	if d.Size > 0 && head.Size != d.Size {
		return Differs, nil
	}
	if strings.EqualFold(d.Algorithm, "sha256") && head.SHA256 != nil {
		return boolEvidence(bytes.Equal(head.SHA256, want)), nil
	}
	h := newHash(d.Algorithm)
	if h == nil {
		return Unknown, fmt.Errorf("%s: unknown checksum type %q", p, d.Algorithm)
	}
	rd, err := store.Get(ctx, p)
	if errors.Is(err, objstore.ErrNotExist) {
		return Differs, nil
	}
	if err != nil {
		return Unknown, err
	}
	defer rd.Close()
	if _, err := io.Copy(h, rd); err != nil {
		return Unknown, fmt.Errorf("read %s: %w", p, err)
	}
	return boolEvidence(bytes.Equal(h.Sum(nil), want)), nil
}

// newHash returns the hash a repomd.xml checksum type names ("sha" is SHA-1 in old createrepo).
func newHash(algo string) hash.Hash {
	switch strings.ToLower(algo) {
	case "md5":
		return md5.New()
	case "sha", "sha1":
		return sha1.New()
	case "sha224":
		return sha256.New224()
	case "sha256":
		return sha256.New()
	case "sha384":
		return sha512.New384()
	case "sha512":
		return sha512.New()
	}
	return nil
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

// bucketEncryption asks the store how its bucket encrypts, when it can say.
func (s *Scanner) bucketEncryption(ctx context.Context, r *model.Region, store objstore.Store) string {
	er, ok := store.(objstore.EncryptionReporter)
	if !ok {
		if r.Kind == model.KindFile {
			return EncNone
		}
		return EncUnknown
	}
	enc, known, err := er.BucketEncryption(ctx)
	if err != nil {
		// Not knowing only costs Heads: ETag mismatches are confirmed either way.
		s.log().Warn("cannot read the bucket's encryption", slog.String("region", r.Name), slog.Any("err", err))
		return EncUnknown
	}
	if !known {
		return EncUnknown
	}
	return NormalizeEncryption(enc)
}

// compareObjects lists the region in parallel key ranges and records what it found for
// every file the region should carry, under fence, calling check before each batch.
func (s *Scanner) compareObjects(ctx context.Context, cfg Config, r *model.Region, store objstore.Store, origin *originState, rep *RegionReport, fence db.Fence, check func() error) (*objectsSeen, error) {
	var want []*model.File // live files the region carries, by path
	known := make(map[string]bool, len(origin.files)*2)
	for i := range origin.files {
		f := &origin.files[i]
		known[f.Path] = true
		if twin := model.SpaceTwin(f.Path); twin != "" {
			known[twin] = true
		}
		if f.DeletedAt == nil && r.Carries(f.Path) {
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
		return nil, err
	}
	rep.Listed = len(listed)
	objects, err := s.DB.RegionObjects(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	rows := make(map[int64]*model.RegionObject, len(objects))
	for i := range objects {
		rows[objects[i].FileID] = &objects[i]
	}
	content, err := s.contents(ctx, cfg, r, store, want, listed)
	if err != nil {
		return nil, err
	}

	seen := &objectsSeen{verdicts: make(map[string]Verdict, len(want)), bad: map[string]bool{}, standing: map[string]bool{}, older: map[string][]byte{}, listed: listed}
	var updates []db.ObjectUpdate
	for i, f := range want {
		row := rows[f.ID]
		// An on-demand region's copy made on demand: verified like any copy, but one that
		// is gone or damaged only sends its clients elsewhere (and the next miss queues a
		// new copy); the metadata it serves stays servable.
		onDemand := r.FillsOnDemand(f.Path)
		if row != nil && row.State == model.ObjectDeleting {
			// On its way out (expiry, purge): servers no longer send clients there and its
			// remover deletes the object, then the record; the scan records nothing of it.
			// A pushed file the region no longer serves is one it lacks.
			seen.verdicts[f.Path] = VerdictNeverPushed
			if !onDemand {
				seen.bad[f.Path] = true
			}
			continue
		}
		_, ok := listed[f.Path]
		// The same rule as push, fill and gc: no twin when the twin key is itself a path
		// of the origin (live or deleted), since that key holds the real file.
		twin := model.WritableTwin(f.Path, func(t string) bool { return origin.byPath[t] != nil })
		_, twinOK := listed[twin]
		v := ObjectVerdict(ObjectInput{File: f, Record: row, Listed: ok, NeedsTwin: twin != "", TwinListed: twinOK, Content: content[i]})
		seen.verdicts[f.Path] = v
		if v == VerdictUnchecked && row.Holds(f) {
			seen.standing[f.Path] = true
		}
		if v == VerdictOutdated && row.State == model.ObjectPresent {
			seen.older[f.Path] = row.SHA256
		}
		state := model.ObjectPresent
		switch v {
		case VerdictNeverPushed:
			// Nothing recorded, and nothing the region serves names it yet (a push
			// uploads metadata only after every file).
			continue
		case VerdictOutdated:
			rep.Outdated++
			continue // the record stands; the next push replaces it
		case VerdictUnchecked:
			rep.Unsure++
			continue // nothing seen either way: the record stands
		case VerdictPresent, VerdictAdopted:
			rep.Verified++
			if v == VerdictAdopted {
				rep.Adopted++
			}
		case VerdictMissing, VerdictTwinMissing:
			state = model.ObjectMissing
			if !onDemand {
				seen.bad[f.Path] = true
			}
			rep.Missing++
		case VerdictCorrupt:
			state = model.ObjectCorrupt
			if row != nil && !onDemand {
				seen.bad[f.Path] = true
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
		if err := check(); err != nil {
			return nil, err
		}
		if err := s.DB.RecordObjects(ctx, fence, r.ID, updates[:n]); err != nil {
			return nil, err
		}
		updates = updates[n:]
	}
	return seen, nil
}

// contents judges every listed object's bytes against the origin's file: from the listing
// where it can tell, else by a Head (stored SHA-256, encryption) and, with --deep, by
// reading the object. Heads and reads run cfg.Concurrency at a time.
func (s *Scanner) contents(ctx context.Context, cfg Config, r *model.Region, store objstore.Store, want []*model.File, listed map[string]objstore.Info) ([]Evidence, error) {
	enc := s.bucketEncryption(ctx, r, store)
	out := make([]Evidence, len(want))
	var todo []int
	for i, f := range want {
		if info, ok := listed[f.Path]; ok {
			if out[i] = ListingEvidence(f, info, enc); out[i] == NeedsHead {
				todo = append(todo, i)
			}
		}
	}
	if len(todo) == 0 {
		return out, nil
	}
	if r.Kind == model.KindFile && !cfg.Deep {
		// A directory keeps no checksum: only reading tells, and that is --deep's job.
		for _, i := range todo {
			out[i] = Unknown
		}
		return out, nil
	}
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, cfg.Concurrency)
	var wg sync.WaitGroup
	for _, i := range todo {
		sem <- struct{}{}
		if cctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			ev, err := s.objectContent(cctx, cfg, r, store, want[i], enc)
			if err != nil {
				cancel(err)
				return
			}
			out[i] = ev
		})
	}
	wg.Wait()
	if err := context.Cause(cctx); err != nil && cctx.Err() != nil {
		return nil, err
	}
	return out, nil
}

// objectContent settles what a listing could not: the stored SHA-256 or a trustworthy
// ETag from a Head (a directory keeps neither), else with --deep the bytes themselves.
func (s *Scanner) objectContent(ctx context.Context, cfg Config, r *model.Region, store objstore.Store, f *model.File, enc string) (Evidence, error) {
	if r.Kind != model.KindFile {
		head, err := store.Head(ctx, f.Path)
		if errors.Is(err, objstore.ErrNotExist) {
			return Unknown, nil // gone since the listing: the next scan sees it missing
		}
		if err != nil {
			return Unknown, err
		}
		if ev := HeadEvidence(f, head, enc); ev != Unknown {
			return ev, nil
		}
	}
	if !cfg.Deep {
		return Unknown, nil
	}
	rd, err := store.Get(ctx, f.Path)
	if errors.Is(err, objstore.ErrNotExist) {
		return Unknown, nil
	}
	if err != nil {
		return Unknown, err
	}
	defer rd.Close()
	h := sha256.New()
	n, err := io.Copy(h, rd)
	if err != nil {
		return Unknown, fmt.Errorf("read %s: %w", f.Path, err)
	}
	return boolEvidence(n == f.Size && bytes.Equal(h.Sum(nil), f.SHA256)), nil
}

// splitPoints cuts the key space into about n ranges of equal numbers of known files.
func splitPoints(files []*model.File, n int) []string {
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
