package localpg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/regionmirror/regionmirror/internal/childproc"
)

// ErrMissing: the PostgreSQL server binaries are not installed.
var ErrMissing = errors.New("missing")

// InstallPostgres is what makes the PostgreSQL server binaries available.
const InstallPostgres = "apt-get install -y postgresql (Debian/Ubuntu) or dnf install -y postgresql-server (Fedora)"

// Postgres is a private PostgreSQL server.
type Postgres struct {
	Port int
	Dir  string
	proc *childproc.Process
}

// AdminURL connects as the superuser to the maintenance database.
func (p *Postgres) AdminURL() string { return p.URL("postgres") }

// URL connects as the superuser to the named database.
func (p *Postgres) URL(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Port, database)
}

// BinDir finds the directory holding initdb and postgres: the newest
// /usr/lib/postgresql/N/bin, else the directory of initdb on PATH.
func BinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, d := range dirs {
		if childproc.IsExecutable(filepath.Join(d, "initdb")) && childproc.IsExecutable(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		d := filepath.Dir(p)
		if childproc.IsExecutable(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("PostgreSQL server binaries (initdb, postgres) not found in /usr/lib/postgresql/*/bin or on PATH: %s: %w", InstallPostgres, ErrMissing)
}

func pgMajor(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// Start initialises a data directory under dir (created if needed) and starts a
// server on a free loopback port. As root, PostgreSQL runs as the postgres user (initdb
// through runuser, the server with that user's credentials), because it refuses root.
// Stop it with Stop.
func Start(dir string) (*Postgres, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var cred *syscall.Credential
	asPostgres := func(name string, args ...string) *exec.Cmd { return exec.Command(name, args...) }
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs the postgres user, which is missing: %s", InstallPostgres)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
		// The postgres user must be able to reach dir through its parents (t.TempDir
		// makes 0700 directories).
		for d := filepath.Dir(dir); d != "/" && d != "."; d = filepath.Dir(d) {
			if st, err := os.Stat(d); err == nil && st.Mode().Perm()&0o001 == 0 {
				_ = os.Chmod(d, st.Mode().Perm()|0o011)
			}
		}
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		asPostgres = func(name string, args ...string) *exec.Cmd {
			return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
		}
	}
	data := filepath.Join(dir, "data")
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil {
		out, err := asPostgres(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust",
			"-E", "UTF8", "--no-locale", "--no-sync").CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("initdb: %w: %s", err, strings.TrimSpace(string(out)))
		}
	}
	var lastErr error
	for range 3 {
		port, err := childproc.FreePort()
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port), "-k", dir,
			"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
			"-c", "full_page_writes=off", "-c", "max_connections=300", "-c", "shared_buffers=64MB")
		proc, err := childproc.Start(cmd, filepath.Join(dir, "server.log"), cred)
		if err != nil {
			return nil, err
		}
		pg := &Postgres{Port: port, Dir: dir, proc: proc}
		if err = pg.waitReady(); err == nil {
			return pg, nil
		}
		pg.Stop()
		lastErr = fmt.Errorf("postgres on port %d %w", port, err)
	}
	return nil, lastErr
}

// Stop shuts the server down (fast mode) and waits for it.
func (p *Postgres) Stop() {
	p.proc.Stop(syscall.SIGINT, 15*time.Second)
}

// Restart stops the server and starts it again on the same port and data directory.
func (p *Postgres) Restart() error {
	p.Stop()
	bin, err := BinDir()
	if err != nil {
		return err
	}
	args := p.proc.Cmd.Args[1:]
	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	proc, err := childproc.Start(cmd, filepath.Join(p.Dir, "server.log"), p.proc.Cmd.SysProcAttr.Credential)
	if err != nil {
		return err
	}
	p.proc = proc
	return p.waitReady()
}

// waitReady waits until the server accepts connections.
func (p *Postgres) waitReady() error {
	return childproc.WaitReady(p.proc, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, p.AdminURL())
		if err != nil {
			return err
		}
		return conn.Close(ctx)
	})
}
