package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// A generated origin tree: yum-like repositories (Packages/, repodata/ with
// checksum-named data files and a valid repomd.xml), boot images of a few MiB, and ISO
// images above the multipart threshold. Same seed, same bytes, names and mtimes.

// genFile is one file to write.
type genFile struct {
	path string
	size int64
	data []byte // fixed content (repodata); nil: seeded random bytes
}

// repoSpec is one yum repository of the generated tree.
type repoSpec struct {
	Name, Arch, Dir string
}

// treeSpec says what to generate.
type treeSpec struct {
	Files int   // total number of files, repodata included
	Bytes int64 // approximate total size
	Seed  uint64
}

// baseMtime is every generated file's modification time (plus its index in seconds), so
// that tools comparing mtimes see the same tree on every run.
var baseMtime = time.Date(2024, 4, 23, 12, 0, 0, 0, time.UTC)

// planTree lays out the files of a yum-like tree. Sizes: 3 ISO images of 72-104 MiB
// (above the 64 MiB multipart threshold), about 1.2% of files of 1-5 MiB (boot images,
// large packages), and the rest rpm-like files of 2-200 KiB (log-uniform), scaled so
// that the whole is close to spec.Bytes.
func planTree(spec treeSpec) ([]genFile, []repoSpec) {
	rng := rand.New(rand.NewPCG(spec.Seed, 0x5eed))
	repos := []repoSpec{
		{"fedora-40", "x86_64", "pub/fedora/linux/releases/40/Everything/x86_64/os"},
		{"fedora-40", "aarch64", "pub/fedora/linux/releases/40/Everything/aarch64/os"},
		{"updates-40", "x86_64", "pub/fedora/linux/updates/40/Everything/x86_64"},
		{"updates-40", "aarch64", "pub/fedora/linux/updates/40/Everything/aarch64"},
	}
	const repodataPerRepo = 4 // primary, filelists, other, repomd.xml
	var files []genFile
	var fixed int64

	// ISO images, above the multipart threshold.
	for i, mib := range []int64{72, 88, 104} {
		arch := []string{"x86_64", "x86_64", "aarch64"}[i]
		kind := []string{"dvd", "netinst", "dvd"}[i]
		files = append(files, genFile{path: fmt.Sprintf("pub/fedora/linux/releases/40/Everything/%s/iso/Fedora-Everything-%s-%s-40-1.14.iso", arch, kind, arch), size: mib << 20})
		fixed += mib << 20
	}
	// Files of a few MiB: boot images and large packages.
	nMedium := max(1, spec.Files*12/1000)
	for i := range nMedium {
		size := (1 << 20) + rng.Int64N(4<<20)
		var p string
		if i%3 == 0 {
			p = fmt.Sprintf("pub/fedora/linux/releases/40/Everything/x86_64/os/images/pxeboot/img%03d.img", i)
		} else {
			r := repos[i%len(repos)]
			p = fmt.Sprintf("%s/Packages/k/kernel-modules-extra-6.8.%d-300.fc40.%s.rpm", r.Dir, i, r.Arch)
		}
		files = append(files, genFile{path: p, size: size})
		fixed += size
	}
	// Small rpm-like packages, spread over the repositories.
	nSmall := spec.Files - len(files) - repodataPerRepo*len(repos)
	if nSmall < 1 {
		nSmall = 1
	}
	small := make([]float64, nSmall)
	var sum float64
	lo, hi := math.Log(2<<10), math.Log(200<<10)
	for i := range small {
		small[i] = math.Exp(lo + rng.Float64()*(hi-lo))
		sum += small[i]
	}
	// The repodata is small (under a MiB in all); scale the packages to fill the rest.
	budget := float64(spec.Bytes - fixed - int64(len(repos))<<19)
	scale := 1.0
	if budget > 0 {
		scale = budget / sum
	}
	letters := "abcdefghijklmnopqrstuvwxyz"
	for i := range small {
		r := repos[i%len(repos)]
		l := letters[rng.IntN(len(letters))]
		name := fmt.Sprintf("%c%s-%d.%d.%d-%d.fc40", l, randWord(rng), rng.IntN(20), rng.IntN(50), i, 1+rng.IntN(5))
		if rng.IntN(100) == 0 {
			// About 1% carry "+", as libstdc++ or gcc-c++ do: stored twice by regionmirror.
			name = fmt.Sprintf("%c%s++-%d.%d-%d.fc40", l, randWord(rng), rng.IntN(20), i, 1+rng.IntN(5))
		}
		files = append(files, genFile{path: fmt.Sprintf("%s/Packages/%c/%s.%s.rpm", r.Dir, l, name, r.Arch), size: max(512, int64(small[i]*scale))})
	}
	// Repodata: checksum-named data files and a repomd.xml that lists them.
	for ri, r := range repos {
		var entries []repomdEntry
		for _, typ := range []string{"primary", "filelists", "other"} {
			size := 16<<10 + rng.Int64N(96<<10)
			data := repodataFile(spec.Seed, uint64(ri), typ, size)
			sum := sha256.Sum256(data)
			h := hex.EncodeToString(sum[:])
			files = append(files, genFile{path: fmt.Sprintf("%s/repodata/%s-%s.xml.gz", r.Dir, h, typ), size: int64(len(data)), data: data})
			entries = append(entries, repomdEntry{typ, h, int64(len(data)), baseMtime.Unix()})
		}
		md := repomdXML(entries)
		files = append(files, genFile{path: r.Dir + "/repodata/repomd.xml", size: int64(len(md)), data: md})
	}
	return files, repos
}

