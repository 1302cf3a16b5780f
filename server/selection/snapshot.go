package selection

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/regionmirror/regionmirror/internal/filetable"
	"github.com/regionmirror/regionmirror/internal/model"
)

// Policy is the part of the configuration that selection needs.
type Policy struct {
	// OriginURL is where the origin tree is served, the clients' last resort ("" for none).
	OriginURL string
	// AlternatesMaxAge is how long a superseded repomd.xml is still accepted.
	AlternatesMaxAge time.Duration
	// PublicURL is this server's own URL (server.public_url, "" for none): metalinks and
	// mirror lists offer an on-demand region as PublicURL/r/<region>/, so that dnf asks
	// this server for every file and is sent on to a verified copy. Without it on-demand
	// regions are left out of metalinks and mirror lists.
	PublicURL string
}

// Snapshot is an immutable view of everything selection needs. It is built off the
// request path and swapped in atomically; requests only ever read it.
type Snapshot struct {
	// ReadAt is when the data was read (the database's clock); BuildTime how long it took.
	ReadAt    time.Time
	BuildTime time.Duration
	// Gen numbers snapshots in the order they were built (in this process): caches of
	// answers key on it, so they tell snapshots apart without keeping an old one (and its
	// file table) alive.
	Gen    uint64
	Policy Policy
	// FilesReadFrom is when (this process's clock) the read behind the per-file data
	// began; zero for a snapshot not built by a store. Servers stop trusting on-demand
	// copies in data older than ondemand.stale_after: gc removes those that long after
	// marking them, and a server that cannot reach the database would never see the mark.
	FilesReadFrom time.Time
	Regions       []*Region     // ordered by name; Region.Index is the position
	Repos         []*Repository // ordered by name and arch
	Files         *FileIndex    // nil when per-file data was not loaded

	// fileVerified is, by Region.Index, the files verified in that region.
	fileVerified []filetable.Bitset

	origin   *Region // Policy.OriginURL as a pseudo-region; nil without one
	blocks   *netblockIndex
	byName   map[string]*Region     // names and aliases, lower case
	repos    map[string]*Repository // repoKey(name, arch)
	byRepomd map[string]*Repository // model.RepomdPath(Directory)
}

// Region is one region as selection sees it.
type Region struct {
	Index        int
	ID           int64
	Name         string
	Aliases      []string
	Country      string // ISO 3166-1 alpha-2, upper case; "" if unknown
	Continent    string
	Lat, Lon     float64
	HasCoords    bool
	Weight       int
	LocationOnly bool
	Enabled      bool
	Includes     []string
	Netblocks    []netip.Prefix
	Health       string // model.HealthUnknown, Up or Down
	HealthSince  time.Time
	HealthError  string // model.PublicReason of the recorded error
	// Unreachable is why this server's own prober cannot reach the region ("" when it can):
	// the error and since when. It is not in the database: each server sees its own network.
	Unreachable string
	// Scheme is the public URL's scheme (http or https), for protocol=.
	Scheme string
	// OnDemand: the region holds metadata and Pins pushed, and other files once a client
	// asked for them (model.FillOnDemand).
	OnDemand bool
	Pins     []string
	MaxBytes int64 // the cap of its on-demand copies (0: none)
	// base is the public URL plus the key prefix, ending in "/".
	base string
	// listBase, listScheme are what metalinks and mirror lists name: base, or for an
	// on-demand region Policy.PublicURL + "/r/" + name + "/" ("" without a PublicURL).
	listBase, listScheme string
}

// ListBase returns the base URL metalinks and mirror lists give for the region, ending in
// "/": its bucket's for a push region; this server's /r/<name>/ for an on-demand one
// (redirects never use it: they point at the bucket, Base). "" when the region cannot be
// listed (on-demand without server.public_url).
func (r *Region) ListBase() string { return r.listBase }

// ListScheme is the scheme of ListBase.
func (r *Region) ListScheme() string { return r.listScheme }

// FillsOnDemand reports whether the region's copy of path is made when a client asks for
// it (model.Region.FillsOnDemand): on demand, carried and not pushed.
func (r *Region) FillsOnDemand(path string) bool {
	return r.OnDemand && r.Carries(path) && !r.Pushes(path)
}

// Pushes reports whether a push writes path into the region (model.PushesPath).
func (r *Region) Pushes(path string) bool {
	fill := model.FillPush
	if r.OnDemand {
		fill = model.FillOnDemand
	}
	return model.PushesPath(fill, r.Includes, r.Pins, path)
}

