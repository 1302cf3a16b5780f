package filetable

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"time"
)

// A file table on disk lets a server start from its last table and an update, instead of
// reading millions of rows: at a million files, seconds become a fraction of one. The
// format is private to one version of regionmirror: a magic line naming the version, the
// fields in order (little endian, each slice preceded by its length), then the SHA-256 of
// all that. Whatever does not check out is an error, and the caller reads the database.
const tableMagic = "regionmirror file table 1\n"

// maxCachedFiles bounds the directories and regions a table file may claim.
const maxCachedFiles = 1 << 28

// ErrBadFile means a table file is damaged, of another version or inconsistent.
var ErrBadFile = errors.New("not a usable file table")

// Write writes t in the form Read reads.
func Write(w io.Writer, t *Table) error {
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 1<<20)
	e := &encoder{w: bw}
	e.raw([]byte(tableMagic))
	e.str(t.ReadPoint.Seen)
	e.str(t.ReadPoint.Origin)
	e.put(t.ReadPoint.ReadAt.UnixNano())
	e.put(uint64(len(t.Dirs)))
	for _, d := range t.Dirs {
		e.str(d)
	}
	e.slice(t.dirOf)
	e.slice(t.names)
	e.slice(t.nameEnd)
	// As the flat slices they were before pages: the format did not change.
	e.put(uint64(8 * t.Len()))
	writeChunked(e, t.Len(), 8, func(b []byte, i int) { binary.LittleEndian.PutUint64(b, uint64(t.Size(i))) })
	e.put(uint64(32 * t.Len()))
	writeChunked(e, t.Len(), 32, func(b []byte, i int) { copy(b, t.SHA256(i)) })
	e.slice(t.ids.byIndex(t.Len()))
	e.slice([]uint64(t.Deleted))
	e.slice([]uint64(t.Gone))
	regions := slices.Sorted(maps.Keys(t.Verified))
	e.put(uint64(len(regions)))
	for _, r := range regions {
		e.put(r)
		e.slice([]uint64(t.Verified[r]))
	}
	if e.err == nil {
		e.err = bw.Flush()
	}
	if e.err != nil {
		return fmt.Errorf("write file table: %w", e.err)
	}
	if _, err := w.Write(h.Sum(nil)); err != nil {
		return fmt.Errorf("write file table: %w", err)
	}
	return nil
}

type encoder struct {
	w   io.Writer
	err error
}

func (e *encoder) raw(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}

func (e *encoder) put(v any) {
	if e.err == nil {
		e.err = binary.Write(e.w, binary.LittleEndian, v)
	}
}

func (e *encoder) str(s string) {
	e.put(uint64(len(s)))
	e.raw([]byte(s))
}

// slice writes a slice of fixed-size values with its length, through a small buffer:
// binary.Write would first encode all of it into a copy as large as the slice.
func (e *encoder) slice(v any) {
	e.put(uint64(binary.Size(v)))
	switch v := v.(type) {
	case []byte:
		e.raw(v)
	case []int32:
		writeChunked(e, len(v), 4, func(b []byte, i int) { binary.LittleEndian.PutUint32(b, uint32(v[i])) })
	case []uint32:
		writeChunked(e, len(v), 4, func(b []byte, i int) { binary.LittleEndian.PutUint32(b, v[i]) })
	case []int64:
		writeChunked(e, len(v), 8, func(b []byte, i int) { binary.LittleEndian.PutUint64(b, uint64(v[i])) })
	case []uint64:
		writeChunked(e, len(v), 8, func(b []byte, i int) { binary.LittleEndian.PutUint64(b, v[i]) })
	default:
		e.err = fmt.Errorf("cannot write %T", v)
	}
}

// writeChunked writes n values of size bytes, put encoding value i.
func writeChunked(e *encoder, n, size int, put func([]byte, int)) {
	buf := make([]byte, 0, 64<<10)
	for i := range n {
		if len(buf)+size > cap(buf) {
			e.raw(buf)
			buf = buf[:0]
		}
		buf = buf[:len(buf)+size]
		put(buf[len(buf)-size:], i)
	}
	e.raw(buf)
}