func randWord(rng *rand.Rand) string {
	const chars = "abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 3+rng.IntN(9))
	for i := range b {
		b[i] = chars[rng.IntN(len(chars))]
	}
	return string(b)
}

// repodataFile is a gzip stream of about size bytes of seeded noise, deterministic.
func repodataFile(seed, repo uint64, typ string, size int64) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.NoCompression)
	zw.ModTime = baseMtime
	raw := make([]byte, size)
	rand.NewChaCha8(chachaSeed(seed, repo<<32|uint64(len(typ)))).Read(raw)
	zw.Write(raw)
	zw.Close()
	return buf.Bytes()
}

type repomdEntry struct {
	typ, sha256 string
	size, ts    int64
}

func repomdXML(entries []repomdEntry) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">` + "\n")
	fmt.Fprintf(&b, "  <revision>%d</revision>\n", baseMtime.Unix())
	for _, e := range entries {
		fmt.Fprintf(&b, `  <data type="%s">
    <checksum type="sha256">%s</checksum>
    <location href="repodata/%s-%s.xml.gz"/>
    <timestamp>%d</timestamp>
    <size>%d</size>
  </data>
`, e.typ, e.sha256, e.sha256, e.typ, e.ts, e.size)
	}
	b.WriteString("</repomd>\n")
	return b.Bytes()
}

func chachaSeed(seed, n uint64) [32]byte {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
		s[8+i] = byte(n >> (8 * i))
	}
	return s
}

// smallTree is the no-op scenario's tree: n files of size bytes, 100 to a directory.
func smallTree(n int, size int64) []genFile {
	files := make([]genFile, n)
	for i := range files {
		files[i] = genFile{path: fmt.Sprintf("pub/noop/d%04d/f%06d.rpm", i/100, i), size: size}
	}
	return files
}

// writeTree writes the files under root with 2 workers; file i gets the bytes of
// ChaCha8(seed, i) and mtime baseMtime + i seconds.
func writeTree(root string, files []genFile, seed uint64) (int64, error) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		total int64
	)
	idx := make(chan int)
	for range 2 {
		wg.Go(func() {
			buf := make([]byte, 1<<20)
			for i := range idx {
				err := writeOne(root, files[i], seed, uint64(i), buf)
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				total += files[i].size
				mu.Unlock()
			}
		})
	}
	for i := range files {
		idx <- i
	}
	close(idx)
	wg.Wait()
	return total, first
}

func writeOne(root string, f genFile, seed, i uint64, buf []byte) error {
	full := filepath.Join(root, filepath.FromSlash(f.path))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return err
	}
	out, err := os.Create(full)
	if err != nil {
		return err
	}
	if f.data != nil {
		_, err = out.Write(f.data)
	} else {
		src := rand.NewChaCha8(chachaSeed(seed, i+1))
		for left := f.size; left > 0 && err == nil; {
			n := min(left, int64(len(buf)))
			src.Read(buf[:n])
			_, err = out.Write(buf[:n])
			left -= n
		}
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", full, err)
	}
	mt := baseMtime.Add(time.Duration(i) * time.Second)
	return os.Chtimes(full, mt, mt)
}
