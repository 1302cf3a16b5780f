package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/regionmirror/regionmirror/internal/human"
	"github.com/regionmirror/regionmirror/pusher"
)

// progress draws one bar per region on a terminal: files and bytes done of planned.
type progress struct {
	w       io.Writer
	mu      sync.Mutex
	regions map[string]*regionProgress
	lines   int // lines drawn last time, to draw over them
	done    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

var _ pusher.Progress = (*progress)(nil)

type regionProgress struct {
	files, doneFiles int
	bytes, doneBytes int64
	phase            int
	state            string
}

// newProgress returns a display when stderr is a terminal, else nil: logs then say it.
func (a *app) newProgress() *progress {
	f, ok := a.stderr.(*os.File)
	if !ok {
		return nil
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 || os.Getenv("TERM") == "dumb" {
		return nil
	}
	p := &progress{w: f, regions: map[string]*regionProgress{}, done: make(chan struct{})}
	p.wg.Go(func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.draw()
			case <-p.done:
				p.draw()
				return
			}
		}
	})
	return p
}

func (p *progress) stop() {
	p.once.Do(func() { close(p.done) })
	p.wg.Wait()
}

func (p *progress) region(name string) *regionProgress {
	r := p.regions[name]
	if r == nil {
		r = &regionProgress{state: "planning"}
		p.regions[name] = r
	}
	return r
}

func (p *progress) Plan(region string, files int, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.region(region)
	r.files, r.bytes, r.state = files, bytes, "waiting"
}

func (p *progress) Phase(region string, phase int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.region(region)
	r.phase, r.state = phase, pusher.PhaseNames[phase]
}

func (p *progress) Done(region string, files int, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.region(region)
	r.doneFiles += files
	r.doneBytes += bytes
}

func (p *progress) Finish(region string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.region(region)
	r.state = "done"
	if err != nil {
		r.state = "failed"
	}
}

func (p *progress) draw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	names := make([]string, 0, len(p.regions))
	for n := range p.regions {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	if p.lines > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.lines) // back to the first bar
	}
	for _, n := range names {
		r := p.regions[n]
		frac := 1.0
		if r.bytes > 0 {
			frac = float64(r.doneBytes) / float64(r.bytes)
		}
		const width = 24
		fill := int(frac * width)
		fmt.Fprintf(&b, "\x1b[2K%-16s %-9s [%s%s] %d/%d files  %s/%s\n", n, r.state,
			strings.Repeat("#", fill), strings.Repeat(".", width-fill), r.doneFiles, r.files, human.Bytes(r.doneBytes), human.Bytes(r.bytes))
	}
	p.lines = len(names)
	io.WriteString(p.w, b.String())
}
