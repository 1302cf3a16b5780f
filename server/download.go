package server

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/server/selection"
)

// Bounds of a download path: longer ones are refused before any lookup.
const (
	maxPathLen    = 1024
	maxSegmentLen = 255
	// maxDuplicates is the number of rel=duplicate Link headers (RFC 6249).
	maxDuplicates = 5
)

// ContentTypeMeta4 is Metalink 4's media type (RFC 5854).
const ContentTypeMeta4 = "application/metalink4+xml"

// downloadPath returns the origin path that a request path under prefix names. rest is
// the request's escaped path after "prefix/". Traversal in every spelling ("..", %2e%2e,
// double-encoded %252e%252e), NUL and other control bytes, backslashes, empty or overlong
// segments and invalid UTF-8 are bad requests. The result is checked again by the lookup in
// the origin inventory: only paths the origin has are ever redirected.
func downloadPath(rest string) (string, error) {
	if rest == "" {
		return "", &Error{Status: http.StatusNotFound, Msg: "no file named; append a path of the origin tree"}
	}
	if len(rest) > 3*maxPathLen {
		return "", badRequest("path longer than %d bytes", maxPathLen)
	}
	p, err := url.PathUnescape(rest)
	if err != nil {
		return "", badRequest("bad percent-encoding in the path")
	}
	return p, checkPath(p)
}

// checkPath refuses decoded paths that cannot be files of the origin tree (see downloadPath).
func checkPath(p string) error {
	if p == "" {
		return badRequest("empty path")
	}
	if len(p) > maxPathLen {
		return badRequest("path longer than %d bytes", maxPathLen)
	}
	if !utf8.ValidString(p) {
		return badRequest("the path is not valid UTF-8")
	}
	// One pass over the bytes; each segment is judged where it ends, by the checks in this
	// order, so the first bad segment gives the error (a redirect's path has a dozen).
	start, bad, pct := 0, false, false
	for i := 0; i <= len(p); i++ {
		if i < len(p) {
			switch c := p[i]; {
			case c == '/':
			case c < 0x20 || c == 0x7f || c == '\\':
				bad = true
				continue
			case c == '%':
				pct = true
				continue
			default:
				continue
			}
		}
		seg := p[start:i]
		switch {
		case seg == "":
			return badRequest("empty path segment (// or a trailing /): name a file")
		case seg == "." || seg == "..":
			return badRequest("'.' and '..' are not allowed in paths")
		case len(seg) > maxSegmentLen:
			return badRequest("path segment longer than %d bytes", maxSegmentLen)
		case bad:
			return badRequest("control characters and backslashes are not allowed in paths")
		}
		// Double encoding: a segment that decodes once more to a traversal is an attack,
		// not a file name.
		if pct {
			if u, err := url.PathUnescape(seg); err == nil && (u == "." || u == ".." || strings.ContainsAny(u, "/\\\x00")) {
				return badRequest("encoded traversal in the path")
			}
		}
		start, bad, pct = i+1, false, false
	}
	return nil
}

// acceptsMeta4 reports whether an Accept header asks for Metalink 4 by name (download
// managers such as aria2c do; browsers never list it, so they get the redirect).
func acceptsMeta4(accept string) bool {
	if !strings.Contains(accept, ContentTypeMeta4) {
		return false
	}
	for item := range strings.SplitSeq(accept, ",") {
		typ, params, _ := strings.Cut(item, ";")
		if !strings.EqualFold(strings.TrimSpace(typ), ContentTypeMeta4) {
			continue
		}
		for param := range strings.SplitSeq(params, ";") {
			k, v, _ := strings.Cut(param, "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				if q, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && q <= 0 {
					return false
				}
			}
		}
		return true
	}
	return false
}

// downloadFlags reads the parameters that pick a format: ?meta4 and ?mirrorlist, bare or
// with a boolean value; any other value is the client's error.
func downloadFlags(raw string) (meta4, mirrorlist bool, err error) {
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(pair, "=")
		var dst *bool
		switch k {
		case "meta4":
			dst = &meta4
		case "mirrorlist":
			dst = &mirrorlist
		default:
			continue
		}
		val, uerr := url.QueryUnescape(v)
		if uerr != nil {
			val = v
		}
		switch strings.ToLower(val) {
		case "", "1", "true":
			*dst = true
		case "0", "false":
			*dst = false
		default:
			return false, false, unknownValue(k, val, "none, 1, true, 0, false")
		}
	}
	return meta4, mirrorlist, nil
}

