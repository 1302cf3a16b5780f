package pusher

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/regionmirror/regionmirror/internal/model"
)

// ScopeError is a path a publisher named that cannot be pushed: not under the origin, not
// a directory, or reached through a symlink. The CLI exits 2 and the API answers 400 with
// it; nothing is pushed.
type ScopeError struct {
	Path   string
	Reason string
}

func (e *ScopeError) Error() string { return fmt.Sprintf("path %q: %s", e.Path, e.Reason) }

// maxScopePaths bounds one request's paths.
const maxScopePaths = 1000

// ResolveScope turns the paths a publisher names (absolute under root, or relative to it)
// into the origin directories to push, relative and slash-separated; "" is the whole
// origin, and a scope naming it is nil. Every path must be an existing directory under
// root reached without a symlink: the full walk does not enter directory symlinks either,
// so a push never follows one out of the origin.
func ResolveScope(root string, paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, &ScopeError{Reason: "no path given"}
	}
	if len(paths) > maxScopePaths {
		return nil, &ScopeError{Path: paths[0], Reason: fmt.Sprintf("%d paths: at most %d at once", len(paths), maxScopePaths)}
	}
	root = filepath.Clean(root)
	var out []string
	for _, p := range paths {
		rel, err := relToRoot(root, p)
		if err != nil {
			return nil, err
		}
		if rel == "" {
			return nil, nil
		}
		if err := realDirectory(root, rel); err != nil {
			return nil, &ScopeError{Path: p, Reason: err.Error()}
		}
		out = append(out, rel)
	}
	return out, nil
}

func relToRoot(root, p string) (string, error) {
	if p == "" {
		return "", &ScopeError{Path: p, Reason: "is empty"}
	}
	if strings.ContainsRune(p, 0) {
		return "", &ScopeError{Path: p, Reason: "contains a NUL byte"}
	}
	if filepath.IsAbs(p) {
		c := filepath.Clean(p)
		if c == root {
			return "", nil
		}
		if !strings.HasPrefix(c, root+string(filepath.Separator)) {
			return "", &ScopeError{Path: p, Reason: "is not under the origin"}
		}
		p = filepath.ToSlash(strings.TrimPrefix(c, root+string(filepath.Separator)))
	}
	rel, err := model.CleanRelPath("path", p)
	if err != nil {
		var ve *model.ValidationError
		if errors.As(err, &ve) {
			return "", &ScopeError{Path: p, Reason: ve.Reason}
		}
		return "", &ScopeError{Path: p, Reason: "is not a path under the origin"}
	}
	return rel, nil
}

// Why realDirectory refuses a directory; each says it publicly (ScopeError).
var (
	errNoDirectory = errors.New("does not exist at the origin")
	errSymlinkDir  = errors.New("is reached through a symlink, which pushes do not follow")
	errNotDir      = errors.New("is not a directory")
)

// unreadable is a directory that could not be looked at: its message is public, the
// cause (Unwrap) is for logs.
type unreadable struct{ err error }

func (e unreadable) Error() string { return "cannot be read at the origin" }
func (e unreadable) Unwrap() error { return e.err }

// realDirectory checks that every component of rel under root is a directory, not a
// symlink: errNoDirectory, errSymlinkDir, errNotDir or an unreadable.
func realDirectory(root, rel string) error {
	cur := root
	for seg := range strings.SplitSeq(rel, "/") {
		cur = filepath.Join(cur, seg)
		st, err := os.Lstat(cur)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return errNoDirectory
		case err != nil:
			return unreadable{err}
		case st.Mode()&os.ModeSymlink != 0:
			return errSymlinkDir
		case !st.IsDir():
			return errNotDir
		}
	}
	return nil
}

// Options say what a push covers.
type Options struct {
	// Scope are origin directories (ResolveScope's, or a watcher's); nil is the whole
	// origin. A scoped push walks, plans and uploads only their files; each one inside a
	// registered repository is widened to the repository (model.NormalizeScope).
	Scope []string
	// Scheduled is a cron tick: it ends without walking the origin when a live watcher of
	// OriginRoot has seen every change since the last full walk, that walk is younger
	// than FullInventoryInterval and every region is synced; regions synced at the
	// generation it pushes are skipped without reading their records.
	Scheduled             bool
	OriginRoot            string
	FullInventoryInterval time.Duration
	// WatchStale: a watcher that has not beaten for this long is not live (default 30s).
	WatchStale time.Duration
}