// URL returns the region's public URL for a path of the origin tree.
func (r *Region) URL(path string) string { return r.base + model.EscapePath(path) }

// RepomdURL returns the URL of repo's repomd.xml in the region's bucket (what the prober
// checks). Metalinks list ListedRepomdURL, which differs for on-demand regions.
func (r *Region) RepomdURL(repo *Repository) string { return r.base + repo.repomdPath }

// ListedRepomdURL returns the URL of repo's repomd.xml as metalinks list it: ListBase
// plus the path ("" when the region cannot be listed).
func (r *Region) ListedRepomdURL(repo *Repository) string {
	if r.listBase == "" {
		return ""
	}
	return r.listBase + repo.repomdPath
}

// Base returns the region's public URL plus its key prefix, ending in "/": URL(p) is Base
// followed by p escaped. Renderers write it directly, without building the URL first.
func (r *Region) Base() string { return r.base }

// Carries reports whether the region's include prefixes cover the file at path.
func (r *Region) Carries(path string) bool {
	return model.CarriesPath(r.Includes, path)
}

// CarriesRepository reports whether the region carries the whole repository in dir, the
// one rule the pusher, gc, the scanner and the CLI apply too.
func (r *Region) CarriesRepository(dir string) bool {
	return model.CarriesRepository(r.Includes, dir)
}

// Repository is a yum/dnf repository or an APT suite with its metadata history (repomd.xml,
// or InRelease) and what each region serves.
type Repository struct {
	ID        int64
	Name      string
	Arch      string
	Directory string
	Kind      string // model.RepoYum or model.RepoApt
	Suite     string // APT only
	// Versions are the repomd.xml files the origin published, newest (current) first.
	Versions []*Version
	// history is Versions as model.Freshness reads them.
	history []model.RepomdVersion
	// InRegion is indexed by Region.Index.
	InRegion []RegionRepo
	// repomdPath is the repository's metadata path (model.Repository.MetadataPath:
	// repomd.xml, or an APT suite's InRelease), escaped for URLs.
	repomdPath string
}

// IsApt reports whether the repository is an APT suite.
func (repo *Repository) IsApt() bool { return repo.Kind == model.RepoApt }

// Version is one published repomd.xml.
type Version struct {
	SHA256                       []byte
	MD5, SHA1, SHA256Hex, SHA512 string // hex, as the metalink prints them
	Size                         int64
	Timestamp                    int64 // newest <timestamp> inside it
	FirstSeen                    time.Time
	SupersededAt                 time.Time // FirstSeen of the next newer version; zero for the current one
	ValidUntil                   time.Time // an APT revision's Valid-Until; zero: none
}

// RegionRepo is what a region was last verified to serve for a repository.
type RegionRepo struct {
	Known      bool   // a scan or push recorded something
	State      string // model.RepoFresh, ...
	Version    int    // index into Repository.Versions of the served repomd.xml; -1 if none of them
	SHA256     []byte
	HTTPStatus int
	Error      string // model.PublicReason of the recorded error
	VerifiedAt time.Time
}

// EscapedRepomdPath returns the repository's metadata path (Directory +
// "/repodata/repomd.xml", or an APT suite's InRelease), escaped for URLs.
func (repo *Repository) EscapedRepomdPath() string { return repo.repomdPath }

// recorded is what model.Freshness reads of a RegionRepo.
func (st *RegionRepo) recorded() model.RecordedRepo {
	return model.RecordedRepo{Known: st.Known, State: st.State, RepomdSHA256: st.SHA256}
}

// freshness is the one verdict on what r serves of repo at now (see model.Freshness).
func (s *Snapshot) freshness(repo *Repository, r *Region, now time.Time) model.RepoFreshness {
	return model.Freshness(r.CarriesRepository(repo.Directory), repo.InRegion[r.Index].recorded(), repo.history,
		s.Policy.alternates(), now)
}

func (p Policy) alternates() model.AlternatesPolicy {
	return model.AlternatesPolicy{MaxAge: p.AlternatesMaxAge}
}

// MatchNetblocks sets bits[r.Index] to the longest prefix length of region r's netblocks
// that holds a, and to -1 for the other regions; len(bits) must be len(s.Regions). It
// reports whether any region matched.
func (s *Snapshot) MatchNetblocks(a netip.Addr, bits []int) bool { return s.blocks.match(a, bits) }

