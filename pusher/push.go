package pusher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/config"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/objstore"
)

// Config tunes a push. NewConfig makes one from the configuration file's push section;
// the defaults live there (config.Default), not here.
type Config struct {
	Concurrency        int   // transfers in flight per region, unless the region says otherwise
	MultipartThreshold int64 // files this large go in parts
	PartSize           int64
	HashWorkers        int
	// MemoryBudget bounds the file contents held in memory at once.
	MemoryBudget int64
	DryRun       bool
	StoreOptions objstore.Options
	// HTTPClient reads repomd.xml back through public URLs.
	HTTPClient *http.Client
	// AnnounceDelay is how long a new repomd.xml is known to the database before any
	// region gets it (0: no wait). Servers must list its hashes in their metalinks before
	// a region serves it, or a client that read the metalink just before gets a
	// repomd.xml that matches none of its hashes.
	AnnounceDelay time.Duration
}

// memoryBudget is every push's: it has no configuration key.
const memoryBudget = 512 << 20

// NewConfig is the push configuration that c (push.* of the configuration file) gives.
func NewConfig(c config.Push) Config {
	return Config{
		Concurrency:        c.Concurrency,
		MultipartThreshold: int64(c.MultipartThreshold),
		PartSize:           int64(c.PartSize),
		HashWorkers:        c.HashWorkers,
		MemoryBudget:       memoryBudget,
		HTTPClient:         &http.Client{Timeout: 30 * time.Second},
		AnnounceDelay:      c.AnnounceDelay.Std(),
	}
}

// DefaultConfig is the push configuration when no key is set: NewConfig(config.Default().Push).
func DefaultConfig() Config { return NewConfig(config.Default().Push) }

// check refuses a configuration a push cannot run with (a zero Config would wait forever
// for a transfer slot), and fits the sizes to the memory budget.
func (c Config) check() (Config, error) {
	switch {
	case c.Concurrency < 1:
		return c, fmt.Errorf("push: concurrency %d: must be at least 1 (start from pusher.NewConfig)", c.Concurrency)
	case c.HashWorkers < 1:
		return c, fmt.Errorf("push: hash workers %d: must be at least 1", c.HashWorkers)
	case c.PartSize <= 0 || c.MultipartThreshold <= 0 || c.MemoryBudget <= 0:
		return c, fmt.Errorf("push: part size %d, multipart threshold %d, memory budget %d: must be positive",
			c.PartSize, c.MultipartThreshold, c.MemoryBudget)
	case c.HTTPClient == nil:
		return c, errors.New("push: no HTTP client")
	}
	// A file in memory must fit the budget; larger ones go in parts.
	c.MultipartThreshold = min(c.MultipartThreshold, c.MemoryBudget)
	c.PartSize = min(c.PartSize, c.MemoryBudget)
	return c, nil
}

// Progress receives what a push does, for a terminal display.
type Progress interface {
	Plan(region string, files int, bytes int64)
	Phase(region string, phase int)
	Done(region string, files int, bytes int64)
	Finish(region string, err error)
}

// Pusher syncs the origin into regions.
type Pusher struct {
	DB       *db.DB
	Origin   Origin
	Config   Config
	Log      *slog.Logger
	Progress Progress
	// OpenStore opens a region's storage (default objstore.Open).
	OpenStore func(ctx context.Context, r *model.Region) (objstore.Store, error)
	// Clock is this process's clock (default time.Now). Nothing that compares with the
	// database's times may use it: tests set it ahead to prove that.
	Clock func() time.Time
}

func (p *Pusher) now() time.Time {
	if p.Clock != nil {
		return p.Clock()
	}
	return time.Now()
}

// RepoResult is a repository's state in a region after a push.
type RepoResult struct {
	Repo  string `json:"repo"`
	Arch  string `json:"arch"`
	State string `json:"state"`
	Via   string `json:"via,omitempty"` // how repomd.xml was read back: public URL or storage API
}

