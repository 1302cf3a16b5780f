package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/filetable"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/server/selection"
)

// Files of the download tests. IDs of the world's regions are their positions + 1.
const (
	helloPath  = "demo/1/x86_64/os/Packages/hello-1.0-1.noarch.rpm"
	plusPath   = "demo/1/x86_64/os/Packages/libc++-compat-1.0-1.noarch.rpm"
	hostile    = `weird/a&b <c> "q" 'x' ünï+cödé name.rpm`
	lonelyPath = "lonely/nobody-has-me.rpm"
	realMeta4  = "docs/real.meta4"
	// Files the origin deleted: one still held through its grace period, one collected
	// everywhere (gc forgets the copies before the inventory forgets the file).
	heldDeleted = "old/held.iso"
	goneDeleted = "old/collected.iso"
)

var helloSum = sha256.Sum256([]byte("hello"))

// fileFixture is the world of the selection tests plus a file inventory.
func fileFixture(t testing.TB, origin string) *selection.Snapshot {
	t.Helper()
	b := filetable.NewBuilder(8, 256)
	add := func(p string, size int64, regions ...int64) {
		sum := sha256.Sum256([]byte(p))
		if p == helloPath {
			sum = helloSum
		}
		i, err := b.Add(p, size, sum[:], false)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range regions {
			b.Verify(r, i)
		}
	}
	all := []int64{}
	for i := range world {
		all = append(all, int64(i+1))
	}
	add(helloPath, 1234, all...)
	add(plusPath, 2000, 1, 2, 3)
	add(hostile, 42, 1, 3)
	add(lonelyPath, 7)
	add(realMeta4, 99, 2)
	for p, regions := range map[string][]int64{heldDeleted: {1, 2}, goneDeleted: nil} {
		sum := sha256.Sum256([]byte(p))
		i, err := b.Add(p, 10, sum[:], true)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range regions {
			b.Verify(r, i)
		}
	}
	return selection.BuildSnapshot(fixtureData(t, world), selection.NewFileIndex(b.Table()), selection.Policy{OriginURL: origin, AlternatesMaxAge: 72 * time.Hour}, nil)
}

func fileServer(t testing.TB, origin string, activity *Activity) *Server {
	t.Helper()
	store := NewStore(nil, StoreOptions{})
	store.Swap(fileFixture(t, origin))
	return New(Options{
		Store: store, Metrics: NewMetrics(store), GeoIP: fakeGeo{},
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Now:            func() time.Time { return now }, DownloadPrefix: "/pub", Activity: activity,
	})
}

func do(t *testing.T, s *Server, method, target string, header ...string) (*http.Response, string) {
	t.Helper()
	if method == http.MethodHead {
		// The server, not the handler, drops a HEAD's body: ask a real one.
		return doServed(t, s, method, target, header...)
	}
	req := httptest.NewRequest(method, target, nil)
	req.RemoteAddr = "203.0.113.9:4711"
	req.Host = "dl.example.org"
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec.Result(), rec.Body.String()
}

