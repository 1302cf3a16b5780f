package selection

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/regionmirror/regionmirror/internal/geo"
	"github.com/regionmirror/regionmirror/internal/model"
)

// Selection tiers: what decided the order of the regions.
const (
	TierLocation = "location" // location= named a region
	TierCountry  = "country"  // country= listed countries
	TierNetblock = "netblock" // the client address is in a region's netblocks
	TierGeoIP    = "geoip"    // GeoIP placed the client address
	TierWeight   = "weight"   // nothing known about the client: weight order
	TierNone     = "none"     // no region can serve (only the origin, if configured)
)

// Request is what is known about a client, already parsed and bounded.
type Request struct {
	Location  string       // location= as sent ("" for none)
	Countries []string     // country=: upper-case ISO codes in the order given
	Global    bool         // country=global: no preference by place
	Client    netip.Addr   // the client's address; invalid when unknown
	ClientGeo geo.Location // what GeoIP knows about Client
	Protocols []string     // protocol=: lower case; nil means any
	Now       time.Time
	// Explain fills in Decision.Basis and Choice.Why; the request path leaves them out,
	// since formatting them costs more than the selection itself.
	Explain bool
}

// Decision is the ordered list of regions for one request, with the reason for every
// region left out. It is what the formats render and what `regionmirror explain` prints.
type Decision struct {
	Tier     string
	Basis    string // why that tier applied, for people
	Chosen   []Choice
	Excluded []Exclusion
	// Origin is the origin as a last-resort entry; nil when not configured or filtered out.
	Origin *Region
	Notes  []string
}

// Choice is a region that can serve, in order.
type Choice struct {
	Region *Region
	Why    string
	// Version is, for repositories, the index in Repository.Versions of the repomd.xml the
	// region serves (0: the current one).
	Version int
}

// Exclusion is a region left out, and why.
type Exclusion struct {
	Region *Region
	Reason string
}

// Regions returns the chosen regions followed by the origin, as clients should try them.
func (d *Decision) Regions() []*Region {
	out := make([]*Region, 0, len(d.Chosen)+1)
	for _, c := range d.Chosen {
		out = append(out, c.Region)
	}
	if d.Origin != nil {
		out = append(out, d.Origin)
	}
	return out
}

// SelectRepository orders the regions that can serve repo's metadata for req.
//
// An on-demand region is offered by its ListBase on this server, and only with a
// Policy.PublicURL: dnf would otherwise fetch packages straight from a bucket that does
// not hold them yet.
func SelectRepository(s *Snapshot, repo *Repository, req Request) *Decision {
	return selectRegions(s, req, repo.Directory, func(r *Region) (int, string) {
		if r.OnDemand && r.listBase == "" {
			return 0, NotListedOnDemand
		}
		return repoServable(s, repo, r, req.Now)
	})
}

// NotListedOnDemand is why an on-demand region is left out of metalinks and mirror lists.
const NotListedOnDemand = "on-demand region: metalinks and mirror lists offer it only through this server (/r/), and server.public_url is not set"

// SelectFile orders the regions that hold a verified copy of the file at path.
func SelectFile(s *Snapshot, path string, req Request) *Decision {
	idx, known := -1, false
	if s.Files != nil {
		idx, known = s.Files.Lookup(path)
	}
	return selectRegions(s, req, path, func(r *Region) (int, string) {
		switch {
		case !r.Carries(path):
			return 0, fmt.Sprintf("does not carry %s (includes: %s)", path, strings.Join(r.Includes, ", "))
		case s.Files == nil:
			return 0, "per-file data is not loaded"
		case !known:
			return 0, "the origin has no such file"
		case !s.fileVerified[r.Index].Has(idx):
			return 0, "holds no verified copy of the file"
		}
		return 0, ""
	})
}