// RegionResult is what a push did in one region.
type RegionResult struct {
	Region       string           `json:"region"`
	Status       string           `json:"status"` // ok, failed
	RunID        int64            `json:"run_id,omitempty"`
	Planned      int              `json:"planned_files"`
	PlannedBytes int64            `json:"planned_bytes"`
	PhaseFiles   [NumPhases]int   `json:"phase_files"`
	PhaseBytes   [NumPhases]int64 `json:"phase_bytes"`
	Uploaded     int              `json:"uploaded_files"`
	Bytes        int64            `json:"uploaded_bytes"`
	UpToDate     int              `json:"up_to_date"`
	Failed       int              `json:"failed_files"`
	// TwinsSkipped counts paths with "+" whose space twin is a real origin path: the twin
	// is not written, so the real file is never overwritten.
	TwinsSkipped int `json:"twins_skipped,omitempty"`
	// RewrittenInPlace names the repositories ("name/arch") this push rewrites under the
	// same file names in this region: they leave the answers until verified again.
	RewrittenInPlace []string `json:"rewritten_in_place,omitempty"`
	// Withheld are the repositories whose metadata this push does not publish, and why.
	Withheld []Withheld    `json:"withheld,omitempty"`
	Repos    []RepoResult  `json:"repositories"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration_ns"`
	// Skipped: the region was synced at the generation this push covers; nothing of it
	// was read or written and no run recorded.
	Skipped bool `json:"skipped,omitempty"`
}

// regionPush is one region's push while it runs: the report it fills, and the state
// behind it that the report does not show.
type regionPush struct {
	*RegionResult
	phaseErr     error    // the first error, which stops the later phases
	withheldErr  error    // metadata held back: fails the run without stopping it
	deferred     []string // repositories whose rewrite in place waits for another region
	mu           sync.Mutex
	pending      []db.ObjectUpdate // verified writes not yet recorded
	lastFlush    time.Time
	uploadedKeys map[string]bool // paths written in this push
	store        objstore.Store
	sem          *semaphore.Weighted // transfers in flight
	region       *model.Region
	plan         *RegionPlan
	objects      map[int64]*model.RegionObject // as recorded before this push, by file ID
	busy         bool                          // another process holds the region
	run          *db.RegionRun                 // the region's write lock and run; nil in a dry run
	start        time.Time
	inv          *InventoryReport
	syncBefore   *model.RegionSync // the region's sync record, read before its copies
}

// Result is a whole push.
type Result struct {
	Inventory *InventoryReport `json:"inventory"`
	Regions   []*RegionResult  `json:"regions"`
	// Scope are the origin directories the push covered (nil: the whole origin).
	Scope []string `json:"scope,omitempty"`
	// Noop: a scheduled push that found nothing changed and ended without walking the
	// origin or reading any region's records; Note says why.
	Noop bool   `json:"noop,omitempty"`
	Note string `json:"note,omitempty"`
}

// Failed reports whether any region failed.
func (r *Result) Failed() bool {
	for _, rr := range r.Regions {
		if rr.Status != model.RunOK {
			return true
		}
	}
	return false
}

func (p *Pusher) log() *slog.Logger {
	if p.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Log
}

// PushWith is Push with what opts say it covers: a scope (only its files walked,
// planned and uploaded), or a scheduled tick (DecideScheduled: a no-op, a push of the
// unsynced regions from the records, or a walk). Push is PushWith with zero Options.
func (p *Pusher) PushWith(ctx context.Context, regions []*model.Region, opts Options) (*Result, error) {
	cfg, err := p.Config.check()
	if err != nil {
		return nil, err
	}
	if opts.Scheduled {
		if len(opts.Scope) > 0 {
			return nil, errors.New("push: a scheduled push covers the whole origin; it takes no scope")
		}
		return p.pushScheduled(ctx, cfg, regions, opts)
	}
	inv, err := p.inventory(ctx, cfg, opts.Scope)
	if err != nil {
		return nil, err
	}
	return p.pushInventory(ctx, cfg, regions, inv, nil)
}

// Push takes the inventory and syncs it into the regions. It returns an error only when
// nothing could be attempted (the inventory failed); per-region failures are in the
// result, recorded in runs.
func (p *Pusher) Push(ctx context.Context, regions []*model.Region) (*Result, error) {
	return p.PushWith(ctx, regions, Options{})
}