func TestDownloadRedirect(t *testing.T) {
	act := NewActivity(nil, ActivityOptions{})
	s := fileServer(t, "https://dl.example.org/pub", act)
	res, body := do(t, s, http.MethodGet, "/pub/"+helloPath+"?location=eu-central-1")
	if res.StatusCode != http.StatusFound || body != "" {
		t.Fatalf("status %d body %q", res.StatusCode, body)
	}
	h := res.Header
	if got := h.Get("Location"); got != "https://eu-central-1.example/"+helloPath {
		t.Errorf("Location %q", got)
	}
	b64 := base64.StdEncoding.EncodeToString(helloSum[:])
	for k, want := range map[string]string{
		"Repr-Digest":   "sha-256=:" + b64 + ":",
		"Digest":        "SHA-256=" + b64,
		"Cache-Control": "private, no-store",
		"Vary":          "Accept",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	links := h.Values("Link")
	want := []string{
		`<http://dl.example.org/pub/` + helloPath + `.meta4>; rel=describedby; type="application/metalink4+xml"`,
		`<https://eu-central-1.example/` + helloPath + `>; rel=duplicate; pri=1; geo=de`,
	}
	if len(links) != 6 || links[0] != want[0] || links[1] != want[1] {
		t.Errorf("Link:\n%s", strings.Join(links, "\n"))
	}
	for i, l := range links[1:] {
		if !strings.Contains(l, "; pri="+string(rune('1'+i))+"; geo=") {
			t.Errorf("Link %d: %s", i+1, l)
		}
	}
	// HEAD: the same headers, not counted as bytes redirected.
	res, _ = do(t, s, http.MethodHead, "/pub/"+helloPath+"?location=eu-central-1")
	if res.StatusCode != http.StatusFound || res.Header.Get("Location") != "https://eu-central-1.example/"+helloPath || len(res.Header.Values("Link")) != 6 {
		t.Errorf("HEAD: %d %v", res.StatusCode, res.Header)
	}
	if got := act.Local(); len(got) != 1 || got[0].Region != "eu-central-1" || got[0].Requests != 1 || got[0].Bytes != 1234 {
		t.Errorf("counts %+v", got)
	}

	// "+" and non-ASCII are percent-encoded in every URL.
	res, _ = do(t, s, http.MethodGet, "/pub/demo/1/x86_64/os/Packages/libc%2B%2B-compat-1.0-1.noarch.rpm?location=us-east-1")
	if got := res.Header.Get("Location"); got != "https://us-east-1.example/pub/demo/1/x86_64/os/Packages/libc%2B%2B-compat-1.0-1.noarch.rpm" {
		t.Errorf("Location %q", got)
	}
	res, _ = do(t, s, http.MethodGet, "/pub/"+model.EscapePath(hostile)+"?location=ap-southeast-2")
	if got := res.Header.Get("Location"); got != "http://ap-southeast-2.example/weird/a%26b%20%3Cc%3E%20%22q%22%20%27x%27%20%C3%BCn%C3%AF%2Bc%C3%B6d%C3%A9%20name.rpm" {
		t.Errorf("Location %q", got)
	}
	for _, l := range res.Header.Values("Link") {
		if strings.ContainsAny(strings.TrimSuffix(strings.SplitN(l, ">", 2)[0], ">")[1:], " <\"'") {
			t.Errorf("unescaped Link %q", l)
		}
	}
}

func TestDownloadStatuses(t *testing.T) {
	act := NewActivity(nil, ActivityOptions{})
	withOrigin := fileServer(t, "https://dl.example.org/pub", act)
	without := fileServer(t, "", nil)

	res, body := do(t, withOrigin, http.MethodGet, "/pub/no/such/file.rpm")
	if res.StatusCode != 404 || !strings.Contains(body, "the origin has no file no/such/file.rpm") {
		t.Errorf("unknown: %d %q", res.StatusCode, body)
	}
	// Known, but no region holds it: the origin, or a clear 503.
	res, _ = do(t, withOrigin, http.MethodGet, "/pub/"+lonelyPath)
	if res.StatusCode != 302 || res.Header.Get("Location") != "https://dl.example.org/pub/"+lonelyPath {
		t.Errorf("lonely with origin: %d %v", res.StatusCode, res.Header)
	}
	if links := res.Header.Values("Link"); len(links) != 2 || !strings.HasSuffix(links[1], "rel=duplicate; pri=1") {
		t.Errorf("lonely Links %q", links)
	}
	if got := act.Local(); len(got) != 1 || got[0].Region != "" || got[0].Bytes != 7 {
		t.Errorf("origin not counted: %+v", got)
	}
	res, body = do(t, without, http.MethodGet, "/pub/"+lonelyPath)
	if res.StatusCode != 503 || !strings.Contains(body, "no region holds a verified copy of "+lonelyPath+" yet, and no origin.url is configured") {
		t.Errorf("lonely without origin: %d %q", res.StatusCode, body)
	}
	// Down, disabled and location-only regions are not offered; location-only is when named.
	res, _ = do(t, without, http.MethodGet, "/pub/"+helloPath+"?location=us-west-2")
	if l := res.Header.Get("Location"); !strings.HasPrefix(l, "https://us-east-1.example/") && !strings.HasPrefix(l, "https://us-gov-1") {
		t.Errorf("down region: %s", l)
	}
	for _, l := range res.Header.Values("Link") {
		for _, bad := range []string{"us-west-2", "sa-east-1", "eu-west-1."} {
			if strings.Contains(l, bad) {
				t.Errorf("%s offered: %s", bad, l)
			}
		}
	}
	res, _ = do(t, without, http.MethodGet, "/pub/"+helloPath+"?location=eu-west-1")
	if l := res.Header.Get("Location"); !strings.HasPrefix(l, "https://eu-west-1.example/") {
		t.Errorf("named location-only region: %s", l)
	}
	// A region whose includes leave the path out (me-south-1 carries only other/).
	res, _ = do(t, without, http.MethodGet, "/pub/"+helloPath+"?location=me-south-1")
	if l := res.Header.Get("Location"); strings.Contains(l, "me-south-1") {
		t.Errorf("me-south-1 offered: %s", l)
	}
	// A real file whose name ends in .meta4 is a file, not a metalink.
	res, _ = do(t, without, http.MethodGet, "/pub/"+realMeta4)
	if res.StatusCode != 302 || res.Header.Get("Location") != "https://eu-central-1.example/"+realMeta4 {
		t.Errorf("real .meta4: %d %v", res.StatusCode, res.Header)
	}
	// Not a file: the prefix itself, a directory.
	for _, target := range []string{"/pub/", "/pub/demo/1/x86_64/os/Packages"} {
		if res, _ := do(t, without, http.MethodGet, target); res.StatusCode != 404 {
			t.Errorf("%s: %d", target, res.StatusCode)
		}
	}
	// Without a snapshot, or without the file inventory: 503.
	empty := New(Options{Store: NewStore(nil, StoreOptions{})})
	if res, _ := do(t, empty, http.MethodGet, "/pub/"+helloPath); res.StatusCode != 503 {
		t.Errorf("no snapshot: %d", res.StatusCode)
	}
	noFiles := testServer(t, "")
	if res, body := do(t, noFiles, http.MethodGet, "/pub/"+helloPath); res.StatusCode != 503 || !strings.Contains(body, "inventory is not loaded") {
		t.Errorf("no files: %d %s", res.StatusCode, body)
	}
}

// TestDownloadTraversal: every spelling of a way out of the tree is 400 or 404, never a
// redirect.
func TestDownloadTraversal(t *testing.T) {
	s := fileServer(t, "https://dl.example.org/pub", nil)
	long := strings.Repeat("a", 300)
	for _, target := range []string{
		"/pub/../etc/passwd",
		"/pub/demo/../../etc/passwd",
		"/pub/%2e%2e/etc/passwd",
		"/pub/%2E%2E/%2E%2E/etc/passwd",
		"/pub/demo/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
		"/pub/%252e%252e/etc/passwd",
		"/pub/demo/%252e%252e%252fetc",
		"/pub/%c0%ae%c0%ae/etc/passwd", // overlong UTF-8 dots
		"/pub/demo%00/hello.rpm",
		"/pub/" + helloPath + "%00.meta4",
		"/pub/..%5c..%5cetc%5cpasswd",
		"/pub/demo\\..\\..\\etc",
		"/pub//etc/passwd",
		"/pub/./" + helloPath,
		"/pub/" + long + "/x.rpm",
		"/pub/" + strings.Repeat("a/", 600) + "x",
		"/pub/a%0d%0aSet-Cookie:x=1",
	} {
		res, body := do(t, s, http.MethodGet, target)
		if res.StatusCode != 400 && res.StatusCode != 404 {
			t.Errorf("%s: %d %q, want 400 or 404", target, res.StatusCode, body)
		}
		if l := res.Header.Get("Location"); l != "" {
			t.Errorf("%s: redirected to %s", target, l)
		}
	}
}

func TestMeta4(t *testing.T) {
	s := fileServer(t, "https://dl.example.org/pub", nil)
	esc := "/pub/" + model.EscapePath(hostile)
	var first string
	for _, c := range []struct {
		target string
		header []string
	}{
		{esc + "?meta4&location=us-east-1", nil},
		{esc + ".meta4?location=us-east-1", nil},
		{esc + "?location=us-east-1", []string{"Accept", "*/*,application/metalink4+xml,application/metalink+xml"}},
	} {
		res, body := do(t, s, http.MethodGet, c.target, c.header...)
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != ContentTypeMeta4 {
			t.Fatalf("%s: %d %s %s", c.target, res.StatusCode, res.Header.Get("Content-Type"), body)
		}
		if got, want := res.Header.Get("Content-Disposition"), `attachment; filename="a&b <c> \"q\" 'x' _n_+c_d_ name.rpm.meta4"; filename*=UTF-8''a%26b%20%3Cc%3E%20%22q%22%20%27x%27%20%C3%BCn%C3%AF%2Bc%C3%B6d%C3%A9%20name.rpm.meta4`; got != want {
			t.Errorf("Content-Disposition %q", got)
		}
		if first == "" {
			first = body
			golden(t, "meta4-hostile.xml", body)
		} else if body != first {
			t.Errorf("%s differs from ?meta4:\n%s", c.target, body)
		}
	}
	// The document parses, and the name and URLs come back exactly.
	var doc struct {
		File struct {
			Name string `xml:"name,attr"`
			Size int64  `xml:"size"`
			Hash string `xml:"hash"`
			URLs []struct {
				Location string `xml:"location,attr"`
				Priority int    `xml:"priority,attr"`
				URL      string `xml:",chardata"`
			} `xml:"url"`
		} `xml:"file"`
	}
	if err := xml.Unmarshal([]byte(first), &doc); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(hostile))
	if doc.File.Name != baseName(hostile) || doc.File.Size != 42 || doc.File.Hash != hex.EncodeToString(sum[:]) || len(doc.File.URLs) != 3 ||
		doc.File.URLs[0].URL != "https://us-east-1.example/pub/"+model.EscapePath(hostile) || doc.File.URLs[0].Location != "us" ||
		doc.File.URLs[2].URL != "https://dl.example.org/pub/"+model.EscapePath(hostile) || doc.File.URLs[2].Priority != 3 {
		t.Errorf("parsed %+v", doc.File)
	}
	// Browsers and download managers that do not ask for Metalink 4 get the redirect.
	for _, accept := range []string{
		"text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
		"*/*", "application/metalink4+xml;q=0", "",
	} {
		if res, _ := do(t, s, http.MethodGet, "/pub/"+helloPath, "Accept", accept); res.StatusCode != 302 {
			t.Errorf("Accept %q: %d", accept, res.StatusCode)
		}
	}
	// HEAD of a meta4: headers only.
	res, body := do(t, s, http.MethodHead, "/pub/"+helloPath+".meta4")
	if res.StatusCode != 200 || body != "" || res.Header.Get("Content-Type") != ContentTypeMeta4 || res.Header.Get("Content-Length") == "" {
		t.Errorf("HEAD meta4: %d %v", res.StatusCode, res.Header)
	}
}

