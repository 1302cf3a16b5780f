package selection

import (
	"net/netip"
	"slices"
)

// netblockIndex finds the regions whose netblocks hold an address with one map lookup per
// distinct prefix length, so that thousands of imported AWS prefixes cost the same as a few.
type netblockIndex struct {
	lengths4, lengths6 []int // distinct prefix lengths in use, per family
	byPrefix           map[netip.Prefix][]int
}

func newNetblockIndex(regions []*Region) *netblockIndex {
	x := &netblockIndex{byPrefix: map[netip.Prefix][]int{}}
	for _, r := range regions {
		for _, p := range r.Netblocks {
			p = p.Masked()
			if !slices.Contains(x.byPrefix[p], r.Index) {
				x.byPrefix[p] = append(x.byPrefix[p], r.Index)
			}
			if p.Addr().Is4() {
				if !slices.Contains(x.lengths4, p.Bits()) {
					x.lengths4 = append(x.lengths4, p.Bits())
				}
			} else if !slices.Contains(x.lengths6, p.Bits()) {
				x.lengths6 = append(x.lengths6, p.Bits())
			}
		}
	}
	return x
}

// match sets bits[i] to the longest prefix length of region i's netblocks that holds a,
// and leaves it at -1 for the others. It reports whether any region matched.
func (x *netblockIndex) match(a netip.Addr, bits []int) bool {
	for i := range bits {
		bits[i] = -1
	}
	if !a.IsValid() || len(x.byPrefix) == 0 {
		return false
	}
	lengths := x.lengths6
	if a.Is4() {
		lengths = x.lengths4
	}
	any := false
	for _, n := range lengths {
		p, err := a.Prefix(n)
		if err != nil {
			continue
		}
		for _, i := range x.byPrefix[p] {
			if n > bits[i] {
				bits[i] = n
				any = true
			}
		}
	}
	return any
}
