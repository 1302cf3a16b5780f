package testenv

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var (
	mu       sync.Mutex
	stoppers []func()
)

// Main runs the tests and then stops every server they started. Use it as
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	StopAll()
	os.Exit(code)
}

// StopAll stops every server started so far.
func StopAll() {
	mu.Lock()
	defer mu.Unlock()
	for i := len(stoppers) - 1; i >= 0; i-- {
		stoppers[i]()
	}
	stoppers = nil
}

func addStopper(f func()) {
	mu.Lock()
	defer mu.Unlock()
	stoppers = append(stoppers, f)
}

// ErrMissing: a component the tests need is not installed.
var ErrMissing = errors.New("missing")

// Buffer is a bytes.Buffer that goroutines (a server's log) may write while a test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// SampleOrigin copies testdata/origin (the sample yum repository with tiny RPMs, and a
// download tree) into dir/origin, where the test may change it, and returns that path.
func SampleOrigin(t testing.TB, dir string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	origin := filepath.Join(dir, "origin")
	if err := os.CopyFS(origin, os.DirFS(filepath.Join(filepath.Dir(file), "..", "..", "testdata", "origin"))); err != nil {
		t.Fatalf("copy the sample origin: %v", err)
	}
	return origin
}
