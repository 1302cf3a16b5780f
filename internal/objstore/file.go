package objstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// File is a store in a local directory (NFS mirrors, tests, the demo). Writes go to a
// temporary file in the target directory and are renamed into place, so a reader never
// sees a partial file and a crash leaves only a temporary file behind.
type File struct {
	root string
}

var _ Store = (*File)(nil)

// tmpPrefix marks temporary files; List skips them.
const tmpPrefix = ".regionmirror-tmp-"

// NewFile returns a store rooted at dir, created if needed.
func NewFile(dir string) (*File, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("file store: %s is not an absolute path", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("file store: %w", err)
	}
	return &File{root: dir}, nil
}

func (f *File) String() string { return "file://" + f.root }

func (f *File) path(key string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	return filepath.Join(f.root, filepath.FromSlash(key)), nil
}

// writeAtomic copies r into key through a temporary file, checking its SHA-256.
func (f *File) writeAtomic(key string, r io.Reader, want []byte) error {
	dst, err := f.path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), tmpPrefix+"*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), r); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if want != nil && !bytes.Equal(h.Sum(nil), want) {
		return fmt.Errorf("put %s: %w", key, ErrChecksum)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

func (f *File) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts PutOptions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := f.writeAtomic(key, io.LimitReader(body, size), opts.SHA256); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

func (f *File) Copy(ctx context.Context, srcKey, dstKey string, opts PutOptions) error {
	src, err := f.path(srcKey)
	if err != nil {
		return err
	}
	in, err := os.Open(src)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("copy %s: %w", srcKey, ErrNotExist)
	}
	if err != nil {
		return fmt.Errorf("copy %s: %w", srcKey, err)
	}
	defer in.Close()
	if err := f.writeAtomic(dstKey, in, opts.SHA256); err != nil {
		return fmt.Errorf("copy %s to %s: %w", srcKey, dstKey, err)
	}
	return nil
}

func (f *File) Head(ctx context.Context, key string) (Info, error) {
	p, err := f.path(key)
	if err != nil {
		return Info{}, err
	}
	st, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !st.Mode().IsRegular()) {
		return Info{}, fmt.Errorf("head %s: %w", key, ErrNotExist)
	}
	if err != nil {
		return Info{}, fmt.Errorf("head %s: %w", key, err)
	}
	return Info{Key: key, Size: st.Size(), LastModified: st.ModTime()}, nil
}

func (f *File) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := f.path(key)
	if err != nil {
		return nil, err
	}
	r, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("get %s: %w", key, ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return r, nil
}

func (f *File) List(ctx context.Context, prefix, startAfter string, fn func(Info) error) error {
	var infos []Info
	err := filepath.WalkDir(f.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(f.root, p)
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			// Skip subtrees that cannot hold the prefix.
			if key != "." && !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), tmpPrefix) || !strings.HasPrefix(key, prefix) {
			return nil
		}
		st, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		infos = append(infos, Info{Key: key, Size: st.Size(), LastModified: st.ModTime()})
		return nil
	})
	if err != nil {
		return fmt.Errorf("list %s: %w", f, err)
	}
	// WalkDir's lexical order per directory is not key order across directories ("a/b" vs "a-c").
	sort.Slice(infos, func(i, j int) bool { return infos[i].Key < infos[j].Key })
	for _, in := range infos {
		if in.Key <= startAfter {
			continue
		}
		if err := fn(in); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

func (f *File) Delete(ctx context.Context, key string) error {
	p, err := f.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	// Leave no empty directories behind, up to the root.
	for dir := filepath.Dir(p); dir != f.root && strings.HasPrefix(dir, f.root); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break
		}
	}
	return nil
}

// fileUpload appends parts to a temporary file and renames it on Complete.
type fileUpload struct {
	f    *File
	key  string
	want []byte
	tmp  *os.File
	dst  string
	hash hash.Hash
	next int
}

var _ Upload = (*fileUpload)(nil)

func (f *File) Multipart(ctx context.Context, key string, opts PutOptions) (Upload, error) {
	dst, err := f.path(key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return nil, fmt.Errorf("multipart %s: %w", key, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), tmpPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("multipart %s: %w", key, err)
	}
	return &fileUpload{f: f, key: key, want: opts.SHA256, tmp: tmp, dst: dst, hash: sha256.New(), next: 1}, nil
}

func (u *fileUpload) PutPart(ctx context.Context, n int, data []byte, sum []byte) error {
	if n != u.next {
		return fmt.Errorf("multipart %s: part %d out of order (want %d)", u.key, n, u.next)
	}
	if s := sha256.Sum256(data); !bytes.Equal(s[:], sum) {
		return fmt.Errorf("multipart %s part %d: %w", u.key, n, ErrChecksum)
	}
	if _, err := u.tmp.Write(data); err != nil {
		return fmt.Errorf("multipart %s part %d: %w", u.key, n, err)
	}
	u.hash.Write(data)
	u.next++
	return nil
}

func (u *fileUpload) Complete(ctx context.Context) error {
	defer os.Remove(u.tmp.Name())
	if err := u.tmp.Close(); err != nil {
		return fmt.Errorf("multipart %s: %w", u.key, err)
	}
	if u.want != nil && !bytes.Equal(u.hash.Sum(nil), u.want) {
		return fmt.Errorf("multipart %s: %w", u.key, ErrChecksum)
	}
	if err := os.Chmod(u.tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(u.tmp.Name(), u.dst); err != nil {
		return fmt.Errorf("multipart %s: %w", u.key, err)
	}
	return nil
}

func (u *fileUpload) Abort(ctx context.Context) error {
	u.tmp.Close()
	return os.Remove(u.tmp.Name())
}