func (p *Pusher) inventory(ctx context.Context, cfg Config, scope []string) (*InventoryReport, error) {
	inv, err := TakeInventoryUnder(ctx, p.DB, p.Origin, scope, cfg.HashWorkers, cfg.DryRun, p.log())
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	p.log().Info("inventory", slog.Any("scope", inv.Scope), slog.Int("files", inv.Files), slog.Int("hashed", inv.Hashed), slog.Int("added", inv.Changes.Added),
		slog.Int("changed", inv.Changes.Changed), slog.Int("deleted", inv.Changes.Deleted), slog.Int("repomd", inv.Repomds),
		slog.Duration("took", inv.Duration))
	return inv, nil
}

// pushInventory syncs the inventory into the regions, but for those in skip (synced at
// the generation the inventory reflects): they are reported skipped, unread.
func (p *Pusher) pushInventory(ctx context.Context, cfg Config, regions []*model.Region, inv *InventoryReport, skip map[int64]bool) (*Result, error) {
	res := &Result{Inventory: inv, Scope: inv.Scope}
	all, err := p.DB.ListRepositories(ctx)
	if err != nil {
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	// Only the scope's repositories are planned, verified and withheld: the others' files
	// are not in the inventory, and their state in each region stays as it is.
	var repos []model.Repository
	for _, r := range all {
		if model.InScope(r.Directory, inv.Scope) {
			repos = append(repos, r)
		}
	}
	var active []*regionPush
	for _, r := range regions {
		if skip[r.ID] {
			res.Regions = append(res.Regions, &RegionResult{Region: r.Name, Status: model.RunOK, Skipped: true})
			continue
		}
		rr := &regionPush{RegionResult: &RegionResult{Region: r.Name}, region: r, start: p.now(), uploadedKeys: map[string]bool{}, inv: inv}
		res.Regions = append(res.Regions, rr.RegionResult)
		if err := p.prepare(ctx, cfg, rr, inv, repos); err != nil {
			rr.fail(err)
			p.finish(ctx, rr)
			continue
		}
		active = append(active, rr)
	}
	for _, group := range pushGroups(active) {
		p.pushGroup(ctx, cfg, group, repos, inv)
	}
	return res, nil
}

// pushGroups orders the regions' pushes: every region without in-place rewrites at once
// (each origin file is read once for all of them), then each region with in-place
// rewrites on its own, one after the other. Such a region is out of the answers for the
// repositories it rewrites until its push verifies them, so pushing them one at a time
// keeps every other region serving those repositories meanwhile.
func pushGroups(active []*regionPush) [][]*regionPush {
	var plain []*regionPush
	var out [][]*regionPush
	for _, rr := range active {
		if len(rr.plan.InPlace) == 0 {
			plain = append(plain, rr)
		} else {
			out = append(out, []*regionPush{rr})
		}
	}
	if len(plain) > 0 {
		out = append([][]*regionPush{plain}, out...)
	}
	return out
}

// pushGroup takes regions through the phases together, verifies and finishes them.
func (p *Pusher) pushGroup(ctx context.Context, cfg Config, group []*regionPush, repos []model.Repository, inv *InventoryReport) {
	if ctx.Err() == nil {
		p.awaitRegionEdits(ctx, cfg, group)
		p.takeOutRewritten(ctx, cfg, group)
		for ph := range NumPhases {
			if ph == PhaseIndex {
				// Before the plain index files, not between them and the Release files:
				// without Acquire-By-Hash, from the first index rewritten until the new
				// InRelease lands the suite's indices match neither revision.
				p.awaitAnnouncement(ctx, cfg, group)
			}
			p.runPhase(ctx, cfg, ph, group)
		}
		p.recordHalfPairs(ctx, cfg, group, repos)
	} else {
		for _, rr := range group {
			rr.fail(fmt.Errorf("push %s: %w", rr.Region, ctx.Err()))
		}
	}
	for _, rr := range group {
		if rr.phaseErr == nil && !cfg.DryRun && rr.checkLock(ctx, true) == nil {
			p.verifyRepos(rr.context(ctx), cfg, rr, repos, inv)
		}
		p.finish(ctx, rr)
	}
}

func (rr *regionPush) fail(err error) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	if rr.phaseErr == nil {
		rr.phaseErr = err
	}
}

