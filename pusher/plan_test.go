package pusher

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/model"
)

func TestPhaseOf(t *testing.T) {
	for p, want := range map[string]int{
		"fedora/40/os/Packages/a/a-1.rpm":          PhaseFiles,
		"fedora/40/os/images/boot.iso":             PhaseFiles,
		"fedora/40/os/repodata/abc-primary.xml.gz": PhaseRepodata,
		"fedora/40/os/repodata/comps.xml":          PhaseRepodata,
		"fedora/40/os/repodata/repomd.xml":         PhaseRepomd,
		"fedora/40/os/repodata/repomd.xml.asc":     PhaseRepomd,
		"repodata/repomd.xml":                      PhaseRepomd,
		"repodata/x-other.xml.gz":                  PhaseRepodata,
		"fedora/40/os/repodata-old/repomd.xml":     PhaseFiles,
		"fedora/40/os/repodata/sub/repomd.xml":     PhaseFiles,
		"fedora/40/os/notrepodata/repomd.xml":      PhaseFiles,
		"repomd.xml":                               PhaseFiles,
	} {
		if got := PhaseOf(p); got != want {
			t.Errorf("PhaseOf(%q) = %d, want %d", p, got, want)
		}
	}
}

func TestPlan(t *testing.T) {
	h := func(b byte) []byte { s := make([]byte, 32); s[0] = b; return s }
	now := time.Now()
	files := []model.File{
		{ID: 1, Path: "r/Packages/a.rpm", Size: 10, SHA256: h(1)},
		{ID: 2, Path: "r/Packages/b.rpm", Size: 20, SHA256: h(2)},
		{ID: 3, Path: "r/repodata/x-primary.xml.gz", Size: 5, SHA256: h(3)},
		{ID: 4, Path: "r/repodata/repomd.xml", Size: 3, SHA256: h(4)},
		{ID: 5, Path: "r/Packages/gone.rpm", Size: 7, SHA256: h(5), DeletedAt: &now},
		{ID: 6, Path: "other/x.iso", Size: 100, SHA256: h(6)},
		{ID: 7, Path: "r/Packages/c.rpm", Size: 30, SHA256: h(7)},
	}
	objects := map[int64]*model.RegionObject{
		1: {FileID: 1, Size: 10, SHA256: h(1), State: model.ObjectPresent},
		2: {FileID: 2, Size: 20, SHA256: h(9), State: model.ObjectPresent},
		4: {FileID: 4, Size: 3, SHA256: h(4), State: model.ObjectMissing},
		7: {FileID: 7, Size: 30, SHA256: h(7), State: model.ObjectCorrupt},
	}
	region := &model.Region{Name: "r1", Includes: []string{"r"}}
	p := Plan(region, files, objects)
	if p.UpToDate != 1 || len(p.Items[PhaseFiles]) != 2 || len(p.Items[PhaseRepodata]) != 1 || len(p.Items[PhaseRepomd]) != 1 {
		t.Fatalf("plan: up-to-date %d, items %v", p.UpToDate, p.Items)
	}
	if p.Bytes[PhaseFiles] != 50 || p.TotalBytes() != 58 || p.Files() != 4 {
		t.Errorf("bytes %v total %d files %d", p.Bytes, p.TotalBytes(), p.Files())
	}
	whole := Plan(&model.Region{Name: "r2"}, files, nil)
	if whole.Files() != 6 {
		t.Errorf("a region without includes and no objects must get every live file: %d", whole.Files())
	}
}

