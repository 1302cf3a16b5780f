package server

import (
	"net/netip"
	"strings"
)

// ClientAddr returns the client's address: the socket peer, unless the peer is a trusted
// proxy; then the rightmost X-Forwarded-For entry that is not itself a trusted proxy.
// Anything left of that is client-supplied and never believed. Addresses are unmapped
// (::ffff:1.2.3.4 is 1.2.3.4) and lose their zone, so netblocks and GeoIP match them.
func ClientAddr(remoteAddr string, xff []string, trusted []netip.Prefix) netip.Addr {
	peer := parseHostAddr(remoteAddr)
	if !peer.IsValid() || !isTrusted(peer, trusted) {
		return peer
	}
	client := peer
	for i := len(xff) - 1; i >= 0; i-- {
		entries := strings.Split(xff[i], ",")
		for j := len(entries) - 1; j >= 0; j-- {
			a := parseHostAddr(strings.TrimSpace(entries[j]))
			if !a.IsValid() {
				// Garbage from a hop we trust: the hop before it is the best we know.
				return client
			}
			client = a
			if !isTrusted(a, trusted) {
				return a
			}
		}
	}
	return client
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHostAddr accepts "1.2.3.4", "1.2.3.4:80", "2001:db8::1", "[2001:db8::1]:80",
// "[fe80::1%eth0]:80".
func parseHostAddr(s string) netip.Addr {
	if s == "" || len(s) > 64 {
		return netip.Addr{}
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return normalizeAddr(ap.Addr())
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if a, err := netip.ParseAddr(s); err == nil {
		return normalizeAddr(a)
	}
	return netip.Addr{}
}

func normalizeAddr(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }
