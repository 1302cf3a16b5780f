package pusher

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/regionmirror/regionmirror/internal/model"
)

// ClaimInput is what decides whether a scoped push that ended ok may record its region
// synced at Generation.
type ClaimInput struct {
	Region *model.Region
	// Before is the region's sync record read with the epoch, before its copies were read.
	Before *model.RegionSync
	Scope  []string // the push's (normalized); nil: a full push
	// Generation is what the push's plan reflects.
	Generation int64
	// Changes are OriginChanges(M, Generation), M being Before's generation.
	Changes []model.OriginChange
	// Linked are the origin's files reached through a symlink or a hard link
	// (OriginState.LinkedFiles): one may have changed under a name outside the scope.
	Linked int
}

// ScopedClaim reports whether a push that ended ok may claim its region synced at
// in.Generation. A full push may. A scoped push may only when the region was synced at
// some M, as configured now, and every change from M to the generation lies in the
// scope, none forgotten: what lies outside the scope is then what it was at M, which the
// region holds. Anything less certain claims nothing: a region wrongly unsynced costs a
// push, one wrongly synced hides a change from every scheduled push after.
func ScopedClaim(in ClaimInput) bool {
	if in.Scope == nil {
		return true
	}
	if in.Linked > 0 {
		return false
	}
	m, ok := claimBase(in.Before, in.Region)
	if !ok || m > in.Generation {
		return false
	}
	if int64(len(in.Changes)) != in.Generation-m {
		return false // some were forgotten (older than the ledger keeps), or not all read
	}
	for _, c := range in.Changes {
		if c.Generation <= m || c.Generation > in.Generation || !model.ScopeCovers(in.Scope, c.Scope) {
			return false
		}
	}
	return true
}

// claimBase is the generation M the region was synced at, as configured now.
func claimBase(before *model.RegionSync, r *model.Region) (int64, bool) {
	if before == nil || before.Generation == nil || before.RegionUpdatedAt == nil || r == nil || !before.RegionUpdatedAt.Equal(r.UpdatedAt) {
		return 0, false
	}
	return *before.Generation, true
}

// claimSync records the region synced at what its push reflected, when ScopedClaim says
// it may; the epoch read before planning refuses it if the region's copies changed since.
func (p *Pusher) claimSync(ctx context.Context, rr *regionPush) {
	inv := rr.inv
	if inv == nil || !inv.claimable || rr.syncBefore == nil {
		return
	}
	in := ClaimInput{Region: rr.region, Before: rr.syncBefore, Scope: inv.Scope, Generation: inv.Generation}
	if inv.Scope != nil {
		m, ok := claimBase(rr.syncBefore, rr.region)
		if !ok || m > inv.Generation {
			return
		}
		changes, err := p.DB.OriginChanges(ctx, m, inv.Generation)
		if err != nil {
			p.log().Warn("not recording the region synced", slog.String("region", rr.Region), slog.Any("err", err))
			return
		}
		in.Changes = changes
		st, err := p.DB.OriginState(ctx)
		if err != nil {
			p.log().Warn("not recording the region synced", slog.String("region", rr.Region), slog.Any("err", err))
			return
		}
		in.Linked = st.LinkedFiles
	}
	if !ScopedClaim(in) {
		return
	}
	ok, err := p.DB.MarkRegionSynced(ctx, rr.fence(), rr.region.ID, rr.syncBefore.Epoch, inv.Generation, rr.region.UpdatedAt)
	if err != nil {
		p.log().Warn("not recording the region synced", slog.String("region", rr.Region), slog.Any("err", err))
		return
	}
	if !ok {
		p.log().Info("region changed during the push: not recorded synced", slog.String("region", rr.Region))
	}
}

// ScheduleInput is what a scheduled push decides from: a handful of small reads.
type ScheduleInput struct {
	Now      time.Time // the database's clock
	State    model.OriginState
	Coverage model.WatchCoverage
	// Interval is push.full_inventory_interval: the origin is walked at least this often.
	Interval time.Duration
	Regions  []*model.Region
	Syncs    map[int64]*model.RegionSync
}

// ScheduleDecision is what a scheduled push does.
type ScheduleDecision struct {
	// Walk: take the full inventory (then skip the regions synced at its generation).
	Walk bool
	// Noop: nothing to do; nothing more is read.
	Noop bool
	// Push are the regions to push from the recorded inventory when not walking.
	Push []*model.Region
	Note string
}

