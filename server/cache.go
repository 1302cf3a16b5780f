package server

import (
	"bytes"
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regionmirror/regionmirror/internal/geo"
	"github.com/regionmirror/regionmirror/server/selection"
)

// answerTTL bounds how long a cached metalink is reused: selection depends on the clock
// only through the alternates window, so an answer may be this much late to drop an
// alternate that just expired.
const (
	answerTTL  = 5 * time.Second
	maxAnswers = 10_000
)

// answerKey is everything a metalink depends on besides the snapshot and the clock.
type answerKey struct {
	repo      *selection.Repository
	named     *selection.Region
	global    bool
	countries string
	protocols string
	geo       geo.Location
	blocks    string // the regions whose netblocks hold the client, with prefix lengths
}

// answer is a rendered metalink split around its pubdate, which changes every second.
type answer struct {
	head, tail   []byte
	tier, region string // for the request log (see reqInfo)
	expires      time.Time
}

// answerCache holds rendered metalinks of one snapshot: most clients of a region share a
// location, or GeoIP places them at the same city, so a few answers serve nearly everyone.
// The Server keeps it (the snapshot stays immutable) and starts a new one for a new snapshot.
type answerCache struct {
	gen uint64 // the Snapshot.Gen the answers were rendered from
	mu  sync.RWMutex
	m   map[answerKey]*answer
}

func newAnswerCache(gen uint64) *answerCache {
	return &answerCache{gen: gen, m: map[answerKey]*answer{}}
}

// answerCache returns the metalink cache of snap: the Server's, unless it was filled from
// another snapshot. A newer snapshot replaces it with an empty one; a request still holding
// an older snapshot gets a cache of its own, used once, so it cannot evict the newer one.
func (s *Server) answerCache(snap *selection.Snapshot) *answerCache {
	cache := s.answers.Load()
	if cache != nil && cache.gen == snap.Gen {
		return cache
	}
	fresh := newAnswerCache(snap.Gen)
	if cache != nil && cache.gen > snap.Gen {
		return fresh
	}
	if s.answers.CompareAndSwap(cache, fresh) {
		return fresh
	}
	if cache = s.answers.Load(); cache.gen == snap.Gen {
		return cache
	}
	return fresh // another snapshot is being installed; this cache is used once and dropped
}

func (c *answerCache) get(k answerKey, now time.Time) *answer {
	c.mu.RLock()
	a := c.m[k]
	c.mu.RUnlock()
	if a == nil || now.After(a.expires) {
		return nil
	}
	return a
}

func (c *answerCache) put(k answerKey, a *answer) {
	c.mu.Lock()
	if len(c.m) >= maxAnswers {
		clear(c.m)
	}
	c.m[k] = a
	c.mu.Unlock()
}

// newAnswer splits a rendered metalink around its pubdate value.
func newAnswer(body []byte, tier, region string, now time.Time) *answer {
	const marker = `pubdate="`
	i := bytes.Index(body, []byte(marker))
	if i < 0 {
		return nil
	}
	i += len(marker)
	j := i + bytes.IndexByte(body[i:], '"')
	return &answer{head: bytes.Clone(body[:i]), tail: bytes.Clone(body[j:]), tier: tier, region: region, expires: now.Add(answerTTL)}
}

// write renders the answer with the current pubdate.
func (a *answer) write(b *bytes.Buffer, now time.Time) {
	b.Write(a.head)
	b.Write(pubdate(now))
	b.Write(a.tail)
}

// stamp is a second and its pubdate text; every answer within the second shares it.
type stamp struct {
	sec  int64
	text []byte
}

var lastStamp atomic.Pointer[stamp]

func pubdate(now time.Time) []byte {
	sec := now.Unix()
	if st := lastStamp.Load(); st != nil && st.sec == sec {
		return st.text
	}
	st := &stamp{sec: sec, text: now.UTC().AppendFormat(nil, httpTimeFormat)}
	lastStamp.Store(st)
	return st.text
}

const httpTimeFormat = "Mon, 02 Jan 2006 15:04:05 GMT"

// keyFor builds the cache key of a request; blockBits comes from the netblock index.
func keyFor(repo *selection.Repository, named *selection.Region, req selection.Request, blockBits []int, matched bool) answerKey {
	k := answerKey{repo: repo, named: named, global: req.Global, geo: req.ClientGeo,
		countries: strings.Join(req.Countries, ","), protocols: strings.Join(req.Protocols, ",")}
	if matched {
		var b []byte
		for i, n := range blockBits {
			if n >= 0 {
				b = strconv.AppendInt(b, int64(i), 10)
				b = append(b, '/')
				b = strconv.AppendInt(b, int64(n), 10)
				b = append(b, ' ')
			}
		}
		k.blocks = string(b)
	}
	return k
}

// readMap is a map read on every request and written rarely: sync.Map's design, typed.
// sync.Map boxes a struct key in an interface and hashes it through its type descriptor, a
// visible share of a redirect; here the key is hashed as itself. Reads take no lock: they
// look in an immutable map (read), and only a key missing from it takes mu, to look in
// dirty, which holds read's entries and those added since. Once the misses have cost about
// as much as a copy, dirty becomes the new read (amortized O(1) per write, as sync.Map).
type readMap[K comparable, V any] struct {
	read   atomic.Pointer[map[K]V]
	mu     sync.Mutex
	dirty  map[K]V // nil until a write after a promotion
	misses int
}

func (m *readMap[K, V]) load(k K) (V, bool) {
	if r := m.read.Load(); r != nil {
		if v, ok := (*r)[k]; ok {
			return v, true
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	// A promotion between the lock-free look and the lock moved dirty into a read newer
	// than the one looked in: look again, or a stored key would read as absent.
	if r := m.read.Load(); r != nil {
		if v, ok := (*r)[k]; ok {
			return v, true
		}
	}
	if m.dirty == nil {
		var zero V
		return zero, false // read holds everything
	}
	v, ok := m.dirty[k]
	if m.misses++; m.misses >= len(m.dirty) {
		m.promote()
	}
	return v, ok
}

// store adds or replaces k.
func (m *readMap[K, V]) store(k K, v V) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dirty == nil {
		m.dirty = map[K]V{}
		if r := m.read.Load(); r != nil {
			maps.Copy(m.dirty, *r)
		}
	}
	m.dirty[k] = v
}

// promote publishes dirty as read; mu is held.
func (m *readMap[K, V]) promote() {
	d := m.dirty
	m.read.Store(&d)
	m.dirty, m.misses = nil, 0
}
