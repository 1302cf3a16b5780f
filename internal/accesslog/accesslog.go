// Package accesslog is serve's request log: the request path hands a Record to a Logger,
// which formats and writes the records in batches from a goroutine of its own, in the
// format of log/slog's text or JSON handler.
//
// A synchronous slog line per request cost serve more CPU than the rest of a redirect
// (a handler call, a time.Format and a write(2) per line, issue 16). Here a request costs
// a lock and a copy of a few words; one write(2) carries every line of a flush interval.
// Memory is bounded: the records waiting take at most Options.Buffer bytes. When they
// would take more (the output blocks: a stalled journald, a full disk), the Logger either
// drops the record and counts it (the default: no request waits on its log) or, with
// Options.Wait, holds the request until the writer has caught up.
package accesslog

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Record is one request.
type Record struct {
	Time time.Time // when it started
	// Warn marks a server error (5xx): level WARN, and logged whatever Options.Level says
	// about INFO.
	Warn     bool
	Method   string
	URI      string // as the client sent it
	Status   int
	Bytes    int64 // of the body written
	Took     time.Duration
	Client   netip.Addr // the client, X-Forwarded-For of trusted proxies followed
	Peer     string     // the TCP peer, address:port
	Endpoint string     // the route's name (metrics' endpoint label)
	Region   string     // where the answer sends the client first; "" for none
	Tier     string     // the selection tier; "" when no selection ran
	Agent    string     // User-Agent
}

// size is what r holds in memory while it waits: the struct and the strings it refers to
// (the request's own strings, kept alive until the record is written; endpoints, regions
// and tiers are long-lived and shared, and not counted).
func (r *Record) size() int {
	return int(unsafe.Sizeof(*r)) + len(r.Method) + len(r.URI) + len(r.Peer) + len(r.Agent)
}

// Options configure a Logger.
type Options struct {
	// JSON writes slog.JSONHandler's format; otherwise slog.TextHandler's.
	JSON bool
	// Level: records below it are not logged (INFO for every request; WARN or above only
	// 5xx). nil means INFO. A *slog.LevelVar follows changes (SIGHUP).
	Level slog.Leveler
	// Buffer bounds the bytes of records waiting to be written (DefaultBuffer if 0). The
	// batch being written takes up to as much again.
	Buffer int
	// Wait makes a request whose record does not fit wait for the writer instead of
	// dropping the record.
	Wait bool
	// FlushInterval is how long a record waits at most before it is written
	// (DefaultFlushInterval if 0); a quarter of Buffer waiting is written at once.
	FlushInterval time.Duration
	// Errors receives write errors, at most one per second (nil: discarded).
	Errors func(error)
}

const (
	// DefaultBuffer holds some 10,000 records of a dnf request (about 360 bytes each):
	// half a second at full rate on one core, five flush intervals' worth.
	DefaultBuffer = 4 << 20
	// DefaultFlushInterval: lines reach the log within a tenth of a second.
	DefaultFlushInterval = 100 * time.Millisecond
)

// Logger collects records and writes them in batches. Its methods are safe for
// concurrent use.
type Logger struct {
	out   io.Writer
	opt   Options
	level slog.Leveler

	mu      sync.Mutex
	space   *sync.Cond // signalled when the writer took the waiting records
	pending []Record
	bytes   int // of pending
	closed  bool

	wake chan struct{} // buffered: a flush is due now
	done chan struct{} // closed by Close
	ran  chan struct{} // closed when the writer goroutine returned

	written, dropped atomic.Uint64
	// reported is dropped as last written to the log itself.
	reported uint64
}

// New starts a Logger writing to out; Close flushes it and stops its goroutine.
func New(out io.Writer, opt Options) *Logger {
	if opt.Buffer <= 0 {
		opt.Buffer = DefaultBuffer
	}
	if opt.FlushInterval <= 0 {
		opt.FlushInterval = DefaultFlushInterval
	}
	l := &Logger{out: out, opt: opt, level: opt.Level, wake: make(chan struct{}, 1),
		done: make(chan struct{}), ran: make(chan struct{})}
	if l.level == nil {
		l.level = slog.LevelInfo
	}
	l.space = sync.NewCond(&l.mu)
	go l.run()
	return l
}

