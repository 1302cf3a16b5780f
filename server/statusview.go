package server

import (
	"encoding/hex"
	"slices"
	"strings"
	"time"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/server/selection"
)

// The views below are what the dashboard renders and the JSON API returns. They are built
// from the snapshot and the Activity's last read, never from the database directly, and
// carry nothing secret: no credentials profiles, buckets, endpoints or netblock lists.

// RegionView is a region as the pages and /api/v1/regions show it.
type RegionView struct {
	Name      string   `json:"name"`
	Aliases   []string `json:"aliases"`
	Country   string   `json:"country,omitempty"`
	Continent string   `json:"continent,omitempty"`
	Latitude  *float64 `json:"latitude,omitempty"`
	Longitude *float64 `json:"longitude,omitempty"`
	Weight    int      `json:"weight"`
	Access    string   `json:"access"` // public or location-only
	Enabled   bool     `json:"enabled"`
	// URL is the public base URL of the tree in this region (objects are URL + path).
	URL       string     `json:"url"`
	Includes  []string   `json:"includes"`
	Netblocks int        `json:"netblocks"` // how many netblocks send clients here
	Health    HealthView `json:"health"`
	// Unreachable is why this server's prober leaves the region out of its answers
	// (the error and since when); absent while the region answers.
	Unreachable string `json:"unreachable,omitempty"`
	// VerifiedFiles is how many files of the origin inventory the region holds verified.
	VerifiedFiles int `json:"verified_files"`
	// LastPush and LastScan are the region's newest finished runs (nil when none).
	LastPush *model.LastRun `json:"last_push,omitempty"`
	LastScan *model.LastRun `json:"last_scan,omitempty"`
	// VerifiedAt is when the newest successful push or scan of the region finished: its
	// copies were checked against the origin then.
	VerifiedAt *time.Time `json:"verified_at,omitempty"`
	Redirects  Redirects  `json:"redirects"`
	// Fill is push or on-demand; Pins and MaxBytes are an on-demand region's pushed
	// prefixes and the cap of its on-demand copies (0: none).
	Fill     string   `json:"fill"`
	Pins     []string `json:"pins"`
	MaxBytes int64    `json:"max_bytes"`
	// HeldBytes and HeldFiles are what an on-demand region's copies hold, as the last
	// background read found (nil for push regions and before the first read).
	HeldBytes *int64 `json:"held_bytes"`
	HeldFiles *int64 `json:"held_files"`
	// InRegionShare is requests / (requests + misses): the share of the requests that
	// would go to the region first and were answered there (nil before any).
	InRegionShare *float64 `json:"in_region_share"`
	// Jobs are an on-demand region's fill jobs (nil for push regions and before the first read).
	Jobs *JobsView `json:"jobs"`
}

// JobsView counts a region's fill jobs. A failed job is only counted: why it failed is
// for logs and the CLI ("copy failed" is all a public answer says).
type JobsView struct {
	Queued  int64 `json:"queued"`
	Running int64 `json:"running"`
	Failed  int64 `json:"failed"`
	// OldestQueuedAgeSeconds is how long the oldest queued job has waited (nil: none queued).
	OldestQueuedAgeSeconds *float64 `json:"oldest_queued_age_seconds"`
}

// HealthView is a region's probe state.
type HealthView struct {
	State string     `json:"state"` // unknown, up or down
	Since *time.Time `json:"since,omitempty"`
	Error string     `json:"error,omitempty"`
}

// Redirects counts what the server sent to a region (or to the origin).
type Redirects struct {
	Requests int64 `json:"requests"`
	Bytes    int64 `json:"bytes"`
	// Misses are requests that would have gone here first (an on-demand region) but were
	// answered elsewhere: it did not hold the file yet.
	Misses int64 `json:"misses"`
}

// RepositoryView is a repository and its state in every region.
type RepositoryView struct {
	Name      string       `json:"name"`
	Arch      string       `json:"arch"`
	Directory string       `json:"directory"`
	Kind      string       `json:"kind"`              // yum or apt
	Suite     string       `json:"suite,omitempty"`   // APT only
	Current   *VersionView `json:"current,omitempty"` // nil until a repomd.xml (InRelease) is recorded
	// ValidUntilWarning is set while the current revision's Valid-Until is less than a
	// day away or past: apt then refuses every region not synced with a newer one.
	ValidUntilWarning string `json:"valid_until_warning,omitempty"`
	// Alternates are the superseded repomd.xml files clients still accept, newest first.
	Alternates []VersionView `json:"alternates"`
	// Regions is the state by region name; Cells the same in the order of the regions.
	Regions map[string]CellView `json:"regions"`
	Cells   []CellView          `json:"-"`
}