// fileRef is a file of the origin inventory, resolved for one request.
type fileRef struct {
	path   string
	index  int
	size   int64
	sha256 []byte
}

// resolveFile parses a download request and finds its file. The second result says that
// the .meta4 suffix named it.
func (s *Server) resolveFile(c echo.Context) (*selection.Snapshot, fileRef, bool, error) {
	snap, err := s.snapshot()
	if err != nil {
		return nil, fileRef{}, false, err
	}
	p, err := s.requestPath(c.Request().URL)
	if err != nil {
		return nil, fileRef{}, false, err
	}
	f, suffix, err := lookupFile(snap, p, true)
	return snap, f, suffix, err
}

// requestPath is downloadPath of a request URL's path under the download prefix. net/http
// has decoded the path already: when the request spelled it as its plain escaping (no
// RawPath, the usual case), the decoded path is what unescaping the escaped one again
// would give, and is checked as it is. A prefix of unreserved characters escapes to itself,
// so the decoded path starts with it exactly when the escaped one does.
func (s *Server) requestPath(u *url.URL) (string, error) {
	if u.RawPath == "" && plainPath(s.prefix) {
		rest, ok := strings.CutPrefix(u.Path, s.prefix)
		if !ok || rest == "" || rest[0] != '/' {
			return "", echo.ErrNotFound
		}
		if rest = rest[1:]; rest == "" {
			return downloadPath("")
		}
		// An escaped path over 3*maxPathLen bytes decodes to one over maxPathLen, which
		// checkPath refuses with downloadPath's message.
		return rest, checkPath(rest)
	}
	esc := u.EscapedPath()
	rest, ok := strings.CutPrefix(esc, s.prefix)
	if !ok || rest == "" || rest[0] != '/' {
		return "", echo.ErrNotFound
	}
	return downloadPath(rest[1:])
}

// plainPath reports whether p consists of characters that every URL escaping keeps as they are.
func plainPath(p string) bool {
	for i := 0; i < len(p); i++ {
		if c := p[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' || c == '/') {
			return false
		}
	}
	return true
}

// lookupFile finds a checked path in the origin inventory, for downloads and
// /api/v1/locate alike. With meta4Suffix, a path the origin lacks that ends in .meta4 names
// the file without it, and the second result says so.
func lookupFile(snap *selection.Snapshot, p string, meta4Suffix bool) (fileRef, bool, error) {
	if snap.Files == nil {
		return fileRef{}, false, &Error{Status: http.StatusServiceUnavailable, Msg: "starting up, the file inventory is not loaded yet"}
	}
	idx, ok := snap.Files.Lookup(p)
	suffix := false
	if !ok && meta4Suffix {
		if base, cut := strings.CutSuffix(p, ".meta4"); cut && base != "" && !strings.HasSuffix(base, "/") {
			idx, ok = snap.Files.Lookup(base)
			p, suffix = base, ok
		}
	}
	if !ok {
		return fileRef{}, false, &Error{Status: http.StatusNotFound, Msg: "the origin has no file " + safeText(p, 512)}
	}
	t := snap.Files.Table()
	return fileRef{path: p, index: idx, size: t.Size(idx), sha256: t.SHA256(idx)}, suffix, nil
}

// download answers under the download prefix: a redirect to the best region
// with RFC 6249 Link and digest headers, Metalink 4 (?meta4, .meta4 or Accept), or the
// HTML mirror list (?mirrorlist).
func (s *Server) download(c echo.Context) error {
	snap, f, suffix, err := s.resolveFile(c)
	if err != nil {
		return err
	}
	q, err := ParseQuery(c.Request().URL.RawQuery)
	if err != nil {
		return err
	}
	return s.answerFile(c, snap, f, suffix, q, true)
}

