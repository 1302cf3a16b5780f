package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/repomd"
)

// stats are what the clients saw. A miss is a 404 or a failed connection on a URL the
// server handed out; a mismatch is a body whose hash is not the one the client was told.
type stats struct {
	requests        atomic.Int64 // every HTTP request the clients made
	serverRequests  atomic.Int64 // to regionmirror
	server5xx       atomic.Int64
	serverOther     atomic.Int64 // non-200 answers below 500
	resolutions     atomic.Int64 // metalinks resolved
	urlsHanded      atomic.Int64 // region URLs in those metalinks
	listedAll       atomic.Int64 // metalinks that listed every region (scans that wrongly call a region stale lower it)
	missesOutage    atomic.Int64 // on a region whose S3 server the test had killed
	missesOther     atomic.Int64
	mismatches      atomic.Int64 // repomd.xml, repodata or package bytes that are not what was promised
	mismatchNewer   atomic.Int64 // of those: a repomd.xml the origin published after the metalink was read
	clientFailures  atomic.Int64 // resolutions where no URL gave a complete, correct repository (dnf fails)
	handedWhileDown atomic.Int64 // URLs of a region while its S3 server was down
	downloads       atomic.Int64 // /pub redirects followed
	downloadUnknown atomic.Int64 // /pub answers 404: the server's file data is older than the file, or it forgot a deleted one
	downloadNotYet  atomic.Int64 // /pub answers 503: no region holds the file's current bytes yet, and no origin.url
	downloadMisses  atomic.Int64 // of the misses: a /pub redirect's Location (curl would fail)
	downloadFailed  atomic.Int64 // ... and no rel=duplicate Link worked either (aria2c would fail)
	// slowest is the longest resolution (metalink read to the last byte checked), in
	// nanoseconds: a miss of a file deleted after the grace is only a product's fault while
	// resolutions stay well inside push.delete_grace - metalink.alternates_max_age.
	slowest atomic.Int64
	// When the misses on a killed region happened (UnixNano; 0 for none): they should all
	// fall in the window before serve's prober notices the outage.
	outageFirst, outageLast atomic.Int64

	mu       sync.Mutex
	examples []string
	// kinds counts the notes by call site (their format), so that one frequent failure
	// does not hide the others from the examples.
	kinds map[string]*noteKind
	order []string
	start time.Time // when the run started, for the examples' offsets (zero: wall clock)
}

type noteKind struct {
	n        int
	examples []string // the first few
	last     string
}

func (s *stats) note(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := time.Now().Format("15:04:05.000")
	if !s.start.IsZero() {
		at = "t+" + time.Since(s.start).Round(time.Millisecond).String()
	}
	line := at + " " + fmt.Sprintf(format, args...)
	if len(s.examples) < 40 {
		s.examples = append(s.examples, line)
	}
	if s.kinds == nil {
		s.kinds = map[string]*noteKind{}
	}
	k := s.kinds[format]
	if k == nil {
		k = &noteKind{}
		s.kinds[format] = k
		s.order = append(s.order, format)
	}
	k.n++
	if len(k.examples) < 3 {
		k.examples = append(k.examples, line)
	} else {
		k.last = line
	}
}

// byKind lists the notes by kind, in the order each kind first happened: a count and
// the first few and last examples of each.
func (s *stats) byKind() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, f := range s.order {
		k := s.kinds[f]
		out = append(out, fmt.Sprintf("%dx %q", k.n, f))
		for _, e := range k.examples {
			out = append(out, "    "+e)
		}
		if k.last != "" {
			out = append(out, "    ... last: "+k.last)
		}
	}
	return out
}

func (s *stats) noteResolution(d time.Duration) {
	for cur := s.slowest.Load(); int64(d) > cur && !s.slowest.CompareAndSwap(cur, int64(d)); cur = s.slowest.Load() {
	}
}

func (s *stats) misses() int64 { return s.missesOutage.Load() + s.missesOther.Load() }

