package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

// hostileWorld is the real server on a loopback socket, over a real database with a
// region, a repository and a file, counting redirects into the database as serve does.
type hostileWorld struct {
	url      string
	dbURL    string
	activity *Activity
}

func startHostile(t *testing.T) *hostileWorld {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d, dbURL := testenv.NewDB(t)
	r := createRegion(t, d, "eu-central-1")
	f := dbFile("demo/1/x86_64/os/Packages/hello-1.0-1.noarch.rpm", "hello")
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Upsert: []model.File{f}}); err != nil {
		t.Fatal(err)
	}
	got, _ := d.GetFile(ctx, f.Path)
	if err := d.RecordObjects(ctx, db.NoFence, r.ID, []db.ObjectUpdate{{FileID: got.ID, Size: f.Size, SHA256: f.SHA256, State: model.ObjectPresent, Verified: true}}); err != nil {
		t.Fatal(err)
	}
	store := NewStore(d, StoreOptions{LoadFiles: true, Debounce: 20 * time.Millisecond, Interval: time.Hour})
	if err := store.Refresh(ctx, true); err != nil {
		t.Fatal(err)
	}
	go store.Run(ctx)
	act := NewActivity(d, ActivityOptions{Interval: 100 * time.Millisecond})
	actDone := make(chan struct{})
	go func() { act.Run(ctx); close(actDone) }()
	srv := New(Options{Store: store, Metrics: NewMetrics(store), Activity: act, DownloadPrefix: "/pub",
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		<-actDone
	})
	return &hostileWorld{url: "http://" + l.Addr().String(), dbURL: dbURL, activity: act}
}

// dbState is every row of every table of the database, as text.
func dbState(t *testing.T, url string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, tbl := range tables {
		var s *string
		q := fmt.Sprintf("SELECT string_agg(x::text, E'\\n' ORDER BY x::text) FROM %s x", pgx.Identifier{tbl}.Sanitize())
		if err := conn.QueryRow(ctx, q).Scan(&s); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "== %s\n", tbl)
		if s != nil {
			b.WriteString(*s)
		}
	}
	return b.String()
}

// rawRequest sends bytes as they are and returns the status code (0 when the server closed
// the connection without an answer).
func rawRequest(t *testing.T, base, raw string) (int, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		return 0, ""
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, ""
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return resp.StatusCode, string(body)
}

