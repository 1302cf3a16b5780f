package db

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"math/bits"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/regionmirror/regionmirror/internal/model"
)

// LoadSnapshot reads everything but the per-file data (see LoadFileTable).
func (d *DB) LoadSnapshot(ctx context.Context) (*model.SnapshotData, error) {
	var out model.SnapshotData
	err := pgx.BeginTxFunc(ctx, d.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue("SELECT now()").QueryRow(func(row pgx.Row) error { return row.Scan(&out.ReadAt) })
		b.Queue("SELECT " + regionColumns + " FROM regions ORDER BY name").Query(func(rows pgx.Rows) error {
			for rows.Next() {
				r, err := scanRegion(rows)
				if err != nil {
					return err
				}
				out.Regions = append(out.Regions, *r)
			}
			return rows.Err()
		})
		b.Queue("SELECT id, name, arch, directory, created_at FROM repositories ORDER BY name, arch").Query(func(rows pgx.Rows) error {
			var err error
			out.Repositories, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (model.Repository, error) {
				var r model.Repository
				err := row.Scan(&r.ID, &r.Name, &r.Arch, &r.Directory, &r.CreatedAt)
				return r, err
			})
			return err
		})
		b.Queue(`SELECT ` + repomdColumns + `
			FROM repomd_versions ORDER BY repository_id, first_seen DESC, id DESC`).Query(func(rows pgx.Rows) error {
			var err error
			out.RepomdVersions, err = pgx.CollectRows(rows, scanRepomdVersion)
			return err
		})
		b.Queue(`SELECT region_id, repository_id, repomd_sha256, state, coalesce(http_status, 0), error, verified_at
			FROM region_repos ORDER BY region_id, repository_id`).Query(func(rows pgx.Rows) error {
			var err error
			out.RegionRepos, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (model.RegionRepo, error) {
				var rr model.RegionRepo
				err := r.Scan(&rr.RegionID, &rr.RepositoryID, &rr.RepomdSHA256, &rr.State, &rr.HTTPStatus, &rr.Error, &rr.VerifiedAt)
				return rr, err
			})
			return err
		})
		b.Queue(`SELECT region_id, state, consecutive_failures, consecutive_successes, last_probe_at, last_ok_at, last_error, changed_at
			FROM region_health ORDER BY region_id`).Query(func(rows pgx.Rows) error {
			var err error
			out.Health, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (model.Health, error) {
				var h model.Health
				err := r.Scan(&h.RegionID, &h.State, &h.ConsecutiveFailures, &h.ConsecutiveSuccesses, &h.LastProbeAt, &h.LastOKAt, &h.LastError, &h.ChangedAt)
				return h, err
			})
			return err
		})
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return nil, fmt.Errorf("load snapshot: %w", err)
	}
	return &out, nil
}

// Bitset is a set of small non-negative integers (file indexes), 1 bit each: a region's
// verified files cost 125 KB per million files, where a map of paths would cost ~100 MB.
type Bitset []uint64

// NewBitset returns an empty set for members 0..n-1.
func NewBitset(n int) Bitset { return make(Bitset, (n+63)/64) }

// Set adds i.
func (b Bitset) Set(i int) { b[i>>6] |= 1 << (uint(i) & 63) }

// Clear removes i, which must be in range.
func (b Bitset) Clear(i int) { b[i>>6] &^= 1 << (uint(i) & 63) }

// Has reports whether i is a member; out-of-range members are not.
func (b Bitset) Has(i int) bool {
	w := i >> 6
	return i >= 0 && w < len(b) && b[w]&(1<<(uint(i)&63)) != 0
}

// Count returns the number of members.
func (b Bitset) Count() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

// FileTable is the origin inventory and, per region, which files are verified there, in a
// compact form: paths are split into a shared directory table and one arena of base
// names, hashes sit in one byte slice, and each region's verified files are a Bitset over
// file indexes. About 60 bytes plus the base name per file, however many regions.
type FileTable struct {
	Dirs    []string // distinct directories ("" for the root)
	dirIdx  map[string]int32
	dirOf   []int32  // per file: index into Dirs
	names   []byte   // base names, concatenated
	nameEnd []uint32 // per file: end offset of its base name in names
	sizes   []int64
	sha256  []byte // 32 bytes per file
	ids     *idIndex
	// Deleted holds files the origin no longer has (still served during their grace period).
	Deleted Bitset
	// Gone holds files whose row was removed after the table was read (purged): they are
	// no longer files at all. A full read leaves them out.
	Gone Bitset
	// Verified holds, by region ID, the files whose copy there is present with the size
	// and sha256 the origin has now.
	Verified map[int64]Bitset
	// seen is the database snapshot (pg_current_snapshot) the table reflects; readAt the
	// database's clock then. UpdateFileTable reads what changed since.
	seen   string
	readAt time.Time
	origin string // the database history it was read from (see readPoint)
}

// Len returns the number of files.
func (t *FileTable) Len() int { return len(t.sizes) }

// DirIndex returns the index in Dirs of a directory.
func (t *FileTable) DirIndex(dir string) (int, bool) {
	d, ok := t.dirIdx[dir]
	return int(d), ok
}