// Verified reports whether region r holds a verified copy of the file with index i in
// s.Files (which must not be nil).
func (s *Snapshot) Verified(r *Region, i int) bool { return s.fileVerified[r.Index].Has(i) }

// VerifiedCount returns how many files region r holds verified; 0 when per-file data is
// not loaded.
func (s *Snapshot) VerifiedCount(r *Region) int {
	if s.fileVerified == nil {
		return 0
	}
	return s.fileVerified[r.Index].Count()
}

func repoKey(name, arch string) string { return name + "\x00" + arch }

// Region returns the region a location= value names: a name or alias, case-insensitive,
// or an availability zone of one (us-east-1a means us-east-1).
func (s *Snapshot) Region(location string) *Region {
	loc := strings.ToLower(strings.TrimSpace(location))
	if loc == "" {
		return nil
	}
	if r := s.byName[loc]; r != nil {
		return r
	}
	// An availability zone is its region's name plus one letter after the final digit.
	if n := len(loc); n >= 3 && loc[n-1] >= 'a' && loc[n-1] <= 'z' && loc[n-2] >= '0' && loc[n-2] <= '9' {
		return s.byName[loc[:n-1]]
	}
	return nil
}

// RegionByID returns the region with that ID, or nil.
func (s *Snapshot) RegionByID(id int64) *Region {
	for _, r := range s.Regions {
		if r.ID == id {
			return r
		}
	}
	return nil
}

// RepositoryOfRepomd returns the repository whose repomd.xml is at path, or nil.
func (s *Snapshot) RepositoryOfRepomd(path string) *Repository { return s.byRepomd[path] }

// ServesRepository reports whether r serves repo's current repomd.xml or an alternate
// still offered at now (the rule SelectRepository applies, fill mode aside).
func (s *Snapshot) ServesRepository(repo *Repository, r *Region, now time.Time) bool {
	f := s.freshness(repo, r, now)
	return f.Offered() && ExpiredAlternate(repo, f.Version, now) == ""
}

// Repository returns the repository with that name and arch, or nil.
func (s *Snapshot) Repository(name, arch string) *Repository {
	return s.repos[repoKey(name, arch)]
}

// generations numbers the snapshots BuildSnapshot makes.
var generations atomic.Uint64