// SelectFileAt is SelectFile for a file already looked up: index is its index in s.Files.
func SelectFileAt(s *Snapshot, path string, index int, req Request) *Decision {
	return selectRegions(s, req, path, func(r *Region) (int, string) {
		switch {
		case !r.Carries(path):
			return 0, "does not carry " + path + " (includes: " + strings.Join(r.Includes, ", ") + ")"
		case !s.fileVerified[r.Index].Has(index):
			return 0, "holds no verified copy of the file"
		}
		return 0, ""
	})
}

// SelectClient orders the regions for req before any repository or file is considered:
// every region that may serve this client, as the redirect path filters it by file.
func SelectClient(s *Snapshot, req Request) *Decision {
	return selectRegions(s, req, "", func(*Region) (int, string) { return 0, "" })
}

// repoServable says whether r serves repo's current repomd.xml or an alternate still
// offered (model.Freshness, the rule every view shares), and returns the version index; a
// non-empty reason means it does not.
func repoServable(s *Snapshot, repo *Repository, r *Region, now time.Time) (int, string) {
	f := s.freshness(repo, r, now)
	if f.Offered() {
		if why := ExpiredAlternate(repo, f.Version, now); why != "" {
			return 0, why
		}
		return f.Version, ""
	}
	st := repo.InRegion[r.Index]
	switch {
	case f.State == model.RepoExcluded:
		return 0, fmt.Sprintf("does not carry %s (includes: %s)", repo.Directory, strings.Join(r.Includes, ", "))
	case st.State == model.RepoFresh || st.State == model.RepoAlternate || !st.Known:
		return 0, f.Reason // judged against the versions and the clock
	case st.Error != "":
		return 0, f.Reason + ": " + st.Error // the recorded verdict, with its (public) reason
	case st.HTTPStatus != 0 && st.HTTPStatus != 200:
		return 0, fmt.Sprintf("%s: HTTP %d", f.Reason, st.HTTPStatus)
	}
	return 0, f.Reason
}

// ExpiredAlternate returns why a region serving version vi of repo (an index into
// Versions) must not be offered although within the alternates window: an older APT
// revision whose Valid-Until has passed, which apt refuses with a hard error rather than
// trying the next mirror. "" otherwise. The current revision is never refused here: when
// it has expired every region fails alike, and the list changes nothing.
func ExpiredAlternate(repo *Repository, vi int, now time.Time) string {
	if vi <= 0 || vi >= len(repo.Versions) {
		return ""
	}
	if vu := repo.Versions[vi].ValidUntil; !vu.IsZero() && !now.Before(vu) {
		return "serves an older InRelease whose Valid-Until (" + vu.UTC().Format(time.RFC3339) + ") has passed"
	}
	return ""
}

// ranked is a candidate with its sort key.
type ranked struct {
	r       *Region
	group   int
	dist    float64
	why     string
	version int
}

// place is what selection knows about where the client is.
type place struct {
	name      string // for reasons: a region name, "client"
	lat, lon  float64
	hasCoords bool
	country   string
	continent string
}

