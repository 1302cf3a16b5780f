package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/testenv"
)

// TestFaultInjection is the promise to clients under faults: while the repository changes
// and is pushed round after round, clients that resolve metalinks and fetch every URL they
// are given never miss a file, never get bytes other than those promised, and the server
// never answers 5xx, while one region's S3 server is killed and restarted, a push is
// SIGKILLed and restarted, and PostgreSQL restarts. An on-demand region (on the first
// region's S3 service) is filled by a `regionmirror fill` worker throughout, which is
// SIGKILLed and restarted too. At the end every push region holds the origin, and every
// copy the on-demand region is recorded to hold is the origin's.
func TestFaultInjection(t *testing.T) {
	w := newWorld(t, "eu-central-1", "us-east-1", "ap-southeast-2")
	od := w.addOnDemand("eu-west-1", w.regions[0])
	archive := w.addApt()
	w.mustCLI("push")
	w.mustCLI("scan")
	w.startServe()
	w.startFill("--workers", "2")

	ctx, stopClients := context.WithCancel(context.Background())
	defer stopClients()
	st := &stats{}
	locations := []string{"", "eu-central-1", "us-east-1", "ap-southeast-2", "eu-west-1"}
	var wg sync.WaitGroup
	for i := range 2 {
		c := newClient(w, st)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.loop(ctx, append(locations[i%2:], locations[:i%2]...))
		}()
	}
	// An apt-like client beside them, through the APT repository's mirror lists.
	aptSt := &aptStats{}
	apt := &aptClient{c: newClient(w, st), st: aptSt}
	wg.Add(1)
	go func() {
		defer wg.Done()
		apt.loop(ctx, locations[:4])
	}()
	// The scanner runs all the time, as cron would run it (more often, to keep the test short).
	scanCtx, stopScans := context.WithCancel(context.Background())
	var scans sync.WaitGroup
	scans.Add(1)
	go func() {
		defer scans.Done()
		for scanCtx.Err() == nil {
			w.cli(scanCtx, "scan")
			select {
			case <-scanCtx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()

	round := 0
	push := func(what string) {
		t.Helper()
		round++
		w.mutate(round)
		archive.Publish(t, aptPackages(round), testenv.PublishOptions{})
		// A push fails for a region that is down; the next round repairs it.
		for attempt := 1; attempt <= 3; attempt++ {
			out, err := w.cli(context.Background(), "push")
			if err == nil {
				break
			}
			t.Logf("round %d (%s), push attempt %d: %v\n%s", round, what, attempt, err, lastLines(out, 6))
			if !w.anyRegionDown() && !w.pgDown.Load() {
				time.Sleep(time.Second)
			} else {
				break
			}
		}
	}
	start := time.Now()
	push("warm-up")
	push("warm-up")

	// Fault 1: a region's S3 server dies. Pushes fail there; serve's prober takes it out of
	// every answer within a probe or two (scans, later, record it in the database); it
	// comes back, a push repairs it.
	victim := w.regions[2]
	victim.down.Store(true)
	killedAt := time.Now()
	victim.s3.Kill()
	t.Logf("fault 1: killed the S3 server of %s", victim.name)
	excluded := make(chan time.Duration, 1)
	go func() { excluded <- w.waitMetalink(victim, false, 3*time.Minute) }()
	push("region down")
	excludedAfter := <-excluded
	t.Logf("fault 1: %s left the metalinks %s after the kill", victim.name, excludedAfter.Round(time.Millisecond))
	outageMisses := func() string {
		first, last := st.outageFirst.Load(), st.outageLast.Load()
		if first == 0 {
			return "none"
		}
		return fmt.Sprintf("%d, from %s to %s after the kill", st.missesOutage.Load(),
			time.Unix(0, first).Sub(killedAt).Round(time.Millisecond), time.Unix(0, last).Sub(killedAt).Round(time.Millisecond))
	}
	push("region down")
	if err := victim.s3.Restart(); err != nil {
		t.Fatal(err)
	}
	victim.down.Store(false)
	t.Logf("fault 1: %s restarted after %s; misses on it: %s", victim.name, time.Since(killedAt).Round(time.Millisecond), outageMisses())
	push("region back")
	back := w.waitMetalink(victim, true, 90*time.Second)
	t.Logf("fault 1: %s back in the metalinks %s after the restart push", victim.name, back.Round(time.Millisecond))

	// Fault 2: a push is SIGKILLed in the middle of its uploads, then runs again.
	round++
	w.mutate(round)
	bulk := w.addBulk(round, 150)
	cmd := exec.Command(w.bin, "push")
	cmd.Env = append(w.env, "REGIONMIRROR_PUSH_CONCURRENCY=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for w.regions[0].objectsUnder(bulk) < 20 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	t.Logf("fault 2: push SIGKILLed with %d of 150 bulk files in %s", w.regions[0].objectsUnder(bulk), w.regions[0].name)
	// The fill worker dies too; its leased jobs are taken over by the next one.
	w.fill.Stop(syscall.SIGKILL, 10*time.Second)
	w.startFill("--workers", "2")
	if out, err := w.cli(context.Background(), "push"); err != nil {
		t.Errorf("push after the killed push: %v\n%s", err, out)
	}

	// Fault 3: PostgreSQL restarts while a push runs and clients keep asking.
	round++
	w.mutate(round)
	pushDone := make(chan string, 1)
	go func() {
		out, err := w.cli(context.Background(), "push")
		if err != nil {
			out += "\n" + err.Error()
		}
		pushDone <- out
	}()
	time.Sleep(300 * time.Millisecond)
	w.pgDown.Store(true)
	if err := w.pg.Restart(); err != nil {
		t.Fatal(err)
	}
	w.pgDown.Store(false)
	t.Logf("fault 3: PostgreSQL restarted; the push running across it said:\n%s", lastLines(<-pushDone, 4))
	push("after the database restart")
	push("steady")
	push("steady")

	stopClients()
	wg.Wait()
	stopScans()
	scans.Wait()
	if w.serve.Exited() {
		t.Errorf("serve exited during the run:\n%s", w.serve.LogTail())
	}
	if w.fill.Exited() {
		t.Errorf("fill exited during the run:\n%s", w.fill.LogTail())
	}

	// Final state: one more push and scan succeed everywhere, and every region serves the origin.
	w.mustCLI("push")
	w.mustCLI("scan")
	files := w.checkRegionsEqualOrigin()
	filled := w.checkOnDemandCopies(od)
	if filled == 0 {
		t.Error("the on-demand region holds nothing: no fill happened")
	}
	t.Logf("the on-demand region holds %d verified copies", filled)
	w.checkFreshEverywhere()
	w.checkServeLog()

	t.Logf("FIGURES after %s, %d rounds, %d origin files in %d regions: %s", time.Since(start).Round(time.Second), round, files, len(w.regions), st)
	for _, e := range st.examples {
		t.Logf("  %s", e)
	}
	t.Logf("FIGURES %s", aptSt)
	st.checkPromise(t, st.missesOther.Load())
	aptSt.check(t)
}

// checkPromise fails the test for every broken promise the clients saw: 5xx or other
// non-200 answers, misses (those on regions that were up), hash mismatches, resolutions
// where dnf would fail, downloads where no URL worked; and when the clients did not really run.
func (st *stats) checkPromise(t *testing.T, missesUp int64) {
	t.Helper()
	if st.server5xx.Load() != 0 || st.serverOther.Load() != 0 {
		t.Errorf("the server answered %d 5xx and %d other non-200 metalinks", st.server5xx.Load(), st.serverOther.Load())
	}
	if missesUp != 0 {
		t.Errorf("%d misses on regions that were up", missesUp)
	}
	if st.mismatches.Load() != 0 {
		t.Errorf("%d hash mismatches", st.mismatches.Load())
	}
	if st.clientFailures.Load() != 0 {
		t.Errorf("%d resolutions where no URL served a complete, correct repository", st.clientFailures.Load())
	}
	if st.downloadFailed.Load() != 0 {
		t.Errorf("%d downloads where neither the redirect nor any rel=duplicate worked", st.downloadFailed.Load())
	}
	if st.downloads.Load() == 0 {
		t.Error("no download went through /pub")
	}
	if st.resolutions.Load() < 20 {
		t.Errorf("only %d metalinks resolved: the clients did not really run", st.resolutions.Load())
	}
}

// checkServeLog fails the test when serve's log mentions a panic.
func (w *world) checkServeLog() {
	w.t.Helper()
	logText, _ := os.ReadFile(filepath.Join(w.dir, "serve.log"))
	if strings.Contains(string(logText), "panic") {
		w.t.Errorf("serve log mentions a panic:\n%s", lastLines(string(logText), 40))
	}
}

func (w *world) anyRegionDown() bool {
	for _, r := range w.regions {
		if r.down.Load() {
			return true
		}
	}
	return false
}

// waitMetalink waits until the metalink lists r (listed) or no longer does, and returns
// how long that took.
func (w *world) waitMetalink(r *region, listed bool, timeout time.Duration) time.Duration {
	w.t.Helper()
	start := time.Now()
	client := &http.Client{Timeout: 5 * time.Second}
	for time.Since(start) < timeout {
		resp, err := client.Get(w.srvURL + "/metalink?repo=demo-1&arch=x86_64")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), r.publicURL+"/") == listed {
				return time.Since(start)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.t.Errorf("%s listed=%v: not reached within %s", r.name, listed, timeout)
	return timeout
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