// Read reads a table Write wrote, size bytes long. Bring it up to date with
// db.UpdateFileTable before use: that also refuses a table of another database.
func Read(r io.Reader, size int64) (*Table, error) {
	h := sha256.New()
	br := bufio.NewReaderSize(r, 1<<20)
	// No length may claim more than what is left of the file: the checksum is only known
	// at the end, and a damaged length must not ask for gigabytes first.
	d := &decoder{r: io.TeeReader(br, h), left: size - sha256.Size}
	magic := make([]byte, len(tableMagic))
	d.full(magic)
	if d.err == nil && string(magic) != tableMagic {
		return nil, fmt.Errorf("%w: written by another version", ErrBadFile)
	}
	t := &Table{}
	t.ReadPoint.Seen = d.str()
	t.ReadPoint.Origin = d.str()
	var nanos int64
	d.get(&nanos)
	t.ReadPoint.ReadAt = time.Unix(0, nanos)
	nDirs := d.count(maxCachedFiles)
	t.Dirs = make([]string, 0, nDirs)
	for range nDirs {
		t.Dirs = append(t.Dirs, d.str())
	}
	t.dirOf = readSlice[int32](d)
	t.names = readSlice[byte](d)
	t.nameEnd = readSlice[uint32](d)
	nSizes := readPages(d, t, 8, func(p *filePage, j int, b []byte) { p.size[j] = int64(binary.LittleEndian.Uint64(b)) })
	nSums := readPages(d, t, 32, func(p *filePage, j int, b []byte) { copy(p.sum[j][:], b) })
	ids := readSlice[int64](d)
	t.Deleted = Bitset(readSlice[uint64](d))
	t.Gone = Bitset(readSlice[uint64](d))
	nRegions := d.count(1 << 16)
	t.Verified = make(map[int64]Bitset, nRegions)
	for range nRegions {
		var region int64
		d.get(&region)
		t.Verified[region] = Bitset(readSlice[uint64](d))
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadFile, d.err)
	}
	var sum [sha256.Size]byte
	if _, err := io.ReadFull(br, sum[:]); err != nil || !bytes.Equal(sum[:], h.Sum(nil)) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrBadFile)
	}
	if err := t.check(ids, nSizes, nSums); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadFile, err)
	}
	t.dirIdx = make(map[string]int32, len(t.Dirs))
	for i, dir := range t.Dirs {
		t.dirIdx[dir] = int32(i)
	}
	var err error
	if t.ids, err = idIndexOf(ids); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadFile, err)
	}
	return t, nil
}

// check verifies that the parts agree, so that no accessor can go out of range.
func (t *Table) check(ids []int64, nSizes, nSums int) error {
	n := t.Len()
	words := (n + 63) / 64
	switch {
	case t.ReadPoint.Seen == "" || t.ReadPoint.Origin == "":
		return errors.New("no read point")
	case len(t.dirOf) != n || len(t.nameEnd) != n || nSizes != n || nSums != n || len(ids) != n:
		return errors.New("file columns of different lengths")
	case len(t.Deleted) > words || len(t.Gone) > words:
		return errors.New("file sets longer than the files")
	}
	end := uint32(0)
	for i := range n {
		if t.dirOf[i] < 0 || int(t.dirOf[i]) >= len(t.Dirs) || t.nameEnd[i] < end {
			return fmt.Errorf("file %d out of range", i)
		}
		end = t.nameEnd[i]
	}
	if int(end) != len(t.names) {
		return errors.New("names do not end where the arena does")
	}
	for _, set := range t.Verified {
		if len(set) > words {
			return errors.New("region set longer than the files")
		}
	}
	return nil
}

type decoder struct {
	r    io.Reader
	left int64 // bytes before the checksum not read yet
	err  error
}

func (d *decoder) full(b []byte) {
	if d.err == nil {
		_, d.err = io.ReadFull(d.r, b)
		d.left -= int64(len(b))
	}
}

