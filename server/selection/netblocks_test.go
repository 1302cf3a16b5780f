package selection_test

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/regionmirror/regionmirror/server/selection"
)

func TestMatchNetblocks(t *testing.T) {
	specs := []regionSpec{
		{Name: "r-a", Netblocks: []string{"10.0.0.0/8", "10.1.0.0/16", "2001:db8::/32"}},
		{Name: "r-b", Netblocks: []string{"10.1.2.0/24", "192.0.2.0/24"}},
		{Name: "r-c", Netblocks: []string{"10.1.2.3/32", "2001:db8:1::/48"}},
		{Name: "r-d"},
		{Name: "r-e"},
	}
	data := fixtureData(t, specs)
	// Unmasked (validation refuses it, the index does not rely on that): masked.
	data.Regions[4].Netblocks = []netip.Prefix{netip.MustParsePrefix("198.51.100.77/24")}
	snap := selection.BuildSnapshot(data, nil, selection.Policy{}, nil)
	for _, tt := range []struct {
		addr    string
		want    []int // by region r-a .. r-e: the longest prefix length, -1 for none
		matched bool
	}{
		{"10.1.2.3", []int{16, 24, 32, -1, -1}, true},
		{"10.1.2.4", []int{16, 24, -1, -1, -1}, true},
		{"10.200.0.1", []int{8, -1, -1, -1, -1}, true},
		{"192.0.2.9", []int{-1, 24, -1, -1, -1}, true},
		{"198.51.100.1", []int{-1, -1, -1, -1, 24}, true},
		{"203.0.113.1", []int{-1, -1, -1, -1, -1}, false},
		{"2001:db8:1::5", []int{32, -1, 48, -1, -1}, true},
		{"2001:db9::1", []int{-1, -1, -1, -1, -1}, false},
		{"", []int{-1, -1, -1, -1, -1}, false}, // no client address
	} {
		var a netip.Addr
		if tt.addr != "" {
			a = netip.MustParseAddr(tt.addr)
		}
		bits := []int{7, 7, 7, 7, 7} // stale values must be overwritten
		if got := snap.MatchNetblocks(a, bits); got != tt.matched || !slices.Equal(bits, tt.want) {
			t.Errorf("%s: matched %v %v, want %v %v", tt.addr, got, bits, tt.matched, tt.want)
		}
	}
}