func TestMeta4ControlCharacters(t *testing.T) {
	var b bytes.Buffer
	xmlEscape(&b, "bell\x07tab\tend\xff<&>\"'\uFFFE.rpm")
	if out := b.String(); out != "bell\uFFFDtab&#x9;end\uFFFD&lt;&amp;&gt;&#34;&#39;\uFFFD.rpm" {
		t.Errorf("xmlEscape %q", out)
	}
}

func TestFileMirrorlistPage(t *testing.T) {
	s := fileServer(t, "https://dl.example.org/pub", nil)
	res, body := do(t, s, http.MethodGet, "/pub/"+model.EscapePath(hostile)+"?mirrorlist&location=ap-southeast-2")
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != ContentTypeHTML {
		t.Fatalf("%d %s", res.StatusCode, body)
	}
	i1, i2, i3 := strings.Index(body, `data-region="ap-southeast-2"`), strings.Index(body, `data-region="us-east-1"`), strings.Index(body, `data-region="origin"`)
	if i1 < 0 || i2 < i1 || i3 < i2 {
		t.Errorf("order ap-southeast-2, us-east-1, origin not found:\n%s", body)
	}
	for _, want := range []string{"a&amp;b &lt;c&gt; &#34;q&#34;", "42 bytes", "holds no verified copy of the file"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "<c>") || strings.Contains(body, "http://cdn") || strings.Contains(body, "https://fonts") {
		t.Error("unescaped name or external asset")
	}
}

