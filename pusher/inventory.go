package pusher

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/repomd"
)

// WalkFunc receives each origin file a walk finds. linked: the file is reached through a
// symlink or shares its inode with another name (a hard link), so it can change under a
// name other than p, where a watcher sees the change.
type WalkFunc func(p string, size int64, mtime time.Time, linked bool) error

// Origin is read access to the canonical tree. OSOrigin is the real one; tests inject
// read faults that a real disk will not produce on demand.
type Origin interface {
	Open(p string) (io.ReadSeekCloser, error)
	Walk(fn WalkFunc) error
	// WalkUnder is Walk restricted to the origin directory dir ("" for the whole
	// origin); a dir that does not exist is an empty walk (its files were removed).
	WalkUnder(dir string, fn WalkFunc) error
}

// OSOrigin is the origin in a local directory.
type OSOrigin struct {
	Root string
	Log  *slog.Logger
}

var _ Origin = OSOrigin{}

func (o OSOrigin) Open(p string) (io.ReadSeekCloser, error) {
	return os.Open(filepath.Join(o.Root, filepath.FromSlash(p)))
}

// Walk visits every regular file (and symlink to one) with its path relative to Root.
// Paths regionmirror cannot serve safely are skipped with a warning.
func (o OSOrigin) Walk(fn WalkFunc) error {
	return o.WalkUnder("", fn)
}

// WalkUnder is Walk of the origin directory dir only. The root must be a readable
// directory; dir need not exist (an empty walk: its files became deleted). dir itself,
// and every directory on the way to it, must be a real directory: a symlink is not
// entered, as the full walk does not enter one.
func (o OSOrigin) WalkUnder(dir string, fn WalkFunc) error {
	if st, err := os.Stat(o.Root); err != nil || !st.IsDir() {
		return fmt.Errorf("origin %s is not a readable directory", o.Root)
	}
	// origin.path itself may be a symlink (the operator's choice): WalkDir does not follow
	// its root, and would find an origin without files.
	base, err := filepath.EvalSymlinks(o.Root)
	if err != nil {
		return fmt.Errorf("origin %s: %w", o.Root, err)
	}
	start := base
	if dir != "" {
		clean, err := model.CleanRelPath("path", dir)
		if err != nil || clean != dir {
			return fmt.Errorf("walk origin: directory %q is not a clean path under the origin", dir)
		}
		start = filepath.Join(base, filepath.FromSlash(dir))
		var cannot unreadable
		switch err := realDirectory(base, dir); {
		case errors.As(err, &cannot):
			return fmt.Errorf("walk origin: %w", cannot.err)
		case err != nil:
			// Missing, a symlink or a file: the full walk finds no directory there either.
			return nil
		}
	}
	root := filepath.Clean(base) + string(filepath.Separator)
	return filepath.WalkDir(start, func(full string, d fs.DirEntry, err error) error {
		if err != nil {
			if full == start && errors.Is(err, fs.ErrNotExist) {
				return nil // removed between the check and the walk
			}
			return fmt.Errorf("walk origin: %w", err)
		}
		if d.IsDir() {
			return nil
		}
		p := filepath.ToSlash(strings.TrimPrefix(full, root))
		st, err := os.Stat(full) // follows symlinks to files; directory symlinks are not entered
		if err != nil || !st.Mode().IsRegular() {
			if o.Log != nil && d.Type()&fs.ModeSymlink == 0 {
				o.Log.Warn("skipping origin entry that is not a regular file", slog.String("path", p))
			}
			return nil
		}
		if clean, err := model.CleanRelPath("path", p); err != nil || clean != p {
			if o.Log != nil {
				o.Log.Warn("skipping origin file with an unsafe name", slog.String("path", p))
			}
			return nil
		}
		linked := false
		if d.Type()&fs.ModeSymlink != 0 {
			// Only a symlink to a file inside the origin is followed: nothing outside it
			// is ever published.
			target, err := filepath.EvalSymlinks(full)
			if err != nil || !strings.HasPrefix(target, root) {
				if o.Log != nil {
					o.Log.Warn("skipping origin symlink that leads out of the origin", slog.String("path", p))
				}
				return nil
			}
			linked = true
		} else if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Nlink > 1 {
			linked = true
		}
		return fn(p, st.Size(), st.ModTime(), linked)
	})
}

