package pusher

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/regionmirror/regionmirror/internal/model"
)

// Phases of a push, each finished in a region before the next starts there, so that
// metadata never lands before the files it names.
const (
	PhaseFiles    = 0 // everything outside repodata/ and dists/SUITE/: packages, images, the pool
	PhaseRepodata = 1 // repodata/ except repomd.xml; an APT suite's by-hash files (new names)
	PhaseIndex    = 2 // an APT suite's plainly named index files, rewritten in place
	PhaseRepomd   = 3 // repomd.xml and its signature, APT Release files: what makes a new state visible
	NumPhases     = 4
)

// PhaseNames name the phases in output.
var PhaseNames = [NumPhases]string{"files", "repodata", "index", "repomd"}

// PhaseOf tells which phase uploads a path. yum's rules come first, so that a yum
// repository whose path happens to hold a dists/ component keeps its order.
func PhaseOf(p string) int {
	switch {
	case model.IsRepomd(p):
		return PhaseRepomd
	case model.InRepodata(p):
		return PhaseRepodata
	case model.IsAptRelease(p):
		return PhaseRepomd
	case model.IsAptByHash(p):
		return PhaseRepodata
	case model.InAptDists(p):
		return PhaseIndex
	}
	return PhaseFiles
}

// pairKey groups the files of phase 4 published one after the other: the directory of
// a repomd.xml pair (DIR/repodata) or of an APT suite's Release files (DIR/dists/SUITE).
// A repository's is path.Dir(repo.MetadataPath()).
func pairKey(p string) string { return path.Dir(p) }

// Item is one file to upload.
type Item struct {
	File  *model.File
	Phase int
	// Twin is the second key the file is written under ("" for none): never a path the
	// origin has, or the twin would overwrite that real file.
	Twin string
}

// Withheld is a repository whose metadata a region does not get in this push, and why.
type Withheld struct {
	Dir    string `json:"directory"`
	Reason string `json:"reason"`
}

// RegionPlan is what one region lacks.
type RegionPlan struct {
	Region   *model.Region
	Items    [NumPhases][]Item
	Bytes    [NumPhases]int64
	UpToDate int // files the region already holds verified
	// InPlace are the repositories the region carries in which a planned upload overwrites
	// an object the region holds with other bytes under the same name: their metadata the
	// region serves names what is about to change, so they leave the answers first.
	InPlace []model.Repository
	// Withheld repositories: their repodata and repomd.xml are not uploaded; the run fails.
	Withheld []Withheld
	// KeptInPlace counts files of withheld repositories not rewritten under their names.
	KeptInPlace int
	// TwinsSkipped are paths with "+" whose space twin is a real origin path.
	TwinsSkipped []string
	// Unread is an origin file the region carries that could not be read ("" for none).
	Unread string
}

// Files counts the items of every phase.
func (p *RegionPlan) Files() int {
	n := 0
	for _, it := range p.Items {
		n += len(it)
	}
	return n
}

// TotalBytes sums the items of every phase.
func (p *RegionPlan) TotalBytes() int64 {
	var n int64
	for _, b := range p.Bytes {
		n += b
	}
	return n
}

// PlanInput is what a region's plan is decided from.
type PlanInput struct {
	Region  *model.Region
	Files   []model.File                  // the live origin inventory
	Objects map[int64]*model.RegionObject // the region's records by file ID
	Repos   []model.Repository            // the registered repositories
	// Unread are origin files that could not be read: the metadata of every repository
	// holding one may name them, so it is withheld.
	Unread []string
	// Invalid are repository directories whose origin repomd.xml was not recorded (it
	// cannot be parsed or read), with the reason: publishing it would serve a repomd.xml
	// no metalink lists.
	Invalid map[string]string
	// AptByHash are the APT suite directories (DIR/dists/SUITE) whose revision being
	// published says Acquire-By-Hash: yes. Their clients read index files by hash, so
	// rewriting the plain index names in place does not take the region out of the
	// answers.
	AptByHash map[string]bool
}

// under reports whether p lies in directory dir ("" is the root, holding everything).
func under(p, dir string) bool {
	return dir == "" || strings.HasPrefix(p, dir+"/")
}