func TestAPI(t *testing.T) {
	act := NewActivity(nil, ActivityOptions{})
	s := fileServer(t, "https://dl.example.org/pub", act)
	do(t, s, http.MethodGet, "/pub/"+helloPath+"?location=us-east-1")
	for _, target := range []string{"/api/v1/regions", "/api/v1/repositories", "/api/v1/status", "/api/v1/locate?path=" + helloPath + "&location=us-east-1"} {
		res, body := do(t, s, http.MethodGet, target)
		if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%s: %d %s", target, res.StatusCode, body)
			continue
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Errorf("%s: %v", target, err)
		}
		for _, secret := range []string{"credentials", "bucket", "endpoint", "10.1.0.0"} {
			if strings.Contains(body, secret) {
				t.Errorf("%s shows %q", target, secret)
			}
		}
	}
	_, body := do(t, s, http.MethodGet, "/api/v1/locate?path=/"+helloPath+"&location=us-east-1")
	var loc LocateView
	if err := json.Unmarshal([]byte(body), &loc); err != nil {
		t.Fatal(err)
	}
	if loc.Path != helloPath || loc.Size != 1234 || loc.Tier != selection.TierLocation || len(loc.Regions) == 0 || loc.Regions[0].Name != "us-east-1" ||
		loc.Origin != "https://dl.example.org/pub/"+helloPath || len(loc.Excluded) == 0 {
		t.Errorf("locate %+v", loc)
	}
	_, body = do(t, s, http.MethodGet, "/api/v1/status")
	var st StatusView
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Regions) != len(world) || st.Snapshot.Files != 7 || st.SavedFraction != 1 || st.Regions[len(st.Regions)-1].Name != "us-west-2" {
		t.Errorf("status %+v", st)
	}
	for target, status := range map[string]int{
		"/api/v1/locate":                    400,
		"/api/v1/locate?path=../etc/passwd": 400,
		"/api/v1/locate?path=nope.rpm":      404,
	} {
		res, body := do(t, s, http.MethodGet, target)
		if res.StatusCode != status || !strings.HasPrefix(body, `{"error":`) {
			t.Errorf("%s: %d %s", target, res.StatusCode, body)
		}
	}
}

