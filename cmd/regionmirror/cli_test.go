package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// cli runs one command line in-process, as main would.
func cli(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(""), &out, &errb, env)
	return out.String(), errb.String(), code
}

// migratedEnv returns the environment of a CLI pointed at a fresh, migrated database.
func migratedEnv(t *testing.T) []string {
	t.Helper()
	env := []string{"REGIONMIRROR_DATABASE_URL=" + testenv.NewDatabase(t)}
	if out, errs, code := cli(t, env, "migrate"); code != 0 {
		t.Fatalf("migrate: %d %s %s", code, out, errs)
	}
	return env
}

func mustCLI(t *testing.T, env []string, args ...string) string {
	t.Helper()
	out, errs, code := cli(t, env, args...)
	if code != 0 {
		t.Fatalf("regionmirror %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

func TestMigrateThenCommandsRun(t *testing.T) {
	env := []string{"REGIONMIRROR_DATABASE_URL=" + testenv.NewDatabase(t)}
	_, errs, code := cli(t, env, "region", "list")
	if code != exitBadInput || !strings.Contains(errs, "run `regionmirror migrate`") {
		t.Fatalf("unmigrated database: exit %d, stderr %q", code, errs)
	}
	if out := mustCLI(t, env, "migrate"); !strings.Contains(out, "applied 0001_initial") {
		t.Errorf("migrate printed %q", out)
	}
	if out := mustCLI(t, env, "migrate"); !strings.Contains(out, "up to date") {
		t.Errorf("second migrate printed %q", out)
	}
	mustCLI(t, env, "region", "list")
}

func TestRegionLifecycle(t *testing.T) {
	env := migratedEnv(t)
	mustCLI(t, env, "region", "add", "us-east-1", "--bucket", "mirror-us-east-1",
		"--public-url", "https://mirror-us-east-1.s3.us-east-1.amazonaws.com/", "--country", "us",
		"--lat", "38.9", "--lon", "-77.4", "--alias", "use1,virginia", "--netblock", "3.5.0.0/16",
		"--netblock", "2600:1f18::/36", "--credentials", "mirror-writer", "--concurrency", "32")
	mustCLI(t, env, "region", "add", "lab", "--dir", "/srv/mirror/lab", "--public-url", "http://127.0.0.1:8081/lab",
		"--country", "DE", "--weight", "10", "--location-only", "--include", "fedora", "--include", "epel/9")

	out := mustCLI(t, env, "region", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") || !strings.HasPrefix(lines[1], "lab ") || !strings.HasPrefix(lines[2], "us-east-1 ") {
		t.Fatalf("region list:\n%s", out)
	}
	// Aligned: every column starts at the same offset in every line.
	col := strings.Index(lines[0], "KIND")
	for _, l := range lines[1:] {
		if l[col-2:col] != "  " || l[col] == ' ' {
			t.Errorf("column KIND not aligned in %q", l)
		}
	}
	if !strings.Contains(lines[1], "location-only") || !strings.Contains(lines[2], "s3://mirror-us-east-1") {
		t.Errorf("list rows: %q", lines[1:])
	}

	var regions []model.Region
	if err := json.Unmarshal([]byte(mustCLI(t, env, "region", "list", "--json")), &regions); err != nil {
		t.Fatal(err)
	}
	us := regions[1]
	if us.Country != "US" || us.Continent != "NA" || len(us.Aliases) != 2 || len(us.Netblocks) != 2 ||
		us.Concurrency != 32 || us.Credentials != "mirror-writer" || us.S3Region != "us-east-1" || *us.Longitude != -77.4 {
		t.Errorf("us-east-1 as stored: %+v", us)
	}

	show := mustCLI(t, env, "region", "show", "lab")
	for _, want := range []string{"kind         file", "storage      /srv/mirror/lab", "includes     fedora, epel/9", "continent    EU", "access       location-only"} {
		if !strings.Contains(show, want) {
			t.Errorf("region show lacks %q:\n%s", want, show)
		}
	}

	mustCLI(t, env, "region", "edit", "lab", "--weight", "20", "--location-only=false", "--clear-includes", "--country", "JP")
	var lab model.Region
	if err := json.Unmarshal([]byte(mustCLI(t, env, "region", "show", "lab", "--json")), &lab); err != nil {
		t.Fatal(err)
	}
	if lab.Weight != 20 || lab.Access != model.AccessPublic || len(lab.Includes) != 0 || lab.Country != "JP" || lab.Continent != "AS" || lab.Dir != "/srv/mirror/lab" {
		t.Errorf("after edit: %+v", lab)
	}
	mustCLI(t, env, "region", "disable", "lab")
	if out := mustCLI(t, env, "region", "show", "lab"); !strings.Contains(out, "enabled      no") {
		t.Errorf("disable did not stick:\n%s", out)
	}
	mustCLI(t, env, "region", "enable", "lab")
	mustCLI(t, env, "region", "remove", "lab")
	if out := mustCLI(t, env, "region", "list"); strings.Contains(out, "lab") {
		t.Errorf("removed region still listed:\n%s", out)
	}
}

func TestRepoLifecycle(t *testing.T) {
	env := migratedEnv(t)
	origin := t.TempDir()
	env = append(env, "REGIONMIRROR_ORIGIN_PATH="+origin)
	if err := os.MkdirAll(filepath.Join(origin, "fedora/40/x86_64/os/repodata"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(origin, "fedora/40/x86_64/os/repodata/repomd.xml"), []byte("<repomd/>"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, code := cli(t, env, "repo", "add", "fedora-40", "x86_64", "fedora/40/x86_64/os/")
	if code != 0 || errs != "" || !strings.Contains(out, "added repository fedora-40/x86_64 (fedora/40/x86_64/os)") {
		t.Fatalf("repo add: %d %q %q", code, out, errs)
	}
	// A repository whose repomd.xml is not (yet) at the origin is added with a warning.
	_, errs, code = cli(t, env, "repo", "add", "epel-9", "x86_64", "epel/9/x86_64")
	if code != 0 || !strings.Contains(errs, "warning:") {
		t.Errorf("repo add of a missing directory: %d %q", code, errs)
	}
	list := mustCLI(t, env, "repo", "list")
	if !strings.Contains(list, "NAME") || !slices.ContainsFunc(strings.Split(list, "\n"), func(l string) bool {
		return slices.Equal(strings.Fields(l), []string{"fedora-40", "x86_64", "yum", "-", "fedora/40/x86_64/os"})
	}) {
		t.Errorf("repo list:\n%s", list)
	}
	var repos []model.Repository
	if err := json.Unmarshal([]byte(mustCLI(t, env, "repo", "list", "--json")), &repos); err != nil || len(repos) != 2 {
		t.Fatalf("repo list --json: %v %v", repos, err)
	}
	mustCLI(t, env, "repo", "remove", "epel-9", "x86_64")
	if _, _, code := cli(t, env, "repo", "remove", "epel-9", "x86_64"); code != exitBadInput {
		t.Errorf("removing a missing repository: exit %d", code)
	}
}

// TestAptRepoLifecycle: an APT repository is added by suite and archive root, with the
// release file the origin has; bad input (a suite that is no directory name, flags of the
// other kind, a keyring that is not one) is exit 2 and writes nothing.
func TestAptRepoLifecycle(t *testing.T) {
	env := migratedEnv(t)
	origin := t.TempDir()
	env = append(env, "REGIONMIRROR_ORIGIN_PATH="+origin)
	signed := testenv.NewAptArchive(t, filepath.Join(origin, "debian"), "bookworm", true, true)
	signed.Publish(t, []testenv.AptPackage{{Name: "hello", Version: "1", Content: "hi"}}, testenv.PublishOptions{})
	unsigned := testenv.NewAptArchive(t, filepath.Join(origin, "ci"), "main", false, false)
	unsigned.Publish(t, []testenv.AptPackage{{Name: "tool", Version: "1", Content: "x"}}, testenv.PublishOptions{})
	notKeyring := filepath.Join(t.TempDir(), "not-a-keyring")
	if err := os.WriteFile(notKeyring, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, env)
	for _, args := range [][]string{
		{"repo", "add", "deb", "--kind", "apt", "--suite", "../x", "debian"},
		{"repo", "add", "deb", "--kind", "apt", "--suite", "bookworm", "debian", "extra"},
		{"repo", "add", "deb", "--kind", "apt", "debian"},
		{"repo", "add", "fedora", "x86_64", "fedora", "--suite", "bookworm"},
		{"repo", "add", "deb", "--kind", "deb", "--suite", "bookworm", "debian"},
		{"repo", "add", "deb", "--kind", "apt", "--suite", "bookworm", "--keyring", notKeyring, "debian"},
		{"repo", "add", "deb", "--kind", "apt", "--suite", "bookworm", "--keyring", notKeyring + ".missing", "debian"},
	} {
		if _, errs, code := cli(t, env, args...); code != exitBadInput || errs == "" {
			t.Errorf("%v: exit %d %q, want 2 and a reason", args, code, errs)
		}
	}
	if after := snapshot(t, env); after != before {
		t.Errorf("bad input changed what is recorded:\n%s\n%s", before, after)
	}
	out := mustCLI(t, env, "repo", "add", "debian-bookworm", "--kind", "apt", "--suite", "bookworm", "--keyring", signed.Keyring, "debian")
	if !strings.Contains(out, "added APT repository debian-bookworm (suite bookworm in debian)") {
		t.Errorf("repo add: %q", out)
	}
	mustCLI(t, env, "repo", "add", "ci", "--kind", "apt", "--suite", "main", "ci")
	var repos []model.Repository
	if err := json.Unmarshal([]byte(mustCLI(t, env, "repo", "list", "--json")), &repos); err != nil || len(repos) != 2 {
		t.Fatalf("repo list --json: %v %v", repos, err)
	}
	for _, r := range repos {
		want := map[string]string{"ci": "Release", "debian-bookworm": "InRelease"}[r.Name]
		if r.Kind != model.RepoApt || r.Arch != model.AptArch || r.ReleaseFile != want || r.MetadataPath() != r.Directory+"/dists/"+r.Suite+"/"+want {
			t.Errorf("%+v: want an APT repository read by its %s", r, want)
		}
	}
	if r := repos[1]; r.Keyring != signed.Keyring {
		t.Errorf("keyring %q, want %q", r.Keyring, signed.Keyring)
	}
	mustCLI(t, env, "repo", "remove", "ci")
	if _, _, code := cli(t, env, "repo", "remove", "ci"); code != exitBadInput {
		t.Errorf("removing a missing repository: exit %d", code)
	}
}

// snapshot is everything the admin CLI manages, to prove bad input wrote nothing.
func snapshot(t *testing.T, env []string) string {
	t.Helper()
	return mustCLI(t, env, "region", "list", "--json") + mustCLI(t, env, "repo", "list", "--json")
}

func TestBadInputExitsTwoAndWritesNothing(t *testing.T) {
	env := migratedEnv(t)
	mustCLI(t, env, "region", "add", "eu-west-1", "--bucket", "mirror-eu-west-1", "--public-url", "https://eu.example.org",
		"--alias", "dublin", "--country", "IE")
	mustCLI(t, env, "repo", "add", "fedora-40", "x86_64", "fedora/40")
	before := snapshot(t, env)
	s3 := []string{"region", "add", "r1", "--bucket", "good-bucket", "--public-url", "https://x.example.org"}
	tests := []struct {
		name string
		args []string
		want string // in the one-line error
	}{
		{"region name not a label", []string{"region", "add", "Bad_Name", "--bucket", "good-bucket", "--public-url", "https://x.example.org"}, `invalid region name "Bad_Name"`},
		{"region name with dot", []string{"region", "add", "a.b", "--bucket", "good-bucket", "--public-url", "https://x.example.org"}, "region name"},
		{"bucket with underscore", []string{"region", "add", "r1", "--bucket", "bad_bucket", "--public-url", "https://x.example.org"}, `invalid bucket "bad_bucket"`},
		{"bucket like an IP", []string{"region", "add", "r1", "--bucket", "10.1.2.3", "--public-url", "https://x.example.org"}, "IP address"},
		{"bucket too short", []string{"region", "add", "r1", "--bucket", "ab", "--public-url", "https://x.example.org"}, "3 to 63"},
		{"ftp public url", []string{"region", "add", "r1", "--bucket", "good-bucket", "--public-url", "ftp://x.example.org"}, "http:// or https://"},
		{"missing public url", []string{"region", "add", "r1", "--bucket", "good-bucket"}, "public-url"},
		{"endpoint not a URL", append(s3, "--endpoint", "localhost:9000"), "endpoint"},
		{"unknown country", append(s3, "--country", "XX"), `invalid country "XX"`},
		{"unknown continent", append(s3, "--continent", "EA"), `invalid continent "EA"`},
		{"latitude out of range", append(s3, "--lat", "91", "--lon", "0"), `invalid lat "91"`},
		{"longitude out of range", append(s3, "--lat", "0", "--lon", "-181"), `invalid lon "-181"`},
		{"latitude alone", append(s3, "--lat", "10"), "both --lat and --lon"},
		{"latitude not a number", append(s3, "--lat", "north"), "invalid argument"},
		{"invalid CIDR", append(s3, "--netblock", "10.0.0.0/33"), `invalid netblock "10.0.0.0/33"`},
		{"CIDR with host bits", append(s3, "--netblock", "10.0.0.1/8"), "did you mean 10.0.0.0/8"},
		{"duplicate name", []string{"region", "add", "eu-west-1", "--bucket", "other-bucket", "--public-url", "https://y.example.org"}, "already exists"},
		{"name used as alias", []string{"region", "add", "dublin", "--bucket", "other-bucket", "--public-url", "https://y.example.org"}, "already used by region \"eu-west-1\""},
		{"alias already used", append(s3, "--alias", "dublin"), "already used"},
		{"include with ..", append(s3, "--include", "fedora/../../etc"), "must not contain .."},
		{"negative weight", append(s3, "--weight", "-3"), "weight"},
		{"bucket and dir", append(s3, "--dir", "/srv/x"), "exactly one of --bucket"},
		{"neither bucket nor dir", []string{"region", "add", "r1", "--public-url", "https://x.example.org"}, "exactly one of --bucket"},
		{"relative dir", []string{"region", "add", "r1", "--dir", "srv/x", "--public-url", "https://x.example.org"}, "absolute path"},
		{"credentials on a file region", []string{"region", "add", "r1", "--dir", "/srv/x", "--public-url", "https://x.example.org", "--credentials", "p"}, "no --bucket, --endpoint or --credentials"},
		{"unknown flag", append(s3, "--colour", "red"), "unknown flag: --colour"},
		{"missing name", []string{"region", "add"}, "accepts 1 arg"},
		{"unknown command", []string{"regoin", "list"}, "unknown command"},
		{"edit unknown region", []string{"region", "edit", "nowhere", "--weight", "5"}, `region "nowhere": not found`},
		{"edit nothing", []string{"region", "edit", "eu-west-1"}, "nothing to change"},
		{"edit to a bad country", []string{"region", "edit", "eu-west-1", "--country", "ZZ"}, "invalid country"},
		{"edit to a dir on an S3 region", []string{"region", "edit", "eu-west-1", "--dir", "/srv/x"}, "an S3 region has --bucket"},
		{"show unknown region", []string{"region", "show", "nowhere"}, "not found"},
		{"remove unknown region", []string{"region", "remove", "nowhere"}, "not found"},
		{"disable unknown region", []string{"region", "disable", "nowhere"}, "not found"},
		{"repo dir with ..", []string{"repo", "add", "x", "x86_64", "fedora/../../etc"}, "must not contain .."},
		{"repo dir absolute", []string{"repo", "add", "x", "x86_64", "/srv/pub/fedora"}, "must be relative"},
		{"repo bad arch", []string{"repo", "add", "x", "x86-64", "fedora"}, "invalid arch"},
		{"repo duplicate", []string{"repo", "add", "fedora-40", "x86_64", "elsewhere"}, "already exists"},
		{"repo missing args", []string{"repo", "add", "x", "x86_64"}, "accepts 3 arg"},
		{"repo remove unknown", []string{"repo", "remove", "nope", "x86_64"}, "not found"},
		{"missing config file", append([]string{"--config", "/nonexistent/rm.yaml"}, s3...), "/nonexistent/rm.yaml does not exist"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errs, code := cli(t, env, tc.args...)
			if code != exitBadInput {
				t.Errorf("exit %d, want %d; stdout %q stderr %q", code, exitBadInput, out, errs)
			}
			if strings.Count(errs, "\n") != 1 || !strings.HasPrefix(errs, "regionmirror: ") {
				t.Errorf("want one line on stderr, got %q", errs)
			}
			if !strings.Contains(errs, tc.want) {
				t.Errorf("stderr %q does not say %q", errs, tc.want)
			}
		})
	}
	if after := snapshot(t, env); after != before {
		t.Errorf("bad input changed the database:\nbefore %s\nafter  %s", before, after)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.yaml")
	if err := os.WriteFile(broken, []byte("push:\n  concurrency: 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		env  []string
		args []string
		want string
	}{
		"bad key value":    {nil, []string{"--config", broken, "region", "list"}, `push.concurrency = "0"`},
		"config from env":  {[]string{"REGIONMIRROR_CONFIG=" + broken}, []string{"config", "check"}, "push.concurrency"},
		"unknown override": {[]string{"REGIONMIRROR_PUSH_CONCURENCY=4"}, []string{"config", "check"}, "REGIONMIRROR_PUSH_CONCURENCY"},
		"no database url":  {nil, []string{"region", "list"}, "database_url is not set"},
		"unparsable database url": {[]string{"REGIONMIRROR_DATABASE_URL=postgres://rm:hunter2@[::1/rm"},
			[]string{"region", "list"}, "database_url = \"postgres://rm:REDACTED@[::1/rm\": not a valid URL"},
	} {
		t.Run(name, func(t *testing.T) {
			_, errs, code := cli(t, tc.env, tc.args...)
			if code != exitBadInput || !strings.Contains(errs, tc.want) || strings.Count(errs, "\n") != 1 {
				t.Errorf("exit %d, stderr %q; want 2 and %q on one line", code, errs, tc.want)
			}
			if strings.Contains(errs, "hunter2") {
				t.Errorf("the password leaked: %q", errs)
			}
		})
	}
}

// TestUnreachableDatabaseExitsOne: a database that does not answer is a failure to reach
// a dependency (exit 1), not bad input (exit 2), so a scheduler can tell an outage from a
// typo. The port is a real closed one on loopback.
func TestUnreachableDatabaseExitsOne(t *testing.T) {
	closed := freeAddr(t) // listened on, then closed: nothing answers there
	env := []string{"REGIONMIRROR_DATABASE_URL=postgres://rm:hunter2@" + closed + "/rm?connect_timeout=2"}
	for _, args := range [][]string{{"region", "list"}, {"status"}, {"push", "--dry-run"}, {"serve"}} {
		_, errs, code := cli(t, env, args...)
		if code != exitFailure || !strings.Contains(errs, "cannot connect to database "+closed+"/rm as rm") ||
			!strings.Contains(errs, "connection refused") || strings.Count(errs, "\n") != 1 {
			t.Errorf("%s: exit %d, stderr %q; want 1 and the connection error on one line", strings.Join(args, " "), code, errs)
		}
		if strings.Contains(errs, "hunter2") || strings.Contains(errs, "--help") {
			t.Errorf("%s: stderr %q", strings.Join(args, " "), errs)
		}
	}
}

func TestConfigShowRedacts(t *testing.T) {
	env := []string{"REGIONMIRROR_DATABASE_URL=postgres://rm:hunter2@db.example/rm", "REGIONMIRROR_PUSH_CONCURRENCY=7"}
	out := mustCLI(t, env, "config", "show")
	if strings.Contains(out, "hunter2") || !strings.Contains(out, "postgres://rm:REDACTED@db.example/rm") || !strings.Contains(out, "concurrency: 7") {
		t.Errorf("config show:\n%s", out)
	}
	if out := mustCLI(t, nil, "config", "keys"); !strings.Contains(out, "push.delete_grace") || !strings.Contains(out, "REGIONMIRROR_PUSH_DELETE_GRACE") {
		t.Errorf("config keys:\n%s", out)
	}
}

// TestBinaryExitStatus runs the real binary: main must pass run's status to the OS.
func TestBinaryExitStatus(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "regionmirror")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	env := migratedEnv(t)
	cmd := exec.Command(bin, "region", "add", "x", "--bucket", "b", "--public-url", "https://x.example.org")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != exitBadInput || !strings.Contains(string(out), `invalid bucket "b"`) {
		t.Fatalf("binary: %v %q", err, out)
	}
	cmd = exec.Command(bin, "region", "list")
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("binary region list: %v %s", err, out)
	}
	// An unreachable database is an outage: 1.
	cmd = exec.Command(bin, "region", "list")
	cmd.Env = append(os.Environ(), "REGIONMIRROR_DATABASE_URL=postgres://rm@"+freeAddr(t)+"/rm?connect_timeout=2")
	out, err = cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitFailure || !strings.Contains(string(out), "connection refused") {
		t.Fatalf("binary against a closed port: %v %q", err, out)
	}
}

func TestCompletionAndHelp(t *testing.T) {
	out := mustCLI(t, nil, "completion", "bash")
	if !strings.Contains(out, "bash completion") {
		t.Errorf("bash completion script missing: %.200s", out)
	}
	for _, args := range [][]string{{"--help"}, {"region", "--help"}, {"region", "add", "--help"}, {"repo", "add", "--help"}, {"migrate", "--help"}} {
		if out := mustCLI(t, nil, args...); !strings.Contains(out, "Usage:") {
			t.Errorf("%v: no usage:\n%s", args, out)
		}
	}
}
