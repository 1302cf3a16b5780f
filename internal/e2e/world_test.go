package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/regionmirror/regionmirror/internal/childproc"
	"github.com/regionmirror/regionmirror/internal/localpg"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// repoDir is the sample repository's directory in the origin.
const repoDir = "demo/1/x86_64/os"

// region is one S3 region of the world: its own versitygw, so it can be killed alone.
type region struct {
	name, country string
	s3            *testenv.S3Server
	bucket        string
	publicURL     string
	// aliases are other base URLs that serve the same bucket (a second address the test
	// listens on), so that a URL handed out after `region edit --public-url` is still
	// counted for its region.
	aliases []string
	// onDemand: the region fills on demand; it holds what clients asked for, not the origin.
	onDemand bool
	// down is set just before the S3 server is killed and cleared once it answers again;
	// a miss on this region while it is set is a miss of the outage.
	down atomic.Bool
}

// world is everything the fault test runs: PostgreSQL, regions, the origin, the binary.
type world struct {
	t       *testing.T
	dir     string
	bin     string
	pg      *localpg.Postgres
	dbURL   string
	origin  string
	regions []*region
	env     []string
	serve   *childproc.Process
	fill    *childproc.Process
	fills   int // fill processes started, for their logs' names
	srvURL  string
	history *history
	pgDown  atomic.Bool
	round   atomic.Int64 // the last round mutate published
}

// buildBinary builds cmd/regionmirror once per test binary.
var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "regionmirror-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "regionmirror")
		out, err := exec.Command("go", "build", "-o", buildPath, "../../cmd/regionmirror").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// newWorld starts a private PostgreSQL, one versitygw per region, copies the sample origin