// InventoryReport says what the inventory found.
type InventoryReport struct {
	Files   int   // live files at the origin
	Bytes   int64 // their total size
	Hashed  int   // files read because they were new or their size or mtime changed
	Changes db.InventoryResult
	Repomds int      // new repomd.xml versions recorded
	Unread  []string // files that could not be read: their directories are not published
	// Invalid are repository directories whose origin repomd.xml could not be recorded
	// (unparsable, unreadable, rewritten during the inventory), with the reason: their
	// metadata is withheld from every region.
	Invalid map[string]string `json:",omitempty"`
	// AptByHash are the APT suite directories (DIR/dists/SUITE) whose checked origin
	// revision says Acquire-By-Hash: yes (see PlanInput.AptByHash).
	AptByHash map[string]bool `json:",omitempty"`
	Duration  time.Duration
	// Scope are the directories walked (nil: the whole origin), widened to whole
	// repositories.
	Scope []string `json:",omitempty"`
	// Full: the whole origin was walked and every file read; recorded as the last full
	// inventory.
	Full bool `json:",omitempty"`
	// FromRecords: the origin was not walked; the inventory is the database's (a live
	// watcher saw every change), repomd.xml still checked at the origin.
	FromRecords bool `json:",omitempty"`
	// Generation is the origin generation the inventory reflects: no change after it is
	// in Live, and none before it (inside the scope) is missing.
	Generation int64 `json:",omitempty"`
	// Linked counts the files walked that are reached through a symlink or share their
	// inode (hard links): they change under another name, where a watcher reports the
	// change for another directory.
	Linked int `json:",omitempty"`
	// claimable: Generation was established (not a dry run).
	claimable bool
	// Live is the origin as the inventory found it, by path order. After a dry run, new
	// files have ID 0.
	Live []model.File `json:"-"`
}

// aptByHash is AptByHash, made when first asked for.
func (rep *InventoryReport) aptByHash() map[string]bool {
	if rep.AptByHash == nil {
		rep.AptByHash = map[string]bool{}
	}
	return rep.AptByHash
}

type walked struct {
	path  string
	size  int64
	mtime time.Time
}

// TakeInventory walks the whole origin: TakeInventoryUnder with no scope.
func TakeInventory(ctx context.Context, d *db.DB, origin Origin, workers int, dryRun bool, log *slog.Logger) (*InventoryReport, error) {
	return TakeInventoryUnder(ctx, d, origin, nil, workers, dryRun, log)
}

