package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/regionmirror/regionmirror/internal/localpg"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

// TestSecretsNeverShown runs every command with a database password and S3 keys, with
// debug logging, against a database that requires the password, through a database
// outage and a wrong S3 secret, and looks for the secrets in everything captured: stdout,
// stderr and logs of every command, config show, the pages, the JSON API and metrics.
func TestSecretsNeverShown(t *testing.T) {
	const dbPassword = "Pg-Pw-7vQ2xK9z"
	wrongS3Secret := "Wrong-S3-Secret-4Jd8"
	secrets := []string{dbPassword, url.QueryEscape(dbPassword), testenv.S3SecretKey, wrongS3Secret}

	// A private PostgreSQL that asks for the password, so it really crosses the wire.
	pg, err := localpg.Start(filepath.Join(t.TempDir(), "pg"))
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"CREATE ROLE rm LOGIN PASSWORD '" + dbPassword + "'", "CREATE DATABASE rm OWNER rm"} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close(ctx)
	hba := filepath.Join(pg.Dir, "data", "pg_hba.conf")
	if err := os.WriteFile(hba, []byte("local all postgres trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	dbURL := fmt.Sprintf("postgres://rm:%s@127.0.0.1:%d/rm?sslmode=disable", url.QueryEscape(dbPassword), pg.Port)

	var captured strings.Builder
	record := func(what, text string) { fmt.Fprintf(&captured, "==== %s\n%s\n", what, text) }
	env := []string{"REGIONMIRROR_DATABASE_URL=" + dbURL, "REGIONMIRROR_LOG_LEVEL=debug"}
	runCLI := func(env []string, args ...string) int {
		out, errs, code := cli(t, env, args...)
		record(strings.Join(args, " "), out+errs)
		return code
	}
	// The wrong password is refused, without showing either.
	bad := strings.Replace(dbURL, url.QueryEscape(dbPassword), "Not-"+url.QueryEscape(dbPassword), 1)
	if code := runCLI([]string{"REGIONMIRROR_DATABASE_URL=" + bad}, "region", "list"); code == 0 {
		t.Error("a wrong database password was accepted")
	}
	if code := runCLI(env, "migrate"); code != 0 {
		t.Fatalf("migrate with the password failed:\n%s", captured.String())
	}

	origin := testenv.SampleOrigin(t, t.TempDir())
	srv := testenv.SharedS3(t)
	bucket := srv.NewBucket(t, true)
	odBucket := srv.NewBucket(t, true)
	t.Setenv("AWS_ACCESS_KEY_ID", testenv.S3AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", testenv.S3SecretKey)
	addr := freeAddr(t)
	env = append(env, "REGIONMIRROR_ORIGIN_PATH="+origin, "REGIONMIRROR_SERVER_LISTEN="+addr, "REGIONMIRROR_ORIGIN_URL=https://dl.example.org/pub")
	for _, args := range [][]string{
		{"region", "add", "eu-central-1", "--bucket", bucket, "--endpoint", srv.Endpoint, "--public-url", srv.Endpoint + "/" + bucket, "--country", "DE"},
		{"region", "add", "eu-west-1", "--bucket", odBucket, "--endpoint", srv.Endpoint, "--public-url", srv.Endpoint + "/" + odBucket, "--country", "IE", "--fill", "on-demand"},
		{"repo", "add", "demo-1", "x86_64", "demo/1/x86_64/os"},
		{"push"}, {"push", "--json"}, {"scan"}, {"scan", "--json"}, {"status"}, {"status", "--json"},
		{"region", "list", "--json"}, {"region", "show", "eu-central-1"}, {"locate", "demo/1/x86_64/os/repodata/repomd.xml", "--json"},
		{"explain", "--repo", "demo-1", "--arch", "x86_64"}, {"config", "show"}, {"config", "check"}, {"gc", "--dry-run"},
		{"fill", "--once", "--json"}, {"locate", "demo/1/x86_64/os/Packages/hello-1.0-1.noarch.rpm"},
	} {
		if code := runCLI(env, args...); code != 0 {
			t.Fatalf("regionmirror %s: exit %d\n%s", strings.Join(args, " "), code, captured.String())
		}
	}
	// A wrong S3 secret: the push fails and says why, without the secret.
	t.Setenv("AWS_SECRET_ACCESS_KEY", wrongS3Secret)
	os.WriteFile(filepath.Join(origin, "demo", "new.txt"), []byte("new"), 0o644)
	if code := runCLI(env, "push"); code == 0 {
		t.Error("a push with a wrong S3 secret succeeded")
	}
	runCLI(env, "scan", "--deep")
	t.Setenv("AWS_SECRET_ACCESS_KEY", testenv.S3SecretKey)

	// serve, its pages and API, then a database outage under it.
	sctx, cancel := context.WithCancel(context.Background())
	var serveLog testenv.Buffer
	done := make(chan int, 1)
	go func() { done <- run(sctx, []string{"serve"}, strings.NewReader(""), &serveLog, &serveLog, env) }()
	base := "http://" + addr
	fetch := func(path string) int {
		client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		res, err := client.Get(base + path)
		if err != nil {
			return 0
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		var h strings.Builder
		res.Header.Write(&h)
		record("GET "+path, res.Status+"\n"+h.String()+"\n"+string(body))
		return res.StatusCode
	}
	deadline := time.Now().Add(30 * time.Second)
	for fetch("/readyz") != 200 {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve never became ready:\n%s", serveLog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	paths := []string{"/", "/api/v1/regions", "/api/v1/repositories", "/api/v1/status", "/api/v1/locate?path=demo/1/x86_64/os/repodata/repomd.xml",
		"/metalink?repo=demo-1&arch=x86_64", "/mirrorlist?repo=demo-1&arch=x86_64", "/pub/demo/1/x86_64/os/repodata/repomd.xml",
		"/pub/demo/1/x86_64/os/repodata/repomd.xml?mirrorlist", "/pub/demo/1/x86_64/os/repodata/repomd.xml.meta4", "/metrics", "/healthz"}
	for _, p := range paths {
		fetch(p)
	}
	pg.Stop()
	deadline = time.Now().Add(60 * time.Second)
	for {
		fetch("/readyz")
		if strings.Contains(serveLog.String(), "rebuild failed") || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, p := range paths {
		fetch(p)
	}
	runCLI(env, "status") // the database is down: the error names host and user only
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Error("serve did not stop")
	}
	record("serve log", serveLog.String())

	text := captured.String()
	if p := os.Getenv("SECRETS_DUMP"); p != "" {
		os.WriteFile(p, []byte(text), 0o644)
	}
	// The capture covers what it should: redaction, both refusals and the outage.
	for _, want := range []string{"database_url: postgres://rm:REDACTED@", "password authentication failed", "StatusCode: 403", "degraded: database unreachable"} {
		if !strings.Contains(text, want) {
			t.Errorf("the capture lacks %q; the test no longer sees what it should", want)
		}
	}
	for _, s := range secrets {
		if i := strings.Index(text, s); i >= 0 {
			t.Errorf("secret %q appears in the output: ...%s...", s, text[max(0, i-300):min(len(text), i+100)])
		}
	}
	t.Logf("searched %d bytes of output from %d commands and requests for %d secrets", len(text), strings.Count(text, "==== "), len(secrets))
}
