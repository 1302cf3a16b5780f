package model

import (
	"bytes"
	"encoding/hex"
	"strings"
	"time"
)

// File is one file of the origin inventory.
type File struct {
	ID        int64
	Path      string // relative to the origin root, "/"-separated
	Size      int64
	SHA256    []byte // 32 bytes
	MD5       []byte // 16 bytes: S3 ETags of single-part uploads are MD5s
	Mtime     time.Time
	FirstSeen time.Time
	UpdatedAt time.Time
	DeletedAt *time.Time // set when the origin no longer has it: the grace period runs from here
}

// MatchesChecksum compares a checksum that metadata names for f (hex, lower case) with
// the hashes the inventory keeps: known is false for other algorithms (sha1, sha512).
func (f *File) MatchesChecksum(algorithm, sum string) (match, known bool) {
	switch strings.ToLower(algorithm) {
	case "sha256":
		return sum == hex.EncodeToString(f.SHA256), true
	case "md5":
		return sum == hex.EncodeToString(f.MD5), true
	}
	return false, false
}

// States of a region's copy of a file.
const (
	ObjectPresent  = "present"  // written and checked, or found by a scan, with Size and SHA256
	ObjectMissing  = "missing"  // a scan did not find it
	ObjectCorrupt  = "corrupt"  // a scan found other bytes
	ObjectDeleting = "deleting" // gc is removing it
)

// RegionObject is what a region holds of one file. It is verified for the origin's
// current file only when State is present and Size and SHA256 equal the file's.
type RegionObject struct {
	RegionID   int64
	FileID     int64
	Path       string
	Size       int64
	SHA256     []byte
	State      string
	PushedAt   *time.Time
	VerifiedAt *time.Time
	// LastRequestedAt is when a client was last sent to (or missed) this copy, as servers
	// flushed it; nil when never. Expiry and eviction of on-demand copies read it.
	LastRequestedAt *time.Time
}

// Holds reports whether the record says the region holds f's current bytes: present,
// with f's size and SHA-256. nil holds nothing.
func (o *RegionObject) Holds(f *File) bool {
	return o != nil && o.State == ObjectPresent && o.Size == f.Size && bytes.Equal(o.SHA256, f.SHA256)
}

// RegionRepo is which repomd.xml a region serves for a repository, as a push or scan
// last verified it through the region's public URL (State is one of RepoFresh,
// RepoAlternate, RepoStale, RepoMissing, RepoUnreachable).
type RegionRepo struct {
	RegionID     int64
	RepositoryID int64
	RepomdSHA256 []byte // nil when nothing readable is served
	State        string
	HTTPStatus   int // 0 when no response was received
	Error        string
	VerifiedAt   *time.Time
}

// RepomdVersion is one repomd.xml a repository has published.
type RepomdVersion struct {
	ID           int64
	RepositoryID int64
	MD5          []byte
	SHA1         []byte
	SHA256       []byte
	SHA512       []byte
	Size         int64
	Timestamp    int64 // the newest <timestamp> of its <data> entries (APT: Date), Unix seconds
	// ValidUntil is an APT revision's Valid-Until (zero: none, and for repomd.xml): after
	// it apt refuses the repository.
	ValidUntil time.Time
	// ByHash: an APT revision whose clients read index files by hash (by-hash/SHA256).
	ByHash    bool
	FirstSeen time.Time
	// SupersededAt is when the next newer version was first seen; zero for the current one.
	SupersededAt time.Time
}

// Kinds and statuses of runs.
const (
	RunPush = "push"
	RunScan = "scan"
	RunGC   = "gc"
	// RunFill is a fill worker's session; RunPurge one purge (CLI or API).
	RunFill  = "fill"
	RunPurge = "purge"

	RunRunning = "running"
	RunOK      = "ok"
	RunFailed  = "failed"
	// RunBusy is the status a push, gc or scan reports for a region another process held:
	// it did nothing there. It is never recorded as a run.
	RunBusy = "busy"
)

// Run is one push, scan or gc of one region (or of none, for work not tied to a region).
type Run struct {
	ID         int64            `json:"id"`
	Kind       string           `json:"kind"`
	RegionID   *int64           `json:"region_id,omitempty"`
	RegionName string           `json:"region"`
	StartedAt  time.Time        `json:"started_at"`
	FinishedAt *time.Time       `json:"finished_at,omitempty"`
	Status     string           `json:"status"`
	Files      int64            `json:"files"`
	Bytes      int64            `json:"bytes"`
	Counts     map[string]int64 `json:"counts"`
	Error      string           `json:"error,omitempty"`
	Host       string           `json:"host"`
	PID        int              `json:"pid"`
}

// Duration is how long the run took (so far, while it runs).
func (r *Run) Duration() time.Duration {
	if r.FinishedAt == nil {
		return time.Since(r.StartedAt)
	}
	return r.FinishedAt.Sub(r.StartedAt)
}