func (rr *regionPush) failed() bool {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return rr.phaseErr != nil
}

// prepare locks the region, records the run, and plans.
func (p *Pusher) prepare(ctx context.Context, cfg Config, rr *regionPush, inv *InventoryReport, repos []model.Repository) error {
	r := rr.region
	if !cfg.DryRun {
		run, err := p.DB.BeginRegionRun(ctx, model.RunPush, r)
		if err != nil {
			rr.busy = errors.Is(err, db.ErrLocked)
			return err // names the region and, when busy, who holds it
		}
		rr.run, rr.RunID = run, run.Run.ID
		if run.Abandoned > 0 {
			p.log().Warn("an earlier push or gc of this region was interrupted; this one repairs it", slog.String("region", r.Name))
		}
	}
	if !cfg.DryRun {
		// Before the copies are read: a change to them after this (a scan finding one
		// missing) moves the epoch, and the sync this push claims is refused.
		sync, err := p.DB.RegionSyncOf(ctx, r.ID)
		if err != nil {
			return fmt.Errorf("push %s: %w", r.Name, err)
		}
		rr.syncBefore = sync
	}
	objects, err := p.DB.RegionObjectsUnder(ctx, r.ID, inv.Scope)
	if err != nil {
		return fmt.Errorf("push %s: %w", r.Name, err)
	}
	byFile := make(map[int64]*model.RegionObject, len(objects))
	for i := range objects {
		byFile[objects[i].FileID] = &objects[i]
	}
	rr.objects = byFile
	byHash := inv.AptByHash
	if len(byHash) > 0 {
		if byHash, err = p.servedByHash(ctx, r, repos, byHash); err != nil {
			return fmt.Errorf("push %s: %w", r.Name, err)
		}
	}
	rr.plan = PlanRegion(PlanInput{Region: r, Files: inv.Live, Objects: byFile, Repos: repos, Unread: inv.Unread, Invalid: inv.Invalid, AptByHash: byHash})
	// Push what can be pushed, but fail the run for what is withheld: the next push completes it.
	rr.withheldErr = withheldError(r.Name, rr.plan)
	rr.TwinsSkipped = len(rr.plan.TwinsSkipped)
	rr.Withheld = rr.plan.Withheld
	for _, repo := range rr.plan.InPlace {
		rr.RewrittenInPlace = append(rr.RewrittenInPlace, repo.Name+"/"+repo.Arch)
	}
	for _, t := range rr.plan.TwinsSkipped {
		p.log().Warn("not writing the space twin of a path with '+': the origin has that path itself",
			slog.String("region", r.Name), slog.String("path", t))
	}
	rr.UpToDate, rr.Planned, rr.PlannedBytes = rr.plan.UpToDate, rr.plan.Files(), rr.plan.TotalBytes()
	for ph := range NumPhases {
		rr.PhaseFiles[ph], rr.PhaseBytes[ph] = len(rr.plan.Items[ph]), rr.plan.Bytes[ph]
	}
	if p.Progress != nil {
		p.Progress.Plan(r.Name, rr.Planned, rr.PlannedBytes)
	}
	if cfg.DryRun {
		return nil
	}
	open := p.OpenStore
	if open == nil {
		open = func(ctx context.Context, r *model.Region) (objstore.Store, error) {
			return objstore.Open(ctx, r, cfg.StoreOptions)
		}
	}
	if rr.store, err = open(ctx, r); err != nil {
		return fmt.Errorf("push %s: %w", r.Name, err)
	}
	n := r.Concurrency
	if n <= 0 {
		n = cfg.Concurrency
	}
	rr.sem = semaphore.NewWeighted(int64(n))
	return nil
}

// fence is the token every record of this region's push carries: a write after the lock
// was lost, taken over, or the region moved, is refused.
func (rr *regionPush) fence() db.Fence {
	if rr.run == nil {
		return db.NotHeld // a dry run writes nothing, and is refused if it tries
	}
	return rr.run.Fence()
}

