package pusher

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"slices"
	"time"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/repomd"
)

// readOriginFile reads a whole metadata file (at most repomd.MaxSize bytes).
func readOriginFile(origin Origin, p string) ([]byte, error) {
	r, err := origin.Open(p)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	defer r.Close()
	raw, err := io.ReadAll(io.LimitReader(r, repomd.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if len(raw) > repomd.MaxSize {
		return nil, fmt.Errorf("larger than %d bytes", repomd.MaxSize)
	}
	return raw, nil
}

// aptRevision is an APT repository's origin revision as the inventory checked it.
type aptRevision struct {
	rel *repomd.Release
	// changed: the file is not the one the inventory hashed (rewritten since the walk).
	changed bool
}

// checkAptRevision reads and checks the origin's Release file of an APT repository
// against the inventory just taken (byPath). It returns why the revision must not be
// published ("" when it may): it does not parse, its own dates forbid it (apt would
// refuse it), its signature does not verify with the configured keyring, InRelease and
// Release disagree, a listed index is missing or differs, a by-hash twin is missing or
// differs, or a Packages index names a pool file the origin lacks or has otherwise.
func checkAptRevision(origin Origin, repo *model.Repository, byPath map[string]*model.File, now time.Time) (aptRevision, string) {
	p := repo.MetadataPath()
	suiteDir := path.Dir(p)
	raw, err := readOriginFile(origin, p)
	if err != nil {
		return aptRevision{}, fmt.Sprintf("origin %s cannot be read (%v)", p, err)
	}
	if f := byPath[p]; f != nil {
		if sum := sha256.Sum256(raw); !bytes.Equal(sum[:], f.SHA256) {
			return aptRevision{changed: true}, ""
		}
	}
	rel, err := repomd.ParseRelease(bytes.NewReader(raw))
	if err != nil {
		return aptRevision{}, fmt.Sprintf("origin %s cannot be parsed (%v)", p, err)
	}
	rev := aptRevision{rel: rel}
	if why := repomd.ReleaseProblem(rel, now); why != "" {
		return rev, fmt.Sprintf("origin %s: %s; apt refuses such a revision", p, why)
	}
	if why := checkAptSignature(origin, repo, raw, byPath); why != "" {
		return rev, why
	}
	// The other Release file, when the origin has it: clients that read it must get the
	// same revision.
	other := path.Join(suiteDir, "Release")
	if repo.ReleaseFile == "Release" {
		other = path.Join(suiteDir, "InRelease")
	}
	if byPath[other] != nil {
		oraw, err := readOriginFile(origin, other)
		if err != nil {
			return rev, fmt.Sprintf("origin %s cannot be read (%v)", other, err)
		}
		orel, err := repomd.ParseRelease(bytes.NewReader(oraw))
		if err != nil {
			return rev, fmt.Sprintf("origin %s cannot be parsed (%v)", other, err)
		}
		if !sameRelease(rel, orel) {
			return rev, fmt.Sprintf("origin %s and %s describe different revisions", path.Base(p), path.Base(other))
		}
	}
	if why := checkAptIndices(origin, repo, suiteDir, rel, byPath); why != "" {
		return rev, why
	}
	return rev, ""
}

// byHashProtects reports whether a revision's clients read its index files by hash
// from the twins the inventory checked (by-hash/SHA256): Acquire-By-Hash with SHA256
// the strongest list. With a SHA512 list apt asks for by-hash/SHA512/ names instead.
func byHashProtects(rel *repomd.Release) bool {
	return rel.ByHash && rel.StrongestHash == "SHA256"
}

// checkAptSignature checks the revision's signature when the repository has a keyring:
// InRelease's own, Release's Release.gpg, and Release.gpg also beside an InRelease when
// the origin has both (apt without InRelease support reads them).
func checkAptSignature(origin Origin, repo *model.Repository, raw []byte, byPath map[string]*model.File) string {
	if repo.Keyring == "" {
		return ""
	}
	kraw, err := os.ReadFile(repo.Keyring)
	if err != nil {
		return fmt.Sprintf("the keyring %s cannot be read (%v)", repo.Keyring, err)
	}
	keyring, err := repomd.ReadKeyring(kraw)
	if err != nil {
		return fmt.Sprintf("the keyring %s cannot be read (%v)", repo.Keyring, err)
	}
	suiteDir := path.Dir(repo.MetadataPath())
	if repo.ReleaseFile != "Release" {
		if err := repomd.CheckInRelease(raw, keyring); err != nil {
			return fmt.Sprintf("origin %s: %v", repo.MetadataPath(), err)
		}
	}
	release, sig := path.Join(suiteDir, "Release"), path.Join(suiteDir, "Release.gpg")
	if repo.ReleaseFile != "Release" && (byPath[release] == nil || byPath[sig] == nil) {
		return ""
	}
	rb := raw
	if repo.ReleaseFile != "Release" {
		if rb, err = readOriginFile(origin, release); err != nil {
			return fmt.Sprintf("origin %s cannot be read (%v)", release, err)
		}
	}
	sb, err := readOriginFile(origin, sig)
	if err != nil {
		return fmt.Sprintf("origin %s cannot be read (%v)", sig, err)
	}
	if err := repomd.CheckDetached(rb, sb, keyring); err != nil {
		return fmt.Sprintf("origin %s: %v", release, err)
	}
	return ""
}

// sameRelease reports whether two parsed Release files describe the same revision.
func sameRelease(a, b *repomd.Release) bool {
	return a.Suite == b.Suite && a.Codename == b.Codename && a.Date.Equal(b.Date) && a.ValidUntil.Equal(b.ValidUntil) &&
		a.ByHash == b.ByHash && slices.EqualFunc(a.Files, b.Files, func(x, y repomd.ReleaseFile) bool {
		return x.Path == y.Path && x.Size == y.Size && bytes.Equal(x.SHA256, y.SHA256)
	})
}

// checkAptIndices checks every file the Release lists against the inventory, their
// by-hash twins, and the pool files the Packages indices name.
func checkAptIndices(origin Origin, repo *model.Repository, suiteDir string, rel *repomd.Release, byPath map[string]*model.File) string {
	present := map[string]bool{} // stems with a listed form at the origin
	for _, lf := range rel.Files {
		if byPath[path.Join(suiteDir, lf.Path)] != nil {
			present[repomd.IndexStem(lf.Path)] = true
		}
	}
	packages := map[string][]string{} // Packages stem -> its present forms
	for _, lf := range rel.Files {
		p := path.Join(suiteDir, lf.Path)
		f := byPath[p]
		if f == nil {
			if present[repomd.IndexStem(lf.Path)] {
				continue // another compression of the same index is there
			}
			return fmt.Sprintf("its Release lists %s, which the origin does not have", lf.Path)
		}
		if f.Size != lf.Size || !bytes.Equal(f.SHA256, lf.SHA256) {
			return fmt.Sprintf("its Release lists %s with another size or SHA256 than the origin's file", lf.Path)
		}
		// A component's Release (main/binary-amd64/Release) is listed but never fetched
		// by apt, by hash or otherwise: archives publish no twin of it.
		if rel.ByHash && path.Base(lf.Path) != "Release" {
			twin := path.Join(path.Dir(p), "by-hash", "SHA256", hex.EncodeToString(lf.SHA256))
			tf := byPath[twin]
			switch {
			case tf == nil:
				return fmt.Sprintf("it says Acquire-By-Hash, but the origin lacks the by-hash twin of %s", lf.Path)
			case tf.Size != lf.Size || !bytes.Equal(tf.SHA256, lf.SHA256):
				return fmt.Sprintf("the origin's by-hash twin of %s has other bytes than its Release lists", lf.Path)
			}
		}
		if stem := repomd.IndexStem(lf.Path); path.Base(stem) == "Packages" {
			packages[stem] = append(packages[stem], p)
		}
	}
	for _, stem := range slices.Sorted(maps.Keys(packages)) {
		if why := checkAptPackages(origin, repo.Directory, packages[stem], byPath); why != "" {
			return why
		}
	}
	return ""
}

// checkAptPackages reads the first form of one Packages index it can decompress and
// checks every pool file it names against the inventory. An index only in a
// compression this build cannot read is not checked (its listed checksum was).
func checkAptPackages(origin Origin, root string, forms []string, byPath map[string]*model.File) string {
	for _, p := range forms {
		rd, err := origin.Open(p)
		if err != nil {
			return fmt.Sprintf("its %s cannot be read (%v)", p, err)
		}
		r, err := repomd.DecompressIndex(p, rd)
		if errors.Is(err, repomd.ErrCompression) {
			rd.Close()
			continue
		} else if err != nil {
			rd.Close()
			return fmt.Sprintf("its %s cannot be read (%v)", p, err)
		}
		reason := ""
		err = repomd.ParsePackages(r, func(pkg repomd.DebPackage) error {
			f := byPath[path.Join(root, pkg.Filename)]
			switch {
			case f == nil:
				reason = fmt.Sprintf("its %s names %s, which the origin does not have", path.Base(p), pkg.Filename)
				return errMismatch
			case (pkg.Size != 0 && pkg.Size != f.Size) || (pkg.SHA256 != nil && !bytes.Equal(pkg.SHA256, f.SHA256)):
				reason = fmt.Sprintf("its %s names %s with another size or SHA256 than the origin's file", path.Base(p), pkg.Filename)
				return errMismatch
			}
			return nil
		})
		rd.Close()
		if err != nil && !errors.Is(err, errMismatch) {
			return fmt.Sprintf("its %s cannot be parsed (%v)", p, err)
		}
		return reason
	}
	return ""
}

// servedByHash reads what ServedByHash decides from.
func (p *Pusher) servedByHash(ctx context.Context, r *model.Region, repos []model.Repository, byHash map[string]bool) (map[string]bool, error) {
	states, err := p.DB.RegionRepos(ctx)
	if err != nil {
		return nil, err
	}
	versions := map[int64][]model.RepomdVersion{}
	for _, repo := range repos {
		if repo.IsApt() && byHash[path.Dir(repo.MetadataPath())] {
			if versions[repo.ID], err = p.DB.RepomdVersions(ctx, repo.ID); err != nil {
				return nil, err
			}
		}
	}
	return ServedByHash(r.ID, repos, byHash, states, versions), nil
}

// ServedByHash narrows byHash (the suite directories whose new revision's clients read
// index files by hash) to those whose revision the region serves is read by hash too:
// clients of a served revision without by-hash read the plain names that a rewrite in
// place changes under them, so for those the region must leave the answers first (an
// archive turning by-hash on). A region serving no revision of the suite has no such
// clients; one serving a revision not recorded is judged without by-hash.
func ServedByHash(regionID int64, repos []model.Repository, byHash map[string]bool, states []model.RegionRepo, versions map[int64][]model.RepomdVersion) map[string]bool {
	out := map[string]bool{}
	for _, repo := range repos {
		dir := path.Dir(repo.MetadataPath())
		if !repo.IsApt() || !byHash[dir] {
			continue
		}
		st := findRegionRepo(states, regionID, repo.ID)
		if st == nil || !serving(st) || st.RepomdSHA256 == nil {
			out[dir] = true
			continue
		}
		for _, v := range versions[repo.ID] {
			if bytes.Equal(v.SHA256, st.RepomdSHA256) {
				out[dir] = v.ByHash
				break
			}
		}
	}
	return out
}
