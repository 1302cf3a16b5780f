package accesslog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// countingWriter records every Write (one per flush).
type countingWriter struct {
	mu     sync.Mutex
	writes int
	buf    bytes.Buffer
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	return w.buf.Write(p)
}

func record(i int) *Record {
	return &Record{Time: time.Now(), Method: "GET", URI: "/pub/f" + strconv.Itoa(i), Status: 302,
		Peer: "127.0.0.1:1", Endpoint: "download", Agent: "test"}
}

// Lines are written in batches: a thousand records logged within a flush interval are one
// write.
func TestOneWritePerFlush(t *testing.T) {
	w := &countingWriter{}
	l := New(w, Options{FlushInterval: time.Hour})
	for i := range 1000 {
		l.Log(record(i))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(w.buf.String(), "\n"), "\n")
	if len(lines) != 1000 || w.writes != 1 {
		t.Fatalf("%d lines in %d writes, want 1000 in 1", len(lines), w.writes)
	}
	for i, line := range lines {
		if !strings.Contains(line, " uri=/pub/f"+strconv.Itoa(i)+" ") {
			t.Fatalf("line %d out of order: %s", i, line)
		}
	}
	if l.Written() != 1000 || l.Dropped() != 0 {
		t.Errorf("written %d dropped %d", l.Written(), l.Dropped())
	}
}

// The flush interval bounds how long a line waits when requests are few.
func TestFlushInterval(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	l := New(w, Options{FlushInterval: 10 * time.Millisecond})
	defer l.Close()
	l.Log(record(1))
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil || !strings.Contains(line, "uri=/pub/f1") {
		t.Fatalf("%q, %v", line, err)
	}
}

// stalled is an output that does not drain: a pipe nobody reads until release, as a
// stuck journald or a full disk would be.
func stalled(t *testing.T) (w *os.File, release func() []string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return w, func() []string {
		var lines []string
		done := make(chan struct{})
		go func() {
			defer close(done)
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				lines = append(lines, sc.Text())
			}
		}()
		return func() []string { <-done; return lines }()
	}
}

// With the output stalled, requests go on at once and the records that do not fit are
// dropped, counted, and said so in the log once it drains; memory stays within Buffer.
func TestDropsWhenFull(t *testing.T) {
	w, release := stalled(t)
	const buffer = 64 << 10
	l := New(w, Options{Buffer: buffer, FlushInterval: time.Millisecond})
	const n = 20000 // ~3 MB of lines: far more than the pipe (64 KiB) and the buffer take
	for i := range n {
		l.Log(record(i)) // returns at once: the test would hang otherwise
		l.mu.Lock()
		if l.bytes > buffer {
			t.Fatalf("%d bytes waiting, more than the buffer's %d", l.bytes, buffer)
		}
		l.mu.Unlock()
	}
	if l.Dropped() == 0 {
		t.Fatal("nothing dropped with the output stalled")
	}
	go func() { l.Close(); w.Close() }()
	lines := release()
	var requests, reported int
	for _, line := range lines {
		switch {
		case strings.Contains(line, "msg=request "):
			requests++
		case strings.Contains(line, `msg="request log full: records dropped"`):
			f := strings.Fields(line)
			for _, kv := range f {
				if v, ok := strings.CutPrefix(kv, "dropped="); ok {
					k, _ := strconv.Atoi(v)
					reported += k
				}
			}
			if !strings.Contains(line, "level=WARN") {
				t.Errorf("drop line not a warning: %s", line)
			}
		default:
			t.Errorf("unexpected line %q", line)
		}
	}
	if uint64(requests) != l.Written() || uint64(reported) != l.Dropped() || requests+reported != n {
		t.Errorf("%d lines + %d reported dropped, want %d (written %d, dropped %d)", requests, reported, n, l.Written(), l.Dropped())
	}
}

// With Wait, a request whose record does not fit waits for the writer, and nothing is lost.
func TestWaitsWhenFull(t *testing.T) {
	w, release := stalled(t)
	l := New(w, Options{Buffer: 16 << 10, Wait: true, FlushInterval: time.Millisecond})
	const n = 5000
	var logged sync.WaitGroup
	progress := make(chan int, n)
	logged.Go(func() {
		for i := range n {
			l.Log(record(i))
			progress <- i
		}
	})
	// The pipe and the buffer fill; the logging goroutine then blocks and stays blocked.
	time.Sleep(200 * time.Millisecond)
	before := len(progress)
	time.Sleep(100 * time.Millisecond)
	if after := len(progress); after == n || after != before {
		t.Fatalf("logged %d then %d of %d records with the output stalled: did not wait", before, after, n)
	}
	out := make(chan []string)
	go func() { out <- release() }()
	logged.Wait()
	l.Close()
	w.Close()
	lines := <-out
	if len(lines) != n || l.Dropped() != 0 {
		t.Fatalf("%d lines, %d dropped; want %d and 0", len(lines), l.Dropped(), n)
	}
}

// Close writes what waits; records after it are dropped, and a waiting request is let go.
func TestClose(t *testing.T) {
	w := &countingWriter{}
	l := New(w, Options{FlushInterval: time.Hour})
	l.Log(record(1))
	l.Close()
	l.Log(record(2))
	l.Close() // twice is fine
	if got := w.buf.String(); !strings.Contains(got, "/pub/f1 ") || strings.Contains(got, "/pub/f2 ") {
		t.Errorf("log %q", got)
	}
	if l.Dropped() != 1 {
		t.Errorf("dropped %d, want 1", l.Dropped())
	}
}

// The level follows a LevelVar: at WARN only server errors are logged.
func TestLevel(t *testing.T) {
	w := &countingWriter{}
	var level slog.LevelVar
	level.Set(slog.LevelWarn)
	l := New(w, Options{Level: &level, FlushInterval: time.Hour, JSON: true})
	l.Log(record(1))
	e := record(2)
	e.Warn, e.Status = true, 500
	l.Log(e)
	level.Set(slog.LevelInfo)
	l.Log(record(3))
	l.Close()
	var uris []string
	for _, line := range strings.Split(strings.TrimSpace(w.buf.String()), "\n") {
		var v struct{ URI, Level string }
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		uris = append(uris, v.Level+" "+v.URI)
	}
	if got := strings.Join(uris, ","); got != "WARN /pub/f2,INFO /pub/f3" {
		t.Errorf("logged %s", got)
	}
}

// A write error is reported, at most once a second, and logging goes on.
func TestWriteErrors(t *testing.T) {
	var mu sync.Mutex
	var errs []error
	l := New(failing{}, Options{FlushInterval: time.Millisecond, Errors: func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}})
	for i := range 100 {
		l.Log(record(i))
		time.Sleep(time.Millisecond)
	}
	l.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "request log: disk full") {
		t.Errorf("errors %v", errs)
	}
}

// failing injects a write error, which a real file gives only on a full disk.
type failing struct{}

func (failing) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func BenchmarkLog(b *testing.B) {
	l := New(io.Discard, Options{})
	defer l.Close()
	r := record(1)
	b.ReportAllocs()
	for b.Loop() {
		l.Log(r)
	}
}