// checkLock fails the region's push when its lock is no longer held; ping asks the lock's
// connection now, else the keep-alive's last answer counts.
func (rr *regionPush) checkLock(ctx context.Context, ping bool) error {
	if rr.run == nil {
		return nil
	}
	var err error
	if ping {
		err = rr.run.Check(ctx)
	} else {
		err = rr.run.Err()
	}
	if err != nil {
		err = fmt.Errorf("push %s: %w", rr.Region, err)
		rr.fail(err)
	}
	return err
}

// context is what the region's transfers run under: cancelled when the push is, or when
// the region's lock is lost, which stops them at once.
func (rr *regionPush) context(ctx context.Context) context.Context {
	if rr.run == nil {
		return ctx
	}
	return rr.run.Context()
}

// finish records the run's end and releases the lock.
func (p *Pusher) finish(ctx context.Context, rr *regionPush) {
	rr.Duration = p.now().Sub(rr.start)
	rr.Status = model.RunOK
	if rr.phaseErr == nil && len(rr.deferred) > 0 {
		rr.phaseErr = fmt.Errorf("push %s: repositories %s not updated: their files are rewritten in place and this region is the last one serving them; the next push updates them once another region serves the new version",
			rr.Region, strings.Join(rr.deferred, ", "))
	}
	if rr.phaseErr == nil && rr.withheldErr != nil {
		rr.phaseErr = rr.withheldErr
	}
	if rr.run != nil {
		// The loss explains whatever failed after it (cancelled uploads, refused records).
		if lost := rr.run.Err(); lost != nil && !errors.Is(rr.phaseErr, db.ErrLockLost) {
			if rr.phaseErr == nil {
				rr.phaseErr = fmt.Errorf("push %s: %w", rr.Region, lost)
			} else {
				rr.phaseErr = fmt.Errorf("push %s: %w; then: %v", rr.Region, lost, rr.phaseErr)
			}
		}
	}
	if rr.phaseErr != nil {
		rr.Status, rr.Error = model.RunFailed, rr.phaseErr.Error()
	}
	if rr.busy {
		rr.Status = model.RunBusy
	}
	if rr.run != nil && rr.phaseErr == nil && !rr.busy {
		p.claimSync(ctx, rr)
	}
	if rr.run != nil {
		run := rr.run.Run
		run.Files, run.Bytes = int64(rr.Uploaded), rr.Bytes
		run.Counts = map[string]int64{"planned": int64(rr.Planned), "uploaded": int64(rr.Uploaded),
			"up_to_date": int64(rr.UpToDate), "failed": int64(rr.Failed), "twins_skipped": int64(rr.TwinsSkipped)}
		// Records the end even when the push was interrupted, and releases the lock.
		if err := rr.run.Finish(ctx, rr.phaseErr); err != nil {
			p.log().Error("cannot record the end of the run", slog.String("region", rr.Region), slog.Any("err", err))
		}
	}
	if p.Progress != nil {
		p.Progress.Finish(rr.Region, rr.phaseErr)
	}
	level := slog.LevelInfo
	if rr.phaseErr != nil {
		level = slog.LevelError
	}
	p.log().Log(ctx, level, "push finished", slog.String("region", rr.Region), slog.String("status", rr.Status),
		slog.Int("uploaded", rr.Uploaded), slog.Int64("bytes", rr.Bytes), slog.Int("failed", rr.Failed),
		slog.Duration("took", rr.Duration), slog.String("error", rr.Error))
}

// withheldError is the run's failure for what its plan withholds, nil when nothing is.
func withheldError(region string, plan *RegionPlan) error {
	var reasons []string
	if plan.Unread != "" {
		reasons = append(reasons, fmt.Sprintf("origin file %s could not be read; the metadata of its repository is withheld", plan.Unread))
	}
	for _, w := range plan.Withheld {
		if plan.Unread == "" || !strings.Contains(w.Reason, "could not be read") {
			reasons = append(reasons, w.Reason)
		}
	}
	if len(reasons) == 0 {
		return nil
	}
	return fmt.Errorf("push %s: %s", region, strings.Join(reasons, "; "))
}