func (s *stats) String() string {
	return fmt.Sprintf("requests %d (to the server %d, 5xx %d, other non-200 %d); metalinks %d handing out %d region URLs (%d of a region while its S3 was down); "+
		"misses %d (%d on a killed region, %d other); mismatches %d (%d a repomd.xml newer than its metalink); client failures %d; downloads %d (%d paths not yet known to the server; %d 503 while no region held the current bytes; %d redirects to a failing Location, %d without a working duplicate)",
		s.requests.Load(), s.serverRequests.Load(), s.server5xx.Load(), s.serverOther.Load(), s.resolutions.Load(), s.urlsHanded.Load(),
		s.handedWhileDown.Load(), s.misses(), s.missesOutage.Load(), s.missesOther.Load(), s.mismatches.Load(), s.mismatchNewer.Load(),
		s.clientFailures.Load(), s.downloads.Load(), s.downloadUnknown.Load(), s.downloadNotYet.Load(), s.downloadMisses.Load(), s.downloadFailed.Load())
}

// metalinkDoc is the part of a yum Metalink 3.0 that dnf reads (names without namespaces
// match any namespace, so mm0:alternates is "alternates").
type metalinkDoc struct {
	Files []struct {
		Name       string   `xml:"name,attr"`
		Hashes     []mlHash `xml:"verification>hash"`
		Alternates []struct {
			Hashes []mlHash `xml:"verification>hash"`
		} `xml:"alternates>alternate"`
		URLs []string `xml:"resources>url"`
	} `xml:"files>file"`
}

type mlHash struct {
	Type  string `xml:"type,attr"`
	Value string `xml:",chardata"`
}

// client behaves like dnf with a metalink: it reads the metalink, takes repomd.xml from a
// URL, accepts it only when its SHA-512 (the strongest hash, the one librepo checks) is the
// current or an alternate one, then fetches every file repomd.xml names and every package
// primary.xml names from the same base URL and checks their checksums. Unlike dnf, it
// tries every URL it was given, not only until one works, so that every URL handed out is
// tested.
type client struct {
	packages   []string // hrefs of the last primary.xml read
	w          *world
	http       *http.Client
	noRedirect *http.Client
	st         *stats
	region     func(url string) *region
	readAt     time.Time // when the metalink being resolved was read
	context    string    // what handed out the URL being checked ("repomd.xml of round 5"), for the examples
}

func newClient(w *world, st *stats) *client {
	tr := &http.Transport{MaxIdleConnsPerHost: 8, IdleConnTimeout: 30 * time.Second}
	c := &client{w: w, st: st, http: &http.Client{Transport: tr, Timeout: 20 * time.Second}}
	c.noRedirect = &http.Client{Transport: tr, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	c.region = func(u string) *region {
		for _, r := range w.regions {
			for _, base := range append([]string{r.publicURL}, r.aliases...) {
				if strings.HasPrefix(u, base+"/") {
					return r
				}
			}
		}
		return nil
	}
	return c
}

// get fetches u. A 404 or a connection failure is a miss; other failures are errors too.
func (c *client) get(ctx context.Context, u string) ([]byte, int, error) {
	c.st.requests.Add(1)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, resp.StatusCode, err
	}
	if resp.StatusCode != 200 {
		return b, resp.StatusCode, fmt.Errorf("%s", resp.Status)
	}
	return b, 200, nil
}

// age says how long ago the metalink being resolved was read, for the examples.
func (c *client) age() string {
	if c.readAt.IsZero() {
		return "no metalink"
	}
	return "metalink read " + time.Since(c.readAt).Round(time.Millisecond).String() + " before"
}

// miss counts a failed fetch of a URL the server handed out.
func (c *client) miss(u string, status int, err error) {
	r := c.region(u)
	if r != nil && r.down.Load() {
		c.st.missesOutage.Add(1)
		now := time.Now().UnixNano()
		c.st.outageFirst.CompareAndSwap(0, now)
		for last := c.st.outageLast.Load(); now > last && !c.st.outageLast.CompareAndSwap(last, now); last = c.st.outageLast.Load() {
		}
		return
	}
	c.st.missesOther.Add(1)
	// Two kinds, so that one does not hide the other in the examples.
	if strings.HasPrefix(c.context, "a /pub redirect") {
		c.st.note("miss of a /pub redirect: %s: status %d: %v (%s; %s)", u, status, err, c.context, c.age())
		return
	}
	c.st.note("miss: %s: status %d: %v (%s; %s)", u, status, err, c.context, c.age())
}