// Plan lists what region must receive: every live origin file a push writes there
// (model.Region.Pushes) that it does not hold verified. objects are the region's records
// by file ID.
func Plan(region *model.Region, files []model.File, objects map[int64]*model.RegionObject) *RegionPlan {
	return PlanRegion(PlanInput{Region: region, Files: files, Objects: objects})
}

// PlanRegion decides a region's push: the items per phase, the repositories whose
// metadata is withheld and why, those rewritten in place, and the twins not written.
//   - A file is planned when a push writes it into the region (Region.Pushes: all it
//     carries in a push region; in an on-demand region only the metadata of carried
//     repositories and its pins) and the region does not hold it verified; repodata/
//     files only where the region carries their whole repository
//     (model.CarriesRepository), so metadata never goes where its packages do not. An
//     on-demand region's other files are left to fills: never planned, so never
//     overwritten, and never counted as work the region lacks.
//   - The repodata and repomd.xml of a repository holding an unread file, or whose
//     repomd.xml was not recorded, are withheld.
//   - The twin of a path with "+" is not written when the origin has that path for real.
//   - Phase 4 (repomd) is ordered per pair with repomd.xml (InRelease) last: the pair goes up one file
//     after the other, signature first (see runPair).
func PlanRegion(in PlanInput) *RegionPlan {
	region := in.Region
	p := &RegionPlan{Region: region}
	// Every recorded path is real, deleted ones too: a file the origin deleted stays in
	// regions through its grace period, and a twin written over it would change its bytes
	// under its record (and gc of it would then delete the twin).
	recorded := make(map[string]bool, len(in.Files))
	for i := range in.Files {
		recorded[in.Files[i].Path] = true
	}
	withheld := map[string]string{}
	for i := range in.Files {
		f := &in.Files[i]
		if f.DeletedAt != nil || !region.Pushes(f.Path) {
			continue
		}
		ph := PhaseOf(f.Path)
		if ph != PhaseFiles {
			dir := model.MetadataRepoDir(f.Path)
			if !region.CarriesRepository(dir) {
				continue
			}
			if reason, bad := withholdReason(dir, in.Unread, in.Invalid); bad {
				withheld[dir] = reason
				continue
			}
		}
		twin := model.WritableTwin(f.Path, func(q string) bool { return recorded[q] })
		if twin == "" && model.SpaceTwin(f.Path) != "" {
			p.TwinsSkipped = append(p.TwinsSkipped, f.Path)
		}
		if in.Objects[f.ID].Holds(f) {
			p.UpToDate++
			continue
		}
		p.Items[ph] = append(p.Items[ph], Item{File: f, Phase: ph, Twin: twin})
		p.Bytes[ph] += f.Size
	}
	// A repository the region carries whose repomd.xml was not recorded fails the run
	// even when nothing of it was planned: the region cannot be brought to its state.
	for dir, reason := range in.Invalid {
		if region.CarriesRepository(dir) {
			withheld[dir] = reason
		}
	}
	// An unread file a push writes into the region fails the run: the region lacks it
	// (an on-demand region lacks nothing it fills on demand).
	for _, u := range in.Unread {
		if region.Pushes(u) {
			p.Unread = u
			break
		}
	}
	// A withheld repository keeps what the region serves: its files rewritten under their
	// names stay as they are too, or they would no longer match the metadata still served
	// (new names go up: nothing served names them yet).
	if len(withheld) > 0 {
		items := p.Items[PhaseFiles][:0]
		for _, it := range p.Items[PhaseFiles] {
			if o := in.Objects[it.File.ID]; o != nil && o.State != model.ObjectMissing && withheldUnder(it.File.Path, withheld) {
				p.Bytes[PhaseFiles] -= it.File.Size
				p.KeptInPlace++
				continue
			}
			items = append(items, it)
		}
		p.Items[PhaseFiles] = items
	}
	for dir, reason := range withheld {
		p.Withheld = append(p.Withheld, Withheld{Dir: dir, Reason: reason})
	}
	slices.SortFunc(p.Withheld, func(a, b Withheld) int { return strings.Compare(a.Dir, b.Dir) })
	p.InPlace = inPlace(region, p, in.Objects, in.Repos, in.AptByHash)
	slices.SortStableFunc(p.Items[PhaseRepomd], func(a, b Item) int { return comparePair(a.File.Path, b.File.Path) })
	return p
}