// blockingSource is a database that never answers.
type blockingSource struct {
	once    sync.Once
	entered chan struct{}
}

func (b *blockingSource) block(ctx context.Context) error {
	b.once.Do(func() { close(b.entered) })
	<-ctx.Done()
	time.Sleep(time.Hour) // ignores cancellation, as a wedged driver might
	return ctx.Err()
}
func (b *blockingSource) AddUsage(ctx context.Context, _ model.UsageDelta) error {
	return b.block(ctx)
}
func (b *blockingSource) RedirectCounts(ctx context.Context) ([]model.RedirectCount, error) {
	return nil, b.block(ctx)
}
func (b *blockingSource) RecentRuns(ctx context.Context, _ string, _ int) ([]model.Run, error) {
	return nil, b.block(ctx)
}
func (b *blockingSource) LastRuns(ctx context.Context) ([]model.LastRun, error) {
	return nil, b.block(ctx)
}

// TestHungDatabaseNeverStallsRedirects: with the counters' flush stuck in the database,
// redirects, the dashboard and the API still answer at once.
func TestHungDatabaseNeverStallsRedirects(t *testing.T) {
	src := &blockingSource{entered: make(chan struct{})}
	act := NewActivity(src, ActivityOptions{Timeout: time.Hour})
	s := fileServer(t, "https://dl.example.org/pub", act)
	do(t, s, http.MethodGet, "/pub/"+helloPath) // something to flush
	go act.Round(context.Background())
	<-src.entered
	start := time.Now()
	for range 1000 {
		if res, _ := do(t, s, http.MethodGet, "/pub/"+helloPath); res.StatusCode != 302 {
			t.Fatal(res.StatusCode)
		}
	}
	for _, target := range []string{"/", "/api/v1/status"} {
		if res, _ := do(t, s, http.MethodGet, target); res.StatusCode != 200 {
			t.Errorf("%s: %d", target, res.StatusCode)
		}
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("1000 redirects and two pages took %s with the database hung", took)
	}
	if got := act.Totals(); len(got) != 1 || got[0].Requests != 1001 {
		t.Errorf("totals %+v", got)
	}
}

