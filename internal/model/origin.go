package model

import (
	"slices"
	"strings"
	"time"
)

// OriginState is the origin's recorded generation: every change to what a push is planned
// from (files, repositories, repomd.xml versions) bumps it in order.
type OriginState struct {
	Generation int64
	// FullInventoryAt is when the last recorded full walk of the origin started (database
	// clock); nil before the first.
	FullInventoryAt *time.Time
	// LinkedFiles are files reached through a symlink or sharing their inode: a change
	// to one is seen under another name, so no watcher vouches for them.
	LinkedFiles int
}

// OriginChange is one bump of the origin's generation and the directories it touched
// ("" for the whole origin).
type OriginChange struct {
	Generation int64
	Scope      []string
	ChangedAt  time.Time
}

// RegionSync says up to which origin generation a region holds what a full push writes.
type RegionSync struct {
	RegionID int64
	// Epoch grows whenever something takes from what the region was recorded to hold; a
	// push records itself synced only against the epoch it read before planning.
	Epoch int64
	// Generation is nil when the region is not known to be synced at any generation.
	Generation      *int64
	RegionUpdatedAt *time.Time
	SyncedAt        *time.Time
}

// SyncedWith reports whether the region r is synced at generation g: the record is of r as
// configured now, at g.
func (s *RegionSync) SyncedWith(r *Region, g int64) bool {
	return s != nil && s.Generation != nil && *s.Generation == g && s.RegionUpdatedAt != nil && s.RegionUpdatedAt.Equal(r.UpdatedAt)
}

// WatchCoverage is what live watchers of an origin root have seen.
type WatchCoverage struct {
	Watchers int // live: holding their lock, beating
	// Since is the earliest time from which a live watcher has seen every change (nil:
	// none has).
	Since   *time.Time
	Pending int // changes live watchers have seen and not yet pushed
}

// Publication is when a region first served a repomd.xml version verified.
type Publication struct {
	RepositoryID int64
	VersionID    int64
	Timestamp    int64     // repomd.xml's revision timestamp
	FirstSeen    time.Time // when the origin's version was first recorded
	RegionID     int64     // 0 when no region has served it yet
	VerifiedAt   *time.Time
}

// Lag is the publication's freshness lag: from the version first seen at the origin to the
// region serving it verified (0 when it has not).
func (p Publication) Lag() time.Duration {
	if p.VerifiedAt == nil {
		return 0
	}
	return p.VerifiedAt.Sub(p.FirstSeen)
}

// InScope reports whether origin path (or directory) p lies in one of the scope's
// directories; "" is the whole origin, as is an empty scope.
func InScope(p string, scope []string) bool {
	if len(scope) == 0 {
		return true
	}
	for _, dir := range scope {
		if dir == "" || p == dir || strings.HasPrefix(p, dir+"/") {
			return true
		}
	}
	return false
}

// ScopeCovers reports whether every directory of inner lies in outer.
func ScopeCovers(outer, inner []string) bool {
	if len(inner) == 0 {
		inner = []string{""}
	}
	for _, dir := range inner {
		if !InScope(dir, outer) {
			return false
		}
	}
	return true
}

// NormalizeScope is the scope a push of dirs covers: each directory inside a registered
// repository widened to that repository's directory (its metadata is checked and
// published as a whole), nested directories dropped, sorted. nil (or any "") is the whole
// origin and stays nil.
func NormalizeScope(dirs []string, repos []Repository) []string {
	var wide []string
	for _, d := range dirs {
		d = strings.Trim(d, "/")
		if d == "" || d == "." {
			return nil
		}
		for _, r := range repos {
			if r.Directory == "" {
				return nil // a repository at the root: any change is in it
			}
			if InScope(d, []string{r.Directory}) && len(r.Directory) < len(d) {
				d = r.Directory
			}
		}
		wide = append(wide, d)
	}
	if len(wide) == 0 {
		return nil
	}
	out := make([]string, 0, len(wide))
	for _, d := range wide {
		nested := false
		for _, o := range wide {
			if o != d && InScope(d, []string{o}) {
				nested = true
				break
			}
		}
		if !nested && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out
}
