package testenv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/jackc/pgx/v5"
	"github.com/regionmirror/regionmirror/internal/localpg"
)

func TestMain(m *testing.M) { Main(m) }

func TestDatabasesAreSeparate(t *testing.T) {
	ctx := context.Background()
	a, b := NewDatabase(t), NewDatabase(t)
	if a == b {
		t.Fatal("two tests' databases share a URL")
	}
	ca, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close(ctx)
	if _, err := ca.Exec(ctx, "CREATE TABLE only_in_a (x int)"); err != nil {
		t.Fatal(err)
	}
	cb, err := pgx.Connect(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close(ctx)
	var n int
	if err := cb.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("table leaked between databases: n=%d err=%v", n, err)
	}
	var owner bool
	if err := ca.QueryRow(ctx, "SELECT current_setting('is_superuser') = 'on'").Scan(&owner); err != nil || !owner {
		t.Errorf("test databases are not reached as superuser: %v", err)
	}
}

func TestS3ChecksPayloadsAndServesPublicReads(t *testing.T) {
	ctx := context.Background()
	srv := SharedS3(t)
	c := srv.Client()
	bucket := srv.NewBucket(t, true)
	body := []byte("hello, region\n")
	sum := sha256.Sum256(body)
	good := base64.StdEncoding.EncodeToString(sum[:])
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("a/b.txt"),
		Body: bytes.NewReader(body), ChecksumSHA256: aws.String(good), ChecksumAlgorithm: types.ChecksumAlgorithmSha256})
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	// A wrong checksum must be refused: the pusher relies on it.
	bad := base64.StdEncoding.EncodeToString(make([]byte, 32))
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("a/bad.txt"),
		Body: bytes.NewReader(body), ChecksumSHA256: aws.String(bad), ChecksumAlgorithm: types.ChecksumAlgorithmSha256})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("put with a wrong checksum: err = %v, want an S3 error", err)
	}
	resp, err := http.Get(srv.URL(bucket, "a/b.txt"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, body) {
		t.Fatalf("anonymous GET: %s %q", resp.Status, got)
	}
	private := srv.NewBucket(t, false)
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(private), Key: aws.String("x"), Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	resp, err = http.Get(srv.URL(private, "x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("anonymous GET from a private bucket: %s, want 403", resp.Status)
	}
}

func TestPostgresRestart(t *testing.T) {
	dir := t.TempDir()
	pg, err := localpg.Start(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	if err := pg.Restart(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.AdminURL())
	if err != nil {
		t.Fatalf("connect after restart: %v", err)
	}
	conn.Close(ctx)
}
