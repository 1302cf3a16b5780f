package watch

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/fsnotify/fsnotify"

	"github.com/regionmirror/regionmirror/internal/model"
)

// Tree keeps inotify watches on every directory under an origin root: fsnotify watches
// one directory, not a tree, so directories are added as they appear and dropped as they
// go. Directory symlinks are not followed (pushes do not follow them either).
type Tree struct {
	root    string
	fw      *fsnotify.Watcher
	dirs    map[string]bool // relative, slash-separated; "" is the root
	limited bool            // the kernel's watch limit was reached
	failed  map[string]bool // directories whose watch could not be added (other reasons)
	rootID  os.FileInfo     // the root as opened: a replaced root is another directory
	log     *slog.Logger
	add     func(fw *fsnotify.Watcher, path string) error
}

// change is one changed origin path (relative). Dir marks a directory that appeared or
// went: its own subtree is what changed.
type change struct {
	Path string
	Dir  bool
}

// OpenTree watches every directory under root.
func OpenTree(root string, log *slog.Logger) (*Tree, error) { return openTree(root, log, nil) }

// openTree is OpenTree with add in place of fsnotify's Add (nil: fsnotify's).
func openTree(root string, log *slog.Logger, add func(fw *fsnotify.Watcher, path string) error) (*Tree, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", root, err)
	}
	if add == nil {
		add = (*fsnotify.Watcher).Add
	}
	// origin.path may be a symlink (the operator's choice, followed as the push follows
	// it); below it no directory symlink is entered. A root that is not a directory is an
	// error: a tree watching nothing must not vouch for the origin.
	real, err := filepath.EvalSymlinks(root)
	if err == nil {
		var st os.FileInfo
		if st, err = os.Stat(real); err == nil && !st.IsDir() {
			err = errors.New("not a directory")
		}
	}
	if err != nil {
		fw.Close()
		return nil, fmt.Errorf("watch the origin %s: %w", root, err)
	}
	st, err := os.Stat(real)
	if err != nil {
		fw.Close()
		return nil, fmt.Errorf("watch the origin %s: %w", root, err)
	}
	t := &Tree{root: real, fw: fw, dirs: map[string]bool{}, failed: map[string]bool{}, rootID: st, log: log, add: add}
	if err := t.addAll(""); err != nil {
		fw.Close()
		return nil, err
	}
	if t.RootLost() {
		fw.Close()
		return nil, fmt.Errorf("watch the origin %s: it went away", root)
	}
	return t, nil
}

// Close stops watching.
func (t *Tree) Close() error { return t.fw.Close() }

// Events and Errors are fsnotify's channels.
func (t *Tree) Events() <-chan fsnotify.Event { return t.fw.Events }
func (t *Tree) Errors() <-chan error          { return t.fw.Errors }

// Dirs is the number of directories watched.
func (t *Tree) Dirs() int { return len(t.dirs) }

// RootLost reports whether the origin's root is no longer watched (removed, or renamed
// away): nothing under it is seen any more.
func (t *Tree) RootLost() bool { return !t.dirs[""] }

// Limited reports whether the kernel's watch limit left directories unwatched: the tree
// does not see every change then, and its watcher must not claim coverage.
func (t *Tree) Limited() bool { return t.limited || len(t.failed) > 0 }

// Check tells whether the tree still watches the origin: origin.path (configured) still
// leads to the root it opened, that root is the same directory, and the kernel still holds
// every watch (an unmount drops them all, silently). A tree that fails it must be opened
// again.
func (t *Tree) Check(configured string) error {
	real, err := filepath.EvalSymlinks(configured)
	if err != nil {
		return fmt.Errorf("the origin %s: %w", configured, err)
	}
	if real != t.root {
		return fmt.Errorf("the origin %s now leads to %s, not %s", configured, real, t.root)
	}
	if st, err := os.Stat(t.root); err != nil || !os.SameFile(st, t.rootID) {
		return fmt.Errorf("the origin %s was replaced", configured)
	}
	if n := len(t.fw.WatchList()); n < len(t.dirs) {
		return fmt.Errorf("the kernel dropped %d of the %d watches under the origin %s (unmounted?)", len(t.dirs)-n, len(t.dirs), configured)
	}
	return nil
}

func (t *Tree) abs(rel string) string {
	if rel == "" {
		return t.root
	}
	return filepath.Join(t.root, filepath.FromSlash(rel))
}