// and registers everything through the CLI.
func newWorld(t *testing.T, names ...string) *world {
	t.Helper()
	w := &world{t: t, dir: t.TempDir(), bin: binary(t), history: newHistory()}
	// E2E_KEEP_LOGS=DIR keeps the processes' logs (the world's directory goes with
	// the test); registered first, so it runs after every process has stopped.
	if keep := os.Getenv("E2E_KEEP_LOGS"); keep != "" {
		t.Cleanup(func() {
			logs, _ := filepath.Glob(filepath.Join(w.dir, "*.log"))
			os.MkdirAll(keep, 0o755)
			for _, p := range logs {
				if b, err := os.ReadFile(p); err == nil {
					os.WriteFile(filepath.Join(keep, filepath.Base(p)), b, 0o644)
				}
			}
		})
	}
	pg, err := localpg.Start(filepath.Join(w.dir, "pg"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	w.pg = pg
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE regionmirror"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	w.dbURL = pg.URL("regionmirror")

	w.origin = testenv.SampleOrigin(t, w.dir)
	port, err := childproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	w.srvURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	w.env = append(os.Environ(),
		"REGIONMIRROR_CONFIG=",
		"REGIONMIRROR_DATABASE_URL="+w.dbURL,
		"REGIONMIRROR_ORIGIN_PATH="+w.origin,
		fmt.Sprintf("REGIONMIRROR_SERVER_LISTEN=127.0.0.1:%d", port),
		"REGIONMIRROR_SERVER_SNAPSHOT_INTERVAL=2s",
		"REGIONMIRROR_ONDEMAND_STALE_AFTER=10s",
		// serve's own probes take a dead region out of answers (the default, made explicit).
		"REGIONMIRROR_SERVER_PROBE_INTERVAL=1s",
		"REGIONMIRROR_SCAN_TIMEOUT=5s",
		// Metalinks list on-demand regions through this server's /r/ URLs.
		"REGIONMIRROR_SERVER_PUBLIC_URL="+w.srvURL,
		"REGIONMIRROR_FILL_POLL_INTERVAL=500ms",
		"AWS_ACCESS_KEY_ID="+testenv.S3AccessKey,
		"AWS_SECRET_ACCESS_KEY="+testenv.S3SecretKey,
	)
	w.mustCLI("migrate")
	countries := map[string]string{"eu-central-1": "DE", "us-east-1": "US", "ap-southeast-2": "AU", "eu-west-1": "IE"}
	for _, name := range names {
		srv, err := testenv.StartS3(filepath.Join(w.dir, "s3-"+name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Stop)
		r := &region{name: name, country: countries[name], s3: srv}
		r.bucket = srv.NewBucket(t, true)
		r.publicURL = srv.Endpoint + "/" + r.bucket
		w.regions = append(w.regions, r)
		w.mustCLI("region", "add", name, "--bucket", r.bucket, "--endpoint", srv.Endpoint,
			"--public-url", r.publicURL, "--country", r.country)
	}
	w.mustCLI("repo", "add", "demo-1", "x86_64", repoDir)
	w.recordRepomd()
	return w
}

// addOnDemand registers an on-demand region in a second bucket of host's S3 server (the
// same S3 service, so fills copy server-side from host when it holds the file).
func (w *world) addOnDemand(name string, host *region, extra ...string) *region {
	w.t.Helper()
	r := &region{name: name, country: "IE", s3: host.s3, onDemand: true}
	r.bucket = host.s3.NewBucket(w.t, true)
	r.publicURL = host.s3.Endpoint + "/" + r.bucket
	w.regions = append(w.regions, r)
	w.mustCLI(append([]string{"region", "add", name, "--bucket", r.bucket, "--endpoint", host.s3.Endpoint,
		"--public-url", r.publicURL, "--country", r.country, "--fill", "on-demand"}, extra...)...)
	return r
}

// startFill runs `regionmirror fill` until the test ends (or stopFill).
func (w *world) startFill(args ...string) {
	w.t.Helper()
	cmd := exec.Command(w.bin, append([]string{"fill"}, args...)...)
	cmd.Env = w.env
	w.fills++
	proc, err := childproc.Start(cmd, filepath.Join(w.dir, fmt.Sprintf("fill-%d.log", w.fills)), nil)
	if err != nil {
		w.t.Fatal(err)
	}
	w.fill = proc
	w.t.Cleanup(func() { proc.Stop(syscall.SIGTERM, 15*time.Second) })
}

// onDemandCopies returns what the database says an on-demand region holds verified:
// path -> sha256 (hex).
func (w *world) onDemandCopies(r *region) map[string]string {
	w.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, w.dbURL)
	if err != nil {
		w.t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT f.path, encode(o.sha256, 'hex') FROM region_objects o
		JOIN files f ON f.id = o.file_id JOIN regions g ON g.id = o.region_id
		WHERE g.name = $1 AND o.state = 'present' AND o.current`, r.name)
	if err != nil {
		w.t.Fatal(err)
	}
	out := map[string]string{}
	for rows.Next() {
		var p, sum string
		if err := rows.Scan(&p, &sum); err != nil {
			w.t.Fatal(err)
		}
		out[p] = sum
	}
	if err := rows.Err(); err != nil {
		w.t.Fatal(err)
	}
	return out
}

// checkOnDemandCopies reads back, through its public URL, every copy the database says an
// on-demand region holds verified, and returns how many there are.
func (w *world) checkOnDemandCopies(r *region) int {
	w.t.Helper()
	client := &http.Client{Timeout: 30 * time.Second}
	copies := w.onDemandCopies(r)
	for p, want := range copies {
		resp, err := client.Get(r.publicURL + "/" + model.EscapePath(p))
		if err != nil {
			w.t.Errorf("%s: %s: %v", r.name, p, err)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		sum := sha256.Sum256(b)
		if resp.StatusCode != 200 || hex.EncodeToString(sum[:]) != want {
			w.t.Errorf("%s: %s: %s, sha256 %x; the database says %s", r.name, p, resp.Status, sum, want)
		}
	}
	return len(copies)
}

// cli runs the binary and returns its combined output.
func (w *world) cli(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, w.bin, args...)
	cmd.Env = w.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (w *world) mustCLI(args ...string) string {
	w.t.Helper()
	out, err := w.cli(context.Background(), args...)
	if err != nil {
		w.t.Fatalf("regionmirror %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// startServe runs `regionmirror serve` and waits until it answers /readyz.
func (w *world) startServe() {
	w.t.Helper()
	cmd := exec.Command(w.bin, "serve", "--access-log=false")
	cmd.Env = w.env
	proc, err := childproc.Start(cmd, filepath.Join(w.dir, "serve.log"), nil)
	if err != nil {
		w.t.Fatal(err)
	}
	w.serve = proc
	w.t.Cleanup(func() { proc.Stop(syscall.SIGTERM, 15*time.Second) })
	client := &http.Client{Timeout: 2 * time.Second}
	err = childproc.WaitReady(proc, 60*time.Second, func() error {
		resp, err := client.Get(w.srvURL + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("readyz: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		w.t.Fatal(err)
	}
}

// mutation is what a round does to the origin beyond the usual package added and deleted.
type mutation struct {
	// simple regenerates with createrepo_c --simple-md-filenames: primary.xml.gz and the
	// others are rewritten under the same names as the previous round's (in place).
	simple bool
	// resign re-signs every package with a new key: other bytes under the same names.
	resign bool
	// revive brings back files deleted rounds ago (paths relative to the origin): the
	// origin has them again.
	revive []string
	// broken publishes a truncated repomd.xml, which the parser rejects.
	broken bool
}

// mutate changes the repository as a distribution does between two composes: a new
// package file appears, the one added two rounds earlier goes, and createrepo_c writes new
// checksum-named repodata (deleting the old files at the origin).
func (w *world) mutate(round int) { w.mutateWith(round, mutation{}) }

// mutateWith is mutate with m's extras. Every file lands by rename and repomd.xml last, as
// a careful publisher does, so that a push running at any moment (the soak's cron) never
// reads a half-written file nor a repomd.xml naming files not there yet: what it sees is
// one of the states the test means.
func (w *world) mutateWith(round int, m mutation) {
	w.t.Helper()
	repo := filepath.Join(w.origin, repoDir)
	gen := filepath.Join(repo, "Packages", "gen")
	if err := os.MkdirAll(gen, 0o755); err != nil {
		w.t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(repo, "Packages", "hello-1.0-1.noarch.rpm"))
	if err != nil {
		w.t.Fatal(err)
	}
	w.place(filepath.Join(gen, fmt.Sprintf("hello-round%03d.noarch.rpm", round)), src)
	for _, p := range m.revive {
		b := src
		if strings.Contains(p, "/iso/round-") {
			var k int
			fmt.Sscanf(filepath.Base(p), "round-%03d.img", &k)
			b = bytes.Repeat([]byte{byte(k)}, 4096+k) // as mutate wrote it in round k
		}
		w.place(filepath.Join(w.origin, filepath.FromSlash(p)), b)
	}
	os.Remove(filepath.Join(gen, fmt.Sprintf("hello-round%03d.noarch.rpm", round-2)))
	// A download beside the repository, for the /pub clients.
	iso := filepath.Join(w.origin, "demo/1/iso")
	w.place(filepath.Join(iso, fmt.Sprintf("round-%03d.img", round)), bytes.Repeat([]byte{byte(round)}, 4096+round))
	os.Remove(filepath.Join(iso, fmt.Sprintf("round-%03d.img", round-3)))
	if m.resign {
		w.resign(round, repo)
	}

	stage := filepath.Join(w.dir, fmt.Sprintf("stage-%03d", round))
	args := []string{"--quiet", "--no-database", "--general-compress-type=gz", "--outputdir", stage}
	if m.simple {
		args = append(args, "--simple-md-filenames")
	}
	if err := os.MkdirAll(stage, 0o755); err != nil {
		w.t.Fatal(err)
	}
	out, err := exec.Command("createrepo_c", append(args, repo)...).CombinedOutput()
	if err != nil {
		w.t.Fatalf("createrepo_c: %v\n%s", err, out)
	}
	// Publish: the data files (new names, or the same names rewritten in place), then
	// repomd.xml, then remove what the new repomd.xml no longer names.
	staged, err := os.ReadDir(filepath.Join(stage, "repodata"))
	if err != nil {
		w.t.Fatal(err)
	}
	keep := map[string]bool{}
	var repomd []byte
	for _, e := range staged {
		keep[e.Name()] = true
		b, err := os.ReadFile(filepath.Join(stage, "repodata", e.Name()))
		if err != nil {
			w.t.Fatal(err)
		}
		if e.Name() == "repomd.xml" {
			repomd = b
			continue
		}
		w.place(filepath.Join(repo, "repodata", e.Name()), b)
	}
	if m.broken {
		repomd = repomd[:len(repomd)/2] // cut in the middle of an element: not XML
	}
	w.place(filepath.Join(repo, "repodata", "repomd.xml"), repomd)
	name := fmt.Sprintf("round %d", round)
	if m.broken {
		name += " (truncated)"
	}
	w.history.addNamed(repomd, name)
	old, _ := os.ReadDir(filepath.Join(repo, "repodata"))
	for _, e := range old {
		if !keep[e.Name()] {
			os.Remove(filepath.Join(repo, "repodata", e.Name()))
		}
	}
	os.RemoveAll(stage)
	w.round.Store(int64(round))
}

// place writes b to path by a rename, so that no reader sees a partial file.
func (w *world) place(path string, b []byte) {
	w.t.Helper()
	tmp := filepath.Join(w.dir, "place.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		w.t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		w.t.Fatal(err)
	}
}

// resign signs every package of the repository with a new key (rpmsign --addsign with a
// fresh gpg key): the same packages, other bytes, the same names.
func (w *world) resign(round int, repo string) {
	w.t.Helper()
	home := filepath.Join(w.dir, fmt.Sprintf("gnupg-%03d", round))
	if err := os.MkdirAll(home, 0o700); err != nil {
		w.t.Fatal(err)
	}
	env := append(os.Environ(), "GNUPGHOME="+home)
	keygen := exec.Command("gpg", "--batch", "--passphrase", "", "--quick-gen-key", fmt.Sprintf("soak %d <soak@example.invalid>", round), "rsa2048", "sign", "never")
	keygen.Env = env
	if out, err := keygen.CombinedOutput(); err != nil {
		w.t.Fatalf("gpg key: %v\n%s", err, out)
	}
	var rpms []string
	filepath.WalkDir(filepath.Join(repo, "Packages"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && strings.HasSuffix(p, ".rpm") {
			rpms = append(rpms, p)
		}
		return nil
	})
	for _, p := range rpms {
		b, err := os.ReadFile(p)
		if err != nil {
			w.t.Fatal(err)
		}
		tmp := filepath.Join(w.dir, "resign.rpm")
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			w.t.Fatal(err)
		}
		sign := exec.Command("rpmsign", "--define", "_gpg_name soak "+strconv.Itoa(round), "--define", "_gpg_path "+home,
			"--define", "__gpg /usr/bin/gpg", "--addsign", tmp)
		sign.Env = env
		if out, err := sign.CombinedOutput(); err != nil {
			w.t.Fatalf("rpmsign %s: %v\n%s", p, err, out)
		}
		signed, err := os.ReadFile(tmp)
		if err != nil {
			w.t.Fatal(err)
		}
		if bytes.Equal(signed, b) {
			w.t.Fatalf("rpmsign left %s unchanged", p)
		}
		w.place(p, signed)
	}
}

// addBulk writes n files that make the next push long enough to be killed in the middle.
func (w *world) addBulk(round, n int) string {
	w.t.Helper()
	rel := fmt.Sprintf("demo/1/iso/bulk-%03d", round)
	dir := filepath.Join(w.origin, rel)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		w.t.Fatal(err)
	}
	for i := range n {
		body := bytes.Repeat([]byte(fmt.Sprintf("%d-%d ", round, i)), 2000)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("part-%03d.bin", i)), body, 0o644); err != nil {
			w.t.Fatal(err)
		}
	}
	return rel
}

// objectsUnder counts objects under prefix in the region's bucket, straight from
// versitygw's posix backend.
func (r *region) objectsUnder(prefix string) int {
	entries, _ := os.ReadDir(filepath.Join(r.s3.Dir, "s3data", r.bucket, prefix))
	return len(entries)
}

func (w *world) recordRepomd() {
	b, err := os.ReadFile(filepath.Join(w.origin, repoDir, "repodata", "repomd.xml"))
	if err != nil {
		w.t.Fatal(err)
	}
	w.history.add(b)
}

// history knows every repomd.xml the origin ever published, by SHA-512, and when.
type history struct {
	mu    sync.Mutex
	seen  map[string]time.Time
	names map[string]string // which round published it, for the examples
}

func newHistory() *history { return &history{seen: map[string]time.Time{}, names: map[string]string{}} }

func (h *history) add(b []byte) { h.addNamed(b, "") }

func (h *history) addNamed(b []byte, name string) {
	s := sha512.Sum512(b)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen[hex.EncodeToString(s[:])] = time.Now()
	h.names[hex.EncodeToString(s[:])] = name
}

// name is what published the repomd.xml of that SHA-512 ("round 5 (truncated)"), or "".
func (h *history) name(sha512hex string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.names[sha512hex]
}

func (h *history) published(sha512hex string) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.seen[sha512hex]
	return t, ok
}

// originFiles lists every file of the origin, relative paths with '/'.
func (w *world) originFiles() []string {
	var out []string
	filepath.WalkDir(w.origin, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(w.origin, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	return out
}

// checkRegionsEqualOrigin reads every origin file back from every region's public URL.
func (w *world) checkRegionsEqualOrigin() (files int) {
	w.t.Helper()
	client := &http.Client{Timeout: 30 * time.Second}
	for _, p := range w.originFiles() {
		want, err := os.ReadFile(filepath.Join(w.origin, p))
		if err != nil {
			w.t.Fatal(err)
		}
		files++
		for _, r := range w.regions {
			if r.onDemand {
				continue // it holds what was asked for: checkOnDemandCopies
			}
			resp, err := client.Get(r.publicURL + "/" + model.EscapePath(p))
			if err != nil {
				w.t.Errorf("%s: %s: %v", r.name, p, err)
				continue
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !bytes.Equal(got, want) {
				w.t.Errorf("%s: %s: %s, %d bytes; the origin has %d", r.name, p, resp.Status, len(got), len(want))
			}
		}
	}
	return files
}