// Dir returns the index of file i's directory in Dirs.
func (t *FileTable) Dir(i int) int { return int(t.dirOf[i]) }

// Name returns file i's base name; the bytes belong to the table.
func (t *FileTable) Name(i int) []byte {
	start := uint32(0)
	if i > 0 {
		start = t.nameEnd[i-1]
	}
	return t.names[start:t.nameEnd[i]]
}

// Path returns file i's path.
func (t *FileTable) Path(i int) string {
	if d := t.Dirs[t.dirOf[i]]; d != "" {
		return d + "/" + string(t.Name(i))
	}
	return string(t.Name(i))
}

// hasPath reports whether file i's path is path.
func (t *FileTable) hasPath(i int, path []byte) bool {
	var dir []byte
	name := path
	if j := lastSlash(path); j >= 0 {
		dir, name = path[:j], path[j+1:]
	}
	return bytes.Equal(t.Name(i), name) && t.Dirs[t.dirOf[i]] == string(dir)
}

// Size returns file i's size.
func (t *FileTable) Size(i int) int64 { return t.sizes[i] }

// SHA256 returns file i's sha256; the bytes belong to the table.
func (t *FileTable) SHA256(i int) []byte { return t.sha256[i*32 : i*32+32 : i*32+32] }

// fileTableBuilder appends files to a table under construction.
type fileTableBuilder struct {
	t       *FileTable
	ids     []int64 // by file index
	deleted []int32
}

func newFileTableBuilder(capacity, nameBytes int) *fileTableBuilder {
	return &fileTableBuilder{
		t: &FileTable{
			dirIdx:   map[string]int32{},
			dirOf:    make([]int32, 0, capacity),
			nameEnd:  make([]uint32, 0, capacity),
			sizes:    make([]int64, 0, capacity),
			sha256:   make([]byte, 0, capacity*32),
			names:    make([]byte, 0, nameBytes),
			Verified: map[int64]Bitset{},
		},
		ids: make([]int64, 0, capacity),
	}
}

func (b *fileTableBuilder) add(id int64, path []byte, size int64, sum []byte, deleted bool) error {
	i, err := b.t.appendFile(id, path, size, sum)
	if err != nil {
		return err
	}
	if deleted {
		b.deleted = append(b.deleted, int32(i))
	}
	b.ids = append(b.ids, id)
	return nil
}

// finish sets what depends on every file being added.
func (b *fileTableBuilder) finish() *FileTable {
	t := b.t
	t.Deleted = NewBitset(t.Len())
	for _, i := range b.deleted {
		t.Deleted.Set(int(i))
	}
	t.Gone = NewBitset(0)
	t.ids = newIDIndex(b.ids)
	b.ids = nil
	return t
}

// appendFile adds a file at the end and returns its index. The arenas only grow, so a
// table derived by applying changes shares them with its base: writes land beyond the
// base's lengths, where its readers never look.
func (t *FileTable) appendFile(id int64, path []byte, size int64, sum []byte) (int, error) {
	if len(sum) != 32 {
		return 0, fmt.Errorf("file %d: sha256 of %d bytes", id, len(sum))
	}
	var dirPart, name []byte
	if i := lastSlash(path); i >= 0 {
		dirPart, name = path[:i], path[i+1:]
	} else {
		name = path
	}
	// A map lookup keyed by string(bytes) does not allocate; only new directories do.
	d, ok := t.dirIdx[string(dirPart)]
	if !ok {
		dir := string(dirPart)
		d = int32(len(t.Dirs))
		t.Dirs = append(t.Dirs, dir)
		t.dirIdx[dir] = d
	}
	t.dirOf = append(t.dirOf, d)
	t.names = append(t.names, name...)
	t.nameEnd = append(t.nameEnd, uint32(len(t.names)))
	t.sizes = append(t.sizes, size)
	t.sha256 = append(t.sha256, sum...)
	return len(t.sizes) - 1, nil
}

func lastSlash(p []byte) int {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return i
		}
	}
	return -1
}

// idIndex maps file IDs to indexes. IDs come from an identity column, so they are dense
// enough for a slice; a sparse history falls back to a map.
type idIndex struct {
	dense []int32 // ID -> index+1 (0: unknown)
	min   int64
	m     map[int64]int32
	n     int
}

func newIDIndex(ids []int64) *idIndex {
	if len(ids) == 0 {
		return &idIndex{}
	}
	lo, hi := ids[0], ids[len(ids)-1] // ordered by ID
	if span := hi - lo + 1; span <= int64(4*len(ids)+1024) {
		x := &idIndex{dense: make([]int32, span), min: lo, n: len(ids)}
		for i, id := range ids {
			x.dense[id-lo] = int32(i + 1)
		}
		return x
	}
	x := &idIndex{m: make(map[int64]int32, len(ids)), n: len(ids)}
	for i, id := range ids {
		x.m[id] = int32(i)
	}
	return x
}

