package geo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oschwald/geoip2-golang/v2"
	"github.com/oschwald/maxminddb-golang/v2"
)

// Location is what a GeoIP database knows about an address. A City database gives
// coordinates; a Country database only the country and continent.
type Location struct {
	Country   string // ISO 3166-1 alpha-2, upper case; "" if unknown
	Continent string // AF AN AS EU NA OC SA; "" if unknown
	Lat, Lon  float64
	HasCoords bool
}

// Known reports whether the lookup found anything usable.
func (l Location) Known() bool { return l.Country != "" || l.Continent != "" || l.HasCoords }

// GeoIP looks addresses up in a MaxMind DB file (GeoIP2/GeoLite2 City or Country, DB-IP
// City Lite) and reopens the file when it changes on disk.
//
// The file is read into memory rather than mmapped: a database that is rewritten in place
// would otherwise change (or vanish) under lookups in flight, and an old reader could
// never be closed safely while a request might still use it.
type GeoIP struct {
	path string
	log  *slog.Logger
	cur  atomic.Pointer[geoipDB]
	mu   sync.Mutex // one reload at a time
}

type geoipDB struct {
	r    *maxminddb.Reader
	stat fileStamp
	// decoded caches records by their offset in the data section: many networks share one
	// record (a city), and decoding is most of a lookup's cost. It is bounded.
	mu      sync.RWMutex
	decoded map[uintptr]Location
}

// maxDecoded bounds the decoded-record cache (a City database has ~150k distinct records).
const maxDecoded = 200_000

// record is the part of a City or Country record selection uses. Decoding only these
// fields (not the localised names) keeps a lookup to about a microsecond without garbage.
type record struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	Continent struct {
		Code string `maxminddb:"code"`
	} `maxminddb:"continent"`
	Location struct {
		Latitude  *float64 `maxminddb:"latitude"`
		Longitude *float64 `maxminddb:"longitude"`
	} `maxminddb:"location"`
}

// fileStamp identifies a version of a file on disk.
type fileStamp struct {
	mod  time.Time
	size int64
	ino  uint64
}

func stampOf(fi os.FileInfo) fileStamp {
	return fileStamp{mod: fi.ModTime(), size: fi.Size(), ino: inode(fi)}
}

// OpenGeoIP opens the database at path.
func OpenGeoIP(path string, log *slog.Logger) (*GeoIP, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &GeoIP{path: path, log: log}
	if _, err := g.Reload(); err != nil {
		return nil, err
	}
	return g, nil
}

// Path returns the database file's path.
func (g *GeoIP) Path() string { return g.path }

// Reload reopens the file if it changed since it was last read and reports whether it did.
// On error the database in use stays in use.
func (g *GeoIP) Reload() (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	fi, err := os.Stat(g.path)
	if err != nil {
		return false, fmt.Errorf("geoip database: %w", err)
	}
	st := stampOf(fi)
	if cur := g.cur.Load(); cur != nil && cur.stat == st {
		return false, nil
	}
	data, err := os.ReadFile(g.path)
	if err != nil {
		return false, fmt.Errorf("geoip database: %w", err)
	}
	// geoip2 knows which database types carry City/Country records; lookups then use the
	// underlying reader with a record of just the fields needed.
	gr, err := geoip2.OpenBytes(data)
	if err != nil {
		return false, fmt.Errorf("geoip database %s: %w", g.path, err)
	}
	if _, err := gr.City(netip.MustParseAddr("127.0.0.1")); err != nil {
		var ime geoip2.InvalidMethodError
		if errors.As(err, &ime) {
			return false, fmt.Errorf("geoip database %s is a %s database, not a City or Country one", g.path, gr.Metadata().DatabaseType)
		}
	}
	r, err := maxminddb.OpenBytes(data)
	if err != nil {
		return false, fmt.Errorf("geoip database %s: %w", g.path, err)
	}
	g.cur.Store(&geoipDB{r: r, stat: st, decoded: map[uintptr]Location{}})
	md := r.Metadata
	g.log.Info("geoip database loaded", slog.String("path", g.path), slog.String("type", md.DatabaseType),
		slog.Time("built", time.Unix(int64(md.BuildEpoch), 0).UTC()))
	return true, nil
}

// Watch checks the file every interval and reloads it when it changed, until ctx ends.
func (g *GeoIP) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := g.Reload(); err != nil {
				g.log.Warn("geoip database not reloaded; the previous one stays in use", slog.Any("err", err))
			}
		}
	}
}

// Lookup returns what the database knows about a.
func (g *GeoIP) Lookup(a netip.Addr) (Location, bool) {
	cur := g.cur.Load()
	if cur == nil || !a.IsValid() {
		return Location{}, false
	}
	res := cur.r.Lookup(a.Unmap().WithZone(""))
	if !res.Found() {
		return Location{}, false
	}
	off := res.Offset()
	cur.mu.RLock()
	loc, ok := cur.decoded[off]
	cur.mu.RUnlock()
	if ok {
		return loc, loc.Known()
	}
	var c record
	if res.Decode(&c) != nil {
		return Location{}, false
	}
	loc = toLocation(c)
	cur.mu.Lock()
	if len(cur.decoded) >= maxDecoded {
		clear(cur.decoded)
	}
	cur.decoded[off] = loc
	cur.mu.Unlock()
	return loc, loc.Known()
}

func toLocation(c record) Location {
	loc := Location{}
	if cc, ok := NormalizeCountry(c.Country.ISOCode); ok {
		loc.Country = cc
		loc.Continent = ContinentOf(cc)
	}
	if ct, ok := NormalizeContinent(c.Continent.Code); ok {
		loc.Continent = ct
	}
	if c.Location.Latitude != nil && c.Location.Longitude != nil {
		loc.Lat, loc.Lon, loc.HasCoords = *c.Location.Latitude, *c.Location.Longitude, true
	}
	return loc
}
