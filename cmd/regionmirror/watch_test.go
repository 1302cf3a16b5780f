package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

// watchInstance is a `regionmirror watch` binary running for a test.
type watchInstance struct {
	cmd  *exec.Cmd
	addr chan string
	done chan error
	log  *lockedBuffer
}

func startWatch(t *testing.T, bin string, env []string) *watchInstance {
	t.Helper()
	cmd := exec.Command(bin, "watch")
	cmd.Env = append(append(os.Environ(), env...), "REGIONMIRROR_WATCH_LISTEN=127.0.0.1:0",
		"REGIONMIRROR_PUSH_WATCH_SETTLE=300ms", "REGIONMIRROR_CRON_SHUTDOWN_TIMEOUT=20s")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in := &watchInstance{cmd: cmd, addr: make(chan string, 1), done: make(chan error, 1), log: &lockedBuffer{}}
	addrRE := regexp.MustCompile(`msg="watch listening" addr=(\S+)`)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			in.log.Write([]byte(sc.Text() + "\n"))
			if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
				in.addr <- m[1]
			}
		}
		in.done <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	return in
}

func openTestDB(t *testing.T, env []string) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), getenv(env, "REGIONMIRROR_DATABASE_URL"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// waitCovered waits until one live watcher of origin claims coverage with nothing pending:
// its start push has returned.
func waitCovered(t *testing.T, d *db.DB, origin string, done chan error, log fmt.Stringer) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		cov, err := d.WatchCoverage(context.Background(), origin, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if cov.Watchers == 1 && cov.Since != nil && cov.Pending == 0 {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("the daemon exited: %v\n%s", err, log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the watcher never covered the origin: %+v\n%s", cov, log)
		}
	}
}

// buildRPM builds a tiny noarch package with rpmbuild and returns its path.
func buildRPM(t *testing.T, name, version string) string {
	t.Helper()
	top := t.TempDir()
	spec := filepath.Join(top, name+".spec")
	if err := os.WriteFile(spec, []byte(`Name: `+name+`
Version: `+version+`
Release: 1
Summary: A package published while watch runs
License: MIT
BuildArch: noarch

%description
Published under a watched repository.

%install
mkdir -p %{buildroot}/usr/share/regionmirror-demo
echo "`+name+`" > %{buildroot}/usr/share/regionmirror-demo/`+name+`.txt

%files
/usr/share/regionmirror-demo/`+name+`.txt
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("rpmbuild", "--define", "_topdir "+top, "-bb", spec).CombinedOutput(); err != nil {
		t.Fatalf("rpmbuild: %v\n%s", err, out)
	}
	rpm := filepath.Join(top, "RPMS", "noarch", name+"-"+version+"-1.noarch.rpm")
	if _, err := os.Stat(rpm); err != nil {
		t.Fatal(err)
	}
	return rpm
}

// TestWatchPushesAFileWrittenUnderARepository runs the real `regionmirror watch` binary
// and `regionmirror serve` on a real PostgreSQL with a versitygw region and a directory
// region. After the watcher's start push a new package is built, copied into the origin
// repository and createrepo_c rerun, as a publisher does; with no cron and no manual push
// the new repomd.xml becomes fresh in every region, the metalink lists its sha256 and
// /pub/<the new package> redirects into a region.
func TestWatchPushesAFileWrittenUnderARepository(t *testing.T) {
	env, origin, _ := pushEnv(t)
	bin := buildBinary(t)
	d := openTestDB(t, env)
	w := startWatch(t, bin, env)
	waitCovered(t, d, origin, w.done, w.log)
	srv := startServe(t, env)

	repoDir := filepath.Join(origin, "demo/1/x86_64/os")
	rpm := buildRPM(t, "fresh", "1.0")
	body, err := os.ReadFile(rpm)
	if err != nil {
		t.Fatal(err)
	}
	pkg := "demo/1/x86_64/os/Packages/fresh-1.0-1.noarch.rpm"
	if err := os.WriteFile(filepath.Join(origin, pkg), body, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("createrepo_c", "--update", repoDir).CombinedOutput(); err != nil {
		t.Fatalf("createrepo_c: %v\n%s", err, out)
	}
	published := time.Now() // createrepo_c's exit: the figure logged below runs from here
	repomd, err := os.ReadFile(filepath.Join(repoDir, "repodata/repomd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(repomd)
	want := hex.EncodeToString(sum[:])

	ctx := context.Background()
	repo, err := d.GetRepository(ctx, "demo-1", "x86_64")
	if err != nil {
		t.Fatal(err)
	}
	regions, err := d.ResolveRegions(ctx, nil)
	if err != nil || len(regions) != 2 {
		t.Fatalf("regions %v %v", regions, err)
	}
	noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		fresh := 0
		rrs, _ := d.RegionRepos(ctx)
		for _, rr := range rrs {
			if rr.RepositoryID == repo.ID && rr.State == model.RepoFresh && hex.EncodeToString(rr.RepomdSHA256) == want {
				fresh++
			}
		}
		metalink := ""
		if res, err := http.Get(srv.base + "/metalink?repo=demo-1&arch=x86_64"); err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			metalink = string(b)
		}
		location := ""
		if res, err := noRedirects.Get(srv.base + "/pub/" + pkg); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusFound {
				location = res.Header.Get("Location")
			}
		}
		inRegion := false
		for _, r := range regions {
			inRegion = inRegion || (location != "" && strings.HasPrefix(location, r.PublicURL))
		}
		if fresh == len(regions) && strings.Contains(metalink, want) && inRegion {
			t.Logf("published %v after createrepo_c exited (settle 300ms, polled every 100ms): %d regions fresh, /pub redirects to %s",
				time.Since(published).Round(time.Millisecond), fresh, location)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not published: %d of %d regions fresh at %s, metalink lists it %v, /pub → %q\nwatch log:\n%s",
				fresh, len(regions), want[:12], strings.Contains(metalink, want), location, w.log.String())
		}
	}
	runs, err := d.RecentRuns(ctx, "push", 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		if r.PID != w.cmd.Process.Pid {
			t.Errorf("push run %d by pid %d: only the watcher pushes here", r.ID, r.PID)
		}
	}

	// SIGTERM: it stops and removes its record.
	w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-w.done:
		if err != nil {
			t.Errorf("watch after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("watch did not stop after SIGTERM")
	}
	if cov, _ := d.WatchCoverage(ctx, origin, time.Hour); cov.Watchers != 0 {
		t.Errorf("a stopped watcher still counts: %+v", cov)
	}
}

// TestKilledWatcherLosesCoverageAtOnce kills a real watch process: its coverage is gone
// as soon as PostgreSQL frees its lock, well before its last heartbeat goes stale (30 s),
// so a scheduled push never trusts a dead watcher.
func TestKilledWatcherLosesCoverageAtOnce(t *testing.T) {
	env := migratedEnv(t)
	origin := testenv.SampleOrigin(t, t.TempDir())
	env = append(env, "REGIONMIRROR_ORIGIN_PATH="+origin)
	d := openTestDB(t, env)
	w := startWatch(t, buildBinary(t), env)
	waitCovered(t, d, origin, w.done, w.log)
	w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.done
	ctx := context.Background()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		cov, err := d.WatchCoverage(ctx, origin, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if cov.Watchers == 0 && cov.Since == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a killed watcher still covers the origin: %+v", cov)
		}
	}
}

func TestWatchNeedsAnOrigin(t *testing.T) {
	env := migratedEnv(t)
	_, errs, code := cli(t, env, "watch")
	if code != exitBadInput || !strings.Contains(errs, "origin.path is not set") {
		t.Errorf("watch without origin.path: exit %d, %q", code, errs)
	}
}