func (x *idIndex) clone() *idIndex {
	return &idIndex{dense: slices.Clone(x.dense), min: x.min, m: maps.Clone(x.m), n: x.n}
}

// add maps id to index i; id must be new.
func (x *idIndex) add(id int64, i int) {
	x.n++
	if x.m == nil && len(x.dense) == 0 {
		x.min = id
	}
	if x.m == nil && id >= x.min && id-x.min < int64(4*x.n+1024) {
		if off := int(id - x.min); off >= len(x.dense) {
			x.dense = append(x.dense, make([]int32, off+1-len(x.dense))...)
		}
		x.dense[id-x.min] = int32(i + 1)
		return
	}
	if x.m == nil { // too sparse now: a map from here on
		x.m = make(map[int64]int32, x.n)
		for off, v := range x.dense {
			if v != 0 {
				x.m[x.min+int64(off)] = v - 1
			}
		}
		x.dense = nil
	}
	x.m[id] = int32(i)
}

func (x *idIndex) lookup(id int64) (int, bool) {
	if x.m != nil {
		i, ok := x.m[id]
		return int(i), ok
	}
	if id < x.min || id-x.min >= int64(len(x.dense)) {
		return 0, false
	}
	i := x.dense[id-x.min]
	return int(i) - 1, i != 0
}

// LoadFileTable reads the whole inventory (deleted files too: clients may still need them
// during the grace period) and every region's verified copies.
func (d *DB) LoadFileTable(ctx context.Context) (*FileTable, error) {
	var t *FileTable
	err := pgx.BeginTxFunc(ctx, d.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		// The snapshot first: it is the transaction's, so it names exactly what this read sees.
		p, err := readPointOf(ctx, tx)
		if err != nil {
			return err
		}
		// Exact sizes up front: growing arenas by doubling would briefly need twice the
		// memory, on top of the table still serving.
		var n, nameBytes int
		if err := tx.QueryRow(ctx, `SELECT count(*), coalesce(sum(octet_length(path)), 0) FROM files`).Scan(&n, &nameBytes); err != nil {
			return err
		}
		b := newFileTableBuilder(n, nameBytes)
		if err := scanFiles(ctx, tx, "", nil, b.add); err != nil {
			return err
		}
		t = b.finish()
		t.seen, t.readAt, t.origin = p.seen, p.readAt, p.origin
		t.Verified, err = scanVerified(ctx, tx, t)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("load file table: %w", err)
	}
	return t, nil
}

// scanFiles reads the files rows matching where (all for ""), ordered by ID, as raw binary
// values rather than scanned Go values, which keeps a million files well under a second.
// path and sum belong to the row and are only valid during fn.
func scanFiles(ctx context.Context, tx pgx.Tx, where string, args []any, fn func(id int64, path []byte, size int64, sum []byte, deleted bool) error) error {
	if where != "" {
		where = " WHERE " + where
	}
	rows, err := tx.Query(ctx, "SELECT id, path, size, sha256, deleted_at IS NOT NULL FROM files"+where+" ORDER BY id",
		append([]any{pgx.QueryResultFormats{pgx.BinaryFormatCode, pgx.TextFormatCode, pgx.BinaryFormatCode, pgx.BinaryFormatCode, pgx.BinaryFormatCode}}, args...)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		v := rows.RawValues()
		if len(v[0]) != 8 || len(v[2]) != 8 || len(v[4]) != 1 {
			return fmt.Errorf("files: unexpected binary row layout")
		}
		if err := fn(int64(binary.BigEndian.Uint64(v[0])), v[1], int64(binary.BigEndian.Uint64(v[2])), v[3], v[4][0] == 1); err != nil {
			return err
		}
	}
	return rows.Err()
}

// scanVerified reads every verified copy into a set per region over t's files.
func scanVerified(ctx context.Context, tx pgx.Tx, t *FileTable) (map[int64]Bitset, error) {
	// Only copies of the file's current bytes: the writers keep region_objects.current,
	// so this reads one partial index instead of joining with files.
	rows, err := tx.Query(ctx, `SELECT region_id, file_id FROM region_objects
		WHERE state = 'present' AND current ORDER BY region_id, file_id`,
		pgx.QueryResultFormats{pgx.BinaryFormatCode, pgx.BinaryFormatCode})
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var (
		sets             = map[int64]Bitset{}
		lastRegion int64 = -1
		set        Bitset
	)
	for rows.Next() {
		v := rows.RawValues()
		if len(v[0]) != 8 || len(v[1]) != 8 {
			return nil, fmt.Errorf("region objects: unexpected binary row layout")
		}
		if region := int64(binary.BigEndian.Uint64(v[0])); region != lastRegion {
			set = NewBitset(t.Len())
			sets[region], lastRegion = set, region
		}
		if i, ok := t.ids.lookup(int64(binary.BigEndian.Uint64(v[1]))); ok && !t.Gone.Has(i) {
			set.Set(i)
		}
	}
	return sets, rows.Err()
}

// SplitPath splits a path into directory and base name as FileTable stores it.
func SplitPath(p string) (dir, name string) {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i], p[i+1:]
	}
	return "", p
}