func TestPlanRegion(t *testing.T) {
	h := func(b byte) []byte { s := make([]byte, 32); s[0] = b; return s }
	const dir = "r/os"
	repo := model.Repository{ID: 7, Name: "r", Arch: "x86_64", Directory: dir}
	files := []model.File{
		{ID: 1, Path: dir + "/Packages/a.rpm", Size: 10, SHA256: h(1)},
		{ID: 2, Path: dir + "/Packages/x+y.rpm", Size: 10, SHA256: h(2)},
		{ID: 3, Path: dir + "/Packages/x y.rpm", Size: 10, SHA256: h(3)},
		{ID: 4, Path: dir + "/Packages/c++.rpm", Size: 10, SHA256: h(4)},
		{ID: 5, Path: dir + "/repodata/primary.xml.gz", Size: 5, SHA256: h(5)},
		{ID: 6, Path: dir + "/repodata/repomd.xml", Size: 3, SHA256: h(6)},
		{ID: 7, Path: dir + "/repodata/repomd.xml.asc", Size: 3, SHA256: h(7)},
		{ID: 8, Path: "r/iso/boot.iso", Size: 100, SHA256: h(8)},
		{ID: 9, Path: "repodata/repomd.xml", Size: 3, SHA256: h(9)}, // a repository at the root
	}
	present := func(id int64, sum byte) *model.RegionObject {
		return &model.RegionObject{FileID: id, Size: 10, SHA256: h(sum), State: model.ObjectPresent}
	}
	paths := func(items []Item) []string {
		var out []string
		for _, it := range items {
			out = append(out, it.File.Path)
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		includes []string
		objects  map[int64]*model.RegionObject
		unread   []string
		invalid  map[string]string
		// want
		phases   [NumPhases]int
		repomd   []string // phase 3, in order
		inPlace  bool
		withheld []string // directories
		unreadOK string
		twins    map[string]string // path -> twin written
	}{
		{name: "everything, pair with repomd.xml last", includes: []string{"r"},
			phases: [NumPhases]int{5, 1, 0, 2}, repomd: []string{dir + "/repodata/repomd.xml.asc", dir + "/repodata/repomd.xml"},
			twins: map[string]string{dir + "/Packages/x+y.rpm": "", dir + "/Packages/c++.rpm": dir + "/Packages/c  .rpm"}},
		{name: "no includes carry the root repository too", phases: [NumPhases]int{5, 1, 0, 3}},
		{name: "includes covering repodata/ only: no metadata", includes: []string{dir + "/repodata"}, phases: [NumPhases]int{0, 0, 0, 0}},
		{name: "includes covering the packages only: no metadata", includes: []string{dir + "/Packages"}, phases: [NumPhases]int{4, 0, 0, 0}},
		{name: "a package rewritten under its name", includes: []string{"r"}, objects: map[int64]*model.RegionObject{1: present(1, 99)},
			phases: [NumPhases]int{5, 1, 0, 2}, repomd: []string{dir + "/repodata/repomd.xml.asc", dir + "/repodata/repomd.xml"}, inPlace: true},
		{name: "repodata rewritten under its name", includes: []string{"r"}, objects: map[int64]*model.RegionObject{5: present(5, 99)},
			phases: [NumPhases]int{5, 1, 0, 2}, repomd: []string{dir + "/repodata/repomd.xml.asc", dir + "/repodata/repomd.xml"}, inPlace: true},
		// "Corrupt" is judged against the origin's current file: the object may be exactly
		// what the repomd.xml the region serves names (a scan after a region moved, before
		// the push of the in-place rewrite; found by TestConcurrencySoak).
		{name: "a copy recorded corrupt is rewritten in place", includes: []string{"r"},
			objects: map[int64]*model.RegionObject{1: {FileID: 1, SHA256: h(99), State: model.ObjectCorrupt}}, phases: [NumPhases]int{5, 1, 0, 2},
			repomd: []string{dir + "/repodata/repomd.xml.asc", dir + "/repodata/repomd.xml"}, inPlace: true},
		{name: "a copy recorded corrupt with the origin's hash is rewritten in place", includes: []string{"r"},
			objects: map[int64]*model.RegionObject{5: {FileID: 5, SHA256: h(5), State: model.ObjectCorrupt}}, phases: [NumPhases]int{5, 1, 0, 2},
			repomd: []string{dir + "/repodata/repomd.xml.asc", dir + "/repodata/repomd.xml"}, inPlace: true},
		{name: "a copy recorded missing is no in-place rewrite", includes: []string{"r"},
			objects: map[int64]*model.RegionObject{1: {FileID: 1, SHA256: h(99), State: model.ObjectMissing}}, phases: [NumPhases]int{5, 1, 0, 2},
			repomd: []string{dir + "/repodata/repomd.xml.asc", dir + "/repodata/repomd.xml"}},
		{name: "only the pair changes: no in-place rewrite", includes: []string{"r"},
			objects: map[int64]*model.RegionObject{6: present(6, 99), 7: present(7, 99)}, phases: [NumPhases]int{5, 1, 0, 2},
			repomd: []string{dir + "/repodata/repomd.xml.asc", dir + "/repodata/repomd.xml"}},
		{name: "a file outside the repository is no in-place rewrite", includes: []string{"r"},
			objects: map[int64]*model.RegionObject{8: present(8, 99)}, phases: [NumPhases]int{5, 1, 0, 2},
			repomd: []string{dir + "/repodata/repomd.xml.asc", dir + "/repodata/repomd.xml"}},
		{name: "unparsable repomd.xml: metadata withheld", includes: []string{"r"}, invalid: map[string]string{dir: "cannot be parsed"},
			phases: [NumPhases]int{5, 0, 0, 0}, withheld: []string{dir}},
		// The origin is mid-update: what the region serves stays whole, new names go up.
		{name: "withheld repository: files rewritten under their names stay", includes: []string{"r"}, invalid: map[string]string{dir: "primary.xml names another checksum"},
			objects: map[int64]*model.RegionObject{1: present(1, 99), 2: {FileID: 2, SHA256: h(98), State: model.ObjectCorrupt}, 8: present(8, 97)},
			phases:  [NumPhases]int{3, 0, 0, 0}, withheld: []string{dir}},
		{name: "invalid repository the region does not carry", includes: []string{"r/iso"}, invalid: map[string]string{dir: "cannot be parsed"},
			phases: [NumPhases]int{1, 0, 0, 0}},
		{name: "unread package: metadata withheld", includes: []string{"r"}, unread: []string{dir + "/Packages/b.rpm"},
			phases: [NumPhases]int{5, 0, 0, 0}, withheld: []string{dir}, unreadOK: dir + "/Packages/b.rpm"},
		{name: "unread image outside the repository: metadata goes", includes: []string{"r"}, unread: []string{"r/iso/big.iso"},
			phases: [NumPhases]int{5, 1, 0, 2}, repomd: []string{dir + "/repodata/repomd.xml.asc", dir + "/repodata/repomd.xml"}, unreadOK: "r/iso/big.iso"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := PlanRegion(PlanInput{Region: &model.Region{Name: "x", Includes: tc.includes}, Files: files, Objects: tc.objects,
				Repos: []model.Repository{repo}, Unread: tc.unread, Invalid: tc.invalid})
			var got [NumPhases]int
			for ph := range NumPhases {
				got[ph] = len(p.Items[ph])
			}
			if got != tc.phases {
				t.Errorf("items per phase %v, want %v", got, tc.phases)
			}
			if tc.repomd != nil && !slices.Equal(paths(p.Items[PhaseRepomd]), tc.repomd) {
				t.Errorf("phase 3 %v, want %v", paths(p.Items[PhaseRepomd]), tc.repomd)
			}
			if inPlace := len(p.InPlace) == 1 && p.InPlace[0].ID == repo.ID; inPlace != tc.inPlace || len(p.InPlace) > 1 {
				t.Errorf("in place %v, want %v", p.InPlace, tc.inPlace)
			}
			var withheld []string
			for _, w := range p.Withheld {
				withheld = append(withheld, w.Dir)
				if w.Reason == "" {
					t.Errorf("withheld %s without a reason", w.Dir)
				}
			}
			if !slices.Equal(withheld, tc.withheld) {
				t.Errorf("withheld %v, want %v", withheld, tc.withheld)
			}
			if p.Unread != tc.unreadOK {
				t.Errorf("unread %q, want %q", p.Unread, tc.unreadOK)
			}
			for _, it := range p.Items[PhaseFiles] {
				if want, ok := tc.twins[it.File.Path]; ok && it.Twin != want {
					t.Errorf("twin of %s = %q, want %q", it.File.Path, it.Twin, want)
				}
				if it.Twin != "" && it.Twin == dir+"/Packages/x y.rpm" {
					t.Errorf("%s would overwrite the real %s", it.File.Path, it.Twin)
				}
			}
			if tc.includes != nil && tc.includes[0] == "r" && !slices.Equal(p.TwinsSkipped, []string{dir + "/Packages/x+y.rpm"}) {
				t.Errorf("twins skipped %v", p.TwinsSkipped)
			}
		})
	}
}

