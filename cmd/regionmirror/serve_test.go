package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
)

// servedEnv is a database with two regions and the demo repository, current in
// us-east-1 and stale in eu-central-1.
func servedEnv(t *testing.T) []string {
	t.Helper()
	env := migratedEnv(t)
	mustCLI(t, env, "region", "add", "us-east-1", "--bucket", "m-use1", "--public-url", "https://m-use1.example",
		"--country", "US", "--lat", "38.9", "--lon", "-77.4", "--alias", "virginia")
	mustCLI(t, env, "region", "add", "eu-central-1", "--bucket", "m-euc1", "--public-url", "https://m-euc1.example",
		"--country", "DE", "--lat", "50.1", "--lon", "8.7")
	mustCLI(t, env, "repo", "add", "demo-1", "x86_64", "demo/1/x86_64/os")
	ctx := context.Background()
	d, err := db.Open(ctx, getenv(env, "REGIONMIRROR_DATABASE_URL"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	repo, _ := d.GetRepository(ctx, "demo-1", "x86_64")
	body := []byte("<repomd/>")
	m, s1, s2, s5 := md5.Sum(body), sha1.Sum(body), sha256.Sum256(body), sha512.Sum512(body)
	if _, err := d.RecordRepomdVersion(ctx, &model.RepomdVersion{RepositoryID: repo.ID, MD5: m[:], SHA1: s1[:], SHA256: s2[:], SHA512: s5[:], Size: 9, Timestamp: 1700000000}); err != nil {
		t.Fatal(err)
	}
	use1, _ := d.GetRegion(ctx, "us-east-1")
	euc1, _ := d.GetRegion(ctx, "eu-central-1")
	if err := d.SetRegionRepo(ctx, db.NoFence, model.RegionRepo{RegionID: use1.ID, RepositoryID: repo.ID, RepomdSHA256: s2[:], State: model.RepoFresh}); err != nil {
		t.Fatal(err)
	}
	if err := d.SetRegionRepo(ctx, db.NoFence, model.RegionRepo{RegionID: euc1.ID, RepositoryID: repo.ID, State: model.RepoStale, Error: "serves an unknown repomd.xml"}); err != nil {
		t.Fatal(err)
	}
	return env
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// served is a `regionmirror serve` running in the test process (startServe).
type served struct {
	base   string        // http://host:port
	stderr *lockedBuffer // its log
	// stop shuts it down and waits for it (at most 15 s), reporting a failed or hung
	// shutdown as a test error; the test's cleanup calls it too, so it is idempotent.
	stop func()
}

// startServe runs `regionmirror serve` with env on a free address and returns once it is
// ready; it stops when the test ends, if not before.
func startServe(t *testing.T, env []string) *served {
	t.Helper()
	addr := freeAddr(t)
	env = append(env[:len(env):len(env)], "REGIONMIRROR_SERVER_LISTEN="+addr)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	srv := &served{base: "http://" + addr, stderr: &lockedBuffer{}}
	go func() { done <- run(ctx, []string{"serve"}, strings.NewReader(""), io.Discard, srv.stderr, env) }()
	var once sync.Once
	srv.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case code := <-done:
				if code != 0 {
					t.Errorf("serve exited %d: %s", code, srv.stderr.String())
				}
			case <-time.After(15 * time.Second):
				t.Error("serve did not shut down")
			}
		})
	}
	t.Cleanup(srv.stop)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if res, err := http.Get(srv.base + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return srv
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve never became ready; stderr:\n%s", srv.stderr.String())
		}
	}
}

