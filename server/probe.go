package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/server/selection"
)

// The prober's own hysteresis. It is short on purpose: scans record health in the database
// after minutes of evidence; the prober only has to keep this server from handing out URLs
// it cannot reach itself, and a wrong verdict costs little (the region is back 2 probes later).
const (
	// A refused, reset or timed-out connection is unambiguous: one is enough.
	probeDownAfterConnErrors = 1
	// An HTTP error answer may be a hiccup of a healthy server: two in a row.
	probeDownAfterHTTPErrors = 2
	probeUpAfter             = 2
)

// ProberOptions configure a Prober.
type ProberOptions struct {
	Interval time.Duration // between two probes of a region; <= 0 means 1s
	Timeout  time.Duration // per probe; <= 0 means 3 intervals
	Log      *slog.Logger
	Metrics  *Metrics // nil: no gauge
	// Client sends the probes; nil means a client without keep-alives that follows no
	// redirects.
	Client *http.Client
}

// ProbeState is what the prober believes about one region.
type ProbeState struct {
	Name      string
	Reachable bool
	Since     time.Time // when Reachable last changed (or the first probe)
	Error     string    // the failure that made it unreachable, in full (for logs)
	// public is Error as answers show it: the network error's cause, not its addresses.
	public string
	// Counters of the hysteresis: consecutive failures by kind, consecutive successes.
	connFails, httpFails, oks int
	inFlight                  bool
}

// Prober checks from this server that every public region answers, and tells the Store
// which ones do not, so that selection leaves them out at once. It never touches the
// database: each server sees its own network, and a verdict must not wait on PostgreSQL.
type Prober struct {
	store  *Store
	opt    ProberOptions
	log    *slog.Logger
	client *http.Client

	mu       sync.Mutex
	states   map[int64]*ProbeState
	applied  map[int64]string // the overlay last given to the store
	allWarns bool             // the "every region unreachable" warning was logged
}

// NewProber returns a prober of the store's regions; call Run.
func NewProber(store *Store, opt ProberOptions) *Prober {
	if opt.Interval <= 0 {
		opt.Interval = time.Second
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 3 * opt.Interval
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	client := opt.Client
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		// A fresh connection each time tests what a new client would do (DNS, connect,
		// TLS); a kept-alive one could hide a server that no longer accepts connections.
		tr.DisableKeepAlives = true
		tr.MaxIdleConnsPerHost = -1
		client = &http.Client{
			Transport: tr,
			// A redirect is an answer: the region's server is there.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return &Prober{store: store, opt: opt, log: opt.Log, client: client,
		states: map[int64]*ProbeState{}, applied: map[int64]string{}}
}

// States returns a copy of the current states by region ID.
func (p *Prober) States() map[int64]ProbeState {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[int64]ProbeState, len(p.states))
	for id, st := range p.states {
		out[id] = *st
	}
	return out
}

// probeTarget is one probe to send.
type probeTarget struct {
	id     int64
	name   string
	url    string
	repomd bool // url is a repomd.xml, which must answer 2xx or 3xx
	what   string
}

// Run probes every interval until ctx ends, and waits for the probes in flight.
func (p *Prober) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(p.opt.Interval)
	defer tick.Stop()
	for {
		for _, t := range p.due(p.store.Snapshot()) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.probe(ctx, t)
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// due returns the probes to start now: one per probed region with none in flight, so a
// slow region never piles up probes nor delays the others. Regions no longer probed
// (removed, disabled, location-only) are forgotten.
func (p *Prober) due(snap *selection.Snapshot) []probeTarget {
	if snap == nil {
		return nil
	}
	var out []probeTarget
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := map[int64]bool{}
	for _, r := range snap.Regions {
		// Location-only buckets may be closed to this server; their clients reach them
		// from inside the cloud region, so a failure here would prove nothing.
		if !r.Enabled || r.LocationOnly {
			continue
		}
		seen[r.ID] = true
		st := p.states[r.ID]
		if st == nil {
			st = &ProbeState{Name: r.Name, Reachable: true}
			p.states[r.ID] = st
			p.setGauge(r.Name, true)
		}
		if st.inFlight {
			continue
		}
		st.inFlight = true
		out = append(out, probeTargetOf(snap, r))
	}
	changed := false
	for id, st := range p.states {
		if !seen[id] {
			delete(p.states, id)
			if p.opt.Metrics != nil {
				p.opt.Metrics.probeUp.DeleteLabelValues(st.Name)
			}
			changed = true
		}
	}
	if changed {
		p.applyLocked()
	}
	return out
}

// probeTargetOf picks what to ask a region for: the repomd.xml of a repository it serves
// (a file that must be there), else its base URL (where any answer shows the server is up).
func probeTargetOf(snap *selection.Snapshot, r *selection.Region) probeTarget {
	for _, repo := range snap.Repos {
		st := repo.InRegion[r.Index]
		if st.Known && (st.State == model.RepoFresh || st.State == model.RepoAlternate) && r.CarriesRepository(repo.Directory) {
			return probeTarget{id: r.ID, name: r.Name, url: r.RepomdURL(repo), repomd: true,
				what: repo.Name + "/" + repo.Arch + " repomd.xml"}
		}
	}
	return probeTarget{id: r.ID, name: r.Name, url: r.Base(), what: "the base URL"}
}

// probe sends one HEAD and records the result.
func (p *Prober) probe(ctx context.Context, t probeTarget) {
	pctx, cancel := context.WithTimeout(ctx, p.opt.Timeout)
	defer cancel()
	connErr, httpErr := p.send(pctx, t)
	if ctx.Err() != nil {
		return // shutting down: the failure is ours
	}
	p.record(t, connErr, httpErr)
}

// send returns a connection-level failure (refused, reset, timeout, TLS) or an HTTP one.
func (p *Prober) send(ctx context.Context, t probeTarget) (connErr, httpErr error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, t.url, nil)
	if err != nil {
		return &probeError{err: fmt.Errorf("probe request: %w", err), public: "probe request: invalid URL"}, nil
	}
	req.Header.Set("User-Agent", "regionmirror-probe")
	resp, err := p.client.Do(req)
	if err != nil {
		// url.Error repeats the URL; the region's name says which one it was.
		var ue *url.Error
		if errors.As(err, &ue) {
			if ue.Timeout() {
				return fmt.Errorf("HEAD %s: no answer within %s", t.what, p.opt.Timeout), nil
			}
			err = ue.Err
		}
		return &probeError{err: fmt.Errorf("HEAD %s: %w", t.what, err), public: "HEAD " + t.what + ": " + model.PublicReason(err.Error())}, nil
	}
	resp.Body.Close()
	if t.repomd && resp.StatusCode >= 400 {
		return nil, fmt.Errorf("HEAD %s: HTTP %d", t.what, resp.StatusCode)
	}
	return nil, nil
}

