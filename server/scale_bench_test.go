package server

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/filetable"
	"github.com/regionmirror/regionmirror/internal/geo"
	"github.com/regionmirror/regionmirror/server/selection"
)

// The scale benchmarks of issue 16: 1,000 to 10,000,000 files x 20 regions, every file
// verified in every region (the worst case for the region sets), with dnf-like paths in a
// few thousand directories. Run one size per process when reading the memory figures
// (VmHWM is the process's peak):
//
//	go test ./server -run '^$' -bench 'ScaleMemory/files=10M' -benchtime 1x

const scaleRegions = 20

var (
	scaleReleases = []string{"30", "31", "32", "33", "34", "35", "36", "37", "38", "39", "40", "41"}
	scaleArches   = []string{"x86_64", "aarch64", "ppc64le", "s390x", "i686", "armhfp", "noarch", "source"}
	scaleLetters  = "abcdefghijklmnopqrstuvwxyz0123456789"
)

// scaleDirs is the number of directories the synthetic paths use (3,456).
var scaleDirs = len(scaleReleases) * len(scaleArches) * len(scaleLetters)

// scalePath is the path of synthetic file i: ~80-95 bytes, as a Fedora release tree has.
func scalePath(i int) string {
	d := i % scaleDirs
	rel := scaleReleases[d%len(scaleReleases)]
	arch := scaleArches[d/len(scaleReleases)%len(scaleArches)]
	l := scaleLetters[d/(len(scaleReleases)*len(scaleArches)) : d/(len(scaleReleases)*len(scaleArches))+1]
	return "fedora/linux/releases/" + rel + "/Everything/" + arch + "/os/Packages/" + l + "/" + scaleName(i)
}

// scaleName is the base name of synthetic file i.
func scaleName(i int) string {
	d := i % scaleDirs
	rel := scaleReleases[d%len(scaleReleases)]
	arch := scaleArches[d/len(scaleReleases)%len(scaleArches)]
	l := scaleLetters[d/(len(scaleReleases)*len(scaleArches)) : d/(len(scaleReleases)*len(scaleArches))+1]
	return l + "pkg-" + strconv.Itoa(i) + "-1.2.3-1.fc" + rel + "." + arch + ".rpm"
}

func scaleSum(i int) [32]byte {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(i))
	return sha256.Sum256(b[:])
}

// scaleIndexes keeps the indexes built by the redirect and update benchmarks, so that
// -count 5 builds each size once (the memory benchmark builds its own).
var scaleIndexes = map[int]*selection.FileIndex{}

func scaleIndex(b testing.TB, n int) *selection.FileIndex {
	if x := scaleIndexes[n]; x != nil {
		return x
	}
	x := selection.NewFileIndex(scaleTable(b, n))
	scaleIndexes[n] = x
	return x
}

// scaleTable builds n files verified in every one of scaleRegions regions (IDs 1..20).
func scaleTable(b testing.TB, n int) *filetable.Table {
	// The hint db.LoadFileTable gives: the bytes of the base names.
	nameBytes := 0
	for i := range n {
		nameBytes += len(scaleName(i))
	}
	fb := filetable.NewBuilder(n, nameBytes)
	for i := range n {
		s := scaleSum(i)
		if _, err := fb.Add(scalePath(i), int64(1000+i), s[:], false); err != nil {
			b.Fatal(err)
		}
		for r := range scaleRegions {
			fb.Verify(int64(r+1), i)
		}
	}
	return fb.Table()
}

func scaleSpecs() []regionSpec {
	specs := make([]regionSpec, scaleRegions)
	for r := range specs {
		specs[r] = regionSpec{Name: "region-" + strconv.Itoa(r+1), Country: "US", Lat: float64(r * 4), Lon: float64(r * 9), RepoState: "fresh", RepoVersion: "v3"}
	}
	return specs
}

// benchServerOf serves the files of x with the regions of specs, wired as
// benchDownloadServer wires its server.
func benchServerOf(b testing.TB, specs []regionSpec, x *selection.FileIndex) (*Server, *Store) {
	store := NewStore(nil, StoreOptions{})
	store.Swap(selection.BuildSnapshot(fixtureData(b, specs), x, scalePolicy, nil))
	g, err := geo.OpenGeoIP("../testdata/geoip/regionmirror-test-city.mmdb", nil)
	if err != nil {
		b.Fatal(err)
	}
	m := NewMetrics(store)
	return New(Options{Store: store, GeoIP: g, Metrics: m,
		Activity: NewActivity(nil, ActivityOptions{}), DownloadPrefix: "/pub",
		Fills: NewFills(nil, FillOptions{Metrics: m})}), store
}

var scalePolicy = selection.Policy{OriginURL: "https://dl.example.org/pub", AlternatesMaxAge: 72 * time.Hour}

var scaleSizes = []struct {
	name  string
	files int
}{{"1k", 1000}, {"1M", 1_000_000}, {"10M", 10_000_000}}