// Defer takes out of the plan what would change the region's state of repo: its files
// rewritten under their names (recorded copies, see inPlace), its repodata and its
// repomd.xml pair. New names still go up: nothing the region serves names them.
func (p *RegionPlan) Defer(repo model.Repository, objects map[int64]*model.RegionObject) {
	for ph := range NumPhases {
		items := p.Items[ph][:0]
		for _, it := range p.Items[ph] {
			o := objects[it.File.ID]
			if under(it.File.Path, repo.Directory) && (ph != PhaseFiles || (o != nil && o.State != model.ObjectMissing)) {
				p.Bytes[ph] -= it.File.Size
				continue
			}
			items = append(items, it)
		}
		p.Items[ph] = items
	}
	p.InPlace = slices.DeleteFunc(p.InPlace, func(r model.Repository) bool { return r.ID == repo.ID })
}

// withheldUnder reports whether p lies in a withheld repository's directory.
func withheldUnder(p string, withheld map[string]string) bool {
	for dir := range withheld {
		if under(p, dir) {
			return true
		}
	}
	return false
}

// withholdReason says why the metadata of the repository in dir must not go out.
func withholdReason(dir string, unread []string, invalid map[string]string) (string, bool) {
	if reason, ok := invalid[dir]; ok {
		return reason, true
	}
	for _, u := range unread {
		if under(u, dir) {
			return fmt.Sprintf("origin file %s could not be read; the metadata of its repository is withheld", u), true
		}
	}
	return "", false
}

// inPlace lists the carried repositories in which a planned upload (outside the
// repomd.xml pair, which is the publication itself) overwrites an object the region holds
// with other bytes: any recorded copy but a missing one (a planned file is never verified
// there). A copy recorded corrupt counts: corrupt is judged against the origin's current
// file, and the object may be exactly what the repomd.xml the region serves names.
// An APT suite's plain index files count only without Acquire-By-Hash (byHash of the
// suite's directory): with it, every publish rewrites them and clients read the by-hash
// names instead.
func inPlace(region *model.Region, p *RegionPlan, objects map[int64]*model.RegionObject, repos []model.Repository, byHash map[string]bool) []model.Repository {
	var out []model.Repository
	for _, repo := range repos {
		if !region.CarriesRepository(repo.Directory) {
			continue
		}
		rewrites := func(it Item) bool {
			o := objects[it.File.ID]
			return o != nil && o.State != model.ObjectMissing && under(it.File.Path, repo.Directory)
		}
		indexRewrites := func(it Item) bool {
			if root, suite, _, ok := model.AptSuitePath(it.File.Path); ok && byHash[path.Join(root, "dists", suite)] {
				return false
			}
			return rewrites(it)
		}
		if slices.ContainsFunc(p.Items[PhaseFiles], rewrites) || slices.ContainsFunc(p.Items[PhaseRepodata], rewrites) ||
			slices.ContainsFunc(p.Items[PhaseIndex], indexRewrites) {
			out = append(out, repo)
		}
	}
	return out
}

// comparePair orders phase 4: by pair (pairKey), repomd.xml after its signature and keys;
// an APT suite's Release.gpg, then Release, then InRelease (what apt reads first) last.
func comparePair(a, b string) int {
	if ka, kb := pairKey(a), pairKey(b); ka != kb {
		return strings.Compare(ka, kb)
	}
	if ra, rb := pairRank(a), pairRank(b); ra != rb {
		return ra - rb
	}
	return strings.Compare(a, b)
}

// pairRank is a file's place in its pair: higher goes up later.
func pairRank(p string) int {
	switch path.Base(p) {
	case "repomd.xml", "InRelease":
		return 3
	case "Release":
		if model.IsAptRelease(p) {
			return 2
		}
	case "Release.gpg":
		if model.IsAptRelease(p) {
			return 1
		}
	}
	return 0
}