// probeError is a connection failure with the text public answers may show.
type probeError struct {
	err    error
	public string
}

func (e *probeError) Error() string { return e.err.Error() }
func (e *probeError) Unwrap() error { return e.err }

// publicText is what answers may say about a probe's failure. Our own texts (a timeout,
// an HTTP status) name nothing but the repository.
func publicText(err error) string {
	var pe *probeError
	if errors.As(err, &pe) {
		return pe.public
	}
	return err.Error()
}

// record applies the hysteresis to one result and hands a changed verdict to the store.
func (p *Prober) record(t probeTarget, connErr, httpErr error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.states[t.id]
	if st == nil {
		return // the region was removed while the probe ran
	}
	st.inFlight = false
	now := time.Now()
	if st.Since.IsZero() {
		st.Since = now
	}
	failure := connErr
	switch {
	case connErr != nil:
		st.connFails++
		st.oks = 0
	case httpErr != nil:
		st.httpFails++
		st.connFails, st.oks = 0, 0
		failure = httpErr
	default:
		st.oks++
		st.connFails, st.httpFails = 0, 0
	}
	switch {
	case st.Reachable && failure != nil &&
		(st.connFails >= probeDownAfterConnErrors || st.httpFails >= probeDownAfterHTTPErrors):
		st.Reachable, st.Since, st.Error, st.public = false, now, failure.Error(), publicText(failure)
		p.log.Warn("region unreachable from this server; leaving it out of answers",
			slog.String("region", t.name), slog.String("error", st.Error))
	case !st.Reachable && st.oks >= probeUpAfter:
		p.log.Info("region reachable again from this server",
			slog.String("region", t.name), slog.Duration("after", now.Sub(st.Since).Round(time.Millisecond)))
		st.Reachable, st.Since, st.Error, st.public = true, now, "", ""
	default:
		return
	}
	p.setGauge(t.name, st.Reachable)
	p.applyLocked()
}

// applyLocked computes the overlay and gives it to the store when it changed. When no
// probed region is reachable, the fault is most likely this server's own network: nobody
// is excluded, since the prober must never empty an answer.
func (p *Prober) applyLocked() {
	overlay := map[int64]string{}
	for id, st := range p.states {
		if !st.Reachable {
			overlay[id] = st.public + " since " + st.Since.UTC().Format(time.RFC3339)
		}
	}
	if len(overlay) > 0 && len(overlay) == len(p.states) {
		if !p.allWarns {
			p.log.Warn("no region is reachable from this server: assuming its own network is at fault and excluding none",
				slog.Int("regions", len(p.states)))
			p.allWarns = true
		}
		overlay = map[int64]string{}
	} else if p.allWarns {
		p.allWarns = false
		p.log.Info("some regions are reachable from this server again; excluding the unreachable ones",
			slog.Int("unreachable", len(overlay)))
	}
	if maps.Equal(overlay, p.applied) {
		return
	}
	p.applied = overlay
	p.store.SetUnreachable(maps.Clone(overlay))
}

func (p *Prober) setGauge(name string, reachable bool) {
	if p.opt.Metrics == nil {
		return
	}
	v := 0.0
	if reachable {
		v = 1
	}
	p.opt.Metrics.probeUp.WithLabelValues(name).Set(v)
}