func selectRegions(s *Snapshot, req Request, path string, servable func(*Region) (int, string)) *Decision {
	d := &Decision{}
	var named *Region
	if req.Location != "" {
		if named = s.Region(req.Location); named == nil {
			d.Notes = append(d.Notes, fmt.Sprintf("location=%s names no region; ignored", req.Location))
		}
	}
	// The longest netblock of each region that holds the client; -1 for none.
	blockBits := make([]int, len(s.Regions))
	s.blocks.match(req.Client, blockBits)

	cands := make([]ranked, 0, len(s.Regions))
	for _, r := range s.Regions {
		reason := ""
		version := 0
		switch {
		case !r.Enabled:
			reason = "disabled"
		case r.Health == model.HealthDown:
			reason = "health is down"
			if !r.HealthSince.IsZero() {
				reason += " since " + r.HealthSince.UTC().Format(time.RFC3339)
			}
			if r.HealthError != "" {
				reason += ": " + r.HealthError
			}
		case r.Unreachable != "":
			reason = "unreachable from this server: " + r.Unreachable
		case r.LocationOnly && r != named && blockBits[r.Index] < 0:
			reason = "location-only: the client neither named it (location=) nor is in its netblocks"
		case !protocolAllowed(req.Protocols, r.Scheme):
			reason = fmt.Sprintf("its URL is %s, not in protocol=%s", r.Scheme, strings.Join(req.Protocols, ","))
		default:
			version, reason = servable(r)
		}
		if reason != "" {
			d.Excluded = append(d.Excluded, Exclusion{Region: r, Reason: reason})
			continue
		}
		cands = append(cands, ranked{r: r, version: version})
	}

	switch {
	case named != nil:
		d.Tier = TierLocation
		if req.Explain {
			d.Basis = fmt.Sprintf("location=%s names region %s; the others follow by distance from it", req.Location, named.Name)
		}
		ref := place{name: named.Name, lat: named.Lat, lon: named.Lon, hasCoords: named.HasCoords, country: named.Country, continent: named.Continent}
		for i := range cands {
			if cands[i].r == named {
				cands[i].group = 0
				if req.Explain {
					cands[i].why = "named by location=" + req.Location
				}
			} else {
				rankNear(&cands[i], ref, req.Explain)
			}
		}
		if !slices.ContainsFunc(cands, func(c ranked) bool { return c.r == named }) {
			d.Notes = append(d.Notes, fmt.Sprintf("region %s was named but cannot serve (see below)", named.Name))
		}
	case req.Global:
		d.Tier = TierWeight
		if req.Explain {
			d.Basis = "country=global: weight order"
		}
		for i := range cands {
			rankWeight(&cands[i], req.Explain)
		}
	case len(req.Countries) > 0:
		d.Tier = TierCountry
		if req.Explain {
			d.Basis = "country=" + strings.Join(req.Countries, ",") + ": those countries first, then the same continent, then the rest"
		}
		for i := range cands {
			rankCountries(&cands[i], req.Countries, req.Explain)
		}
	case req.Client.IsValid() && (candInBlock(cands, blockBits) || req.ClientGeo.Known()):
		d.Tier = TierGeoIP
		g := req.ClientGeo
		if req.Explain {
			d.Basis = fmt.Sprintf("client %s: %s", req.Client, describePlace(g))
		}
		ref := place{name: "the client", lat: g.Lat, lon: g.Lon, hasCoords: g.HasCoords, country: g.Country, continent: g.Continent}
		for i := range cands {
			c := &cands[i]
			if bits := blockBits[c.r.Index]; bits >= 0 {
				// Longer (more specific) netblocks first.
				c.group, c.dist = 0, float64(-bits)
				if req.Explain {
					c.why = fmt.Sprintf("the client is in its netblock /%d", bits)
				}
				continue
			}
			if g.Known() {
				rankNear(c, ref, req.Explain)
			} else {
				rankWeight(c, req.Explain)
				c.group = 5
			}
		}
		if candInBlock(cands, blockBits) {
			d.Tier = TierNetblock
			if req.Explain {
				d.Basis = fmt.Sprintf("client %s is in a region's netblocks; then %s", req.Client, describePlace(g))
			}
		}
	default:
		d.Tier = TierWeight
		if req.Explain {
			d.Basis = "nothing is known about where the client is: weight order"
		}
		if req.Client.IsValid() && req.Explain {
			d.Basis = fmt.Sprintf("client %s is in no netblock and unknown to GeoIP: weight order", req.Client)
		}
		for i := range cands {
			rankWeight(&cands[i], req.Explain)
		}
	}
	slices.SortStableFunc(cands, func(a, b ranked) int {
		return cmp.Or(cmp.Compare(a.group, b.group), cmp.Compare(a.dist, b.dist),
			cmp.Compare(b.r.Weight, a.r.Weight), strings.Compare(a.r.Name, b.r.Name))
	})
	d.Chosen = make([]Choice, 0, len(cands))
	for _, c := range cands {
		d.Chosen = append(d.Chosen, Choice{Region: c.r, Why: c.why, Version: c.version})
	}
	if len(d.Chosen) == 0 {
		d.Tier = TierNone
	}
	if o := s.origin; o != nil {
		if protocolAllowed(req.Protocols, o.Scheme) {
			d.Origin = o
		} else {
			d.Notes = append(d.Notes, fmt.Sprintf("the origin's URL is %s, not in protocol=%s", o.Scheme, strings.Join(req.Protocols, ",")))
		}
	}
	if len(req.Protocols) > 0 && len(d.Chosen) == 0 && d.Origin == nil {
		d.Notes = append(d.Notes, fmt.Sprintf("protocol=%s matched no URL", strings.Join(req.Protocols, ",")))
	}
	return d
}

