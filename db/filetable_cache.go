package db

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

// ErrBadTableFile means a table file is damaged, of another version or inconsistent.
var ErrBadTableFile = errors.New("not a usable file table")

// WriteFileTable writes t in the form ReadFileTable reads.
func WriteFileTable(w io.Writer, t *FileTable) error {
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 1<<20)
	e := &encoder{w: bw}
	e.raw([]byte(tableMagic))
	e.str(t.seen)
	e.str(t.origin)
	e.put(t.readAt.UnixNano())
	e.put(uint64(len(t.Dirs)))
	for _, d := range t.Dirs {
		e.str(d)
	}
	e.slice(t.dirOf)
	e.slice(t.names)
	e.slice(t.nameEnd)
	e.slice(t.sizes)
	e.slice(t.sha256)
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
		writeChunked(e, v, 4, func(b []byte, x int32) { binary.LittleEndian.PutUint32(b, uint32(x)) })
	case []uint32:
		writeChunked(e, v, 4, func(b []byte, x uint32) { binary.LittleEndian.PutUint32(b, x) })
	case []int64:
		writeChunked(e, v, 8, func(b []byte, x int64) { binary.LittleEndian.PutUint64(b, uint64(x)) })
	case []uint64:
		writeChunked(e, v, 8, func(b []byte, x uint64) { binary.LittleEndian.PutUint64(b, x) })
	default:
		e.err = fmt.Errorf("cannot write %T", v)
	}
}

func writeChunked[T any](e *encoder, v []T, size int, put func([]byte, T)) {
	buf := make([]byte, 0, 64<<10)
	for _, x := range v {
		if len(buf)+size > cap(buf) {
			e.raw(buf)
			buf = buf[:0]
		}
		buf = buf[:len(buf)+size]
		put(buf[len(buf)-size:], x)
	}
	e.raw(buf)
}

// ReadFileTable reads a table WriteFileTable wrote, size bytes long. Bring it up to date
// with UpdateFileTable before use: that also refuses a table of another database.
func ReadFileTable(r io.Reader, size int64) (*FileTable, error) {
	h := sha256.New()
	br := bufio.NewReaderSize(r, 1<<20)
	// No length may claim more than what is left of the file: the checksum is only known
	// at the end, and a damaged length must not ask for gigabytes first.
	d := &decoder{r: io.TeeReader(br, h), left: size - sha256.Size}
	magic := make([]byte, len(tableMagic))
	d.full(magic)
	if d.err == nil && string(magic) != tableMagic {
		return nil, fmt.Errorf("%w: written by another version", ErrBadTableFile)
	}
	t := &FileTable{}
	t.seen = d.str()
	t.origin = d.str()
	var nanos int64
	d.get(&nanos)
	t.readAt = time.Unix(0, nanos)
	nDirs := d.count(maxCachedFiles)
	t.Dirs = make([]string, 0, nDirs)
	for range nDirs {
		t.Dirs = append(t.Dirs, d.str())
	}
	t.dirOf = readSlice[int32](d)
	t.names = readSlice[byte](d)
	t.nameEnd = readSlice[uint32](d)
	t.sizes = readSlice[int64](d)
	t.sha256 = readSlice[byte](d)
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
		return nil, fmt.Errorf("%w: %v", ErrBadTableFile, d.err)
	}
	var sum [sha256.Size]byte
	if _, err := io.ReadFull(br, sum[:]); err != nil || !bytes.Equal(sum[:], h.Sum(nil)) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrBadTableFile)
	}
	if err := t.check(ids); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadTableFile, err)
	}
	t.dirIdx = make(map[string]int32, len(t.Dirs))
	for i, dir := range t.Dirs {
		t.dirIdx[dir] = int32(i)
	}
	var err error
	if t.ids, err = idIndexOf(ids); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadTableFile, err)
	}
	return t, nil
}

// check verifies that the parts agree, so that no accessor can go out of range.
func (t *FileTable) check(ids []int64) error {
	n := len(t.sizes)
	words := (n + 63) / 64
	switch {
	case t.seen == "" || t.origin == "":
		return errors.New("no read point")
	case len(t.dirOf) != n || len(t.nameEnd) != n || len(t.sha256) != 32*n || len(ids) != n:
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
	out := make([]T, n/size)
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

// byIndex returns the file ID of every index below n.
func (x *idIndex) byIndex(n int) []int64 {
	out := make([]int64, n)
	if x.m != nil {
		for id, i := range x.m {
			out[i] = id
		}
		return out
	}
	for off, v := range x.dense {
		if v != 0 {
			out[v-1] = x.min + int64(off)
		}
	}
	return out
}

// idIndexOf indexes IDs given by file index, in any order; an ID given twice is an error.
func idIndexOf(ids []int64) (*idIndex, error) {
	if len(ids) == 0 {
		return &idIndex{}, nil
	}
	lo, hi := slices.Min(ids), slices.Max(ids)
	if span := hi - lo + 1; span <= int64(4*len(ids)+1024) {
		x := &idIndex{dense: make([]int32, span), min: lo, n: len(ids)}
		for i, id := range ids {
			if x.dense[id-lo] != 0 {
				return nil, fmt.Errorf("file ID %d twice", id)
			}
			x.dense[id-lo] = int32(i + 1)
		}
		return x, nil
	}
	x := &idIndex{m: make(map[int64]int32, len(ids)), n: len(ids)}
	for i, id := range ids {
		if _, dup := x.m[id]; dup {
			return nil, fmt.Errorf("file ID %d twice", id)
		}
		x.m[id] = int32(i)
	}
	return x, nil
}