// resolve runs one metalink resolution with location= set to loc ("" for none).
func (c *client) resolve(ctx context.Context, loc string) {
	u := c.w.srvURL + "/metalink?repo=demo-1&arch=x86_64&countme=1"
	if loc != "" {
		u += "&location=" + loc
	}
	readAt := time.Now()
	c.readAt = readAt
	defer func() { c.st.noteResolution(time.Since(readAt)) }()
	c.st.serverRequests.Add(1)
	body, status, err := c.get(ctx, u)
	if ctx.Err() != nil {
		return
	}
	switch {
	case status >= 500:
		c.st.server5xx.Add(1)
		c.st.note("metalink: %d: %s", status, metalinkReason(body))
		c.pause(ctx)
		return
	case err != nil && status == 0:
		c.st.server5xx.Add(1) // the server did not answer at all
		c.st.note("metalink: %v", err)
		c.pause(ctx)
		return
	case status != 200:
		c.st.serverOther.Add(1)
		c.st.note("metalink: %d: %s", status, firstLine(body))
		return
	}
	c.st.resolutions.Add(1)
	var doc metalinkDoc
	if err := xml.Unmarshal(body, &doc); err != nil || len(doc.Files) != 1 || len(doc.Files[0].URLs) == 0 {
		c.st.clientFailures.Add(1)
		c.st.note("metalink unreadable: %v: %s", err, firstLine(body))
		return
	}
	f := doc.Files[0]
	accepted := map[string]bool{}
	for _, h := range f.Hashes {
		if h.Type == "sha512" {
			accepted[strings.TrimSpace(h.Value)] = true
		}
	}
	for _, a := range f.Alternates {
		for _, h := range a.Hashes {
			if h.Type == "sha512" {
				accepted[strings.TrimSpace(h.Value)] = true
			}
		}
	}
	listed := map[*region]bool{}
	for _, mu := range f.URLs {
		if r := c.region(strings.TrimSpace(mu)); r != nil {
			listed[r] = true
		}
	}
	if len(listed) == len(c.w.regions) {
		c.st.listedAll.Add(1)
	}
	good := 0
	c.packages = c.packages[:0]
	for _, mu := range f.URLs {
		mu = strings.TrimSpace(mu)
		c.st.urlsHanded.Add(1)
		if r := c.region(mu); r != nil && r.down.Load() {
			c.st.handedWhileDown.Add(1)
		}
		if c.fetchRepo(ctx, mu, accepted, readAt) {
			good++
		}
		if ctx.Err() != nil {
			return
		}
	}
	if good == 0 {
		c.st.clientFailures.Add(1)
		c.st.note("no URL of %d gave a good repository", len(f.URLs))
	}
	// Downloads through the server, as a browser or curl does: GET /pub/<path>, follow the
	// redirect, check the bytes against the digest the redirect carried.
	for i, href := range c.packages {
		if i >= 2 || ctx.Err() != nil {
			break
		}
		c.download(ctx, repoDir+"/"+href, loc)
	}
	// And the images beside the repository that the origin deleted, through /pub too.
	for _, p := range c.w.deletedImages() {
		if ctx.Err() != nil {
			break
		}
		c.download(ctx, p, loc)
	}
}

// deletedImages are the images beside the repository that the origin deleted in the last
// rounds (mutate deletes image r-3 in round r), from just deleted to past the soak's
// grace, so that gc collects one of them while clients ask for it: as long as the server
// redirects to a region for one, the region must have it. (Not the newest, nor one
// brought back: before its next push, the server's answer for it is a 503 by design.)
func (w *world) deletedImages() []string {
	var out []string
	for k := int(w.round.Load()) - 3; k >= 1 && len(out) < 6; k-- {
		p := fmt.Sprintf("demo/1/iso/round-%03d.img", k)
		if _, err := os.Stat(filepath.Join(w.origin, filepath.FromSlash(p))); err != nil {
			out = append(out, p)
		}
	}
	return out
}