func candInBlock(cands []ranked, blockBits []int) bool {
	return slices.ContainsFunc(cands, func(c ranked) bool { return blockBits[c.r.Index] >= 0 })
}

func describePlace(g geo.Location) string {
	switch {
	case g.HasCoords:
		return fmt.Sprintf("GeoIP places it at %.2f,%.2f (%s); the others by distance", g.Lat, g.Lon, cmp.Or(g.Country, "?"))
	case g.Country != "":
		return fmt.Sprintf("GeoIP places it in %s (%s); same country, then continent, then the rest", g.Country, cmp.Or(g.Continent, "?"))
	case g.Continent != "":
		return fmt.Sprintf("GeoIP places it in continent %s", g.Continent)
	}
	return "GeoIP does not know it; weight order"
}

// rankNear orders by great-circle distance from ref; regions without coordinates come
// after those with, by country, then continent, then weight.
func rankNear(c *ranked, ref place, explain bool) {
	r := c.r
	switch {
	case ref.hasCoords && r.HasCoords:
		c.group, c.dist = 1, geo.DistanceKm(ref.lat, ref.lon, r.Lat, r.Lon)
		if explain {
			c.why = fmt.Sprintf("%.0f km from %s", c.dist, ref.name)
		}
	case ref.country != "" && r.Country == ref.country:
		c.group = 2
		if explain {
			c.why = "same country as " + ref.name + " (" + r.Country + ")"
		}
	case ref.continent != "" && r.Continent == ref.continent:
		c.group = 3
		if explain {
			c.why = "same continent as " + ref.name + " (" + r.Continent + ")"
		}
	default:
		c.group = 4
		if explain {
			c.why = fmt.Sprintf("farther away; weight %d", r.Weight)
		}
	}
}

func rankCountries(c *ranked, countries []string, explain bool) {
	r := c.r
	if i := slices.Index(countries, r.Country); i >= 0 && r.Country != "" {
		c.group, c.dist = 1, float64(i)
		if explain {
			c.why = "in country=" + r.Country
		}
		return
	}
	for _, cc := range countries {
		if ct := geo.ContinentOf(cc); ct != "" && ct == r.Continent {
			c.group = 2
			if explain {
				c.why = "same continent as " + cc + " (" + ct + ")"
			}
			return
		}
	}
	c.group = 3
	if explain {
		c.why = fmt.Sprintf("elsewhere; weight %d", r.Weight)
	}
}

func rankWeight(c *ranked, explain bool) {
	c.group = 1
	if explain {
		c.why = fmt.Sprintf("weight %d", c.r.Weight)
	}
}

func protocolAllowed(protocols []string, scheme string) bool {
	return len(protocols) == 0 || slices.Contains(protocols, scheme)
}

// Alternates returns the older repomd.xml versions clients may still accept, newest
// first: those superseded no longer than maxAge ago (model.AlternatesPolicy.Offered).
func (repo *Repository) Alternates(now time.Time, maxAge time.Duration) []*Version {
	var out []*Version
	policy := model.AlternatesPolicy{MaxAge: maxAge}
	for i := 1; i < len(repo.Versions); i++ {
		if !policy.Offered(repo.history[i], now) {
			break // older ones were superseded even earlier
		}
		out = append(out, repo.Versions[i])
	}
	return out
}
