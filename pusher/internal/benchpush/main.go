package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"

	"github.com/regionmirror/regionmirror/internal/localpg"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

type options struct {
	files       int
	bytes       int64
	noopFiles   int
	noopSize    int64
	rounds      int
	noopRounds  int
	concurrency int
	seed        uint64
	skip        string
	profileDir  string
	keep        bool
}

func main() {
	var o options
	var size string
	flag.IntVar(&o.files, "files", 10000, "files in the push tree")
	flag.StringVar(&size, "size", "1GiB", "approximate size of the push tree (KiB, MiB, GiB)")
	flag.IntVar(&o.noopFiles, "noop-files", 100000, "files in the no-op tree (1 KiB each)")
	flag.IntVar(&o.rounds, "rounds", 1, "rounds of the 3-region push scenario (tools interleaved in each round)")
	flag.IntVar(&o.noopRounds, "noop-rounds", 3, "rounds of the no-op scenario (tools interleaved in each round)")
	flag.IntVar(&o.concurrency, "concurrency", 16, "regionmirror push.concurrency, rclone --transfers and --checkers, aws max_concurrent_requests")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the generated trees")
	flag.StringVar(&o.skip, "skip", "", "comma-separated parts to skip: push, noop, scan, aws, rclone (every rclone line), rclone-modtime")
	flag.StringVar(&o.profileDir, "profile", "", "also run regionmirror's full and no-op pushes in process with a CPU profile: DIR/push.cpu.pprof, DIR/noop.cpu.pprof")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (servers are stopped anyway)")
	flag.Parse()
	var err error
	if o.bytes, err = parseSize(size); err != nil {
		fmt.Fprintln(os.Stderr, "benchpush:", err)
		os.Exit(2)
	}
	o.noopSize = 1 << 10
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "benchpush:", err)
		os.Exit(1)
	}
}

func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"", 1}}
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			n, err := strconv.ParseFloat(strings.TrimSuffix(s, u.suffix), 64)
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("bad size %q", s)
			}
			return int64(n * float64(u.mult)), nil
		}
	}
	return 0, fmt.Errorf("bad size %q", s)
}

// bench is the environment of one benchmark run.
type bench struct {
	o        options
	tmp      string
	bin      string // regionmirror
	rclone   string
	aws      string
	pg       *localpg.Postgres
	servers  []*testenv.S3Server
	baseEnv  []string
	rcConf   string
	awsConf  string
	rmConf   string
	emptyAWS string
	seq      int
	results  []result
}

func (b *bench) skipped(part string) bool {
	for _, s := range strings.Split(b.o.skip, ",") {
		if strings.TrimSpace(s) == part {
			return true
		}
	}
	return false
}

func run(o options) (err error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	b := &bench{o: o}
	if !b.skipped("rclone") {
		if b.rclone, err = exec.LookPath("rclone"); err != nil {
			return errors.New("rclone not found: apt-get install -y rclone (or -skip rclone)")
		}
	}
	b.aws = "/usr/bin/aws" // Debian's awscli, not a pip copy elsewhere on PATH
	if _, err := os.Stat(b.aws); err != nil && !b.skipped("aws") {
		return errors.New("/usr/bin/aws not found: apt-get install -y awscli (or -skip aws)")
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if b.tmp, err = os.MkdirTemp("", "benchpush-"); err != nil {
		return err
	}
	// Stop the servers, then remove everything, whatever happened.
	defer func() {
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("interrupted: %w", err)
		}
		for _, s := range b.servers {
			s.Stop()
		}
		if b.pg != nil {
			b.pg.Stop()
		}
		if o.keep {
			fmt.Fprintf(os.Stderr, "kept %s\n", b.tmp)
		} else if rerr := os.RemoveAll(b.tmp); rerr != nil && err == nil {
			err = rerr
		}
	}()
	logf("temporary directory %s", b.tmp)

	b.bin = filepath.Join(b.tmp, "bin", "regionmirror")
	build := exec.CommandContext(ctx, "go", "build", "-o", b.bin, "./cmd/regionmirror")
	build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build regionmirror: %w", err)
	}
	if err := b.writeConfigs(); err != nil {
		return err
	}

	logf("starting PostgreSQL and 3 versitygw servers")
	if b.pg, err = localpg.Start(filepath.Join(b.tmp, "pg")); err != nil {
		return err
	}
	for _, name := range []string{"a", "b", "c"} {
		s, err := testenv.StartS3(filepath.Join(b.tmp, "s3-"+name))
		if err != nil {
			return err
		}
		b.servers = append(b.servers, s)
	}

	if !b.skipped("push") {
		if err := b.pushScenario(ctx); err != nil {
			return err
		}
	}
	if !b.skipped("noop") {
		if err := b.noopScenario(ctx); err != nil {
			return err
		}
	}
	b.printTable(os.Stdout)
	return nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run from inside the regionmirror module")
	}
	return filepath.Dir(mod), nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s benchpush: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// writeConfigs writes private configuration files so that nothing from the machine's or
