package server

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParseQuery(t *testing.T) {
	tests := []struct {
		raw       string
		want      Query
		wantNotes int
	}{
		{"repo=fedora-40&arch=x86_64", Query{Repo: "fedora-40", Arch: "x86_64"}, 0},
		{"repo=a&repo=b&arch=x", Query{Repo: "b", Arch: "x"}, 0},
		{"repo=libc%2B%2B&arch=x86%5F64&countme=1&infra=stock", Query{Repo: "libc++", Arch: "x86_64", Countme: 1}, 0},
		// countme= outside 1..4 is ignored (the request is still answered); the last one counts.
		{"repo=a&arch=x&countme=4", Query{Repo: "a", Arch: "x", Countme: 4}, 0},
		{"repo=a&arch=x&countme=0", Query{Repo: "a", Arch: "x"}, 0},
		{"repo=a&arch=x&countme=5", Query{Repo: "a", Arch: "x"}, 0},
		{"repo=a&arch=x&countme=12", Query{Repo: "a", Arch: "x"}, 0},
		{"repo=a&arch=x&countme=%zz", Query{Repo: "a", Arch: "x"}, 0},
		{"repo=a&arch=x&countme=", Query{Repo: "a", Arch: "x"}, 0},
		{"repo=a&arch=x&countme=2&countme=x", Query{Repo: "a", Arch: "x"}, 0},
		{"repo=a&arch=x&countme=x&countme=3", Query{Repo: "a", Arch: "x", Countme: 3}, 0},
		{"repo=a+b&arch=x", Query{Repo: "a b", Arch: "x"}, 0},
		{"repo=a&arch=x&location=US-East-1A", Query{Repo: "a", Arch: "x", Location: "US-East-1A"}, 0},
		{"repo=a&arch=x&location=$location", Query{Repo: "a", Arch: "x"}, 1},
		{"repo=a&arch=x&country=de,Us,,global,de", Query{Repo: "a", Arch: "x", Countries: []string{"DE", "US"}, Global: true}, 0},
		{"repo=a&arch=x&country=$country", Query{Repo: "a", Arch: "x"}, 1},
		{"repo=a&arch=x&location=nowhere-9", Query{Repo: "a", Arch: "x", Location: "nowhere-9"}, 0}, // a note at selection
		{"repo=a&arch=x&protocol=HTTPS,http,https", Query{Repo: "a", Arch: "x", Protocols: []string{"https", "http"}}, 0},
		{"&&repo=a&=x&arch&%zz=1", Query{Repo: "a"}, 0},
	}
	for _, tt := range tests {
		q, err := ParseQuery(tt.raw)
		if err != nil {
			t.Errorf("%s: %v", tt.raw, err)
			continue
		}
		if q.Repo != tt.want.Repo || q.Arch != tt.want.Arch || q.Location != tt.want.Location || q.Global != tt.want.Global || q.Countme != tt.want.Countme ||
			!slices.Equal(q.Countries, tt.want.Countries) || !slices.Equal(q.Protocols, tt.want.Protocols) || len(q.Notes) != tt.wantNotes {
			t.Errorf("%s: got %+v, want %+v with %d notes", tt.raw, q, tt.want, tt.wantNotes)
		}
	}
	for _, bad := range []string{"repo=%", "country=" + string(make([]byte, 300)), "protocol=" + "a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a,a"} {
		if _, err := ParseQuery(bad); err == nil {
			t.Errorf("%.40q: accepted", bad)
		}
	}
}