// DecideScheduled decides a scheduled push. The origin need not be walked only when a
// live watcher has seen every change since the last full walk started, has none pending,
// and that walk is younger than the interval; then regions synced at the origin's
// generation need nothing, and the others are pushed from the records.
func DecideScheduled(in ScheduleInput) ScheduleDecision {
	var d ScheduleDecision
	full := in.State.FullInventoryAt
	due := ""
	if full != nil {
		due = fmt.Sprintf("next full walk due at %s", full.Add(in.Interval).UTC().Format(time.RFC3339))
	}
	var why string
	switch cov := in.Coverage; {
	case full == nil:
		why = "no full walk of the origin recorded yet"
	case in.State.LinkedFiles > 0:
		why = fmt.Sprintf("%d origin files are reached through symlinks or hard links: a change to one shows under another name, so no watcher vouches for them", in.State.LinkedFiles)
	case !in.Now.Before(full.Add(in.Interval)):
		why = fmt.Sprintf("the last full walk (%s) is older than push.full_inventory_interval (%s)", full.UTC().Format(time.RFC3339), in.Interval)
	case cov.Watchers == 0:
		why = "no live watcher of the origin"
	case cov.Since == nil:
		why = "the live watcher has not seen every change (it is catching up)"
	case cov.Since.After(*full):
		why = "the live watcher started after the last full walk: changes between them may be unseen"
	case cov.Pending > 0:
		why = fmt.Sprintf("the live watcher has %d changes not pushed yet", cov.Pending)
	}
	if why != "" {
		d.Walk = true
		d.Note = "walking the origin: " + why
		return d
	}
	var names []string
	for _, r := range in.Regions {
		if !in.Syncs[r.ID].SyncedWith(r, in.State.Generation) {
			d.Push = append(d.Push, r)
			names = append(names, r.Name)
		}
	}
	if len(d.Push) == 0 {
		d.Noop = true
		d.Note = fmt.Sprintf("nothing to do: a live watcher has seen every change since the last full walk and every region is synced at generation %d; %s",
			in.State.Generation, due)
		return d
	}
	d.Note = fmt.Sprintf("not walking the origin (a live watcher has seen every change); pushing %s from the recorded inventory: not synced at generation %d; %s",
		strings.Join(names, ", "), in.State.Generation, due)
	return d
}

// DefaultWatchStale is how long a watcher may go without beating and still count live
// (Options.WatchStale when unset; status judges with it too).
const DefaultWatchStale = 30 * time.Second

// pushScheduled is a cron tick's push (Options.Scheduled).
func (p *Pusher) pushScheduled(ctx context.Context, cfg Config, regions []*model.Region, opts Options) (*Result, error) {
	stale := opts.WatchStale
	if stale <= 0 {
		stale = DefaultWatchStale
	}
	now, err := p.DB.Now(ctx)
	if err != nil {
		return nil, err
	}
	state, err := p.DB.OriginState(ctx)
	if err != nil {
		return nil, err
	}
	var cov model.WatchCoverage
	if opts.OriginRoot != "" {
		if cov, err = p.DB.WatchCoverage(ctx, opts.OriginRoot, stale); err != nil {
			return nil, err
		}
	}
	syncs, err := p.DB.RegionSyncs(ctx)
	if err != nil {
		return nil, err
	}
	dec := DecideScheduled(ScheduleInput{Now: now, State: state, Coverage: cov, Interval: opts.FullInventoryInterval, Regions: regions, Syncs: syncs})
	if cfg.DryRun && !dec.Walk {
		dec.Walk, dec.Note = true, "dry run: walking the origin to show the plan ("+dec.Note+")"
	}
	p.log().Info("scheduled push", slog.String("note", dec.Note))
	if dec.Noop {
		res := &Result{Noop: true, Note: dec.Note}
		for _, r := range regions {
			res.Regions = append(res.Regions, &RegionResult{Region: r.Name, Status: model.RunOK, Skipped: true})
		}
		return res, nil
	}
	var inv *InventoryReport
	if dec.Walk {
		if inv, err = p.inventory(ctx, cfg, nil); err != nil {
			return nil, err
		}
		if inv.Full {
			dec.Note += fmt.Sprintf("; next full walk due at %s", now.Add(opts.FullInventoryInterval).UTC().Format(time.RFC3339))
		}
	} else if inv, err = inventoryFromRecords(ctx, p.DB, p.Origin, p.log()); err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	var skip map[int64]bool
	if inv.claimable {
		// Read again, against the generation the inventory reflects: pushes that ended
		// meanwhile may have synced regions, and a change since makes others unsynced.
		if syncs, err = p.DB.RegionSyncs(ctx); err != nil {
			return nil, err
		}
		skip = map[int64]bool{}
		for _, r := range regions {
			if syncs[r.ID].SyncedWith(r, inv.Generation) {
				skip[r.ID] = true
			}
		}
	}
	res, err := p.pushInventory(ctx, cfg, regions, inv, skip)
	if err != nil {
		return nil, err
	}
	res.Note = dec.Note
	return res, nil
}