// VersionView is one published repomd.xml.
type VersionView struct {
	SHA256       string     `json:"sha256"`
	Size         int64      `json:"size"`
	Timestamp    int64      `json:"timestamp"`
	FirstSeen    time.Time  `json:"first_seen"`
	SupersededAt *time.Time `json:"superseded_at,omitempty"`
	ValidUntil   *time.Time `json:"valid_until,omitempty"` // an APT revision's Valid-Until
}

// validUntilSoon is how far ahead of a revision's Valid-Until the views warn.
const validUntilSoon = 24 * time.Hour

// ValidUntilWarning is the warning the views show for a current revision expiring at
// validUntil (zero: never), or "".
func ValidUntilWarning(validUntil, now time.Time) string {
	switch {
	case validUntil.IsZero() || validUntil.Sub(now) >= validUntilSoon:
		return ""
	case !validUntil.After(now):
		return "the current revision's Valid-Until (" + validUntil.UTC().Format(time.RFC3339) + ") has passed: apt refuses it everywhere until a newer one is published"
	}
	return "the current revision's Valid-Until (" + validUntil.UTC().Format(time.RFC3339) + ") is less than a day away: apt refuses it after that, in every region not synced with a newer one"
}

// Cell states beyond the recorded db.Repo* ones.
const (
	CellExcluded   = model.RepoExcluded   // the region's includes leave the repository out
	CellUnverified = model.RepoUnverified // nothing recorded yet
)

// CellView is what one region serves of one repository.
type CellView struct {
	Region string `json:"-"`
	// State is fresh (the current repomd.xml), alternate (an older one still accepted),
	// stale, missing, unreachable, unverified or excluded.
	State      string     `json:"state"`
	VerifiedAt *time.Time `json:"verified_at,omitempty"`
	Error      string     `json:"error,omitempty"`
	// Freshness is the repository's freshness lag in the region (nil where the region
	// does not carry it).
	Freshness *FreshnessView `json:"freshness,omitempty"`
}

// StatusView is the whole dashboard.
type StatusView struct {
	GeneratedAt  time.Time        `json:"generated_at"`
	Snapshot     SnapshotView     `json:"snapshot"`
	Database     DatabaseView     `json:"database"`
	Regions      []RegionView     `json:"regions"`
	Repositories []RepositoryView `json:"repositories"`
	RecentRuns   []model.Run      `json:"recent_runs"`
	// Origin is what was redirected to the origin (no region held the file).
	Origin Redirects `json:"origin_redirects"`
	// SavedFraction is the share of redirected bytes that regions served rather than the
	// origin (0..1; 0 when nothing was redirected).
	SavedFraction float64 `json:"saved_fraction"`
	OriginURL     string  `json:"origin_url,omitempty"`
}

// SnapshotView describes the serving snapshot.
type SnapshotView struct {
	ReadAt       time.Time `json:"read_at"`
	Regions      int       `json:"regions"`
	Repositories int       `json:"repositories"`
	Files        int       `json:"files"`
	FilesLoaded  bool      `json:"files_loaded"`
}