// TakeInventoryUnder walks the origin's directories of scope (nil: the whole origin),
// hashes what is new or changed (workers at a time), and records the differences and the
// new repomd.xml of every registered repository in the scope. The scope is first widened
// so that every repository is wholly in or out of it (model.NormalizeScope); files
// outside it are neither read nor recorded, so only what is inside can become deleted.
// A dry run records nothing and returns the origin as it would be recorded.
func TakeInventoryUnder(ctx context.Context, d *db.DB, origin Origin, scope []string, workers int, dryRun bool, log *slog.Logger) (*InventoryReport, error) {
	start := time.Now()
	repos, err := d.ListRepositories(ctx)
	if err != nil {
		return nil, err
	}
	scope = model.NormalizeScope(scope, repos)
	rep := &InventoryReport{Scope: scope}
	var walkStart time.Time
	if scope == nil && !dryRun {
		// The database's clock: watchers' times are compared with it.
		if walkStart, err = d.Now(ctx); err != nil {
			return nil, err
		}
	}
	// The generation the rows read next reflect at least: a change recorded after this
	// read may or may not be in them, so it is never claimed from them.
	before, err := d.OriginState(ctx)
	if err != nil {
		return nil, err
	}
	known, err := d.ListFilesUnder(ctx, scope, true)
	if err != nil {
		return nil, err
	}
	byPath := make(map[string]*model.File, len(known))
	for i := range known {
		byPath[known[i].Path] = &known[i]
	}
	seen := make(map[string]bool, len(known))
	var toHash []walked
	visit := func(p string, size int64, mtime time.Time, linked bool) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if seen[p] {
			return nil
		}
		if linked {
			rep.Linked++
		}
		// PostgreSQL keeps microseconds.
		mtime = mtime.Truncate(time.Microsecond)
		seen[p] = true
		rep.Files++
		rep.Bytes += size
		if f := byPath[p]; f != nil && f.DeletedAt == nil && f.Size == size && f.Mtime.Equal(mtime) {
			return nil
		}
		toHash = append(toHash, walked{p, size, mtime})
		return nil
	}
	if scope == nil {
		err = origin.Walk(visit)
	} else {
		for _, dir := range scope {
			if err = origin.WalkUnder(dir, visit); err != nil {
				break
			}
		}
	}
	if err != nil {
		return nil, err
	}

	hashed, unread := hashFiles(ctx, origin, toHash, workers, log)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rep.Hashed, rep.Unread = len(hashed), unread
	// Applied only where the rows are still as read: another inventory (a watcher's push)
	// may have recorded something newer meanwhile.
	changes := db.InventoryChanges{Upsert: hashed, Scope: scope, Was: byPath}
	for _, f := range known {
		// An unreadable file is still there: it is not deleted. Only the scope was
		// walked, so only its files can be found gone.
		if f.DeletedAt == nil && !seen[f.Path] && model.InScope(f.Path, scope) {
			changes.Deleted = append(changes.Deleted, f.Path)
		}
	}
	if dryRun {
		rep.Live = mergeInventory(known, changes, seen)
		// Checked, not recorded: the dry run shows what would be withheld.
		if _, rep.Invalid, _, err = recordRepomds(ctx, d, origin, scope, unread, rep.Live, false, 0, rep.aptByHash(), log); err != nil {
			return nil, err
		}
		rep.Duration = time.Since(start)
		return rep, nil
	}
	if rep.Changes, err = d.ApplyInventory(ctx, changes); err != nil {
		return nil, err
	}
	gen := before.Generation
	if rep.Changes == (db.InventoryResult{}) {
		// Nothing written: the rows already read are the inventory.
		rep.Live = mergeInventory(known, changes, seen)
	} else {
		// Read right before the rows: they hold every change up to it, this one's
		// (Changes.Generation) included.
		st, err := d.OriginState(ctx)
		if err != nil {
			return nil, err
		}
		gen = st.Generation
		if rep.Live, err = d.ListFilesUnder(ctx, scope, false); err != nil {
			return nil, err
		}
	}
	if rep.Repomds, rep.Invalid, rep.Generation, err = recordRepomds(ctx, d, origin, scope, unread, rep.Live, true, gen, rep.aptByHash(), log); err != nil {
		return nil, err
	}
	// A change another inventory made since this one read its rows was kept, so the
	// records are not the origin as this walk saw it: claim nothing from it.
	rep.claimable = rep.Changes.Skipped == 0
	if rep.Changes.Skipped > 0 {
		log.Warn("files changed by another inventory while this one walked were left as that one recorded them",
			slog.Int("files", rep.Changes.Skipped))
	}
	switch {
	case len(unread) > 0:
		// What could not be read is not in the records, and no watcher reports it again:
		// the next scheduled push walks.
		if err := d.ForgetFullInventory(ctx); err != nil {
			return nil, err
		}
	case scope == nil && rep.claimable:
		// Every file was read: from walkStart on, the database holds the origin but
		// for what changed since (which a watcher, if live, has seen).
		if err := d.MarkFullInventory(ctx, walkStart, rep.Linked); err != nil {
			return nil, err
		}
		rep.Full = true
	case rep.Linked > 0:
		if err := d.NoteLinkedFiles(ctx, rep.Linked); err != nil {
			return nil, err
		}
	}
	rep.Duration = time.Since(start)
	return rep, nil
}

// inventoryFromRecords is the inventory as recorded, without walking the origin: what a
// scheduled push uses when a live watcher has seen every change. The repomd.xml of every
// repository is still read and checked at the origin (and recorded when new): a
// repository whose recorded files do not match it is withheld.
func inventoryFromRecords(ctx context.Context, d *db.DB, origin Origin, log *slog.Logger) (*InventoryReport, error) {
	start := time.Now()
	st, err := d.OriginState(ctx)
	if err != nil {
		return nil, err
	}
	rep := &InventoryReport{FromRecords: true}
	if rep.Live, err = d.ListFiles(ctx, false); err != nil {
		return nil, err
	}
	for i := range rep.Live {
		rep.Files++
		rep.Bytes += rep.Live[i].Size
	}
	if rep.Repomds, rep.Invalid, rep.Generation, err = recordRepomds(ctx, d, origin, nil, nil, rep.Live, true, st.Generation, rep.aptByHash(), log); err != nil {
		return nil, err
	}
	rep.claimable = true
	rep.Duration = time.Since(start)
	return rep, nil
}