// Enabled reports whether a record of a request that is (warn) or is not a server error
// would be logged, so that a caller skips building one that would not.
func (l *Logger) Enabled(warn bool) bool {
	if warn {
		return l.level.Level() <= slog.LevelWarn
	}
	return l.level.Level() <= slog.LevelInfo
}

// Log queues r (copied). It returns at once, unless Options.Wait is set and the buffer is
// full. A record logged after Close is dropped.
func (l *Logger) Log(r *Record) {
	if !l.Enabled(r.Warn) {
		return
	}
	n := r.size()
	l.mu.Lock()
	for !l.closed && l.bytes+n > l.opt.Buffer && l.bytes > 0 {
		if !l.opt.Wait {
			l.mu.Unlock()
			l.dropped.Add(1)
			l.flushSoon()
			return
		}
		l.flushSoon()
		l.space.Wait()
	}
	if l.closed {
		l.mu.Unlock()
		l.dropped.Add(1)
		return
	}
	l.pending = append(l.pending, *r)
	l.bytes += n
	soon := l.bytes >= l.opt.Buffer/4
	l.mu.Unlock()
	if soon {
		l.flushSoon()
	}
}

func (l *Logger) flushSoon() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Written is the number of records written so far.
func (l *Logger) Written() uint64 { return l.written.Load() }

// Dropped is the number of records not kept: the buffer was full, or the Logger closed.
func (l *Logger) Dropped() uint64 { return l.dropped.Load() }

// Close writes what is waiting and stops the writer. Later records are dropped.
func (l *Logger) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		<-l.ran
		return nil
	}
	l.closed = true
	l.space.Broadcast() // waiting requests give up
	l.mu.Unlock()
	close(l.done)
	<-l.ran
	return nil
}

func (l *Logger) run() {
	defer close(l.ran)
	t := time.NewTicker(l.opt.FlushInterval)
	defer t.Stop()
	var (
		batch   []Record
		buf     []byte
		tc      timeCache
		lastErr time.Time
	)
	for {
		stop := false
		select {
		case <-l.wake:
		case <-t.C:
		case <-l.done:
			stop = true
		}
		// Take what is waiting; requests fill the other slice meanwhile.
		l.mu.Lock()
		batch, l.pending = l.pending, batch[:0]
		l.bytes = 0
		l.space.Broadcast()
		l.mu.Unlock()
		buf = buf[:0]
		for i := range batch {
			if l.opt.JSON {
				buf = tc.appendJSON(buf, &batch[i])
			} else {
				buf = tc.appendText(buf, &batch[i])
			}
		}
		if d := l.dropped.Load(); d != l.reported {
			buf = l.appendDropped(buf, d-l.reported, d)
			l.reported = d
		}
		if len(buf) > 0 {
			if _, err := l.out.Write(buf); err != nil && l.opt.Errors != nil && time.Since(lastErr) >= time.Second {
				lastErr = time.Now()
				l.opt.Errors(fmt.Errorf("request log: %w", err))
			}
		}
		l.written.Add(uint64(len(batch)))
		clear(batch) // the requests' strings can go
		// A burst's batch is not kept at its size for ever.
		if cap(batch) > 4096 && len(batch) < cap(batch)/4 {
			batch = nil
		}
		if cap(buf) > 1<<20 && len(buf) < cap(buf)/4 {
			buf = nil
		}
		if stop {
			return
		}
	}
}

// appendDropped appends the line that says records were dropped, in the log's format.
func (l *Logger) appendDropped(b []byte, n, total uint64) []byte {
	now := time.Now()
	if l.opt.JSON {
		b = append(b, `{"time":`...)
		b = strconv.AppendQuote(b, now.Format(time.RFC3339Nano))
		b = append(b, `,"level":"WARN","msg":"request log full: records dropped","dropped":`...)
		b = strconv.AppendUint(b, n, 10)
		b = append(b, `,"dropped_total":`...)
		b = strconv.AppendUint(b, total, 10)
		return append(b, "}\n"...)
	}
	b = append(b, "time="...)
	b = append(b, now.Format("2006-01-02T15:04:05.000Z07:00")...)
	b = append(b, ` level=WARN msg="request log full: records dropped" dropped=`...)
	b = strconv.AppendUint(b, n, 10)
	b = append(b, " dropped_total="...)
	b = strconv.AppendUint(b, total, 10)
	return append(b, '\n')
}