func TestServeCommand(t *testing.T) {
	env := append(servedEnv(t), "REGIONMIRROR_ORIGIN_URL=https://dl.example.org/pub",
		"REGIONMIRROR_SERVER_GEOIP_DATABASE=../../testdata/geoip/regionmirror-test-city.mmdb")
	srv := startServe(t, env)
	base := srv.base
	res, err := http.Get(base + "/mirrorlist?repo=demo-1&arch=x86_64")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	// The stale region is left out; the origin comes last.
	want := "# repo = demo-1 arch = x86_64 \nhttps://m-use1.example/demo/1/x86_64/os/\nhttps://dl.example.org/pub/demo/1/x86_64/os/\n"
	if string(body) != want {
		t.Errorf("mirrorlist:\n%s\nwant:\n%s", body, want)
	}
	srv.stop() // the request log is complete once serve has shut down
	if log := srv.stderr.String(); !strings.Contains(log, "msg=request") || !strings.Contains(log, "geoip database loaded") {
		t.Errorf("log lacks requests or the GeoIP database:\n%s", log)
	}
}

// The request log of serve as shipped: JSON lines when log.format is json, with what an
// operator needs of each request, written once serve has answered (batched), counted in
// /metrics; log.access false leaves only server errors.
func TestServeRequestLog(t *testing.T) {
	env := append(servedEnv(t), "REGIONMIRROR_LOG_FORMAT=json")
	srv := startServe(t, env)
	get := func(path string) string {
		res, err := http.Get(srv.base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return string(b)
	}
	get("/mirrorlist?repo=demo-1&arch=x86_64&location=virginia")
	get("/metalink?repo=nosuch&arch=x86_64")
	if m := get("/metrics"); !strings.Contains(m, "regionmirror_access_log_written_total") || !strings.Contains(m, "regionmirror_access_log_dropped_total 0") {
		t.Errorf("metrics lack the request log's counters")
	}
	srv.stop()
	type line struct {
		Msg, Level, Method, URI, Client, Peer, Endpoint, Region, Tier, Agent string
		Status                                                               int
		Took                                                                 int64
		Time                                                                 time.Time
	}
	var requests []line
	stopped := false
	for _, raw := range strings.Split(strings.TrimSpace(srv.stderr.String()), "\n") {
		var l line
		if err := json.Unmarshal([]byte(raw), &l); err != nil {
			t.Fatalf("not a JSON line: %q: %v", raw, err)
		}
		if l.Msg == "stopped" {
			stopped = true
		}
		if l.Msg == "request" && stopped {
			t.Errorf("a request logged after serve said it stopped: %q", raw)
		}
		if l.Msg == "request" && l.Endpoint != "readyz" {
			requests = append(requests, l)
		}
	}
	if len(requests) != 3 {
		t.Fatalf("%d request lines, want 3:\n%s", len(requests), srv.stderr.String())
	}
	ml, bad := requests[0], requests[1]
	if ml.Level != "INFO" || ml.Method != "GET" || ml.URI != "/mirrorlist?repo=demo-1&arch=x86_64&location=virginia" ||
		ml.Status != 200 || ml.Endpoint != "mirrorlist" || ml.Region != "us-east-1" || ml.Tier != "location" ||
		ml.Client != "127.0.0.1" || !strings.HasPrefix(ml.Peer, "127.0.0.1:") || ml.Took <= 0 || ml.Agent == "" ||
		time.Since(ml.Time) > time.Minute {
		t.Errorf("mirrorlist line %+v", ml)
	}
	if bad.Status != 404 || bad.Endpoint != "metalink" || bad.Region != "-" || bad.Client != "127.0.0.1" {
		t.Errorf("unknown repository line %+v", bad)
	}

	srv = startServe(t, append(env, "REGIONMIRROR_LOG_ACCESS=false"))
	get("/mirrorlist?repo=demo-1&arch=x86_64")
	srv.stop()
	if strings.Contains(srv.stderr.String(), `"endpoint":"mirrorlist"`) {
		t.Errorf("log.access false logged a request:\n%s", srv.stderr.String())
	}
}

func TestExplain(t *testing.T) {
	env := servedEnv(t)
	env = append(env, "REGIONMIRROR_SERVER_GEOIP_DATABASE=../../testdata/geoip/regionmirror-test-city.mmdb")
	out := mustCLI(t, env, "explain", "--repo", "demo-1", "--arch", "x86_64", "--ip", "127.0.0.1")
	for _, want := range []string{
		"repository demo-1/x86_64 (demo/1/x86_64/os)",
		"ip=127.0.0.1 (GeoIP: country DE, continent EU, at 50.11,8.68)",
		"tier: geoip",
		"1.  us-east-1",
		"https://m-use1.example/demo/1/x86_64/os/repodata/repomd.xml",
		"left out:",
		"eu-central-1  serves a stale repomd.xml: serves an unknown repomd.xml",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explain lacks %q:\n%s", want, out)
		}
	}
	out = mustCLI(t, env, "explain", "--path", "demo/1/x86_64/os/repodata/repomd.xml", "--location", "VIRGINIA")
	if !strings.Contains(out, "names region us-east-1") || !strings.Contains(out, "us-east-1     the origin has no such file") {
		t.Errorf("explain --path:\n%s", out)
	}
	for _, args := range [][]string{
		{"explain"},
		{"explain", "--repo", "demo-1"},
		{"explain", "--repo", "demo-1", "--arch", "x86_64", "--path", "x"},
		{"explain", "--repo", "nope", "--arch", "x86_64"},
		{"explain", "--path", "x", "--ip", "not-an-ip"},
		{"explain", "--path", "x", "--country", "XX"},
	} {
		if _, errs, code := cli(t, env, args...); code != exitBadInput {
			t.Errorf("%v: exit %d %s", args, code, errs)
		}
	}
}

