package childproc

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// FreePort asks the kernel for a free TCP port on loopback. Another process may take it
// before the server binds; callers retry on a failed start.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Process is a server started by Start.
type Process struct {
	Cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  string // path of the file holding its output
}

// Start starts a server that dies with this process and writes its output to logPath.
func Start(cmd *exec.Cmd, logPath string, cred *syscall.Credential) (*Process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true, Credential: cred}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	p := &Process{Cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends sig and waits for the process, killing it after the timeout.
func (p *Process) Stop(sig syscall.Signal, timeout time.Duration) {
	if p.Exited() {
		return
	}
	_ = p.Cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// LogTail returns the end of the process's output, for error messages.
func (p *Process) LogTail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	return s
}

// WaitReady polls check until it succeeds, the process exits, or the timeout passes.
func WaitReady(p *Process, timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("exited before it was ready (%v); its output:\n%s", p.err, p.LogTail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %v; its output:\n%s", timeout, err, p.LogTail())
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// IsExecutable reports whether p is an executable regular file.
func IsExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}