// the user's AWS, rclone or regionmirror configuration leaks into the measurement.
func (b *bench) writeConfigs() error {
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "REGIONMIRROR_") || strings.HasPrefix(k, "RCLONE_") ||
			(strings.HasPrefix(k, "AWS_") && k != "AWS_CA_BUNDLE") {
			continue
		}
		b.baseEnv = append(b.baseEnv, kv)
	}
	b.baseEnv = append(b.baseEnv, "AWS_ACCESS_KEY_ID="+testenv.S3AccessKey, "AWS_SECRET_ACCESS_KEY="+testenv.S3SecretKey)
	conf := filepath.Join(b.tmp, "conf")
	if err := os.MkdirAll(conf, 0o755); err != nil {
		return err
	}
	b.rcConf = filepath.Join(conf, "rclone.conf")
	b.awsConf = filepath.Join(conf, "aws-cli.config")
	b.emptyAWS = filepath.Join(conf, "aws-empty.config")
	b.rmConf = filepath.Join(conf, "regionmirror.yaml")
	n := b.o.concurrency
	files := map[string]string{
		b.rcConf: "",
		// Match regionmirror: n requests in flight, multipart above 64 MiB in 16 MiB parts.
		b.awsConf: fmt.Sprintf("[default]\nregion = %s\ns3 =\n  max_concurrent_requests = %d\n  multipart_threshold = 64MB\n  multipart_chunksize = 16MB\n",
			testenv.S3Region, n),
		b.emptyAWS: "",
		b.rmConf:   "log:\n  level: warn\n",
	}
	for p, s := range files {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// measured is one command's figures.
type measured struct {
	Wall   time.Duration
	CPU    time.Duration // user + system of the command and the children it waited for
	MaxRSS int64         // bytes
}

func (m *measured) add(n measured) {
	m.Wall += n.Wall
	m.CPU += n.CPU
	m.MaxRSS = max(m.MaxRSS, n.MaxRSS)
}

// runCmd runs a command with env, returning its figures; stdout goes to out when not nil.
func runCmd(ctx context.Context, env []string, out io.Writer, name string, args ...string) (measured, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = out, &stderr
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	err := cmd.Run()
	m := measured{Wall: time.Since(start)}
	if cmd.ProcessState != nil {
		m.CPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			m.MaxRSS = ru.Maxrss << 10 // KiB on Linux
		}
	}
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 3000 {
			msg = msg[len(msg)-3000:]
		}
		return m, fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, msg)
	}
	if s := strings.TrimSpace(stderr.String()); s != "" {
		logf("%s wrote on stderr: %.500s", filepath.Base(name), s)
	}
	return m, nil
}

// newBuckets creates one public-read bucket named name on each server.
func (b *bench) newBuckets(ctx context.Context, name string, servers []*testenv.S3Server) error {
	for _, s := range servers {
		c := s.Client()
		if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
			return fmt.Errorf("create bucket %s on %s: %w", name, s.Endpoint, err)
		}
		if _, err := c.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(name),
			Policy: aws.String(testenv.PublicReadPolicy(name))}); err != nil {
			return fmt.Errorf("bucket policy %s on %s: %w", name, s.Endpoint, err)
		}
	}
	return nil
}

// dropBuckets removes the buckets: versitygw's posix backend keeps a bucket as a
// directory of its data directory, so removing that is the quick way to free the space.
func (b *bench) dropBuckets(name string, servers []*testenv.S3Server) error {
	for _, s := range servers {
		if err := os.RemoveAll(filepath.Join(s.Dir, "s3data", name)); err != nil {
			return err
		}
	}
	return nil
}