// DatabaseView says whether the database answers.
type DatabaseView struct {
	OK      bool       `json:"ok"`
	Error   string     `json:"error,omitempty"`
	ErrorAt *time.Time `json:"error_at,omitempty"`
	// ActivityReadAt is when runs and redirect totals were last read (nil: never).
	ActivityReadAt *time.Time `json:"activity_read_at,omitempty"`
	ActivityError  string     `json:"activity_error,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// inRegionShare is requests / (requests + misses); nil when both are 0.
func inRegionShare(requests, misses int64) *float64 {
	if requests+misses <= 0 {
		return nil
	}
	f := float64(requests) / float64(requests+misses)
	return &f
}

// regionViews builds the views of every region of snap, in the snapshot's (name) order.
func (s *Server) regionViews(snap *selection.Snapshot) []RegionView {
	var (
		view   *ActivityView
		totals map[string]model.RedirectCount
	)
	if a := s.opt.Activity; a != nil {
		view = a.View()
		totals = map[string]model.RedirectCount{}
		for _, t := range a.Totals() {
			totals[t.Region] = t
		}
	}
	out := make([]RegionView, 0, len(snap.Regions))
	for _, r := range snap.Regions {
		v := RegionView{
			Name: r.Name, Aliases: r.Aliases, Country: r.Country, Continent: r.Continent,
			Weight: r.Weight, Access: "public", Enabled: r.Enabled, URL: r.Base(),
			Includes: r.Includes, Netblocks: len(r.Netblocks),
			Health:      HealthView{State: r.Health, Since: timePtr(r.HealthSince), Error: r.HealthError},
			Unreachable: r.Unreachable,
		}
		if v.Aliases == nil {
			v.Aliases = []string{}
		}
		if v.Includes == nil {
			v.Includes = []string{}
		}
		if r.HasCoords {
			lat, lon := r.Lat, r.Lon
			v.Latitude, v.Longitude = &lat, &lon
		}
		if r.LocationOnly {
			v.Access = "location-only"
		}
		v.VerifiedFiles = snap.VerifiedCount(r)
		if view != nil {
			for i := range view.LastRuns {
				lr := &view.LastRuns[i]
				if lr.RegionID != r.ID {
					continue
				}
				switch lr.Kind {
				case model.RunPush:
					v.LastPush = lr
				case model.RunScan:
					v.LastScan = lr
				default:
					continue
				}
				if !lr.LastOKAt.IsZero() && (v.VerifiedAt == nil || lr.LastOKAt.After(*v.VerifiedAt)) {
					t := lr.LastOKAt
					v.VerifiedAt = &t
				}
			}
			t := totals[r.Name]
			v.Redirects = Redirects{Requests: t.Requests, Bytes: t.Bytes, Misses: t.Misses}
			v.InRegionShare = inRegionShare(t.Requests, t.Misses)
			if r.OnDemand {
				for i := range view.FillStats {
					if fs := &view.FillStats[i]; fs.RegionID == r.ID {
						v.HeldBytes, v.HeldFiles = &fs.HeldBytes, &fs.HeldFiles
						v.Jobs = &JobsView{Queued: fs.Queued, Running: fs.Running, Failed: fs.Failed}
						if fs.OldestQueued != nil && fs.Queued > 0 {
							age := max(0, view.ReadAt.Sub(*fs.OldestQueued).Seconds())
							v.Jobs.OldestQueuedAgeSeconds = &age
						}
					}
				}
			}
		}
		v.Fill, v.Pins, v.MaxBytes = model.FillPush, []string{}, r.MaxBytes
		if r.OnDemand {
			v.Fill = model.FillOnDemand
			v.Pins = append(v.Pins, r.Pins...)
		}
		out = append(out, v)
	}
	return out
}

func versionView(v *selection.Version) VersionView {
	return VersionView{SHA256: v.SHA256Hex, Size: v.Size, Timestamp: v.Timestamp, FirstSeen: v.FirstSeen, SupersededAt: timePtr(v.SupersededAt),
		ValidUntil: timePtr(v.ValidUntil)}
}

// repositoryViews builds every repository's row of the freshness grid; pubs are the
// publications by repository ID (see readPublications; nil: none read).
func repositoryViews(snap *selection.Snapshot, now time.Time, pubs map[int64][]model.Publication) []RepositoryView {
	out := make([]RepositoryView, 0, len(snap.Repos))
	for _, repo := range snap.Repos {
		v := RepositoryView{Name: repo.Name, Arch: repo.Arch, Directory: repo.Directory, Kind: repo.Kind, Suite: repo.Suite,
			Alternates: []VersionView{}, Regions: map[string]CellView{}}
		var current *selection.Version
		if len(repo.Versions) > 0 {
			current = repo.Versions[0]
			cur := versionView(repo.Versions[0])
			v.Current = &cur
			v.ValidUntilWarning = ValidUntilWarning(current.ValidUntil, now)
			for _, a := range repo.Alternates(now, snap.Policy.AlternatesMaxAge) {
				v.Alternates = append(v.Alternates, versionView(a))
			}
		}
		for _, cell := range snap.Cells(repo, now) {
			c := cellView(cell)
			if c.State != CellExcluded {
				f := freshnessOf(pubs[repo.ID], cell.Region.ID, current, cell.State == model.RepoFresh)
				c.Freshness = &f
			}
			v.Regions[c.Region] = c
			v.Cells = append(v.Cells, c)
		}
		out = append(out, v)
	}
	return out
}

// cellView is a freshness cell (selection.Cell) as the pages and the API show it: the
// recorded error is already the public reason.
func cellView(cell selection.Cell) CellView {
	c := CellView{Region: cell.Region.Name, State: cell.State}
	if st := cell.Recorded; st.Known {
		c.VerifiedAt, c.Error = timePtr(st.VerifiedAt), st.Error
	}
	return c
}

// statusView gathers the dashboard.
func (s *Server) statusView(snap *selection.Snapshot) *StatusView {
	now := s.now()
	st := s.opt.Store.Status()
	v := &StatusView{
		GeneratedAt: now,
		Snapshot: SnapshotView{ReadAt: snap.ReadAt, Regions: len(snap.Regions), Repositories: len(snap.Repos),
			FilesLoaded: snap.Files != nil},
		Database:     DatabaseView{OK: st.DBError == "", Error: model.PublicReason(st.DBError), ErrorAt: timePtr(st.DBErrorAt)},
		Regions:      s.regionViews(snap),
		Repositories: repositoryViews(snap, now, s.publications()),
		RecentRuns:   []model.Run{},
		OriginURL:    snap.Policy.OriginURL,
	}
	if snap.Files != nil {
		v.Snapshot.Files = snap.Files.Len()
	}
	if a := s.opt.Activity; a != nil {
		av := a.View()
		v.Database.ActivityReadAt, v.Database.ActivityError = timePtr(av.ReadAt), model.PublicReason(av.Error)
		v.RecentRuns = publicRuns(av.RecentRuns)
		var regionBytes int64
		for _, t := range a.Totals() {
			if t.Region == "" {
				v.Origin = Redirects{Requests: t.Requests, Bytes: t.Bytes}
			} else {
				regionBytes += t.Bytes
			}
		}
		if total := regionBytes + v.Origin.Bytes; total > 0 {
			v.SavedFraction = float64(regionBytes) / float64(total)
		}
	}
	return v
}

// publicRuns copies runs with their errors as public answers may show them: the full
// error names buckets and endpoints, and stays in the logs and the CLI.
func publicRuns(runs []model.Run) []model.Run {
	out := make([]model.Run, len(runs))
	for i, r := range runs {
		r.Error = model.PublicReason(r.Error)
		out[i] = r
	}
	return out
}

// LocateView answers /api/v1/locate: where a file is, in the order this client gets it.
type LocateView struct {
	Path    string `json:"path"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`
	Deleted bool   `json:"deleted"` // the origin deleted it; regions keep it for the grace period
	// Tier is what decided the order (location, country, netblock, geoip, weight, none).
	Tier     string          `json:"tier"`
	Regions  []LocateRegion  `json:"regions"`
	Origin   string          `json:"origin_url,omitempty"` // the last resort, when configured
	Excluded []LocateExclude `json:"excluded"`
	Notes    []string        `json:"notes"`
}

// LocateRegion is a region holding a verified copy.
type LocateRegion struct {
	Name       string     `json:"name"`
	Country    string     `json:"country,omitempty"`
	URL        string     `json:"url"`
	Health     string     `json:"health"`
	VerifiedAt *time.Time `json:"verified_at,omitempty"`
}

// LocateExclude is a region left out, and why.
type LocateExclude struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

func (s *Server) locateView(snap *selection.Snapshot, f fileRef, d *selection.Decision) *LocateView {
	v := &LocateView{Path: f.path, Size: f.size, SHA256: hex.EncodeToString(f.sha256), Tier: d.Tier,
		Deleted: snap.Files.Table().Deleted.Has(f.index),
		Regions: []LocateRegion{}, Excluded: []LocateExclude{}, Notes: d.Notes}
	if v.Notes == nil {
		v.Notes = []string{}
	}
	verified := s.verifiedAt(snap)
	for _, c := range d.Chosen {
		v.Regions = append(v.Regions, LocateRegion{Name: c.Region.Name, Country: c.Region.Country, URL: c.Region.URL(f.path),
			Health: c.Region.Health, VerifiedAt: verified[c.Region.Name]})
	}
	if d.Origin != nil {
		v.Origin = d.Origin.URL(f.path)
	}
	for _, e := range d.Excluded {
		v.Excluded = append(v.Excluded, LocateExclude{Name: e.Region.Name, Reason: e.Reason})
	}
	slices.SortFunc(v.Excluded, func(a, b LocateExclude) int { return strings.Compare(a.Name, b.Name) })
	return v
}

// verifiedAt maps region names to when their copies were last checked (see RegionView).
func (s *Server) verifiedAt(snap *selection.Snapshot) map[string]*time.Time {
	out := map[string]*time.Time{}
	for _, r := range s.regionViews(snap) {
		out[r.Name] = r.VerifiedAt
	}
	return out
}
