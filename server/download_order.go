package server

import (
	"sync/atomic"

	"github.com/regionmirror/regionmirror/server/selection"
)

// Redirects are the hot path: a download manager or a browser per file, over a million
// files. Selection for a file is selection for the client (which regions may serve it, in
// which order) filtered by the file (which of those carry it and hold it verified). The
// first part depends only on the client's key, so it is computed once per key and
// snapshot and kept here; the second is a bit test per region.
//
// Filtering an ordered list gives the order selection would give for the file: every
// region's sort key depends on the client and the region alone. Only the tier's name can
// differ (netblock against geoip when the region whose netblock holds the client lacks the
// file), which matters for the metrics label alone.

// clientOrder is selection for a client, before any file is considered.
type clientOrder struct {
	tier    string
	regions []*selection.Region // usable regions, best first
	origin  *selection.Region   // nil when not configured or filtered out by protocol=
	notes   []string
}

// maxOrders bounds the cache: clients share keys (a location, a GeoIP city), so a few
// hundred cover nearly everyone; an attacker varying country= only causes recomputation.
const maxOrders = 10_000

// orderCache holds the clientOrders of one snapshot.
type orderCache struct {
	gen uint64 // Snapshot.Gen: no reference that would keep an old snapshot alive
	m   readMap[answerKey, *clientOrder]
	n   atomic.Int64
}

// clientOrder returns the order of the regions for req, from the cache when it can.
func (s *Server) clientOrder(snap *selection.Snapshot, req selection.Request) *clientOrder {
	cache := s.orders.Load()
	if cache == nil || cache.gen != snap.Gen {
		fresh := &orderCache{gen: snap.Gen}
		switch {
		case cache != nil && cache.gen > snap.Gen:
			cache = fresh // an older snapshot than the cached one: do not evict the newer
		case s.orders.CompareAndSwap(cache, fresh):
			cache = fresh
		default:
			if cache = s.orders.Load(); cache.gen != snap.Gen {
				cache = fresh // another snapshot is being installed; do not cache this one
			}
		}
	}
	var blockBuf [16]int // no allocation for the usual number of regions
	var blockBits []int
	if n := len(snap.Regions); n <= len(blockBuf) {
		blockBits = blockBuf[:n]
	} else {
		blockBits = make([]int, n)
	}
	matched := snap.MatchNetblocks(req.Client, blockBits)
	key := keyFor(nil, snap.Region(req.Location), req, blockBits, matched)
	if o, ok := cache.m.load(key); ok {
		return o
	}
	d := selection.SelectClient(snap, req)
	o := &clientOrder{tier: d.Tier, origin: d.Origin, notes: d.Notes, regions: make([]*selection.Region, len(d.Chosen))}
	for i, c := range d.Chosen {
		o.regions[i] = c.Region
	}
	if cache.n.Add(1) > maxOrders {
		cache = &orderCache{gen: snap.Gen}
		s.orders.Store(cache)
	}
	cache.m.store(key, o)
	return o
}

// forFile appends to dst the regions of o that hold f verified (up to limit; all for
// limit <= 0); with stale, not the on-demand copies (see Snapshot.FilesReadFrom).
func (o *clientOrder) forFile(snap *selection.Snapshot, f fileRef, dst []*selection.Region, limit int, stale bool) []*selection.Region {
	for _, r := range o.regions {
		if limit > 0 && len(dst) == limit {
			break
		}
		if snap.Verified(r, f.index) && r.Carries(f.path) && !(stale && r.FillsOnDemand(f.path)) {
			dst = append(dst, r)
		}
	}
	return dst
}

// firstCarrying returns the first region of o that carries path, held verified or not:
// the region the client would be sent to for it if every region held it.
func (o *clientOrder) firstCarrying(path string) *selection.Region {
	for _, r := range o.regions {
		if r.Carries(path) {
			return r
		}
	}
	return nil
}