func (d *decoder) get(v any) {
	if d.err == nil {
		d.err = binary.Read(d.r, binary.LittleEndian, v)
		d.left -= int64(binary.Size(v))
	}
}

// count reads a length and checks it against limit.
func (d *decoder) count(limit uint64) int {
	var n uint64
	d.get(&n)
	if d.err == nil && (n > limit || n > uint64(max(d.left, 0))) {
		d.err = fmt.Errorf("length %d over what the file holds", n)
	}
	if d.err != nil {
		return 0
	}
	return int(n)
}

func (d *decoder) str() string {
	b := make([]byte, d.count(1<<20))
	d.full(b)
	return string(b)
}

// readSlice reads a slice written by encoder.slice, through a small buffer: binary.Read
// would first read all of it into a copy as large as the slice, and a start from the file
// would need twice the table's memory.
func readSlice[T int32 | uint32 | int64 | uint64 | byte](d *decoder) []T {
	var zero T
	size := binary.Size(zero)
	n := d.count(math.MaxInt64)
	if d.err != nil {
		return nil
	}
	if n%size != 0 {
		d.err = fmt.Errorf("slice of %d bytes for %d-byte values", n, size)
		return nil
	}
	// Room for updates to append in place, as a Builder leaves.
	out := make([]T, n/size, n/size+headroom(n/size))
	if b, ok := any(out).([]byte); ok {
		d.full(b)
		return out
	}
	buf := make([]byte, 64<<10-(64<<10)%size)
	for i := 0; i < len(out) && d.err == nil; {
		chunk := buf[:min(len(buf), (len(out)-i)*size)]
		d.full(chunk)
		for off := 0; off < len(chunk) && d.err == nil; off += size {
			var x uint64
			if size == 4 {
				x = uint64(binary.LittleEndian.Uint32(chunk[off:]))
			} else {
				x = binary.LittleEndian.Uint64(chunk[off:])
			}
			out[i] = T(x)
			i++
		}
	}
	return out
}

// readPages reads a column of the pages written as a slice of size-byte values, through
// a small buffer, allocating the pages the first column needs; set stores value j of page
// p. It returns the number of values. The pages of a column longer than the files
// are only allocated as far as the files go: check refuses the table.
func readPages(d *decoder, t *Table, size int, set func(p *filePage, j int, b []byte)) int {
	n := d.count(math.MaxInt64)
	if d.err != nil {
		return 0
	}
	if n%size != 0 {
		d.err = fmt.Errorf("slice of %d bytes for %d-byte values", n, size)
		return 0
	}
	n /= size
	if t.pages == nil {
		t.pages = make([]*filePage, 0, pagesFor(n+headroom(n)))
	}
	buf := make([]byte, 64<<10-(64<<10)%size)
	for i := 0; i < n && d.err == nil; {
		chunk := buf[:min(len(buf), (n-i)*size)]
		d.full(chunk)
		for off := 0; off < len(chunk) && d.err == nil; off += size {
			p := i >> pageBits
			if p == len(t.pages) {
				if p >= pagesFor(t.Len()) {
					d.err = errors.New("more values than files")
					break
				}
				t.pages = append(t.pages, new(filePage))
			}
			set(t.pages[p], i&(1<<pageBits-1), chunk[off:off+size])
			i++
		}
	}
	return n
}

// WriteFile writes t to the file at path through a temporary file renamed into place, so
// that a crash leaves the old file or the new one.
func WriteFile(path string, t *Table) error {
	// One fixed name: a write cut short by a crash leaves one stale file to overwrite, not
	// one more per crash (a server owns its files_cache path).
	tmp, err := os.OpenFile(path+".tmp", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, there is nothing to remove
	if err := Write(tmp, t); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ReadFile reads the table WriteFile wrote at path; it also returns when the file was
// written.
func ReadFile(path string) (*Table, time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, time.Time{}, err
	}
	t, err := Read(f, info.Size())
	if err != nil {
		return nil, time.Time{}, err
	}
	return t, info.ModTime(), nil
}
