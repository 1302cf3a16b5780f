package pusher

import (
	"cmp"
	"slices"
	"time"

	"github.com/regionmirror/regionmirror/internal/model"
)

// ExpiryCopy is one of an on-demand region's recorded copies of a live origin file.
type ExpiryCopy struct {
	FileID int64
	Path   string
	Size   int64
	State  string // present, corrupt, missing (a deleting copy is being removed already)
	// LastUsed is when a client last asked for it (last_requested_at), else when it was
	// written; zero (so: old enough to expire) when neither is known.
	LastUsed time.Time
}

// LastUsed is the moment a copy's age is measured from: its last request, else its write,
// else the zero time (the copy counts as old). Never its verification: every scan
// verifies again, so a copy no client ever asks for would never expire.
func LastUsed(o *model.RegionObject) time.Time {
	for _, t := range []*time.Time{o.LastRequestedAt, o.PushedAt} {
		if t != nil {
			return *t
		}
	}
	return time.Time{}
}

// ExpiryInput is everything expiry's choice depends on, read under the region's gc lock.
type ExpiryInput struct {
	Now         time.Time // the database's clock
	ExpireAfter time.Duration
	Region      *model.Region // its fill mode, includes, pins and MaxBytes
	Copies      []ExpiryCopy
	// RealPaths are paths the origin has or the database records: a "+" twin key that is
	// one of them is a real file, never deleted as a twin.
	RealPaths map[string]bool
}

// Reasons an on-demand copy is removed.
const (
	RemoveExpired = "expired" // not requested for ondemand.expire_after
	RemoveEvicted = "evicted" // the region held more than its --max-bytes; least recently requested first
	RemovePurged  = "purged"  // marked deleting by a purge (or an expiry that died midway)
)

// ExpiryDelete is an on-demand copy to remove, and why.
type ExpiryDelete struct {
	FileID   int64     `json:"file_id"`
	Path     string    `json:"path"`
	Size     int64     `json:"size"`
	Reason   string    `json:"reason"`
	LastUsed time.Time `json:"last_used,omitzero"`
	Keys     []string  `json:"-"`                   // object keys: its path, and its "+" twin unless that is a real file
	TwinKept string    `json:"twin_kept,omitempty"` // the twin key left alone: a real path
}

// ExpiryPlan is expiry's choice for one on-demand region.
type ExpiryPlan struct {
	Expire []ExpiryDelete // not requested for ExpireAfter
	Evict  []ExpiryDelete // then, least recently requested first, until the cap holds
	// HeldBytes is what the region's on-demand copies hold before, KeptBytes after.
	HeldBytes, KeptBytes int64
}

// Deletes are the plan's removals, expired first.
func (p ExpiryPlan) Deletes() []ExpiryDelete { return append(slices.Clip(p.Expire), p.Evict...) }

// DeleteKeys are the object keys removing the copy at p takes: p, and its space twin
// unless that key is a real file (isReal). twinKept names the twin left alone.
func DeleteKeys(p string, isReal func(string) bool) (keys []string, twinKept string) {
	keys = []string{p}
	if twin := model.SpaceTwin(p); twin != "" {
		if isReal(twin) {
			return keys, twin
		}
		keys = append(keys, twin)
	}
	return keys, ""
}

// PlanExpiry decides which of an on-demand region's copies go: only copies the region
// fills on demand (Region.FillsOnDemand: never its metadata or pins, never in a push
// region). First those whose last use is more than ExpireAfter before Now (a copy with
// no known time counts as old); then, while the rest hold more than Region.MaxBytes
// (> 0), the least recently used (ties: the larger first, as it frees more, then by path).
// A copy recorded missing holds no bytes but expires like the others (its record goes).
func PlanExpiry(in ExpiryInput) ExpiryPlan {
	var plan ExpiryPlan
	r := in.Region
	if r == nil || !r.OnDemand() {
		return plan
	}
	del := func(c ExpiryCopy, reason string) ExpiryDelete {
		keys, kept := DeleteKeys(c.Path, func(q string) bool { return in.RealPaths[q] })
		return ExpiryDelete{FileID: c.FileID, Path: c.Path, Size: c.Size, Reason: reason, LastUsed: c.LastUsed, Keys: keys, TwinKept: kept}
	}
	held := func(c ExpiryCopy) int64 {
		if c.State == model.ObjectMissing {
			return 0
		}
		return c.Size
	}
	var rest []ExpiryCopy
	for _, c := range in.Copies {
		if c.State == model.ObjectDeleting || !r.FillsOnDemand(c.Path) {
			continue
		}
		plan.HeldBytes += held(c)
		if in.Now.Sub(c.LastUsed) > in.ExpireAfter {
			plan.Expire = append(plan.Expire, del(c, RemoveExpired))
			continue
		}
		rest = append(rest, c)
		plan.KeptBytes += held(c)
	}
	slices.SortFunc(plan.Expire, func(a, b ExpiryDelete) int { return cmp.Compare(a.Path, b.Path) })
	if r.MaxBytes <= 0 || plan.KeptBytes <= r.MaxBytes {
		return plan
	}
	slices.SortFunc(rest, func(a, b ExpiryCopy) int {
		return cmp.Or(a.LastUsed.Compare(b.LastUsed), cmp.Compare(held(b), held(a)), cmp.Compare(a.Path, b.Path))
	})
	for _, c := range rest {
		if plan.KeptBytes <= r.MaxBytes {
			break
		}
		if held(c) == 0 {
			continue // frees nothing
		}
		plan.Evict = append(plan.Evict, del(c, RemoveEvicted))
		plan.KeptBytes -= held(c)
	}
	return plan
}