func TestDashboard(t *testing.T) {
	s := fileServer(t, "https://dl.example.org/pub", NewActivity(nil, ActivityOptions{}))
	res, body := do(t, s, http.MethodGet, "/")
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != ContentTypeHTML {
		t.Fatalf("%d %s", res.StatusCode, body)
	}
	for _, want := range []string{`<svg class="map"`, `<circle class="down"`, "<title>us-east-1 (unknown)</title>", `class="st st-fresh">fresh</span>`,
		`class="st st-alternate">alternate</span>`, `class="st st-stale">stale</span>`, `class="st st-excluded">excluded</span>`,
		`class="st st-missing">missing</span>`, `class="st st-unreachable">unreachable</span>`, `class="st st-unverified">unverified</span>`, "demo-1/x86_64",
		`<h2 id="usage">Usage</h2>`, `<p id="usage-none">No usage figures yet`} {
		if !strings.Contains(body, want) {
			t.Errorf("dashboard lacks %s", want)
		}
	}
	if strings.Contains(body, "src=\"http") || strings.Contains(body, "href=\"http") && strings.Contains(body, "stylesheet") {
		t.Error("external asset")
	}
}

// TestClientOrderMatchesSelection: the cached per-client order filtered by a file gives
// the regions and order that selection for that file gives.
func TestClientOrderMatchesSelection(t *testing.T) {
	s := fileServer(t, "https://dl.example.org/pub", nil)
	snap := s.opt.Store.Snapshot()
	var reqs []selection.Request
	for _, r := range world {
		reqs = append(reqs, selection.Request{Location: r.Name})
	}
	for _, client := range []string{"192.0.2.10", "10.1.2.3", "203.0.113.9", ""} {
		req := selection.Request{}
		if client != "" {
			req.Client = netip.MustParseAddr(client)
			req.ClientGeo, _ = fakeGeo{}.Lookup(req.Client)
		}
		reqs = append(reqs, req, selection.Request{Client: req.Client, Countries: []string{"AU", "DE"}}, selection.Request{Client: req.Client, Global: true},
			selection.Request{Client: req.Client, Protocols: []string{"http"}})
	}
	t2 := snap.Files.Table()
	for i := range t2.Len() {
		f := fileRef{path: t2.Path(i), index: i, size: t2.Size(i), sha256: t2.SHA256(i)}
		for _, req := range reqs {
			for range 2 { // computed, then cached
				want := selection.SelectFileAt(snap, f.path, f.index, req)
				o := s.clientOrder(snap, req)
				got := o.forFile(snap, f, nil, 0, false)
				if len(got) != len(want.Chosen) || o.origin != want.Origin {
					t.Fatalf("%s %+v: %d regions, want %d", f.path, req, len(got), len(want.Chosen))
				}
				for j := range got {
					if got[j] != want.Chosen[j].Region {
						t.Errorf("%s %+v: region %d is %s, want %s", f.path, req, j, got[j].Name, want.Chosen[j].Region.Name)
					}
				}
			}
		}
	}
}