// procStatus returns a field of /proc/self/status in MiB (VmRSS, VmHWM).
func procStatus(b testing.TB, field string) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		if k == field {
			var kb float64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%f kB", &kb); err != nil {
				b.Fatal(err)
			}
			return kb / 1024
		}
	}
	b.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// BenchmarkScaleMemory builds the table, its index and a snapshot serving them, and
// reports the process's memory: resident (VmRSS) after building and after a GC that
// returns what it can to the system, the peak (VmHWM), the heap in use, and bytes per file
// of the heap. One iteration is one build; -benchtime 1x.
func BenchmarkScaleMemory(b *testing.B) {
	for _, c := range scaleSizes {
		b.Run("files="+c.name, func(b *testing.B) {
			for b.Loop() {
				var before runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				x := selection.NewFileIndex(scaleTable(b, c.files))
				s, _ := benchServerOf(b, scaleSpecs(), x)
				b.ReportMetric(procStatus(b, "VmRSS"), "rss-MiB")
				debug.FreeOSMemory()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				b.ReportMetric(procStatus(b, "VmRSS"), "rss-gc-MiB")
				b.ReportMetric(procStatus(b, "VmHWM"), "peak-MiB")
				heap := float64(ms.HeapInuse) - float64(before.HeapInuse)
				b.ReportMetric(heap/(1<<20), "heap-MiB")
				b.ReportMetric(heap/float64(c.files), "B/file")
				runtime.KeepAlive(s)
			}
		})
	}
}

// BenchmarkScaleRedirect measures a redirect for a random file through the real handler
// at 1k, 1M and 10M files x 20 regions: flat means the same ns/op and allocs at each.
func BenchmarkScaleRedirect(b *testing.B) {
	for _, c := range scaleSizes {
		b.Run("files="+c.name, func(b *testing.B) {
			s, _ := benchServerOf(b, scaleSpecs(), scaleIndex(b, c.files))
			reqs := make([]*http.Request, 4096)
			for i := range reqs {
				reqs[i] = httptest.NewRequest(http.MethodGet, "/pub/"+scalePath(rand.IntN(c.files)), nil)
				reqs[i].RemoteAddr = "127.0.0.1:4000"
			}
			h := s.Handler()
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, reqs[i&4095])
				if rec.Code != http.StatusFound {
					b.Fatal(rec.Code, rec.Body.String())
				}
				i++
			}
		})
	}
}

// BenchmarkScaleUpdate applies an update to a 10M-file table as serve's store applies
// db.UpdateFileTable's result: the rows through filetable.Update (the calls applyChanges
// makes), the index through FileIndex.Update, a new snapshot built and swapped in. Each
// iteration starts from the same base, which stays immutable. "changed" is 10,000 files
// whose bytes changed at the origin (no copy current any more: 20 x 10,000 copies lost);
// "new" is 10,000 new files verified in all 20 regions.
func BenchmarkScaleUpdate(b *testing.B) {
	n := 10_000_000
	if testing.Short() {
		n = 1_000_000
	}
	base := scaleIndex(b, n)
	data := fixtureData(b, scaleSpecs())
	_, store := benchServerOf(b, scaleSpecs(), base)
	const k = 10_000
	for _, kind := range []string{"changed", "new"} {
		b.Run(kind+"-10k", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				u := filetable.NewUpdate(base.Table())
				for j := range k {
					var id int64
					var path string
					if kind == "changed" {
						i := j * (n / k) // spread over the whole table
						id, path = int64(i+1), scalePath(i)
					} else {
						id, path = int64(n+j+1), scalePath(n+j)
					}
					s := scaleSum(int(id) + 7)
					if err := u.File(id, []byte(path), id+1, s[:], false); err != nil {
						b.Fatal(err)
					}
					for r := range scaleRegions {
						u.SetCopy(int64(r+1), id, kind == "new")
					}
				}
				x := base.Update(u.Table())
				store.Swap(selection.BuildSnapshot(data, x, scalePolicy, nil))
			}
			b.StopTimer()
			store.Swap(selection.BuildSnapshot(data, base, scalePolicy, nil))
		})
	}
}

// BenchmarkScaleLookup is the per-file part of a redirect alone, less noisy than the
// handler on a shared machine: the path lookup, the size and hash for the headers, and the
// region sets, for a random file at 1k, 1M and 10M files.
func BenchmarkScaleLookup(b *testing.B) {
	for _, c := range scaleSizes {
		b.Run("files="+c.name, func(b *testing.B) {
			x := scaleIndex(b, c.files)
			t := x.Table()
			paths := make([]string, 4096)
			for i := range paths {
				paths[i] = scalePath(rand.IntN(c.files))
			}
			b.ReportAllocs()
			i, n := 0, 0
			for b.Loop() {
				j, ok := x.Lookup(paths[i&4095])
				if !ok {
					b.Fatal("not found")
				}
				n += int(t.Size(j)) + int(t.SHA256(j)[0])
				for r := range int64(scaleRegions) {
					if t.Verified[r+1].Has(j) {
						n++
					}
				}
				i++
			}
			runtime.KeepAlive(n)
		})
	}
}
