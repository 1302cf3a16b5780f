package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/childproc"
)

// Soak timing. Rounds come every soakRound while two cron instances run push, scan and gc
// every second. The grace and the alternates' age are short, so that gc collects what the
// first rounds deleted, but keep production's proportions: an alternate outlives three
// rounds (a push that the origin's next change interrupts, twice, must not take every
// region out of the answers), and a file stays 3 s past the last alternate naming it
// (resolutions take about a second at most here).
const (
	soakRound       = 5 * time.Second
	soakAlternates  = 15 * time.Second
	soakDeleteGrace = 18 * time.Second
	soakAnnounce    = time.Second
)

// TestConcurrencySoak is the promise under the concurrency of production (issue 12): two
// `regionmirror cron` processes on one database run push, scan and gc every second, all
// at once, while the origin changes round after round: packages added, deleted, brought
// back and re-signed under the same names, repodata regenerated with checksum names or
// rewritten in place (--simple-md-filenames), one round publishing a repomd.xml the parser
// rejects and the next repairing it. Mid-run a region's public URL moves to a second
// address serving the same bucket, and later back. Clients resolve metalinks without pause
// and check every URL handed out against the metalink's hashes. Nothing is down, so every
// miss, mismatch, client failure or 5xx is a broken promise. At the end one more push and
// scan succeed, every region holds the origin byte for byte and is fresh, and gc has
// collected what the origin deleted early in the run.
func TestConcurrencySoak(t *testing.T) {
	w := newWorld(t, "eu-central-1", "us-east-1", "ap-southeast-2")
	w.env = append(w.env,
		"REGIONMIRROR_PUSH_DELETE_GRACE="+soakDeleteGrace.String(),
		"REGIONMIRROR_METALINK_ALTERNATES_MAX_AGE="+soakAlternates.String(),
		// Servers rebuild within about 250 ms of a notification; production's 3 s would make
		// a push of in-place rewrites (one region after another, each waiting for the
		// servers after taking the repository out) longer than a round.
		"REGIONMIRROR_PUSH_ANNOUNCE_DELAY="+soakAnnounce.String(),
	)
	// The region whose public URL moves: a second listener in front of its S3 server.
	moved := w.regions[1]
	endpoint, err := url.Parse(moved.publicURL)
	if err != nil {
		t.Fatal(err)
	}
	movedURL := "http://" + forward(t, endpoint.Host) + endpoint.Path
	moved.aliases = append(moved.aliases, movedURL)

	w.mustCLI("push")
	w.mustCLI("scan")
	w.startServe()

	ctx, stopClients := context.WithCancel(context.Background())
	defer stopClients()
	start := time.Now()
	st := &stats{start: start}
	locations := []string{"", "eu-central-1", "us-east-1", "ap-southeast-2"}
	var wg sync.WaitGroup
	for i := range 3 {
		c := newClient(w, st)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.loop(ctx, append(locations[i:], locations[:i]...))
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		newClient(w, st).downloadLoop(ctx, locations)
	}()
	crons := []*childproc.Process{w.startCron("cron-a"), w.startCron("cron-b")}

	rounds := []struct {
		what string
		m    mutation
		then func()
	}{
		{what: "checksum names"},
		{what: "simple names", m: mutation{simple: true}},
		{what: "simple names rewritten in place", m: mutation{simple: true}, then: func() {
			w.mustCLI("region", "edit", moved.name, "--public-url", movedURL)
			t.Logf("%s: region edit %s --public-url %s (the same bucket through a second listener)", time.Since(start).Round(time.Millisecond), moved.name, movedURL)
		}},
		{what: "checksum names again (the simple names are deleted)"},
		{what: "a truncated repomd.xml", m: mutation{broken: true}},
		{what: "repaired", then: func() {
			w.mustCLI("region", "edit", moved.name, "--public-url", moved.publicURL)
			t.Logf("%s: region edit %s --public-url %s (back)", time.Since(start).Round(time.Millisecond), moved.name, moved.publicURL)
		}},
		{what: "every package re-signed", m: mutation{resign: true}},
		// Packages deleted four rounds ago, just past the grace: gc may be collecting them
		// with a list read before this round's push brings them back. (No image comes
		// back: the /pub downloader asks for the deleted ones until the end, so that it
		// sees gc collect them.)
		{what: "simple names again (names deleted in round 4 come back), a package deleted in round 4 brought back", m: mutation{simple: true,
			revive: []string{repoDir + "/Packages/gen/hello-round002.noarch.rpm"}}},
		{what: "simple names rewritten in place, a package deleted in round 5 brought back", m: mutation{simple: true,
			revive: []string{repoDir + "/Packages/gen/hello-round003.noarch.rpm"}}},
	}
	for i, r := range rounds {
		round := i + 1
		next := start.Add(time.Duration(i) * soakRound)
		time.Sleep(time.Until(next))
		w.mutateWith(round, r.m)
		t.Logf("%s: round %d: %s", time.Since(start).Round(time.Millisecond), round, r.what)
		if r.then != nil {
			r.then()
		}
	}
	// Two more rounds' time without changes: the last one reaches every region under the
	// clients, and gc, which does not collect in a region that is not fresh (the rounds
	// rarely leave one fresh for long), catches up on the deleted images while the /pub
	// downloader asks for them.
	time.Sleep(time.Until(start.Add(time.Duration(len(rounds)+1) * soakRound)))

	stopClients()
	wg.Wait()
	for i, c := range crons {
		if c.Exited() {
			t.Errorf("cron %d exited during the run:\n%s", i, c.LogTail())
		}
		c.Stop(syscall.SIGTERM, 20*time.Second)
	}
	if w.serve.Exited() {
		t.Errorf("serve exited during the run:\n%s", w.serve.LogTail())
	}
	jobs := cronOutcomes(t, filepath.Join(w.dir, "cron-a.log"), filepath.Join(w.dir, "cron-b.log"))

	t.Logf("FIGURES after %s, %d rounds, 2 cron instances (push, scan, gc @every 1s; %s), %d regions: %s; metalinks listing every region %d; slowest resolution %s",
		time.Since(start).Round(time.Second), len(rounds), jobs, len(w.regions), st, st.listedAll.Load(), time.Duration(st.slowest.Load()).Round(time.Millisecond))
	for _, e := range st.byKind() {
		t.Logf("  %s", e)
	}

	// Final state: one more push and scan succeed everywhere, and every region serves the origin.
	for _, cmd := range []string{"push", "scan"} {
		if out, err := w.cli(context.Background(), cmd); err != nil {
			t.Errorf("the final %s: %v\n%s", cmd, err, lastLines(out, 20))
		}
	}
	files := w.checkRegionsEqualOrigin()
	t.Logf("final check: %d origin files read back from every region", files)
	w.checkFreshEverywhere()
	// gc ran: the package of round 1, deleted in round 3 and never brought back, is gone
	// from every bucket. Not a test of the moved region: the edit (round 3) forgets what
	// was verified there, so gc no longer knows of copies of files the origin had already
	// deleted; they stay in its bucket, which is said, not failed (no client is sent there).
	for _, r := range w.regions {
		p := repoDir + "/Packages/gen/hello-round001.noarch.rpm"
		if _, err := os.Stat(filepath.Join(r.s3.Dir, "s3data", r.bucket, p)); err == nil {
			if r == moved {
				t.Logf("%s still holds %s (deleted at the origin when its public URL moved): left behind by gc", r.name, p)
				continue
			}
			t.Errorf("%s still holds %s, deleted at the origin long past push.delete_grace: gc did not collect it", r.name, p)
		}
	}
	w.checkServeLog()
	// No S3 server is ever down here: every miss is on a region that was up.
	st.checkPromise(t, st.misses())
}

