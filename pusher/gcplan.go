package pusher

import (
	"fmt"
	"strings"
	"time"

	"github.com/regionmirror/regionmirror/internal/model"
)

// GCCopy is a region's recorded copy of a file the origin deleted.
type GCCopy struct {
	FileID    int64
	Path      string
	DeletedAt time.Time
	State     string // the copy's state; a gc that crashed after its mark leaves "deleting"
}

// GCRepository is a repository as gc judges it in one region.
type GCRepository struct {
	Name, Arch, Directory string
	// Versions are its repomd.xml versions (any order); gc reads FirstSeen and SupersededAt,
	// as db fills them for every reader.
	Versions []model.RepomdVersion
	// FreshInRegion: the region serves its current repomd.xml, verified (state fresh).
	FreshInRegion bool
}

// GCInput is everything gc's choice depends on, read under the region's write lock.
type GCInput struct {
	Now              time.Time // the database's clock
	Grace            time.Duration
	AlternatesMaxAge time.Duration
	Includes         []string // the region's include prefixes
	Copies           []GCCopy
	Repositories     []GCRepository
	// RealPaths are paths the origin has, or the database records (live or deleted):
	// a "+" twin key that is one of them is a real file, never deleted as a twin.
	RealPaths map[string]bool
}

// GCDelete is a copy gc may remove: Keys are the object keys to delete (its path, and
// its space twin unless that is a real file).
type GCDelete struct {
	FileID    int64
	Path      string
	DeletedAt time.Time
	Keys      []string
	TwinKept  string // the twin key left alone because it is a real path
}

// GCKept is a copy gc leaves, and why.
type GCKept struct {
	FileID int64     `json:"file_id"`
	Path   string    `json:"path"`
	Reason string    `json:"reason"`
	Until  time.Time `json:"until,omitzero"` // when it may go, as far as is known now; zero: not while things stay as they are
}

// GCPlan is gc's choice for one region.
type GCPlan struct {
	// Blocked says why copies whose time has come are kept (a carried repository is not
	// fresh there); "" when nothing was held back for it.
	Blocked string
	Delete  []GCDelete
	Kept    []GCKept
}

// Reasons a copy is kept.
const (
	KeepRegionNotFresh = "region not fresh"
	KeepGrace          = "grace period after deletion"
	KeepOffered        = "named by an offered repomd.xml"
	KeepOfferedGrace   = "grace period after its last repomd.xml left the metalinks"
)

// PlanGC decides which of a region's copies of deleted files may go. A copy may go only
// when grace has passed since the latest of its file's deletion and the moment the last
// repomd.xml that may name it stopped being offered. The repomd.xml versions that may name
// a deleted file are those of every repository whose directory holds it, first seen
// before its deletion (a version first seen at the same moment or later was read from a
// tree without it); a version is offered while current and for AlternatesMaxAge after it
// was superseded. Nothing goes while a repository the region carries is not fresh there:
// older metadata the region itself serves may name any of its files.
func PlanGC(in GCInput) GCPlan {
	var plan GCPlan
	blocked := ""
	for _, repo := range in.Repositories {
		if model.CarriesRepository(in.Includes, repo.Directory) && len(repo.Versions) > 0 && !repo.FreshInRegion {
			blocked = fmt.Sprintf("repository %s/%s is not fresh there; push it first", repo.Name, repo.Arch)
			break
		}
	}
	for _, c := range in.Copies {
		moment, reason, forever := c.DeletedAt, KeepGrace, false
		for _, repo := range in.Repositories {
			if !inDirectory(repo.Directory, c.Path) {
				continue
			}
			for _, v := range repo.Versions {
				if !v.FirstSeen.Before(c.DeletedAt) {
					continue // read from a tree that no longer had the file
				}
				if v.SupersededAt.IsZero() {
					forever = true
					continue
				}
				if until := v.SupersededAt.Add(in.AlternatesMaxAge); until.After(moment) {
					moment, reason = until, KeepOfferedGrace
				}
			}
		}
		switch {
		case forever:
			plan.Kept = append(plan.Kept, GCKept{FileID: c.FileID, Path: c.Path, Reason: KeepOffered})
		case reason == KeepOfferedGrace && !in.Now.After(moment):
			plan.Kept = append(plan.Kept, GCKept{FileID: c.FileID, Path: c.Path, Reason: KeepOffered, Until: moment.Add(in.Grace)})
		case in.Now.Sub(moment) <= in.Grace:
			plan.Kept = append(plan.Kept, GCKept{FileID: c.FileID, Path: c.Path, Reason: reason, Until: moment.Add(in.Grace)})
		case blocked != "":
			plan.Blocked = blocked
			plan.Kept = append(plan.Kept, GCKept{FileID: c.FileID, Path: c.Path, Reason: KeepRegionNotFresh})
		default:
			d := GCDelete{FileID: c.FileID, Path: c.Path, DeletedAt: c.DeletedAt, Keys: []string{c.Path}}
			if twin := model.SpaceTwin(c.Path); twin != "" {
				if in.RealPaths[twin] {
					d.TwinKept = twin
				} else {
					d.Keys = append(d.Keys, twin)
				}
			}
			plan.Delete = append(plan.Delete, d)
		}
	}
	return plan
}

// inDirectory reports whether path p lies in directory dir ("" or "." is the whole tree).
func inDirectory(dir, p string) bool {
	dir = strings.Trim(dir, "/")
	return dir == "" || dir == "." || strings.HasPrefix(p, dir+"/")
}