func TestImportAWSRanges(t *testing.T) {
	env := migratedEnv(t)
	mustCLI(t, env, "region", "add", "us-east-1", "--bucket", "m-use1", "--public-url", "https://m-use1.example", "--netblock", "192.0.2.0/24")
	mustCLI(t, env, "region", "add", "lab", "--dir", "/srv/lab", "--public-url", "http://lab.example")
	file := filepath.Join(t.TempDir(), "ip-ranges.json")
	ranges := `{"syncToken":"1","createDate":"2026-11-21-12-00-00","prefixes":[
	 {"ip_prefix":"3.5.140.0/22","region":"ap-northeast-2","service":"EC2","network_border_group":"ap-northeast-2"},
	 {"ip_prefix":"44.192.0.0/11","region":"us-east-1","service":"EC2","network_border_group":"us-east-1"},
	 {"ip_prefix":"44.192.0.0/11","region":"us-east-1","service":"AMAZON","network_border_group":"us-east-1"},
	 {"ip_prefix":"52.4.0.0/14","region":"us-east-1","service":"EC2","network_border_group":"us-east-1"},
	 {"ip_prefix":"52.4.0.0/14","region":"us-east-1","service":"EC2","network_border_group":"us-east-1"},
	 {"ip_prefix":"52.94.0.0/22","region":"us-east-1","service":"S3","network_border_group":"us-east-1"}],
	 "ipv6_prefixes":[{"ipv6_prefix":"2600:1f18::/33","region":"us-east-1","service":"EC2","network_border_group":"us-east-1"}]}`
	if err := os.WriteFile(file, []byte(ranges), 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, env)
	out := mustCLI(t, env, "region", "import-aws-ranges", file, "--dry-run")
	if !strings.Contains(out, "us-east-1: would set 3 netblocks (3 added, 1 removed)") || !strings.Contains(out, "lab: no EC2 prefixes") ||
		!strings.Contains(out, "dry run: 1 regions would change") {
		t.Errorf("dry run:\n%s", out)
	}
	if snapshot(t, env) != before {
		t.Error("dry run wrote")
	}
	out = mustCLI(t, env, "region", "import-aws-ranges", file)
	if !strings.Contains(out, "us-east-1: set 3 netblocks") {
		t.Errorf("import:\n%s", out)
	}
	show := mustCLI(t, env, "region", "show", "us-east-1", "--json")
	for _, want := range []string{`"44.192.0.0/11"`, `"52.4.0.0/14"`, `"2600:1f18::/33"`} {
		if !strings.Contains(show, want) || strings.Contains(show, "192.0.2.0/24") {
			t.Errorf("region after import lacks %s or keeps the old netblock:\n%s", want, show)
		}
	}
	if out := mustCLI(t, env, "region", "import-aws-ranges", file); !strings.Contains(out, "us-east-1: 3 netblocks, unchanged") {
		t.Errorf("second import:\n%s", out)
	}
	if err := os.WriteFile(file, []byte(`{"foo": 1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errs, code := cli(t, env, "region", "import-aws-ranges", file); code != exitBadInput || !strings.Contains(errs, "not AWS ip-ranges.json") {
		t.Errorf("bad file: %d %s", code, errs)
	}
	if _, _, code := cli(t, env, "region", "import-aws-ranges", file+".missing"); code != exitBadInput {
		t.Errorf("missing file: %d", code)
	}
}

// lockedBuffer is a process's stderr, read while the process writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// count is how many lines of the log contain every one of want.
func (l *lockedBuffer) count(want ...string) int {
	n := 0
	for line := range strings.SplitSeq(l.String(), "\n") {
		all := true
		for _, w := range want {
			all = all && strings.Contains(line, w)
		}
		if all {
			n++
		}
	}
	return n
}

// waitFor waits until the log has n lines containing every one of want.
func (l *lockedBuffer) waitFor(t *testing.T, n int, want ...string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if l.count(want...) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %d log lines with %q:\n%s", n, want, l.String())
		}
	}
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "regionmirror")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestServeReloadsOnSIGHUP runs the real binary as systemd does and sends what
// `systemctl reload` sends: serve keeps answering, reloads the configuration (the new log
// level applies), the GeoIP database and the snapshot, and logs it; a broken configuration
// is logged and the one in use stays. Then SIGTERM still stops it cleanly (issue 12,
// defect 8: SIGHUP ended the process).
func TestServeReloadsOnSIGHUP(t *testing.T) {
	env := servedEnv(t)
	bin := buildBinary(t)
	cfgFile := filepath.Join(t.TempDir(), "regionmirror.yaml")
	write := func(s string) {
		if err := os.WriteFile(cfgFile, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("log:\n  level: info\n")
	addr := freeAddr(t)
	cmd := exec.Command(bin, "serve", "--access-log=false")
	cmd.Env = append(append(os.Environ(), env...), "REGIONMIRROR_CONFIG="+cfgFile, "REGIONMIRROR_SERVER_LISTEN="+addr,
		"REGIONMIRROR_SERVER_GEOIP_DATABASE=../../testdata/geoip/regionmirror-test-city.mmdb")
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	stderr.waitFor(t, 1, `msg=serving`)
	base := "http://" + addr
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if res, err := http.Get(base + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready:\n%s", stderr.String())
		}
	}
	answers := func(when string) {
		t.Helper()
		select {
		case err := <-exited:
			t.Fatalf("%s: serve exited: %v\n%s", when, err, stderr.String())
		default:
		}
		res, err := http.Get(base + "/metalink?repo=demo-1&arch=x86_64")
		if err != nil {
			t.Fatalf("%s: %v\n%s", when, err, stderr.String())
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s: metalink %s", when, res.Status)
		}
	}
	answers("before SIGHUP")

	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	stderr.waitFor(t, 1, "msg=reloaded", "config=true", "log_level=INFO", "geoip=true", "snapshot=true")
	answers("after SIGHUP")

	// A new log level applies.
	write("log:\n  level: debug\n")
	cmd.Process.Signal(syscall.SIGHUP)
	stderr.waitFor(t, 1, "msg=reloaded", "config=true", "log_level=DEBUG")
	stderr.waitFor(t, 1, "level=DEBUG", "snapshot rebuilt")
	answers("after the log level changed")

	// A broken configuration: an error, and the one in use stays (still debug).
	write("push:\n  concurrency: 0\n")
	cmd.Process.Signal(syscall.SIGHUP)
	stderr.waitFor(t, 1, "level=ERROR", "configuration not reloaded; the one in use stays", "push.concurrency")
	stderr.waitFor(t, 1, "msg=reloaded", "config=false", "log_level=DEBUG", "snapshot=true")
	answers("after a broken configuration")

	// Several at once, while requests are answered.
	for range 5 {
		cmd.Process.Signal(syscall.SIGHUP)
		answers("during reloads")
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("serve after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
}

// TestServeReloadsTLSOnSIGHUP: a reload picks up server.tls_cert and server.tls_key
// naming another pair (the real binary, as systemd runs it), without dropping the
// listener; a pair that does not load is logged and the one in use stays.
func TestServeReloadsTLSOnSIGHUP(t *testing.T) {
	env := servedEnv(t)
	bin := buildBinary(t)
	dir := t.TempDir()
	pair := func(name string) (string, string) {
		return filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	}
	c1, k1 := pair("first")
	pool1 := selfSigned(t, c1, k1, "first")
	c2, k2 := pair("second")
	pool2 := selfSigned(t, c2, k2, "second")
	cfgFile := filepath.Join(dir, "regionmirror.yaml")
	write := func(cert, key string) {
		if err := os.WriteFile(cfgFile, []byte("server:\n  tls_cert: "+cert+"\n  tls_key: "+key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(c1, k1)
	addr := freeAddr(t)
	cmd := exec.Command(bin, "serve", "--access-log=false")
	cmd.Env = append(append(os.Environ(), env...), "REGIONMIRROR_CONFIG="+cfgFile, "REGIONMIRROR_SERVER_LISTEN="+addr)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	get := func(pool *x509.CertPool) (string, error) {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
			TLSClientConfig: &tls.Config{RootCAs: pool}}}
		res, err := c.Get("https://" + addr + "/healthz")
		if err != nil {
			return "", err
		}
		defer res.Body.Close()
		return res.TLS.PeerCertificates[0].Subject.CommonName, nil
	}
	serves := func(pool *x509.CertPool, want string) {
		t.Helper()
		var cn string
		var err error
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if cn, err = get(pool); err == nil && cn == want {
				return
			}
		}
		t.Fatalf("want certificate %q, got %q %v\n%s", want, cn, err, stderr.String())
	}
	serves(pool1, "first")
	write(c2, k2)
	cmd.Process.Signal(syscall.SIGHUP)
	stderr.waitFor(t, 1, "msg=reloaded", "config=true", "tls=true")
	serves(pool2, "second")
	write(filepath.Join(dir, "nonexistent.pem"), k2)
	cmd.Process.Signal(syscall.SIGHUP)
	stderr.waitFor(t, 1, "level=ERROR", "TLS certificate not reloaded; the one in use stays")
	stderr.waitFor(t, 1, "msg=reloaded", "tls=false")
	serves(pool2, "second")
}

// failingListener fails every Accept, as a listener whose socket went away does.
type failingListener struct{ net.Listener }

func (failingListener) Accept() (net.Conn, error) {
	return nil, errors.New("accept: the socket is gone")
}

// TestServeReturnsWhenTheListenerFails: serve returns the listener's error at once; its
// reload goroutine and prober waited for a signal that never came, and serve hung.
func TestServeReturnsWhenTheListenerFails(t *testing.T) {
	env := servedEnv(t)
	var stderr lockedBuffer
	a := &app{stdout: io.Discard, stderr: &stderr, environ: env}
	if _, err := a.loadConfig(); err != nil {
		t.Fatal(err)
	}
	d, err := a.openDB(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan error, 1)
	go func() { done <- a.serve(context.Background(), d, failingListener{l}, false, nil) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "the socket is gone") {
			t.Errorf("serve returned %v, want the listener's error", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not return after its listener failed:\n%s", stderr.String())
	}
}