// mergeInventory is the live inventory a dry run would have recorded.
func mergeInventory(known []model.File, ch db.InventoryChanges, seen map[string]bool) []model.File {
	byPath := map[string]model.File{}
	ids := map[string]int64{}
	for _, f := range known {
		ids[f.Path] = f.ID
		if f.DeletedAt == nil && seen[f.Path] {
			byPath[f.Path] = f
		}
	}
	for _, f := range ch.Upsert {
		f.ID = ids[f.Path]
		byPath[f.Path] = f
	}
	out := make([]model.File, 0, len(byPath))
	for _, f := range byPath {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// hashFiles reads each file once for both its SHA-256 and MD5.
func hashFiles(ctx context.Context, origin Origin, files []walked, workers int, log *slog.Logger) ([]model.File, []string) {
	var (
		mu     sync.Mutex
		out    []model.File
		unread []string
		wg     sync.WaitGroup
	)
	jobs := make(chan walked)
	for range max(workers, 1) {
		wg.Go(func() {
			buf := make([]byte, 1<<20)
			for w := range jobs {
				f, err := hashOne(origin, w, buf)
				mu.Lock()
				if err != nil {
					log.Error("cannot read origin file", slog.String("path", w.path), slog.Any("err", err))
					unread = append(unread, w.path)
				} else {
					out = append(out, f)
				}
				mu.Unlock()
			}
		})
	}
	for _, w := range files {
		if ctx.Err() != nil {
			break
		}
		jobs <- w
	}
	close(jobs)
	wg.Wait()
	return out, unread
}

func hashOne(origin Origin, w walked, buf []byte) (model.File, error) {
	r, err := origin.Open(w.path)
	if err != nil {
		return model.File{}, err
	}
	defer r.Close()
	s, m := sha256.New(), md5.New()
	n, err := io.CopyBuffer(io.MultiWriter(s, m), r, buf)
	if err != nil {
		return model.File{}, err
	}
	if n != w.size {
		return model.File{}, fmt.Errorf("%s changed while it was read (%d bytes, expected %d)", w.path, n, w.size)
	}
	return model.File{Path: w.path, Size: n, SHA256: s.Sum(nil), MD5: m.Sum(nil), Mtime: w.mtime}, nil
}

// recordRepomds records, for every registered repository, the origin's repomd.xml (an APT
// suite's InRelease or Release: checkAptRevision) when it is not the current version yet
// (only checks it when record is false). A repository whose metadata cannot be recorded
// is returned with the reason: its metadata must not be published. live is the
// inventory just taken. byHash (may be nil) receives the APT suite directories whose
// revision says Acquire-By-Hash.
//
// Only the repositories inside scope are checked (nil: all). gen is the generation live
// reflects; it is returned extended over the versions recorded here, each only when it
// is the very next generation (nobody else's change came between), so that a region is
// never claimed synced at a change its push did not reflect.
func recordRepomds(ctx context.Context, d *db.DB, origin Origin, scope, unread []string, live []model.File, record bool, gen int64, byHash map[string]bool, log *slog.Logger) (int, map[string]string, int64, error) {
	all, err := d.ListRepositories(ctx)
	if err != nil {
		return 0, nil, gen, err
	}
	var repos []model.Repository
	for _, r := range all {
		if model.InScope(r.Directory, scope) {
			repos = append(repos, r)
		}
	}
	extend := true
	// By map, not by search: the database's path order need not be Go's.
	byPath := make(map[string]*model.File, len(live))
	for i := range live {
		byPath[live[i].Path] = &live[i]
	}
	n := 0
	invalid := map[string]string{}
	for _, repo := range repos {
		p := repo.MetadataPath()
		if tainted(repo.Directory, unread) {
			log.Warn("not recording repomd.xml: files of the repository could not be read", slog.String("repo", repo.Name), slog.String("arch", repo.Arch))
			continue
		}
		f := byPath[p]
		if f == nil {
			log.Warn("repository has no metadata file (repodata/repomd.xml, or its suite's Release file) at the origin", slog.String("repo", repo.Name), slog.String("path", p))
			continue
		}
		versions, err := d.RepomdVersions(ctx, repo.ID)
		if err != nil {
			return n, invalid, gen, err
		}
		var version *model.RepomdVersion
		if repo.IsApt() {
			rev, why := checkAptRevision(origin, &repo, byPath, time.Now())
			switch {
			case rev.changed:
				log.Warn("Release file changed during the inventory", slog.String("path", p))
				invalid[repo.Directory] = fmt.Sprintf("repository %s: origin %s changed during the inventory; its metadata is withheld until the next push", repo.Directory, p)
				continue
			case why != "":
				log.Error("APT revision refused: its repository's metadata is withheld", slog.String("repo", repo.Name), slog.String("why", why))
				invalid[repo.Directory] = fmt.Sprintf("repository %s (suite %s): %s; its new revision is withheld", repo.Directory, repo.Suite, why)
				continue
			}
			switch {
			case byHashProtects(rev.rel):
				if byHash != nil {
					byHash[path.Dir(p)] = true
				}
			case rev.rel.ByHash:
				log.Warn("Acquire-By-Hash with a "+rev.rel.StrongestHash+" list: apt fetches by-hash/"+rev.rel.StrongestHash+
					"/ names, which are not checked here; its plain index files rewritten in place take the region out",
					slog.String("repo", repo.Name), slog.String("path", p))
			}
			rel := rev.rel
			version = &model.RepomdVersion{RepositoryID: repo.ID, MD5: rel.MD5, SHA1: rel.SHA1, SHA256: rel.SHA256, SHA512: rel.SHA512,
				Size: rel.Size, Timestamp: rel.Date.Unix(), ValidUntil: rel.ValidUntil, ByHash: byHashProtects(rel)}
		} else {
			md, reason := checkRepomd(origin, &repo, p, f, byPath, log)
			if reason != "" {
				invalid[repo.Directory] = reason
				continue
			}
			version = &model.RepomdVersion{RepositoryID: repo.ID, MD5: md.MD5, SHA1: md.SHA1,
				SHA256: md.SHA256, SHA512: md.SHA512, Size: md.Size, Timestamp: md.Timestamp}
		}
		if !record || (len(versions) > 0 && bytes.Equal(versions[0].SHA256, f.SHA256)) {
			continue
		}
		changed, err := d.RecordRepomdVersion(ctx, version)
		if err != nil {
			return n, invalid, gen, err
		}
		if changed && extend {
			// The recording bumped the generation once; read after it, gen+1 is that
			// bump alone, anything more is another's change in between.
			st, err := d.OriginState(ctx)
			if err != nil {
				return n, invalid, gen, err
			}
			if st.Generation == gen+1 {
				gen = st.Generation
			} else {
				extend = false
			}
		}
		log.Info("new repository revision", slog.String("repo", repo.Name), slog.String("arch", repo.Arch), slog.String("path", p), slog.Int64("timestamp", version.Timestamp))
		n++
	}
	return n, invalid, gen, nil
}

// checkRepomd parses and checks a yum repository's origin repomd.xml (p, inventoried as
// f); reason is why its metadata must be withheld ("" when it may go out).
func checkRepomd(origin Origin, repo *model.Repository, p string, f *model.File, byPath map[string]*model.File, log *slog.Logger) (*repomd.Repomd, string) {
	// Parsed and checked on every push, also when repomd.xml did not change: packages
	// re-signed under their names change beneath an unchanged repomd.xml.
	md, err := parseRepomd(origin, p)
	switch {
	case err != nil:
		log.Error("invalid repomd.xml: its repository's metadata is withheld", slog.String("path", p), slog.Any("err", err))
		return nil, fmt.Sprintf("repository %s: origin %s cannot be parsed (%v); its metadata is withheld", repo.Directory, p, err)
	case !bytes.Equal(md.SHA256, f.SHA256):
		// Rewritten since the walk; the next push records it.
		log.Warn("repomd.xml changed during the inventory", slog.String("path", p))
		return nil, fmt.Sprintf("repository %s: origin %s changed during the inventory; its metadata is withheld until the next push", repo.Directory, p)
	}
	if why := inconsistency(origin, repo.Directory, md, byPath); why != "" {
		log.Warn("the origin's repository does not match its metadata: its metadata is withheld", slog.String("repo", repo.Name),
			slog.String("arch", repo.Arch), slog.String("why", why))
		return nil, fmt.Sprintf("repository %s: %s (createrepo not run yet, or the origin is mid-update); its metadata, and its files rewritten under their names, are withheld", repo.Directory, why)
	}
	return md, ""
}

func parseRepomd(origin Origin, p string) (*repomd.Repomd, error) {
	r, err := origin.Open(p)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	defer r.Close()
	return repomd.Parse(r)
}

// tainted reports whether an unreadable file lies in dir.
func tainted(dir string, unread []string) bool {
	for _, p := range unread {
		if dir == "" || p == dir || (len(p) > len(dir) && p[:len(dir)] == dir && p[len(dir)] == '/') {
			return true
		}
	}
	return false
}