// startCron runs `regionmirror cron` with push, scan and gc every second; its log goes to
// name.log in the world's directory.
func (w *world) startCron(name string) *childproc.Process {
	w.t.Helper()
	cmd := exec.Command(w.bin, "cron")
	cmd.Env = append(append([]string{}, w.env...),
		"REGIONMIRROR_SCHEDULES_PUSH=@every 1s", "REGIONMIRROR_SCHEDULES_SCAN=@every 1s", "REGIONMIRROR_SCHEDULES_GC=@every 1s",
		"REGIONMIRROR_CRON_LISTEN=127.0.0.1:0", "REGIONMIRROR_CRON_SHUTDOWN_TIMEOUT=15s")
	proc, err := childproc.Start(cmd, filepath.Join(w.dir, name+".log"), nil)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { proc.Stop(syscall.SIGKILL, 5*time.Second) })
	return proc
}

// checkFreshEverywhere fails the test unless `status` calls the repository fresh in every region.
func (w *world) checkFreshEverywhere() {
	w.t.Helper()
	status := w.mustCLI("status")
	for _, line := range strings.Split(status, "\n") {
		if strings.HasPrefix(line, "demo-1/x86_64") && strings.Count(line, "fresh") != len(w.regions) {
			w.t.Errorf("the repository is not fresh in every region after the run:\n%s", status)
		}
	}
}

var jobLine = regexp.MustCompile(`msg="job (done|failed)".*?job=(\w+)`)
var jobErr = regexp.MustCompile(`msg="job failed".*?job=(\w+).*?err="?(.*?)"? took=`)

// cronOutcomes sums the cron logs' job runs ("push 40 ok 2 failed, ...") and logs the
// distinct reasons of the failed ones, for the report.
func cronOutcomes(t *testing.T, logs ...string) string {
	t.Helper()
	count := map[string]int{}
	reasons := map[string]int{}
	for _, p := range logs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("cron log: %v", err)
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if m := jobLine.FindStringSubmatch(line); m != nil {
				count[m[2]+" "+m[1]]++
			}
			if m := jobErr.FindStringSubmatch(line); m != nil {
				reasons[m[1]+": "+m[2]]++
			}
		}
	}
	var parts []string
	for _, j := range []string{"push", "scan", "gc"} {
		parts = append(parts, fmt.Sprintf("%s %d ok %d failed", j, count[j+" done"], count[j+" failed"]))
	}
	var rs []string
	for r, n := range reasons {
		rs = append(rs, fmt.Sprintf("%dx %s", n, r))
	}
	sort.Strings(rs)
	for _, r := range rs {
		t.Logf("cron job failure: %s", r)
	}
	return strings.Join(parts, ", ")
}

// forward listens on a new loopback port and relays every connection to target
// (host:port): the same server under a second address. It returns the new host:port.
func forward(t *testing.T, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, in, out)
			mu.Unlock()
			go func() {
				io.Copy(out, in)
				out.(*net.TCPConn).CloseWrite()
			}()
			go func() {
				io.Copy(in, out)
				in.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return ln.Addr().String()
}