// TestParseQueryUnknownValues: an unknown value of a parameter the server reads is the
// client's error, named with the parameter and the values it accepts (issue 12, defect 17).
func TestParseQueryUnknownValues(t *testing.T) {
	tests := []struct{ raw, want string }{
		{"repo=a&arch=x&protocol=gopher", `parameter protocol: unknown value "gopher"; accepted values: http, https`},
		{"repo=a&arch=x&protocol=https,ftp", `parameter protocol: unknown value "ftp"; accepted values: http, https`},
		{"repo=a&arch=x&protocol=%FF", `parameter protocol: unknown value "\xff"; accepted values: http, https`},
		{"repo=a&arch=x&country=%3Cb%3E", `parameter country: unknown value "\x3cb\x3e"`},
		{"repo=a&arch=x&country=de,ZZ", `parameter country: unknown value "ZZ"; accepted values: ISO 3166-1 alpha-2 codes (de, us, ...) and global`},
		{"repo=a&arch=x&country=Germany", `parameter country: unknown value "Germany"`},
	}
	for _, tt := range tests {
		_, err := ParseQuery(tt.raw)
		var br *BadRequestError
		if !errors.As(err, &br) || !strings.Contains(br.Msg, tt.want) {
			t.Errorf("%s: %v, want a bad request saying %s", tt.raw, err, tt.want)
		}
	}
}

func TestDownloadFlags(t *testing.T) {
	tests := []struct {
		raw               string
		meta4, mirrorlist bool
		bad               string
	}{
		{"", false, false, ""},
		{"meta4", true, false, ""},
		{"meta4=&countme=1", true, false, ""},
		{"mirrorlist=1", false, true, ""},
		{"mirrorlist=true&meta4=0", false, true, ""},
		{"meta4=banana", false, false, `parameter meta4: unknown value "banana"; accepted values: none, 1, true, 0, false`},
		{"mirrorlist=%FF", false, false, "parameter mirrorlist: unknown value"},
	}
	for _, tt := range tests {
		meta4, mirrorlist, err := downloadFlags(tt.raw)
		if tt.bad != "" {
			var br *BadRequestError
			if !errors.As(err, &br) || !strings.Contains(br.Msg, tt.bad) {
				t.Errorf("%s: %v, want a bad request saying %s", tt.raw, err, tt.bad)
			}
			continue
		}
		if err != nil || meta4 != tt.meta4 || mirrorlist != tt.mirrorlist {
			t.Errorf("%s: %v %v %v", tt.raw, meta4, mirrorlist, err)
		}
	}
}

func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ffff::/48")}
	tests := []struct {
		remote string
		xff    []string
		want   string
	}{
		{"192.0.2.1:1234", nil, "192.0.2.1"},
		{"192.0.2.1:1234", []string{"198.51.100.1"}, "192.0.2.1"}, // untrusted peer: header ignored
		{"10.0.0.1:1234", []string{"198.51.100.1"}, "198.51.100.1"},
		{"10.0.0.1:1234", []string{"6.6.6.6, 198.51.100.1, 10.0.0.2"}, "198.51.100.1"},
		{"10.0.0.1:1234", []string{"6.6.6.6", "198.51.100.1", "10.0.0.2"}, "198.51.100.1"},
		{"10.0.0.1:1234", []string{"10.0.0.3, 10.0.0.2"}, "10.0.0.3"}, // all trusted: the leftmost
		{"10.0.0.1:1234", []string{"6.6.6.6, garbage, 10.0.0.2"}, "10.0.0.2"},
		{"10.0.0.1:1234", nil, "10.0.0.1"},
		{"[2001:db8:ffff::1]:443", []string{"[2001:db8::7]:555"}, "2001:db8::7"},
		{"[fe80::1%eth0]:443", nil, "fe80::1"},
		{"[::ffff:192.0.2.9]:80", nil, "192.0.2.9"},
		{"10.0.0.1:1234", []string{"::ffff:198.51.100.4"}, "198.51.100.4"},
		{"@", nil, "invalid IP"},
	}
	for _, tt := range tests {
		if got := ClientAddr(tt.remote, tt.xff, trusted).String(); got != tt.want {
			t.Errorf("ClientAddr(%s, %q) = %s, want %s", tt.remote, tt.xff, got, tt.want)
		}
	}
}
