package watch

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/model"
)

// TestTreeFollowsDirectories runs a real inotify tree: directory symlinks are not
// followed, a directory tree made at once is watched down to its leaves and reported as
// changed itself (its files made before their watch are found by its scoped walk), and a
// removed one loses its watches.
func TestTreeFollowsDirectories(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	for _, d := range []string{"a/b", "keep"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(outside, "x/y"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	tree, err := OpenTree(root, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	if n := tree.Dirs(); n != 4 {
		t.Fatalf("%d directories watched, want 4 (root, a, a/b, keep; not the symlink's)", n)
	}

	var seen []change
	pump := func(what string, until func() bool) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for !until() {
			select {
			case ev := <-tree.Events():
				seen = append(seen, tree.handle(ev)...)
			case err := <-tree.Errors():
				t.Fatal(err)
			case <-deadline:
				t.Fatalf("%s: seen %v, %d watched", what, seen, tree.Dirs())
			}
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "c/d/e"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "c/d/e/f.rpm"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	pump("a new tree is watched", func() bool {
		return tree.Dirs() == 7 && slices.Contains(seen, change{Path: "c", Dir: true})
	})
	if err := os.WriteFile(filepath.Join(root, "c/d/e/g.rpm"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	pump("a file in the new leaf is seen", func() bool { return slices.Contains(seen, change{Path: "c/d/e/g.rpm"}) })

	if err := os.RemoveAll(filepath.Join(root, "a")); err != nil {
		t.Fatal(err)
	}
	pump("a removed tree is dropped", func() bool {
		return tree.Dirs() == 5 && slices.Contains(seen, change{Path: "a", Dir: true})
	})
	if err := os.Rename(filepath.Join(root, "c"), filepath.Join(root, "keep/c")); err != nil {
		t.Fatal(err)
	}
	pump("a renamed tree is followed", func() bool {
		return tree.Dirs() == 5 && slices.Contains(seen, change{Path: "c", Dir: true}) && slices.Contains(seen, change{Path: "keep/c", Dir: true})
	})
}

func TestScopeKey(t *testing.T) {
	repos := []model.Repository{{Directory: "fedora/40/x86_64/os"}, {Directory: "fedora/40/x86_64/os/debug"}, {Directory: "epel/9"}}
	cases := []struct {
		c    change
		want string
	}{
		{change{Path: "fedora/40/x86_64/os/repodata/repomd.xml"}, "fedora/40/x86_64/os"},
		{change{Path: "fedora/40/x86_64/os/Packages/a/abc.rpm"}, "fedora/40/x86_64/os"},
		{change{Path: "fedora/40/x86_64/os/debug/x.rpm"}, "fedora/40/x86_64/os/debug"},
		{change{Path: "fedora/40/x86_64/os", Dir: true}, "fedora/40/x86_64/os"},
		{change{Path: "fedora/40/iso/a.iso"}, "fedora/40/iso"},
		{change{Path: "fedora/40/iso", Dir: true}, "fedora/40/iso"},
		{change{Path: "README"}, ""},
		{change{Path: "epel/9x/a"}, "epel/9x"},
	}
	for _, tc := range cases {
		if got := scopeKey(tc.c, repos); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.c, got, tc.want)
		}
	}
}
