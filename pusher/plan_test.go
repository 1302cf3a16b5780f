package pusher

import (
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/db"
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

func TestSpaceTwinAndIncluded(t *testing.T) {
	if got := SpaceTwin("a/libc++-1.rpm"); got != "a/libc  -1.rpm" {
		t.Errorf("SpaceTwin = %q", got)
	}
	if SpaceTwin("a/b.rpm") != "" {
		t.Error("twin for a path without +")
	}
	inc := []string{"fedora/40", "epel"}
	for p, want := range map[string]bool{
		"fedora/40/x.rpm": true, "fedora/40": true, "fedora/400/x.rpm": false, "epel/9/x": true, "centos/x": false,
	} {
		if Included(inc, p) != want {
			t.Errorf("Included(%q) = %v", p, !want)
		}
	}
	if !Included(nil, "anything") {
		t.Error("no includes must carry everything")
	}
}

func TestPlan(t *testing.T) {
	h := func(b byte) []byte { s := make([]byte, 32); s[0] = b; return s }
	now := time.Now()
	files := []db.File{
		{ID: 1, Path: "r/Packages/a.rpm", Size: 10, SHA256: h(1)},
		{ID: 2, Path: "r/Packages/b.rpm", Size: 20, SHA256: h(2)},
		{ID: 3, Path: "r/repodata/x-primary.xml.gz", Size: 5, SHA256: h(3)},
		{ID: 4, Path: "r/repodata/repomd.xml", Size: 3, SHA256: h(4)},
		{ID: 5, Path: "r/Packages/gone.rpm", Size: 7, SHA256: h(5), DeletedAt: &now},
		{ID: 6, Path: "other/x.iso", Size: 100, SHA256: h(6)},
		{ID: 7, Path: "r/Packages/c.rpm", Size: 30, SHA256: h(7)},
	}
	objects := map[int64]*db.RegionObject{
		1: {FileID: 1, Size: 10, SHA256: h(1), State: db.ObjectPresent}, // verified
		2: {FileID: 2, Size: 20, SHA256: h(9), State: db.ObjectPresent}, // other bytes: push
		4: {FileID: 4, Size: 3, SHA256: h(4), State: db.ObjectMissing},  // missing: push
		7: {FileID: 7, Size: 30, SHA256: h(7), State: db.ObjectCorrupt}, // corrupt: push
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

func TestHeaders(t *testing.T) {
	for p, want := range map[string][2]string{
		"r/Packages/a.rpm":          {"application/x-rpm", "public, max-age=31536000, immutable"},
		"r/repodata/repomd.xml":     {"application/xml", "no-cache"},
		"r/repodata/repomd.xml.asc": {"application/pgp-signature", "no-cache"},
		"r/repodata/0123456789abcdef0123456789abcdef01234567-primary.xml.gz": {"application/gzip", "public, max-age=31536000, immutable"},
		"r/repodata/comps.xml": {"application/xml", "public, max-age=300"},
		"r/README":             {"application/octet-stream", "public, max-age=300"},
	} {
		ct, cc := Headers(p)
		if ct != want[0] || cc != want[1] {
			t.Errorf("Headers(%q) = %q, %q; want %q", p, ct, cc, want)
		}
	}
}