// regionDownload answers GET|HEAD /r/<region>/<path> as /pub/<path>?location=<region>:
// the URL metalinks give for an on-demand region, so that dnf asks this server for every
// file and is sent into the region when it holds the file verified, elsewhere (and a copy
// queued) when not. A repository's repomd.xml goes to the region when it serves the
// repository (metadata is pushed and verified by repository).
func (s *Server) regionDownload(c echo.Context) error {
	snap, err := s.snapshot()
	if err != nil {
		return err
	}
	esc := strings.TrimPrefix(c.Request().URL.EscapedPath(), "/r/")
	rawName, rest, ok := strings.Cut(esc, "/")
	name, uerr := url.PathUnescape(rawName)
	if uerr != nil || name == "" || len(name) > 255 || !utf8.ValidString(name) {
		return badRequest("name a region: /r/<region>/<path>")
	}
	region := snap.Region(name)
	if region == nil || !strings.EqualFold(region.Name, name) && !slices.ContainsFunc(region.Aliases, func(a string) bool { return strings.EqualFold(a, name) }) {
		return &Error{Status: http.StatusNotFound, Msg: "no region named " + safeText(name, 128)}
	}
	if !ok {
		rest = ""
	}
	p, err := downloadPath(rest)
	if err != nil {
		return err
	}
	q, err := ParseQuery(c.Request().URL.RawQuery)
	if err != nil {
		return err
	}
	q.Location = region.Name // the region named is first, whatever location= says
	if repo := snap.RepositoryOfRepomd(p); repo != nil {
		if target := s.repomdTarget(c, snap, repo, region, q); target != nil {
			h := c.Response().Header()
			h["Location"] = []string{target.URL(p)}
			h["Content-Length"] = hdrZero
			info(c).region = target.Name // the origin's is "origin"
			return c.NoContent(http.StatusFound)
		}
	}
	f, suffix, err := lookupFile(snap, p, true)
	if err != nil {
		return err
	}
	return s.answerFile(c, snap, f, suffix, q, true)
}

// repomdTarget is where /r/<region>/ sends a repository's repomd.xml: the region when it
// serves the repository, else the first that does for the client (the origin last); nil
// when none can.
func (s *Server) repomdTarget(c echo.Context, snap *selection.Snapshot, repo *selection.Repository, region *selection.Region, q Query) *selection.Region {
	req := s.request(c, snap, q)
	o := s.clientOrder(snap, req)
	for _, r := range o.regions { // region first when it may serve the client
		if snap.ServesRepository(repo, r, req.Now) {
			return r
		}
	}
	return o.origin
}

// selectFile is selection for a file as pages and the API show it: without on-demand
// copies when the per-file data is stale (onDemandStale), as redirects are.
func (s *Server) selectFile(snap *selection.Snapshot, f fileRef, req selection.Request) *selection.Decision {
	d := selection.SelectFileAt(snap, f.path, f.index, req)
	if s.onDemandStale(snap) {
		d.Chosen = slices.DeleteFunc(d.Chosen, func(ch selection.Choice) bool { return ch.Region.FillsOnDemand(f.path) })
	}
	return d
}

// onDemandStale reports whether snap's per-file data is too old (ondemand.stale_after) to
// send anyone to an on-demand copy: gc may have removed it since, behind a mark this
// server could not read.
func (s *Server) onDemandStale(snap *selection.Snapshot) bool {
	return s.opt.OnDemandStaleAfter > 0 && !snap.FilesReadFrom.IsZero() && time.Since(snap.FilesReadFrom) > s.opt.OnDemandStaleAfter
}

