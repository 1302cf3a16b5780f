package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/config"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"

	"github.com/prometheus/client_golang/prometheus"
)

type cronInstance struct {
	cmd  *exec.Cmd
	addr chan string
	done chan error
}

// listenAddr waits for the address the instance's metrics listen on.
func (c *cronInstance) listenAddr(t *testing.T) string {
	t.Helper()
	select {
	case addr := <-c.addr:
		return addr
	case err := <-c.done:
		t.Fatalf("cron exited: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("cron did not say where it listens")
	}
	return ""
}

func startCron(t *testing.T, bin string, env []string, override ...string) *cronInstance {
	t.Helper()
	cmd := exec.Command(bin, "cron")
	// The last of a variable's values wins: override comes after the defaults here.
	cmd.Env = append(append(append(os.Environ(), env...),
		"REGIONMIRROR_SCHEDULES_PUSH=@every 1s", "REGIONMIRROR_SCHEDULES_SCAN=@every 1s", "REGIONMIRROR_SCHEDULES_GC=@every 2s",
		"REGIONMIRROR_CRON_LISTEN=127.0.0.1:0", "REGIONMIRROR_CRON_SHUTDOWN_TIMEOUT=20s"), override...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in := &cronInstance{cmd: cmd, addr: make(chan string, 1), done: make(chan error, 1)}
	addrRE := regexp.MustCompile(`msg="cron listening" addr=(\S+)`)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
				in.addr <- m[1]
			}
		}
		in.done <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	return in
}