// downloadLoop downloads the deleted images through /pub without pause, as a crowd of
// curl users would, cycling the locations: gc's window between deleting an object and
// the servers forgetting it is short, and only dense requests see it.
func (c *client) downloadLoop(ctx context.Context, locations []string) {
	for i := 0; ctx.Err() == nil; i++ {
		for _, p := range c.w.deletedImages() {
			c.download(ctx, p, locations[i%len(locations)])
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (c *client) download(ctx context.Context, path, loc string) {
	u := c.w.srvURL + "/pub/" + model.EscapePath(path)
	if loc != "" {
		u += "?location=" + loc
	}
	c.st.requests.Add(1)
	c.st.serverRequests.Add(1)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := c.noRedirect.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			c.st.server5xx.Add(1)
			c.st.note("download %s: %v", u, err)
		}
		return
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body), "no region holds a verified copy of") &&
		strings.Contains(string(body), "and no origin.url is configured"):
		// The documented answer while a file's current bytes (a package re-signed under its
		// name) are verified in no region yet and there is no origin to fall back on: the
		// client is sent nowhere rather than to other bytes. Counted, not a failure.
		c.st.downloadNotYet.Add(1)
		return
	case resp.StatusCode >= 500:
		c.st.server5xx.Add(1)
		c.st.note("download %s: %s", u, resp.Status)
		return
	case resp.StatusCode == http.StatusNotFound:
		// The per-file data is reloaded at most every 30 s: a file younger than that may
		// be unknown to the server yet (a freshness delay, not a miss).
		c.st.downloadUnknown.Add(1)
		return
	case resp.StatusCode != http.StatusFound:
		c.st.serverOther.Add(1)
		c.st.note("download %s: %s", u, resp.Status)
		return
	}
	c.st.downloads.Add(1)
	digest := resp.Header.Get("Repr-Digest")
	target := resp.Header.Get("Location")
	c.context = "a /pub redirect"
	if strings.Contains(path, "/iso/round-") {
		c.context = "a /pub redirect for a file the origin deleted"
	}
	b, status, err := c.get(ctx, target)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		c.miss(target, status, err)
		c.st.downloadMisses.Add(1)
		// A download manager tries the RFC 6249 duplicates next, as aria2c does.
		b = nil
		for _, l := range resp.Header.Values("Link") {
			dup, params, _ := strings.Cut(l, ";")
			if !strings.Contains(params, "rel=duplicate") {
				continue
			}
			dup = strings.Trim(strings.TrimSpace(dup), "<>")
			if got, status, err := c.get(ctx, dup); err == nil {
				b = got
				break
			} else if ctx.Err() == nil {
				c.miss(dup, status, err)
			}
		}
		if b == nil {
			if ctx.Err() == nil {
				c.st.downloadFailed.Add(1)
				c.st.note("download %s: no URL worked", path)
			}
			return
		}
	}
	sum := sha256.Sum256(b)
	if want := "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"; digest != want {
		c.st.mismatches.Add(1)
		c.st.note("download %s from %s: digest %s, body %s", path, target, digest, want)
	}
}

// fetchRepo takes repomd.xml from u and everything it names; it reports whether the
// whole repository came through correct.
func (c *client) fetchRepo(ctx context.Context, u string, accepted map[string]bool, readAt time.Time) bool {
	if !strings.HasSuffix(u, "/repodata/repomd.xml") {
		c.st.mismatches.Add(1)
		c.st.note("metalink URL does not end in /repodata/repomd.xml: %s", u)
		return false
	}
	base := strings.TrimSuffix(u, "repodata/repomd.xml")
	body, status, err := c.get(ctx, u)
	if err != nil {
		if ctx.Err() == nil {
			c.miss(u, status, err)
		}
		return false
	}
	sum := sha512.Sum512(body)
	h := hex.EncodeToString(sum[:])
	if !accepted[h] {
		c.st.mismatches.Add(1)
		if at, ok := c.w.history.published(h); ok && at.After(readAt.Add(-2*time.Second)) {
			c.st.mismatchNewer.Add(1)
			c.st.note("repomd.xml from %s is not in the metalink: the origin published it (%s) %s after the metalink was read", u, c.w.history.name(h), at.Sub(readAt).Round(time.Millisecond))
		} else {
			c.st.note("repomd.xml from %s matches no hash of the metalink (known to the origin: %v %s; %d bytes, sha512 %.16s...)", u, ok, c.w.history.name(h), len(body), h)
		}
		return false
	}
	c.context = "repomd.xml of " + c.w.history.name(h)
	md, err := repomd.Parse(strings.NewReader(string(body)))
	if err != nil {
		c.st.mismatches.Add(1)
		c.st.note("repomd.xml from %s: %v", u, err)
		return false
	}
	ok := true
	for _, d := range md.Data {
		b, status, err := c.get(ctx, base+d.Href)
		if err != nil {
			if ctx.Err() == nil {
				c.miss(base+d.Href, status, err)
			}
			ok = false
			continue
		}
		if !checksumOK(d.Algorithm, d.Checksum, b) {
			c.st.mismatches.Add(1)
			c.st.note("%s: checksum mismatch: %d bytes, not the %s %.16s... repomd.xml names (%s; %s; %s)", base+d.Href, len(b), d.Algorithm, d.Checksum, c.context, c.age(), c.w.originSays(base+d.Href, b))
			ok = false
			continue
		}
		if d.Type == "primary" {
			ok = c.fetchPackages(ctx, base, b) && ok
		}
	}
	return ok
}