// answerFile answers a download of f for query q (see download). mayWait lets a miss of
// an on-demand region wait for its copy (ondemand.max_wait).
func (s *Server) answerFile(c echo.Context, snap *selection.Snapshot, f fileRef, suffix bool, q Query, mayWait bool) error {
	r := c.Request()
	meta4, mirrorlist, err := downloadFlags(r.URL.RawQuery)
	if err != nil {
		return err
	}
	req := s.request(c, snap, q)
	h := c.Response().Header()
	// Per-file data too old to know of a removal: no client goes to on-demand copies.
	stale := s.onDemandStale(snap)
	if mirrorlist {
		info(c).endpoint = "download-mirrorlist"
		d := s.selectFile(snap, f, req)
		d.Notes = append(q.Notes, d.Notes...)
		info(c).tier, info(c).region = d.Tier, firstRegion(d)
		compressible(c)
		return s.fileMirrorlist(c, snap, f, d, req)
	}
	o := s.clientOrder(snap, req)
	// A file the origin deleted is not at origin.url any more: only the regions that
	// still hold it (through its grace period) can serve it, and once none does it is gone.
	origin := o.origin
	deleted := snap.Files.Table().Deleted.Has(f.index)
	if deleted {
		origin = nil
		if len(o.forFile(snap, f, nil, 1, stale)) == 0 {
			return &Error{Status: http.StatusNotFound, Msg: "the origin deleted " + safeText(f.path, 512) + " and no region holds it any more"}
		}
	}
	// The region this client goes to first for the file: when it fills on demand, a
	// request for its copy moves the expiry clock, and a miss queues a copy.
	if first := o.firstCarrying(f.path); !stale && first != nil && first.OnDemand && s.opt.Fills != nil && first.FillsOnDemand(f.path) {
		switch {
		case snap.Verified(first, f.index):
			s.opt.Fills.Requested(first.ID, f.path, req.Now)
		case !deleted:
			s.opt.Fills.Missed(first, f.path)
			if r.Method == http.MethodGet && s.opt.Activity != nil {
				s.opt.Activity.Missed(first.Name)
			}
			isMeta4 := meta4 || suffix || acceptsMeta4(r.Header.Get("Accept"))
			wait := s.opt.Fills.opt.MaxWait
			if origin == nil && r.Method != http.MethodHead && len(o.forFile(snap, f, nil, 1, stale)) == 0 {
				wait = max(wait, NowhereWait) // its copy, or a 503 (a HEAD only asks)
			}
			if mayWait && !isMeta4 && s.opt.Fills.waitUpTo(r.Context(), first, f.path, s.opt.Store.Snapshot, wait, true) {
				return s.answerAgain(c, f, suffix, q)
			}
		}
	}
	if meta4 || suffix || acceptsMeta4(r.Header.Get("Accept")) {
		info(c).endpoint = "download-meta4"
		regions := o.forFile(snap, f, nil, 0, stale)
		info(c).tier = tierFor(o, regions)
		info(c).region = regionName(regions, origin)
		// The answer depends on Accept (and who asks: see the route's Cache-Control).
		h.Set("Vary", "Accept")
		return s.meta4(c, f, regions, origin)
	}
	var buf [maxDuplicates]*selection.Region
	regions := o.forFile(snap, f, buf[:0], maxDuplicates, stale)
	info(c).tier = tierFor(o, regions)
	if len(regions) == 0 && origin == nil && mayWait && r.Method != http.MethodHead && s.opt.Fills != nil && !deleted && model.InRepodata(f.path) {
		// Metadata a push has recorded in the region this client goes to first and this
		// server's per-file data does not show yet (it lags the repository's state by up
		// to a rebuild): a client that read the new repomd.xml asks for it at once.
		if first := o.firstCarrying(f.path); first != nil && first.Pushes(f.path) &&
			s.opt.Fills.waitUpTo(r.Context(), first, f.path, s.opt.Store.Snapshot, NowhereWait, false) {
			return s.answerAgain(c, f, suffix, q)
		}
	}
	if len(regions) == 0 && origin == nil {
		e := &Error{Status: http.StatusServiceUnavailable, Msg: "no region holds a verified copy of " + safeText(f.path, 512) + " yet, and no origin.url is configured"}
		for _, n := range append(q.Notes, o.notes...) {
			e.Details = append(e.Details, safeText(n, 256))
		}
		return e
	}
	target := origin
	if len(regions) > 0 {
		target = regions[0]
	}
	s.redirectHeaders(h, r, f, regions, origin)
	info(c).region = regionName(regions, origin)
	if r.Method == http.MethodGet && s.opt.Activity != nil {
		name := target.Name
		if target == origin {
			name = ""
		}
		s.opt.Activity.Redirected(name, f.size)
	}
	return c.NoContent(http.StatusFound)
}