// TestTwoCronInstancesNeverOverlap runs two real cron daemons on one database with a
// one-second schedule, kills one while it holds a region, and stops the other with
// SIGTERM. The runs table is the proof.
func TestTwoCronInstancesNeverOverlap(t *testing.T) {
	env, origin, _ := pushEnv(t)
	bin := filepath.Join(t.TempDir(), "regionmirror")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx := context.Background()
	d, err := db.Open(ctx, strings.TrimPrefix(env[0], "REGIONMIRROR_DATABASE_URL="), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	a, b := startCron(t, bin, env), startCron(t, bin, env)
	addr := b.listenAddr(t)
	if body := httpGet(t, "http://"+addr+"/healthz"); !strings.Contains(body, "ok") {
		t.Errorf("healthz: %q", body)
	}

	// Both instances work side by side for a while (each has finished runs of its own),
	// then a is killed while it holds a region (it has a run recorded as running).
	deadline := time.Now().Add(40 * time.Second)
	for {
		runs, _ := d.RecentRuns(ctx, "", 500)
		holding := false
		done := map[int]int{}
		for _, r := range runs {
			holding = holding || (r.Status == model.RunRunning && r.PID == a.cmd.Process.Pid)
			if r.Status == model.RunOK {
				done[r.PID]++
			}
		}
		if holding && done[a.cmd.Process.Pid] >= 3 && done[b.cmd.Process.Pid] >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the two instances did not both run jobs")
		}
		time.Sleep(5 * time.Millisecond)
	}
	a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.done
	killedAt := time.Now()
	// A change at the origin: a scheduled push skips a region synced with the origin, so
	// without one b would rightly have no push to run.
	if err := os.WriteFile(filepath.Join(origin, "after-the-kill.txt"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}

	// b takes over every region: the dead instance's locks went with its connections.
	deadline = time.Now().Add(20 * time.Second)
	for {
		runs, _ := d.RecentRuns(ctx, "", 200)
		took := map[string]bool{}
		for _, r := range runs {
			if r.PID == b.cmd.Process.Pid && r.Status == model.RunOK && r.StartedAt.After(killedAt) {
				took[r.Kind+"/"+r.RegionName] = true
			}
		}
		if took["push/eu-central-1"] && took["push/us-east-1"] && took["scan/eu-central-1"] && took["scan/us-east-1"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance b did not take over after the kill: %v", took)
		}
		time.Sleep(50 * time.Millisecond)
	}
	metrics := httpGet(t, "http://"+addr+"/metrics")
	if !strings.Contains(metrics, `regionmirror_cron_job_runs_total{outcome="ok",task="push"}`) {
		t.Errorf("metrics lack job counts:\n%.500s", metrics)
	}

	// SIGTERM: b stops taking jobs, lets the running one finish, exits 0.
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-b.done:
		if err != nil {
			t.Errorf("cron after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("cron did not stop after SIGTERM")
	}

	runs, err := d.RecentRuns(ctx, "", 10000)
	if err != nil {
		t.Fatal(err)
	}
	byJob := map[string][]model.Run{}
	pids := map[int]int{}
	for _, r := range runs {
		if r.Status == model.RunRunning && r.PID == b.cmd.Process.Pid {
			t.Errorf("run %d of the stopped instance left running", r.ID)
		}
		pids[r.PID]++
		if strings.HasPrefix(r.Error, "interrupted") || r.Status == model.RunRunning {
			continue // the killed instance's run: ended by the kill, closed by the next one
		}
		byJob[r.Kind+"/"+r.RegionName] = append(byJob[r.Kind+"/"+r.RegionName], r)
	}
	total := 0
	for job, rs := range byJob {
		sort.Slice(rs, func(i, j int) bool { return rs[i].StartedAt.Before(rs[j].StartedAt) })
		for i := 1; i < len(rs); i++ {
			if rs[i].StartedAt.Before(*rs[i-1].FinishedAt) {
				t.Errorf("%s: run %d (pid %d) started before run %d (pid %d) finished", job, rs[i].ID, rs[i].PID, rs[i-1].ID, rs[i-1].PID)
			}
		}
		total += len(rs)
	}
	if len(pids) < 2 || total < 8 {
		t.Errorf("too little happened to prove anything: %d runs from %d processes", total, len(pids))
	}
	t.Logf("%d runs by %d processes, none overlapping: %v", total, len(pids), fmt.Sprint(pids))
}

// TestCronReloadsOnSIGHUP runs the real cron daemon and sends what `systemctl reload`
// sends: it keeps running, applies a new schedule (a job it ran hourly now runs every
// second) and logs the reload; a broken configuration is logged and the one in use stays;
// SIGTERM still stops it cleanly (issue 12, defect 8: SIGHUP ended the process).
func TestCronReloadsOnSIGHUP(t *testing.T) {
	env := migratedEnv(t)
	origin := testenv.SampleOrigin(t, t.TempDir())
	dir := t.TempDir()
	fs := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(fs.Close)
	mustCLI(t, env, "region", "add", "us-east-1", "--dir", dir, "--public-url", fs.URL, "--country", "US")
	mustCLI(t, env, "repo", "add", "demo-1", "x86_64", "demo/1/x86_64/os")
	bin := buildBinary(t)
	cfgFile := filepath.Join(t.TempDir(), "regionmirror.yaml")
	write := func(s string) {
		if err := os.WriteFile(cfgFile, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const base = "origin:\n  path: %s\ncron:\n  listen: 127.0.0.1:0\nschedules:\n  push: \"@every 1h\"\n  gc: \"\"\n"
	write(fmt.Sprintf(base+"  scan: \"@every 1h\"\n", origin))
	cmd := exec.Command(bin, "cron")
	cmd.Env = append(append(os.Environ(), env...), "REGIONMIRROR_CONFIG="+cfgFile)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	stderr.waitFor(t, 1, `msg="cron listening"`)
	addr := regexp.MustCompile(`msg="cron listening" addr=(\S+)`).FindStringSubmatch(stderr.String())[1]
	alive := func(when string) {
		t.Helper()
		select {
		case err := <-exited:
			t.Fatalf("%s: cron exited: %v\n%s", when, err, stderr.String())
		default:
		}
		if body := httpGet(t, "http://"+addr+"/healthz"); !strings.Contains(body, "ok") {
			t.Fatalf("%s: healthz %q", when, body)
		}
	}
	alive("before SIGHUP")

	cmd.Process.Signal(syscall.SIGHUP)
	stderr.waitFor(t, 1, "msg=reloaded", "config=true", `scan="@every 1h"`)
	alive("after SIGHUP")
	if strings.Contains(stderr.String(), `msg="job done" job=scan`) {
		t.Fatal("scan ran before its schedule said so")
	}

	// A new schedule applies: scan every second.
	write(fmt.Sprintf(base+"  scan: \"@every 1s\"\n", origin))
	cmd.Process.Signal(syscall.SIGHUP)
	stderr.waitFor(t, 1, "msg=scheduled", "job=scan", `spec="@every 1s"`)
	stderr.waitFor(t, 2, "job=scan", "msg=\"job ") // done or failed: it ran, twice
	alive("after the new schedule")

	// A broken configuration: an error, and the schedules in use stay.
	write("push:\n  concurrency: 0\n")
	cmd.Process.Signal(syscall.SIGHUP)
	stderr.waitFor(t, 1, "level=ERROR", "configuration not reloaded; the one in use stays", "push.concurrency")
	stderr.waitFor(t, 1, "msg=reloaded", "config=false")
	stderr.waitFor(t, stderr.count("job=scan", "msg=\"job ")+2, "job=scan", "msg=\"job ") // still every second
	alive("after a broken configuration")

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("cron after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("cron did not stop on SIGTERM")
	}
}

// TestCronWatchesAndTakesTriggers runs the real cron daemon with push.watch: true: it
// registers as a watcher of the origin and claims coverage once its start push returned,
// serves POST /api/v1/push on cron.listen (refusing a request without a token, pushing
// on a good one), and SIGTERM removes its watcher record.
func TestCronWatchesAndTakesTriggers(t *testing.T) {
	env, origin, _ := pushEnv(t)
	const token = "cron-trigger-token-0123456789"
	cfgFile := filepath.Join(t.TempDir(), "regionmirror.yaml")
	// push.watch is a bool, which the environment cannot set: a file does.
	if err := os.WriteFile(cfgFile, []byte("push:\n  watch: true\n  watch_settle: 300ms\nserver:\n  admin_tokens: ["+config.HashToken(token)+"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := buildBinary(t)
	d := openTestDB(t, env)
	c := startCron(t, bin, append(env, "REGIONMIRROR_CONFIG="+cfgFile),
		"REGIONMIRROR_SCHEDULES_PUSH=@every 1h", "REGIONMIRROR_SCHEDULES_SCAN=", "REGIONMIRROR_SCHEDULES_GC=")
	addr := c.listenAddr(t)
	waitCovered(t, d, origin, c.done, nil)

	ctx := context.Background()
	post := func(auth string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/api/v1/push", strings.NewReader(`{"paths": ["demo/1/x86_64/os"]}`))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := post(""); code != http.StatusUnauthorized {
		t.Errorf("no token: %d %s", code, body)
	}
	triggered := time.Now()
	if code, body := post("Bearer " + token); code != http.StatusAccepted || !strings.Contains(body, `"queued":["demo/1/x86_64/os"]`) {
		t.Fatalf("trigger: %d %s", code, body)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		runs, _ := d.RecentRuns(ctx, "push", 100)
		n := 0
		for _, r := range runs {
			if r.PID == c.cmd.Process.Pid && r.Status == model.RunOK && r.StartedAt.After(triggered) {
				n++
			}
		}
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the trigger pushed %d regions, want 2", n)
		}
	}
	if m := httpGet(t, "http://"+addr+"/metrics"); !strings.Contains(m, `regionmirror_push_trigger_requests_total{code="202"} 1`) ||
		!strings.Contains(m, "regionmirror_watch_covering 1") {
		t.Errorf("metrics lack the watcher's:\n%.2000s", m)
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.done:
		if err != nil {
			t.Errorf("cron after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("cron did not stop after SIGTERM")
	}
	if cov, _ := d.WatchCoverage(ctx, origin, time.Hour); cov.Watchers != 0 {
		t.Errorf("a stopped cron still counts as a watcher: %+v", cov)
	}
}

// TestCronStartsTheWatcherAgain: a watch daemon that fails at its start (here the origin
// is not there yet) is started again, so the triggers cron accepts are pushed. Before,
// cron logged the failure once and went on answering 202 to triggers nobody pushed; and
// the watcher of a missing origin watched nothing yet claimed to see every change.
func TestCronStartsTheWatcherAgain(t *testing.T) {
	env, origin, _ := pushEnv(t)
	away := origin + ".away"
	if err := os.Rename(origin, away); err != nil {
		t.Fatal(err)
	}
	bin := buildBinary(t)
	d := openTestDB(t, env)
	c := startCron(t, bin, env, "REGIONMIRROR_PUSH_WATCH=true", "REGIONMIRROR_PUSH_WATCH_SETTLE=300ms",
		"REGIONMIRROR_SCHEDULES_PUSH=@every 1h", "REGIONMIRROR_SCHEDULES_SCAN=", "REGIONMIRROR_SCHEDULES_GC=")
	select {
	case <-c.addr:
	case err := <-c.done:
		t.Fatalf("cron exited: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("cron did not say where it listens")
	}
	time.Sleep(1500 * time.Millisecond) // the first start has failed by now
	if cov, err := d.WatchCoverage(context.Background(), origin, time.Minute); err != nil || cov.Since != nil {
		t.Fatalf("a watcher of a missing origin claims coverage: %+v, %v", cov, err)
	}
	if err := os.Rename(away, origin); err != nil {
		t.Fatal(err)
	}
	waitCovered(t, d, origin, c.done, nil)
	// The watches are real: a file written under the origin is recorded without any
	// scheduled push.
	if err := os.MkdirAll(filepath.Join(origin, "demo", "later"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(origin, "demo", "later", "f.txt"), []byte("later"), 0o644); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := d.GetFile(context.Background(), "demo/later/f.txt"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a file written under the watched origin was never pushed")
		}
	}
}

// TestCronMetricsExistFromTheStart: before any job ran, /metrics has every scheduled
// job's run counters (each outcome) and running gauge at 0, so alerts need no absent();
// an unscheduled job (gc here) has none, and no job has a last success yet.
func TestCronMetricsExistFromTheStart(t *testing.T) {
	env := migratedEnv(t)
	env = append(env, "REGIONMIRROR_ORIGIN_PATH="+testenv.SampleOrigin(t, t.TempDir()))
	c := startCron(t, buildBinary(t), env, "REGIONMIRROR_SCHEDULES_PUSH=@every 1h", "REGIONMIRROR_SCHEDULES_SCAN=@every 1h",
		"REGIONMIRROR_SCHEDULES_GC=")
	addr := c.listenAddr(t)
	body := httpGet(t, "http://"+addr+"/metrics")
	for _, job := range []string{"push", "scan"} {
		for _, want := range []string{
			`regionmirror_cron_job_runs_total{outcome="ok",task="` + job + `"} 0`,
			`regionmirror_cron_job_runs_total{outcome="failed",task="` + job + `"} 0`,
			`regionmirror_cron_job_running{task="` + job + `"} 0`,
		} {
			if !strings.Contains(body, want+"\n") {
				t.Errorf("/metrics before any job ran lacks %s", want)
			}
		}
	}
	if strings.Contains(body, `task="gc"`) || strings.Contains(body, "regionmirror_cron_job_last_success_timestamp_seconds{") {
		t.Errorf("/metrics has series of an unscheduled job or a success that did not happen:\n%s", body)
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	<-c.done
}

// TestPresetMetricsKeepsRunningJobs: a reload presets the metrics of every job again; a
// job running at that moment stays at running 1 (the preset set it to 0 before).
func TestPresetMetricsKeepsRunningJobs(t *testing.T) {
	c := &cronDaemon{
		runs:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "runs"}, []string{"task", "outcome"}),
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "running"}, []string{"task"}),
	}
	jobs := []cronJob{{name: "push"}, {name: "scan"}}
	c.presetMetrics(jobs)
	c.running.WithLabelValues("push").Set(1) // push runs
	c.runs.WithLabelValues("scan", "ok").Inc()
	c.presetMetrics(append(jobs, cronJob{name: "gc"})) // a reload scheduled gc
	got := gathered(t, c.runs, c.running)
	want := map[string]float64{"running,push": 1, "running,scan": 0, "running,gc": 0, "runs,ok,scan": 1,
		"runs,failed,scan": 0, "runs,ok,push": 0, "runs,failed,push": 0, "runs,ok,gc": 0, "runs,failed,gc": 0}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after the reload: %v, want %v", got, want)
	}
}

// gathered is the series of collectors: "name,label values..." -> value.
func gathered(t *testing.T, collectors ...prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors...)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetValue()
			}
			got[key] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return got
}

// TestForgetMetricsOfUnscheduledJobs: a reload that takes gc off the schedule removes its
// series (its failure would otherwise hold RegionmirrorJobFailing until a restart).
func TestForgetMetricsOfUnscheduledJobs(t *testing.T) {
	gauge := func(name string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name}, []string{"task"})
	}
	c := &cronDaemon{
		runs:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "runs"}, []string{"task", "outcome"}),
		running: gauge("running"), lastOK: gauge("ok_at"), lastFailed: gauge("failed_at"), duration: gauge("took"),
	}
	all := []cronJob{{name: "push"}, {name: "gc"}}
	c.presetMetrics(all)
	c.lastFailed.WithLabelValues("gc").Set(100)
	c.lastOK.WithLabelValues("push").Set(50)
	c.forgetMetrics(all, all[:1])
	got := gathered(t, c.runs, c.running, c.lastOK, c.lastFailed, c.duration)
	want := map[string]float64{"runs,ok,push": 0, "runs,failed,push": 0, "running,push": 0, "ok_at,push": 50}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after gc left the schedule: %v, want %v", got, want)
	}
}