// BuildSnapshot turns what the database holds into a snapshot. files may be nil.
// unreachable (may be nil) is the prober's verdict by region ID: why the region is
// unreachable from this server; regions in it are left out of every answer.
func BuildSnapshot(data *model.SnapshotData, files *FileIndex, policy Policy, unreachable map[int64]string) *Snapshot {
	s := &Snapshot{
		Gen:      generations.Add(1),
		ReadAt:   data.ReadAt,
		Policy:   policy,
		Files:    files,
		byName:   map[string]*Region{},
		repos:    map[string]*Repository{},
		byRepomd: map[string]*Repository{},
	}
	if policy.OriginURL != "" {
		s.origin = newRegion(&model.Region{Name: "origin", PublicURL: policy.OriginURL, Weight: 0, Enabled: true})
		s.origin.Index = -1
	}
	regionIdx := map[int64]int{}
	for i := range data.Regions {
		m := &data.Regions[i]
		r := newRegion(m)
		r.Index = len(s.Regions)
		if r.OnDemand {
			r.listBase, r.listScheme = "", ""
			if policy.PublicURL != "" {
				r.listBase = strings.TrimRight(policy.PublicURL, "/") + "/r/" + model.EscapePath(r.Name) + "/"
				r.listScheme, _, _ = strings.Cut(policy.PublicURL, "://")
				r.listScheme = strings.ToLower(r.listScheme)
			}
		}
		regionIdx[m.ID] = r.Index
		s.Regions = append(s.Regions, r)
	}
	slices.SortFunc(s.Regions, func(a, b *Region) int { return strings.Compare(a.Name, b.Name) })
	for i, r := range s.Regions {
		r.Index = i
		r.Unreachable = unreachable[r.ID]
		regionIdx[r.ID] = i
		for _, n := range append([]string{r.Name}, r.Aliases...) {
			s.byName[strings.ToLower(n)] = r
		}
	}
	for _, h := range data.Health {
		if i, ok := regionIdx[h.RegionID]; ok {
			r := s.Regions[i]
			// Public answers show what failed, never the bucket or endpoint the error names.
			r.Health, r.HealthSince, r.HealthError = h.State, h.ChangedAt, model.PublicReason(h.LastError)
		}
	}

	for _, m := range data.Repositories {
		repo := &Repository{
			ID: m.ID, Name: m.Name, Arch: m.Arch, Directory: m.Directory, Kind: m.Kind, Suite: m.Suite,
			InRegion:   make([]RegionRepo, len(s.Regions)),
			repomdPath: model.EscapePath(m.MetadataPath()),
		}
		if repo.Kind == "" {
			repo.Kind = model.RepoYum
		}
		for i := range repo.InRegion {
			repo.InRegion[i].Version = -1
		}
		s.repos[repoKey(m.Name, m.Arch)] = repo
		s.byRepomd[m.MetadataPath()] = repo
		s.Repos = append(s.Repos, repo)
	}
	slices.SortFunc(s.Repos, func(a, b *Repository) int {
		return strings.Compare(repoKey(a.Name, a.Arch), repoKey(b.Name, b.Arch))
	})
	byID := map[int64]*Repository{}
	for _, r := range s.Repos {
		byID[r.ID] = r
	}
	for _, v := range data.RepomdVersions { // newest first within a repository
		repo := byID[v.RepositoryID]
		if repo == nil {
			continue
		}
		ver := &Version{
			SHA256: v.SHA256, MD5: hex.EncodeToString(v.MD5), SHA1: hex.EncodeToString(v.SHA1),
			SHA256Hex: hex.EncodeToString(v.SHA256), SHA512: hex.EncodeToString(v.SHA512),
			Size: v.Size, Timestamp: v.Timestamp, FirstSeen: v.FirstSeen, SupersededAt: v.SupersededAt, ValidUntil: v.ValidUntil,
		}
		repo.Versions = append(repo.Versions, ver)
		repo.history = append(repo.history, v)
	}
	for _, rr := range data.RegionRepos {
		repo := byID[rr.RepositoryID]
		i, ok := regionIdx[rr.RegionID]
		if repo == nil || !ok {
			continue
		}
		st := RegionRepo{Known: true, State: rr.State, Version: -1, SHA256: rr.RepomdSHA256, HTTPStatus: rr.HTTPStatus,
			Error: model.PublicReason(rr.Error)}
		if rr.VerifiedAt != nil {
			st.VerifiedAt = *rr.VerifiedAt
		}
		for vi, v := range repo.Versions {
			if rr.RepomdSHA256 != nil && string(v.SHA256) == string(rr.RepomdSHA256) {
				st.Version = vi
				break
			}
		}
		repo.InRegion[i] = st
	}
	s.blocks = newNetblockIndex(s.Regions)
	if files != nil {
		s.fileVerified = make([]filetable.Bitset, len(s.Regions))
		for i, r := range s.Regions {
			s.fileVerified[i] = files.t.Verified[r.ID]
		}
	}
	return s
}

func newRegion(m *model.Region) *Region {
	r := &Region{
		ID: m.ID, Name: m.Name, Aliases: m.Aliases, Country: m.Country, Continent: m.Continent,
		Weight: m.Weight, LocationOnly: m.Access == model.AccessLocationOnly, Enabled: m.Enabled,
		Includes: m.Includes, Netblocks: m.Netblocks, Health: model.HealthUnknown,
		OnDemand: m.OnDemand(), Pins: m.Pins, MaxBytes: m.MaxBytes,
	}
	if m.Latitude != nil && m.Longitude != nil {
		r.Lat, r.Lon, r.HasCoords = *m.Latitude, *m.Longitude, true
	}
	base := strings.TrimRight(m.PublicURL, "/") + "/"
	if m.Prefix != "" {
		base += model.EscapePath(strings.Trim(m.Prefix, "/")) + "/"
	}
	r.base = base
	r.Scheme, _, _ = strings.Cut(m.PublicURL, "://")
	r.Scheme = strings.ToLower(r.Scheme)
	r.listBase, r.listScheme = r.base, r.Scheme
	return r
}

// Stats summarises a snapshot for logs and /readyz.
func (s *Snapshot) Stats() string {
	files := 0
	if s.Files != nil {
		files = s.Files.Len()
	}
	return fmt.Sprintf("%d regions, %d repositories, %d files", len(s.Regions), len(s.Repos), files)
}