// answerAgain answers f from the snapshot a wait ended with, the one that holds the copy
// waited for (the redirect goes into its region), without waiting again.
func (s *Server) answerAgain(c echo.Context, f fileRef, suffix bool, q Query) error {
	snap, err := s.snapshot()
	if err != nil {
		return err
	}
	if f, _, err = lookupFile(snap, f.path, false); err != nil {
		return err
	}
	return s.answerFile(c, snap, f, suffix, q, false)
}

// regionName names, for the request log, the first of regions, else the origin ("origin",
// its Region's name); "" for none.
func regionName(regions []*selection.Region, origin *selection.Region) string {
	switch {
	case len(regions) > 0:
		return regions[0].Name
	case origin != nil:
		return origin.Name
	}
	return ""
}

// firstRegion is regionName of a decision: its first chosen region, else the origin.
func firstRegion(d *selection.Decision) string {
	switch {
	case len(d.Chosen) > 0:
		return d.Chosen[0].Region.Name
	case d.Origin != nil:
		return d.Origin.Name
	}
	return ""
}

// hdrZero is a redirect's Content-Length, shared by all (see hdrMetalink).
var hdrZero = []string{"0"}

func tierFor(o *clientOrder, regions []*selection.Region) string {
	if len(regions) == 0 {
		return selection.TierNone
	}
	return o.tier
}

// redirectHeaders writes a redirect's headers: Location; the RFC 6249 Link headers (the
// meta4 as rel=describedby, then up to five regions holding the file as rel=duplicate with
// pri ascending and geo lower case, the origin counting as one when there is room); the
// file's SHA-256 as RFC 9530 Repr-Digest and RFC 3230 Digest; Vary, since the answer
// depends on Accept (the route sets Cache-Control). All values are cut from one string.
func (s *Server) redirectHeaders(h http.Header, r *http.Request, f fileRef, regions []*selection.Region, origin *selection.Region) {
	esc := model.EscapePath(f.path)
	dups := regions
	var withOrigin [maxDuplicates]*selection.Region
	if origin != nil && len(regions) < maxDuplicates {
		dups = append(append(withOrigin[:0], regions...), origin)
	}
	size := 96 + len(r.Host) + len(s.prefix) + 2*len(esc) + len(dups[0].Base()) + 2*44 + 24
	for _, reg := range dups {
		size += len(reg.Base()) + len(esc) + 40
	}
	// A strings.Builder hands out its bytes as a string without copying them.
	var b strings.Builder
	b.Grow(size)
	var cuts [maxDuplicates + 5]int // end offsets of the values in b
	n := 0
	cut := func() { cuts[n] = b.Len(); n++ }
	// Link: the meta4.
	var self [512]byte
	b.WriteByte('<')
	b.Write(s.appendSelfURL(self[:0], r, esc))
	b.WriteString(".meta4>; rel=describedby; type=\"" + ContentTypeMeta4 + "\"")
	cut()
	for i, reg := range dups {
		b.WriteByte('<')
		b.WriteString(reg.Base())
		b.WriteString(esc)
		b.WriteString(">; rel=duplicate; pri=")
		b.WriteByte(byte('1' + i)) // at most maxDuplicates
		if reg.Country != "" {
			b.WriteString("; geo=")
			for j := 0; j < len(reg.Country); j++ {
				c := reg.Country[j]
				if c >= 'A' && c <= 'Z' {
					c += 'a' - 'A'
				}
				b.WriteByte(c)
			}
		}
		cut()
	}
	links := n
	// Location: the first duplicate.
	b.WriteString(dups[0].Base())
	b.WriteString(esc)
	cut()
	var sum [44]byte
	base64.StdEncoding.Encode(sum[:], f.sha256)
	b.WriteString("sha-256=:")
	b.Write(sum[:])
	b.WriteByte(':')
	cut()
	b.WriteString("SHA-256=")
	b.Write(sum[:])
	cut()
	all := b.String()
	vals := make([]string, n+1)
	start := 0
	for i := range n {
		vals[i] = all[start:cuts[i]]
		start = cuts[i]
	}
	vals[n] = "Accept"
	h["Link"] = vals[0:links:links]
	h["Location"] = vals[links : links+1 : links+1]
	h["Repr-Digest"] = vals[links+1 : links+2 : links+2]
	h["Digest"] = vals[links+2 : links+3 : links+3]
	h["Vary"] = vals[n : n+1 : n+1]
	// net/http says so itself for a GET, not for a HEAD, which must say the same.
	h["Content-Length"] = hdrZero
}