// countObjects lists a bucket and counts its objects and bytes.
func countObjects(ctx context.Context, s *testenv.S3Server, bucket string) (int, int64, error) {
	c := s.Client()
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	n, size := 0, int64(0)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return 0, 0, fmt.Errorf("list %s: %w", bucket, err)
		}
		for _, o := range page.Contents {
			n++
			size += aws.ToInt64(o.Size)
		}
	}
	return n, size, nil
}

// newDatabase creates a fresh database and returns its URL.
func (b *bench) newDatabase(ctx context.Context) (string, error) {
	b.seq++
	name := fmt.Sprintf("bench%d", b.seq)
	conn, err := pgx.Connect(ctx, b.pg.AdminURL())
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	return b.pg.URL(name), nil
}

// rmEnv is regionmirror's environment for a database and origin.
func (b *bench) rmEnv(dbURL, origin string) []string {
	return append(append([]string{}, b.baseEnv...),
		"REGIONMIRROR_CONFIG="+b.rmConf,
		"REGIONMIRROR_DATABASE_URL="+dbURL,
		"REGIONMIRROR_ORIGIN_PATH="+origin,
		"REGIONMIRROR_PUSH_CONCURRENCY="+strconv.Itoa(b.o.concurrency),
		"AWS_CONFIG_FILE="+b.emptyAWS,
		"AWS_SHARED_CREDENTIALS_FILE="+b.emptyAWS,
	)
}

// setupRegionmirror creates a database with the regions (one per server, bucket bucket)
// and repositories registered; it returns the environment to run regionmirror in.
func (b *bench) setupRegionmirror(ctx context.Context, origin, bucket string, servers []*testenv.S3Server, repos []repoSpec) ([]string, error) {
	dbURL, err := b.newDatabase(ctx)
	if err != nil {
		return nil, err
	}
	env := b.rmEnv(dbURL, origin)
	cmds := [][]string{{"migrate"}}
	for i, s := range servers {
		cmds = append(cmds, []string{"region", "add", fmt.Sprintf("bench-%c", 'a'+i), "--bucket", bucket,
			"--endpoint", s.Endpoint, "--public-url", s.Endpoint + "/" + bucket})
	}
	for _, r := range repos {
		cmds = append(cmds, []string{"repo", "add", r.Name, r.Arch, r.Dir})
	}
	for _, c := range cmds {
		if _, err := runCmd(ctx, env, io.Discard, b.bin, c...); err != nil {
			return nil, err
		}
	}
	return env, nil
}

// pushJSON is the part of `regionmirror push --json` the benchmark checks.
type pushJSON struct {
	Inventory struct {
		Files    int   `json:"Files"`
		Hashed   int   `json:"Hashed"`
		Duration int64 `json:"Duration"`
	} `json:"inventory"`
	Regions []struct {
		Region   string `json:"region"`
		Status   string `json:"status"`
		Uploaded int    `json:"uploaded_files"`
		UpToDate int    `json:"up_to_date"`
		Failed   int    `json:"failed_files"`
		Error    string `json:"error"`
		Duration int64  `json:"duration_ns"`
		Skipped  bool   `json:"skipped"`
	} `json:"regions"`
	Noop bool   `json:"noop"`
	Note string `json:"note"`
}

// push runs `regionmirror push --json` (with args) and checks that every region is ok.
func (b *bench) push(ctx context.Context, env []string, args ...string) (measured, *pushJSON, error) {
	var out strings.Builder
	m, err := runCmd(ctx, env, &out, b.bin, append([]string{"push", "--json"}, args...)...)
	if err != nil {
		return m, nil, err
	}
	var res pushJSON
	if err := json.Unmarshal([]byte(out.String()), &res); err != nil {
		return m, nil, fmt.Errorf("push --json: %w: %.300s", err, out.String())
	}
	for _, r := range res.Regions {
		if r.Status != "ok" {
			return m, nil, fmt.Errorf("push to %s: %s: %s", r.Region, r.Status, r.Error)
		}
	}
	return m, &res, nil
}