func TestChainsPublishThePairInOrder(t *testing.T) {
	mk := func(p string) *job { return &job{file: &Item{File: &model.File{Path: p}}} }
	jobs := []*job{mk("a/repodata/repomd.xml"), mk("b/repodata/repomd.xml"), mk("a/repodata/repomd.xml.asc"), mk("a/repodata/repomd.xml.key")}
	got := chains(PhaseRepomd, jobs)
	if len(got) != 2 {
		t.Fatalf("%d chains, want one per repository", len(got))
	}
	var order []string
	for _, j := range got[0] {
		order = append(order, j.file.File.Path)
	}
	if want := []string{"a/repodata/repomd.xml.asc", "a/repodata/repomd.xml.key", "a/repodata/repomd.xml"}; !slices.Equal(order, want) {
		t.Errorf("pair order %v, want %v", order, want)
	}
	if n := len(chains(PhaseFiles, jobs)); n != 4 {
		t.Errorf("other phases run every file on its own: %d chains", n)
	}
}

func TestWithheldError(t *testing.T) {
	if withheldError("x", &RegionPlan{}) != nil {
		t.Error("nothing withheld must not fail the run")
	}
	err := withheldError("x", &RegionPlan{Withheld: []Withheld{{Dir: "r", Reason: "repository r: origin r/repodata/repomd.xml cannot be parsed"}}})
	if err == nil || !strings.Contains(err.Error(), "push x: repository r") {
		t.Errorf("withheld: %v", err)
	}
}