// TestHostileInput: what an attacker can send gets a 4xx or a normal answer, never a 5xx,
// and changes nothing in the database; the server keeps answering.
func TestHostileInput(t *testing.T) {
	w := startHostile(t)
	before := dbState(t, w.dbURL)
	long := strings.Repeat("a", 8000)
	targets := []string{
		"/metalink?" + long,
		"/metalink?repo=" + long + "&arch=x86_64",
		"/mirrorlist?repo=demo&arch=x86_64&country=" + strings.Repeat("de,", 600),
		"/metalink?repo=%FF%FE%FD&arch=%C0%AF",
		"/metalink?repo=demo&arch=x86_64&location=%ED%A0%80",
		"/metalink?repo=%00&arch=%0d%0aSet-Cookie:%20x",
		"/metalink?repo=a&arch=b&protocol=" + strings.Repeat("x,", 100),
		"/api/v1/locate?path=" + long,
		"/api/v1/locate?path=%2e%2e/%2e%2e/etc/passwd",
		"/api/v1/locate?path=%FF",
		"/" + long,
		"/%FF%FE",
		"/pub/" + strings.Repeat("a/", 2000) + "x",
		"/pub/%C0%AE%C0%AE/etc/passwd",
		"/apt/" + long + ".list",
		"/apt/demo/" + long + ".list",
		"/apt/%00%0d%0a.list",
		"/apt/%2e%2e/%2e%2e.list",
		"/apt/demo.list?location=" + long,
		"/apt/%FF%FE/%C0%AF.list",
	}
	// Traversal in every spelling, under the download prefix and beside it.
	for _, dots := range []string{"..", "%2e%2e", "%2E%2E", ".%2e", "%2e.", "%252e%252e", "%25252e%25252e", "%c0%ae%c0%ae", "%uff0e%uff0e", "..%00", "..%2f", "..%5c", "..\\", "%2e%2e%5c"} {
		for _, sep := range []string{"/", "%2f", "%2F", "%5c", "\\", "%252f"} {
			targets = append(targets, "/pub/demo/"+dots+sep+dots+sep+"etc"+sep+"passwd", "/pub/"+dots+sep+"demo/1/x86_64/os/Packages/hello-1.0-1.noarch.rpm",
				"/"+dots+sep+dots+sep+"etc/passwd")
		}
	}
	codes := map[int]int{}
	defer func() { t.Logf("%d hostile targets answered: %v", len(targets), codes) }()
	for _, target := range targets {
		code, body := rawRequest(t, w.url, "GET "+target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		codes[code]++
		if code >= 500 || code == 0 {
			t.Errorf("GET %.80s: %d %.200s", target, code, body)
		}
		if code == http.StatusFound && strings.Contains(target, "etc") {
			t.Errorf("GET %.80s was redirected", target)
		}
	}
	headers := []string{
		"X-Forwarded-For: " + long,
		"X-Forwarded-For: 1.2.3.4, " + strings.Repeat("garbage,", 800),
		"User-Agent: \xff\xfe\xfd",
		"Accept: " + strings.Repeat("application/metalink4+xml;q=0,", 300),
		"Big: " + strings.Repeat("b", 20000), // beyond MaxHeaderBytes: 431
	}
	for _, h := range headers {
		code, body := rawRequest(t, w.url, "GET /pub/demo/1/x86_64/os/Packages/hello-1.0-1.noarch.rpm?mirrorlist HTTP/1.1\r\nHost: x\r\n"+h+"\r\nConnection: close\r\n\r\n")
		if code >= 500 || code == 0 {
			t.Errorf("header %.60q: %d %.200s", h, code, body)
		}
	}
	// Malformed request lines are refused by net/http with a 400.
	for _, raw := range []string{"GET /metalink?\x00 HTTP/1.1\r\nHost: x\r\n\r\n", "GET \xff HTTP/1.1\r\nHost: x\r\n\r\n", "BREW / HTCPCP/1.0\r\n\r\n"} {
		if code, _ := rawRequest(t, w.url, raw); code >= 500 {
			t.Errorf("%q: %d", raw, code)
		}
	}

	// A forged X-Forwarded-For from an untrusted peer is harmless (FuzzClientAddr proves
	// it is never believed).
	for _, xff := range []string{"10.1.2.3", "203.0.113.7, 10.0.0.1", "::1", "\xff"} {
		code, body := rawRequest(t, w.url, "GET /metalink?repo=demo&arch=x86_64 HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: "+xff+"\r\nConnection: close\r\n\r\n")
		if code >= 500 || code == 0 {
			t.Errorf("X-Forwarded-For %q: %d %.200s", xff, code, body)
		}
	}

	w.activity.Round(context.Background())
	if after := dbState(t, w.dbURL); after != before {
		t.Errorf("hostile requests changed the database:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// Still serving normally.
	resp, err := http.Get(w.url + "/pub/demo/1/x86_64/os/Packages/hello-1.0-1.noarch.rpm?mirrorlist")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after the hostile requests: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestHostileParameterValues: an unknown value of every parameter every endpoint reads is
// a 400 that names the parameter (and what it accepts), never a 5xx; 503 stays for real
// unavailability (issue 12, defect 17: protocol=gopher answered 503).
func TestHostileParameterValues(t *testing.T) {
	w := startHostile(t)
	file := "/pub/demo/1/x86_64/os/Packages/hello-1.0-1.noarch.rpm"
	endpoints := []string{"/metalink?repo=demo&arch=x86_64&", "/mirrorlist?repo=demo&arch=x86_64&", file + "?", file + "?meta4&",
		file + "?mirrorlist&", "/api/v1/locate?path=demo/1/x86_64/os/Packages/hello-1.0-1.noarch.rpm&", "/apt/demo.list?"}
	params := []struct{ query, want string }{
		{"protocol=gopher", "parameter protocol: unknown value \"gopher\"; accepted values: http, https"},
		{"protocol=ftp", "parameter protocol"},
		{"protocol=https,%00", "parameter protocol"},
		{"protocol=" + strings.Repeat("%F0%9F%92%A9", 50), "parameter protocol"},
		{"country=ZZ", "parameter country: unknown value \"ZZ\"; accepted values: ISO 3166-1 alpha-2 codes"},
		{"country=de,%3Cscript%3E", "parameter country"},
		{"country=%FF%FE", "parameter country"},
	}
	for _, ep := range endpoints {
		for _, p := range params {
			target := ep + p.query
			code, body := rawRequest(t, w.url, "GET "+target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			body = strings.ReplaceAll(body, `\"`, `"`) // the API's JSON
			if code != http.StatusBadRequest || !strings.Contains(body, p.want) {
				t.Errorf("GET %.90s: %d %.300s; want 400 saying %s", target, code, body, p.want)
			}
			if strings.Contains(body, "<script>") {
				t.Errorf("GET %.90s echoes markup: %.300s", target, body)
			}
		}
	}
	for _, target := range []string{file + "?meta4=banana", file + "?mirrorlist=%FF"} {
		code, body := rawRequest(t, w.url, "GET "+target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if code != http.StatusBadRequest || !strings.Contains(body, "unknown value") {
			t.Errorf("GET %s: %d %.300s; want 400", target, code, body)
		}
	}
	// Values the server knows stay fine, and an unknown location= or an unexpanded variable
	// is only a note: regions come and go, a client's $location must not break its dnf.
	for _, target := range []string{"/metalink?repo=demo&arch=x86_64&protocol=HTTP,https", "/mirrorlist?repo=demo&arch=x86_64&country=global,de",
		file + "?location=nowhere-9&country=$country", file + "?meta4=1", file + "?mirrorlist=true"} {
		code, body := rawRequest(t, w.url, "GET "+target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if code >= 400 && code != http.StatusNotFound {
			t.Errorf("GET %s: %d %.300s", target, code, body)
		}
	}
}

// TestSlowAndIdleClients: a client that never finishes its headers is cut off by the
// server's timeouts; a thousand idle connections do not stop others from being answered.
func TestSlowAndIdleClients(t *testing.T) {
	w := startHostile(t)
	addr := strings.TrimPrefix(w.url, "http://")

	// Slowloris: headers trickle in and never end. ReadHeaderTimeout closes it.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /metalink?repo=a&arch=b HTTP/1.1\r\nHost: x\r\n")
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(conn, "X-Slow-%d: y\r\n", i); err != nil {
				return
			}
			conn.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := conn.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
				return // closed by the server
			}
		}
	}()
	select {
	case <-closed:
	case <-time.After(90 * time.Second):
		t.Error("a client trickling headers was not cut off within 90s (ReadHeaderTimeout)")
	}

	// Many idle connections, some with half a request.
	var idle []net.Conn
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 1000 {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				return
			}
			if i%2 == 0 {
				io.WriteString(c, "GET /metalink HTTP/1.1\r\n")
			}
			mu.Lock()
			idle = append(idle, c)
			mu.Unlock()
		})
	}
	wg.Wait()
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	if len(idle) < 500 {
		t.Errorf("only %d of 1000 idle connections opened", len(idle))
	}
	client := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for range 20 {
		resp, err := client.Get(w.url + "/pub/demo/1/x86_64/os/Packages/hello-1.0-1.noarch.rpm")
		if err != nil {
			t.Fatalf("with %d idle connections: %v", len(idle), err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("with %d idle connections: %s", len(idle), resp.Status)
		}
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