// A file the origin deleted is not at origin.url: it is served only from regions that
// still hold it, and once gc collected it everywhere it is a 404. Before the fix such a
// file was redirected to the origin (a 404 there), or answered 503 "no region holds a
// verified copy yet" without an origin (found by TestConcurrencySoak's downloader).
func TestDeletedFileNeverSentToTheOrigin(t *testing.T) {
	for _, origin := range []string{"https://origin.example/pub", ""} {
		s := fileServer(t, origin, nil)
		res, _ := do(t, s, http.MethodGet, "/pub/"+heldDeleted)
		if res.StatusCode != http.StatusFound || strings.HasPrefix(res.Header.Get("Location"), "https://origin.example") ||
			strings.Contains(strings.Join(res.Header.Values("Link"), ","), "origin.example") {
			t.Errorf("origin %q: held deleted file: %d %q %q", origin, res.StatusCode, res.Header.Get("Location"), res.Header.Values("Link"))
		}
		if _, body := do(t, s, http.MethodGet, "/pub/"+heldDeleted+"?meta4"); strings.Contains(body, "origin.example") {
			t.Errorf("origin %q: the meta4 of a deleted file names the origin:\n%s", origin, body)
		}
		for _, q := range []string{"", "?meta4"} {
			res, body := do(t, s, http.MethodGet, "/pub/"+goneDeleted+q)
			if res.StatusCode != http.StatusNotFound || !strings.Contains(body, "no region holds it any more") {
				t.Errorf("origin %q: collected file%s: %d\n%s", origin, q, res.StatusCode, body)
			}
		}
	}
}

// TestCachesLetOldSnapshotsGo: once a new snapshot is installed, the answer and order
// caches hold nothing of the old one, whose file table (100 MB at a million files) the
// store expects to be garbage after a full read, even before a request comes.
func TestCachesLetOldSnapshotsGo(t *testing.T) {
	s := fileServer(t, "https://dl.example.org/pub", nil)
	freed := make(chan struct{})
	old := s.opt.Store.Snapshot()
	runtime.AddCleanup(old, func(ch chan struct{}) { close(ch) }, freed)
	answer := func() {
		t.Helper()
		if res, _ := do(t, s, http.MethodGet, "/metalink?repo=demo-1&arch=x86_64&location=us-east-1"); res.StatusCode != http.StatusOK {
			t.Fatalf("metalink: %d", res.StatusCode)
		}
		if res, _ := do(t, s, http.MethodGet, "/pub/"+helloPath+"?location=eu-central-1"); res.StatusCode != http.StatusFound {
			t.Fatalf("download: %d", res.StatusCode)
		}
	}
	answer() // fills both caches from the old snapshot
	old = nil
	s.opt.Store.Swap(fileFixture(t, "https://dl.example.org/pub"))
	defer answer() // and the caches still serve the new one
	for range 20 {
		runtime.GC()
		select {
		case <-freed:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatal("the old snapshot is still reachable after a new one answered")
}