func TestHalfPair(t *testing.T) {
	const x, asc = "r/repodata/repomd.xml", "r/repodata/repomd.xml.asc"
	w := func(p ...string) map[string]bool {
		m := map[string]bool{}
		for _, k := range p {
			m[k] = true
		}
		return m
	}
	for _, tc := range []struct {
		planned []string
		written map[string]bool
		want    bool
	}{
		{[]string{asc, x}, w(asc, x), false}, // the whole pair
		{[]string{asc, x}, w(), false},       // nothing: the old pair still matches
		{[]string{asc, x}, w(asc), true},     // new signature beside the old repomd.xml
		{[]string{asc}, w(), true},           // repomd.xml current, its new signature missing
		{[]string{asc}, w(asc), false},       // re-signed
		{[]string{x}, w(), false},            // no signature: the old repomd.xml stays whole
		{[]string{x}, w(x), false},           // no signature
	} {
		if got := halfPair(tc.planned, x, tc.written); got != tc.want {
			t.Errorf("halfPair(%v, %v) = %v, want %v", tc.planned, tc.written, got, tc.want)
		}
	}
}

func TestPushGroups(t *testing.T) {
	rr := func(name string, inPlace bool) *regionPush {
		p := &RegionPlan{}
		if inPlace {
			p.InPlace = []model.Repository{{ID: 1}}
		}
		return &regionPush{RegionResult: &RegionResult{Region: name}, plan: p}
	}
	names := func(groups [][]*regionPush) string {
		var out []string
		for _, g := range groups {
			var ns []string
			for _, r := range g {
				ns = append(ns, r.Region)
			}
			out = append(out, strings.Join(ns, "+"))
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		in   []*regionPush
		want string
	}{
		{[]*regionPush{rr("a", false), rr("b", false)}, "a+b"},
		{[]*regionPush{rr("a", true), rr("b", false), rr("c", true)}, "b a c"},
		{[]*regionPush{rr("a", true), rr("b", true)}, "a b"},
		{nil, ""},
	} {
		if got := names(pushGroups(tc.in)); got != tc.want {
			t.Errorf("pushGroups = %q, want %q", got, tc.want)
		}
	}
}

// A deleted file is still real through its grace period: the twin of a new "a+b" is not
// written over a deleted "a b" that regions still hold (found by review: the twin changed
// the held file's bytes under its record, and gc of it then deleted the twin).
func TestTwinNotWrittenOverADeletedFile(t *testing.T) {
	sum := make([]byte, 32)
	gone := time.Now()
	r := &model.Region{ID: 1, Name: "r"}
	p := PlanRegion(PlanInput{Region: r, Files: []model.File{
		{ID: 1, Path: "d/a+b.txt", Size: 1, SHA256: sum},
		{ID: 2, Path: "d/a b.txt", Size: 1, SHA256: sum, DeletedAt: &gone},
	}})
	if len(p.Items[PhaseFiles]) != 1 || p.Items[PhaseFiles][0].Twin != "" || len(p.TwinsSkipped) != 1 {
		t.Errorf("items %+v, twins skipped %v", p.Items[PhaseFiles], p.TwinsSkipped)
	}
}

// TestPlanOnDemandRegion: an on-demand region's push writes only what Region.Pushes says
// (the metadata of carried repositories and the pins); every other file is left to fills,
// whether the region holds a copy of it (never overwritten) or not (not work it lacks).
func TestPlanOnDemandRegion(t *testing.T) {
	h := func(b byte) []byte { s := make([]byte, 32); s[0] = b; return s }
	const dir = "r/os"
	repo := model.Repository{ID: 7, Name: "r", Arch: "x86_64", Directory: dir}
	files := []model.File{
		{ID: 1, Path: dir + "/Packages/a.rpm", Size: 10, SHA256: h(1)},
		{ID: 2, Path: dir + "/Packages/hot/b.rpm", Size: 20, SHA256: h(2)},
		{ID: 5, Path: dir + "/repodata/primary.xml.gz", Size: 5, SHA256: h(5)},
		{ID: 6, Path: dir + "/repodata/repomd.xml", Size: 3, SHA256: h(6)},
		{ID: 7, Path: dir + "/repodata/repomd.xml.asc", Size: 3, SHA256: h(7)},
		{ID: 8, Path: "r/iso/boot.iso", Size: 100, SHA256: h(8)},
	}
	paths := func(p *RegionPlan) []string {
		var out []string
		for ph := range NumPhases {
			for _, it := range p.Items[ph] {
				out = append(out, it.File.Path)
			}
		}
		return out
	}
	meta := []string{dir + "/repodata/primary.xml.gz", dir + "/repodata/repomd.xml.asc", dir + "/repodata/repomd.xml"}
	for _, tc := range []struct {
		name     string
		pins     []string
		objects  map[int64]*model.RegionObject
		unread   []string
		want     []string
		upToDate int
		inPlace  bool
		unreadOK string
	}{
		{name: "metadata only", want: meta},
		{name: "pins are pushed", pins: []string{dir + "/Packages/hot"}, want: append([]string{dir + "/Packages/hot/b.rpm"}, meta...)},
		// A copy a fill made, even of other bytes than the origin's (the origin changed
		// since): a push never rewrites it, so it is no in-place rewrite either.
		{name: "an on-demand copy is never overwritten", objects: map[int64]*model.RegionObject{
			1: {FileID: 1, Size: 10, SHA256: h(99), State: model.ObjectPresent},
			8: {FileID: 8, Size: 100, SHA256: h(8), State: model.ObjectPresent}}, want: meta},
		{name: "held metadata is up to date", objects: map[int64]*model.RegionObject{
			5: {FileID: 5, Size: 5, SHA256: h(5), State: model.ObjectPresent}}, want: meta[1:], upToDate: 1},
		{name: "an unread on-demand file withholds the metadata but is no work the region lacks", unread: []string{dir + "/Packages/a.rpm"}},
		{name: "an unread pin fails the run", pins: []string{dir + "/Packages/hot"}, unread: []string{dir + "/Packages/hot/b.rpm"},
			want: []string{dir + "/Packages/hot/b.rpm"}, unreadOK: dir + "/Packages/hot/b.rpm"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			region := &model.Region{Name: "od", Includes: []string{"r"}, Fill: model.FillOnDemand, Pins: tc.pins}
			p := PlanRegion(PlanInput{Region: region, Files: files, Objects: tc.objects, Repos: []model.Repository{repo}, Unread: tc.unread})
			if got := paths(p); !slices.Equal(got, tc.want) {
				t.Errorf("planned %v, want %v", got, tc.want)
			}
			for _, it := range paths(p) {
				if region.FillsOnDemand(it) {
					t.Errorf("planned %s, which the region fills on demand", it)
				}
			}
			if p.UpToDate != tc.upToDate {
				t.Errorf("up to date %d, want %d", p.UpToDate, tc.upToDate)
			}
			if len(p.InPlace) > 0 != tc.inPlace {
				t.Errorf("in place %v, want %v", p.InPlace, tc.inPlace)
			}
			if p.Unread != tc.unreadOK {
				t.Errorf("unread %q, want %q", p.Unread, tc.unreadOK)
			}
		})
	}
	// The same files in a push region: everything carried.
	push := PlanRegion(PlanInput{Region: &model.Region{Name: "p", Includes: []string{"r"}}, Files: files, Repos: []model.Repository{repo}})
	if push.Files() != len(files) {
		t.Errorf("a push region plans %d files, want %d", push.Files(), len(files))
	}
}