// rcloneEnv configures one rclone remote per server, named r0, r1, r2.
func (b *bench) rcloneEnv() []string {
	env := []string{}
	for _, kv := range b.baseEnv {
		// rclone 1.60 fails on every S3 remote when AWS_CA_BUNDLE is set (TESTING.md).
		if !strings.HasPrefix(kv, "AWS_CA_BUNDLE=") {
			env = append(env, kv)
		}
	}
	env = append(env, "RCLONE_CONFIG="+b.rcConf)
	for i, s := range b.servers {
		p := fmt.Sprintf("RCLONE_CONFIG_R%d_", i)
		env = append(env, p+"TYPE=s3", p+"PROVIDER=Other", p+"ENV_AUTH=false",
			p+"ACCESS_KEY_ID="+testenv.S3AccessKey, p+"SECRET_ACCESS_KEY="+testenv.S3SecretKey,
			p+"ENDPOINT="+s.Endpoint, p+"REGION="+testenv.S3Region, p+"FORCE_PATH_STYLE=true")
	}
	return env
}

// rcloneArgs are the flags of every rclone sync: concurrency and multipart settings
// matching regionmirror's (rclone's defaults: 4 transfers, 8 checkers, single PUT up to
// 200 MiB, 5 MiB parts).
func (b *bench) rcloneArgs(checksum bool, src, dst string) []string {
	n := strconv.Itoa(b.o.concurrency)
	args := []string{"sync", "-q", "--transfers", n, "--checkers", n, "--s3-upload-cutoff", "64M", "--s3-chunk-size", "16M", "--s3-no-check-bucket"}
	if checksum {
		args = append(args, "--checksum")
	}
	return append(args, src, dst)
}

func (b *bench) awsEnv() []string {
	return append(append([]string{}, b.baseEnv...), "AWS_CONFIG_FILE="+b.awsConf,
		"AWS_SHARED_CREDENTIALS_FILE="+b.emptyAWS, "AWS_DEFAULT_REGION="+testenv.S3Region, "AWS_PAGER=")
}

func (b *bench) awsArgs(src, bucket string, s *testenv.S3Server) []string {
	return []string{"s3", "sync", "--only-show-errors", "--no-progress", "--endpoint-url", s.Endpoint, src, "s3://" + bucket}
}

// result is one row of the table.
type result struct {
	scenario, tool string
	m              measured
	note           string
	baseline       bool // regionmirror: the row the ratios of its scenario refer to
	round          int
}

func (b *bench) record(r result) {
	b.results = append(b.results, r)
	logf("%-5s round %d %-40s %7.2fs wall %7.2fs cpu %6.0f MiB peak RSS %s", r.scenario, r.round, r.tool,
		r.m.Wall.Seconds(), r.m.CPU.Seconds(), float64(r.m.MaxRSS)/(1<<20), r.note)
}

func (b *bench) printTable(w io.Writer) {
	fmt.Fprintf(w, "\nmachine: %s, %d CPUs, %s; concurrency %d\n", runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU(), time.Now().Format(time.DateOnly), b.o.concurrency)
	fmt.Fprintf(w, "%-8s %-5s %-52s %9s %9s %9s %12s  %s\n", "SCENARIO", "ROUND", "TOOL", "WALL s", "CPU s", "RATIO", "PEAK RSS MiB", "NOTE")
	for _, r := range b.results {
		var base *result
		for i := range b.results {
			if b.results[i].baseline && b.results[i].scenario == r.scenario && b.results[i].round == r.round {
				base = &b.results[i]
			}
		}
		ratio := "-"
		if base != nil && base.m.Wall > 0 {
			ratio = fmt.Sprintf("%.2fx", r.m.Wall.Seconds()/base.m.Wall.Seconds())
		}
		fmt.Fprintf(w, "%-8s %-5d %-52s %9.2f %9.2f %9s %12.0f  %s\n", r.scenario, r.round, r.tool, r.m.Wall.Seconds(),
			r.m.CPU.Seconds(), ratio, float64(r.m.MaxRSS)/(1<<20), r.note)
	}
	fmt.Fprintln(w, "RATIO: wall time / regionmirror's wall time in the same scenario and round (above 1: regionmirror faster).")
}