// selfURL is this server's URL of a file: scheme and host as the client used them (the
// X-Forwarded-Proto of a trusted proxy counts), the download prefix, the escaped path. A
// Host header that is not a plain host[:port] gives a path without scheme and host.
func (s *Server) selfURL(r *http.Request, path string) string {
	return string(s.appendSelfURL(nil, r, model.EscapePath(path)))
}

func (s *Server) appendSelfURL(b []byte, r *http.Request, escaped string) []byte {
	if host := r.Host; validHost(host) {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		} else if len(s.opt.TrustedProxies) > 0 {
			// The header map's key is canonical already (net/http canonicalizes names).
			if v := r.Header["X-Forwarded-Proto"]; len(v) > 0 && (v[0] == "https" || v[0] == "http") && s.fromTrustedProxy(r) {
				scheme = v[0]
			}
		}
		b = append(b, scheme...)
		b = append(b, "://"...)
		b = append(b, host...)
	}
	b = append(b, s.prefix...)
	b = append(b, '/')
	return append(b, escaped...)
}

func (s *Server) fromTrustedProxy(r *http.Request) bool {
	peer := ClientAddr(r.RemoteAddr, nil, nil)
	for _, p := range s.opt.TrustedProxies {
		if peer.IsValid() && p.Contains(peer) {
			return true
		}
	}
	return false
}

func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == ':' || c == '[' || c == ']') {
			return false
		}
	}
	return true
}

// meta4 answers Metalink 4 for a file.
func (s *Server) meta4(c echo.Context, f fileRef, regions []*selection.Region, origin *selection.Region) error {
	b := bufPool.Get().(*bytes.Buffer)
	b.Reset()
	defer bufPool.Put(b)
	name := baseName(f.path)
	WriteMeta4(b, Meta4File{
		Name: name, Size: f.size, SHA256: hex.EncodeToString(f.sha256),
		Origin: s.selfURL(c.Request(), f.path) + ".meta4", URLs: meta4URLs(f.path, regions, origin),
	}, s.now())
	c.Response().Header().Set("Content-Disposition", contentDisposition(name+".meta4"))
	return blob(c, http.StatusOK, ContentTypeMeta4, b.Bytes())
}

func meta4URLs(path string, regions []*selection.Region, origin *selection.Region) []Meta4URL {
	out := make([]Meta4URL, 0, len(regions)+1)
	if origin != nil {
		regions = append(regions[:len(regions):len(regions)], origin)
	}
	for _, r := range regions {
		out = append(out, Meta4URL{URL: r.URL(path), Location: strings.ToLower(r.Country), Priority: len(out) + 1})
	}
	return out
}

func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// contentDisposition builds an attachment header for any file name (RFC 6266): the exact
// name in RFC 5987 filename*, and in filename= an ASCII fallback for clients without it,
// a valid quoted-string that keeps every printable ASCII character (quotes and
// backslashes as quoted-pairs) and replaces each other character, control or not ASCII,
// by one "_". filename* is left out when the fallback says the name plainly.
func contentDisposition(name string) string {
	var b strings.Builder
	b.Grow(len(name) + 64)
	b.WriteString(`attachment; filename="`)
	plain := true
	for _, r := range name { // an invalid UTF-8 byte is one RuneError: one "_"
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
			plain = false
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
			// Some clients percent-decode filename= (RFC 6266, appendix D).
			plain = plain && r != '%'
		default:
			b.WriteByte('_')
			plain = false
		}
	}
	b.WriteByte('"')
	if !plain {
		b.WriteString("; filename*=UTF-8''")
		b.WriteString(model.EscapePath(strings.ReplaceAll(strings.ToValidUTF8(name, "\uFFFD"), "/", "_")))
	}
	return b.String()
}