// Health states of a region.
const (
	HealthUnknown = "unknown" // never probed: treated as usable
	HealthUp      = "up"
	HealthDown    = "down"
)

// Health is a region's probe record, with hysteresis.
type Health struct {
	RegionID             int64      `json:"region_id"`
	State                string     `json:"state"`
	ConsecutiveFailures  int        `json:"consecutive_failures"`
	ConsecutiveSuccesses int        `json:"consecutive_successes"`
	LastProbeAt          *time.Time `json:"last_probe_at,omitempty"`
	LastOKAt             *time.Time `json:"last_ok_at,omitempty"`
	LastError            string     `json:"last_error,omitempty"`
	ChangedAt            time.Time  `json:"changed_at"`
}

// NextHealthState applies one probe to the hysteresis: a region goes down after downAfter
// consecutive failures and comes back up after upAfter consecutive successes; a region
// never probed is up after its first good probe.
func NextHealthState(state string, failures, successes int, ok bool, downAfter, upAfter int) (string, int, int) {
	if ok {
		failures, successes = 0, successes+1
		if state == HealthUnknown || (state == HealthDown && successes >= upAfter) {
			state = HealthUp
		}
		return state, failures, successes
	}
	failures, successes = failures+1, 0
	if state != HealthDown && failures >= downAfter {
		state = HealthDown
	}
	return state, failures, successes
}

// RedirectCount is what the server redirected to one target: a region by name, or the
// origin (Region "").
type RedirectCount struct {
	Region   string `json:"region"`
	Requests int64  `json:"requests"`
	Bytes    int64  `json:"bytes"`
	// Misses are requests whose first choice was this (on-demand) region but that were
	// answered elsewhere because it did not hold the file yet.
	Misses    int64     `json:"misses"`
	UpdatedAt time.Time `json:"updated_at"`
}

// LastRun is the newest finished run of one kind in one region.
type LastRun struct {
	RegionID   int64     `json:"region_id"`
	Kind       string    `json:"kind"`
	Status     string    `json:"status"`
	FinishedAt time.Time `json:"finished_at"`
	// LastOKAt is when the newest successful run of this kind finished (zero if none).
	LastOKAt time.Time `json:"last_ok_at"`
}

// SnapshotData is what the server's in-memory snapshot is built from: every small table,
// read in one repeatable-read transaction (one round trip) so that the parts agree.
type SnapshotData struct {
	ReadAt         time.Time // the database's clock when the transaction started
	Regions        []Region
	Repositories   []Repository
	RepomdVersions []RepomdVersion // grouped by repository, newest (current) first
	RegionRepos    []RegionRepo
	Health         []Health
}

// States of a fill job.
const (
	FillQueued  = "queued"
	FillRunning = "running"
	FillFailed  = "failed"
)

// FillJob is one copy to make into an on-demand region: a file of the origin inventory,
// one job however many clients missed it.
type FillJob struct {
	RegionID   int64      `json:"region_id"`
	RegionName string     `json:"region"`
	FileID     int64      `json:"file_id"`
	Path       string     `json:"path"`
	Size       int64      `json:"size"`
	SHA256     []byte     `json:"-"`
	MD5        []byte     `json:"-"`
	State      string     `json:"state"`
	Attempts   int        `json:"attempts"`
	Token      int64      `json:"-"` // fences the worker holding it (see db.CompleteFill)
	QueuedAt   time.Time  `json:"queued_at"`
	NotBefore  time.Time  `json:"not_before"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	LeaseUntil *time.Time `json:"lease_until,omitempty"`
	Worker     string     `json:"worker,omitempty"`
	Error      string     `json:"error,omitempty"` // logs and the CLI only; public answers say "copy failed"
	// RegionUpdatedAt is the region's version when the job was claimed: the worker writes
	// into the region as that version describes it, and the copy is recorded only while
	// the region is still that version (db.CompleteFill).
	RegionUpdatedAt time.Time `json:"-"`
}

// FillMiss is a request that an on-demand region missed: the region it would have gone
// to and the origin path it asked for.
type FillMiss struct {
	RegionID int64
	Path     string
}

// CopyRequest is a request sent to (or missing) a region's copy of a path, at a time.
type CopyRequest struct {
	RegionID int64
	Path     string
	At       time.Time
}

// FillStats is what one region's on-demand filling looks like now.
type FillStats struct {
	RegionID int64  `json:"-"`
	Region   string `json:"region"`
	// HeldBytes is what its on-demand copies hold (present copies of files it does not
	// push), against the region's MaxBytes.
	HeldBytes    int64      `json:"held_bytes"`
	HeldFiles    int64      `json:"held_files"`
	Queued       int64      `json:"queued"`
	Running      int64      `json:"running"`
	Failed       int64      `json:"failed"`
	OldestQueued *time.Time `json:"oldest_queued,omitempty"`
}