type primaryDoc struct {
	Packages []struct {
		Checksum struct {
			Type  string `xml:"type,attr"`
			Value string `xml:",chardata"`
		} `xml:"checksum"`
		Location struct {
			Href string `xml:"href,attr"`
		} `xml:"location"`
	} `xml:"package"`
}

func (c *client) fetchPackages(ctx context.Context, base string, gz []byte) bool {
	zr, err := gzip.NewReader(strings.NewReader(string(gz)))
	if err != nil {
		c.st.mismatches.Add(1)
		c.st.note("primary: %v", err)
		return false
	}
	var doc primaryDoc
	if err := xml.NewDecoder(zr).Decode(&doc); err != nil {
		c.st.mismatches.Add(1)
		c.st.note("primary: %v", err)
		return false
	}
	ok := true
	for _, p := range doc.Packages {
		// dnf appends the href as it is: a '+' reaches S3 unencoded, where it means a
		// space; the pusher writes such keys twice for this reason.
		u := base + p.Location.Href
		c.packages = append(c.packages, p.Location.Href)
		b, status, err := c.get(ctx, u)
		if err != nil {
			if ctx.Err() == nil {
				c.miss(u, status, err)
			}
			ok = false
			continue
		}
		if !checksumOK(p.Checksum.Type, p.Checksum.Value, b) {
			c.st.mismatches.Add(1)
			c.st.note("%s: checksum mismatch: %d bytes, not the %s %.16s... primary.xml names (%s; %s; %s)", u, len(b), p.Checksum.Type, p.Checksum.Value, c.context, c.age(), c.w.originSays(u, b))
			ok = false
		}
	}
	return ok
}

// originSays tells how bytes a region served for u compare with the origin's file now:
// a rewrite under the same name shows as "the origin's current bytes".
func (w *world) originSays(u string, got []byte) string {
	_, rel, ok := strings.Cut(u, "/"+repoDir+"/")
	if !ok {
		return "not a path of the repository"
	}
	b, err := os.ReadFile(filepath.Join(w.origin, repoDir, filepath.FromSlash(rel)))
	switch {
	case err != nil:
		return "the origin has no such file now"
	case bytes.Equal(b, got):
		return "the origin's current bytes"
	default:
		return "not the origin's current bytes either"
	}
}

func checksumOK(algo, want string, b []byte) bool {
	var h hash.Hash
	switch algo {
	case "sha256":
		h = sha256.New()
	case "sha512":
		h = sha512.New()
	default:
		return false
	}
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)) == strings.ToLower(strings.TrimSpace(want))
}

// pause waits a little after a failed metalink, as dnf would before it tries again, so
// that a client does not spin at thousands of requests a second against a 503 and starve
// the processes under test of CPU.
func (c *client) pause(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(50 * time.Millisecond):
	}
}

// metalinkReason is the first line of an error answer that says something (an XML
// error document's first line is its declaration).
func metalinkReason(b []byte) string {
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "<?xml") {
			if len(line) > 300 {
				line = line[:300]
			}
			return line
		}
	}
	return ""
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// loop resolves metalinks until ctx ends, cycling through the locations so that every
// region is first for some clients.
func (c *client) loop(ctx context.Context, locations []string) {
	for i := 0; ctx.Err() == nil; i++ {
		c.resolve(ctx, locations[i%len(locations)])
	}
}