// addAll watches rel and every directory under it. Running into the watch limit is not an
// error: it is logged once, with the command that raises the limit, and the tree goes on
// without full coverage.
func (t *Tree) addAll(rel string) error {
	return filepath.WalkDir(t.abs(rel), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // gone meanwhile: its removal is an event of its own
			}
			return fmt.Errorf("watch %s: %w", p, err)
		}
		if !d.IsDir() || t.limited {
			return nil // WalkDir reports a directory symlink as a symlink and never enters it
		}
		r, _ := filepath.Rel(t.root, p)
		r = filepath.ToSlash(r)
		if r == "." {
			r = ""
		}
		if t.dirs[r] {
			return nil
		}
		if err := t.add(t.fw, p); err != nil {
			switch {
			case errors.Is(err, syscall.ENOSPC):
				t.limited = true
				t.reportLimit()
				return nil
			case errors.Is(err, fs.ErrNotExist):
				return fs.SkipDir
			}
			// Unwatched, the directory's changes go unseen: the tree no longer vouches
			// for the origin until a later event (a chmod) lets its watch be added.
			if !t.failed[r] {
				t.log.Warn("cannot watch a directory of the origin: no coverage claimed while it is unwatched", slog.String("dir", r), slog.Any("err", err))
			}
			t.failed[r] = true
			return fs.SkipDir
		}
		t.dirs[r] = true
		delete(t.failed, r)
		return nil
	})
}

// reportLimit logs the fs.inotify.max_user_watches limit with the command that raises it
// to about twice the directories of the origin.
func (t *Tree) reportLimit() {
	n := 0
	_ = filepath.WalkDir(t.root, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			n++
		}
		return nil
	})
	t.log.Error("inotify watch limit reached: changes under the origin are not all seen; this watcher claims no coverage and scheduled pushes walk the origin. Raise the limit with the command given (persistently: a file in /etc/sysctl.d/ with fs.inotify.max_user_watches=N)",
		slog.Int("watched", len(t.dirs)), slog.Int("directories", n),
		slog.String("command", fmt.Sprintf("sysctl -w fs.inotify.max_user_watches=%d", max(2*n, 8192))))
}

// handle turns one event into the changes it stands for, adding and dropping watches.
func (t *Tree) handle(ev fsnotify.Event) []change {
	rel, err := filepath.Rel(t.root, ev.Name)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return nil
	}
	rel = filepath.ToSlash(rel)
	if rel == "." {
		rel = ""
	}
	switch {
	case ev.Has(fsnotify.Create):
		if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
			// Watch it first, then call the whole directory changed: files written
			// before its watch existed are found by the scoped walk.
			if err := t.addAll(rel); err != nil {
				t.log.Warn("watch a new directory", slog.String("dir", rel), slog.Any("err", err))
			}
			return []change{{Path: rel, Dir: true}}
		}
		return []change{{Path: rel}}
	case ev.Has(fsnotify.Chmod) && t.failed[rel]:
		// Perhaps readable now: watch it, and call it changed (its files were unseen).
		if err := t.addAll(rel); err != nil {
			t.log.Warn("watch a directory", slog.String("dir", rel), slog.Any("err", err))
		}
		return []change{{Path: rel, Dir: true}}
	case ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename):
		for d := range t.failed {
			if d == rel || strings.HasPrefix(d, rel+"/") {
				delete(t.failed, d)
			}
		}
		if t.dirs[rel] {
			t.drop(rel)
			return []change{{Path: rel, Dir: true}}
		}
		return []change{{Path: rel}}
	default: // Write, Chmod
		return []change{{Path: rel}}
	}
}

// drop forgets the watches of rel and every directory under it.
func (t *Tree) drop(rel string) {
	for d := range t.dirs {
		if d == rel || (rel == "" || strings.HasPrefix(d, rel+"/")) {
			_ = t.fw.Remove(t.abs(d)) // the kernel may have dropped it already
			delete(t.dirs, d)
		}
	}
}

// scopeKey is the scope a change is pushed with: the registered repository directory
// holding it, else the directory of the path (a directory that appeared or went: itself).
func scopeKey(c change, repos []model.Repository) string {
	best, found := "", false
	for _, r := range repos {
		if model.InScope(c.Path, []string{r.Directory}) && (!found || len(r.Directory) > len(best)) {
			best, found = r.Directory, true
		}
	}
	if found {
		return best
	}
	if c.Dir {
		return c.Path
	}
	if d := path.Dir(c.Path); d != "." {
		return d
	}
	return ""
}
