package objstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// stores returns one store of each kind, each rooted under a prefix.
func stores(t *testing.T) map[string]Store {
	t.Helper()
	ctx := context.Background()
	srv := testenv.SharedS3(t)
	bucket := srv.NewBucket(t, true)
	s3store, err := Open(ctx, &model.Region{Name: "s3", Kind: model.KindS3, Bucket: bucket, Endpoint: srv.Endpoint,
		S3Region: testenv.S3Region, Prefix: "pub"}, Options{AccessKey: testenv.S3AccessKey, SecretKey: testenv.S3SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	fileStore, err := Open(ctx, &model.Region{Name: "file", Kind: model.KindFile, Dir: t.TempDir(), Prefix: "pub"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]Store{"s3": s3store, "file": fileStore}
}

func readAll(t *testing.T, s Store, key string) []byte {
	t.Helper()
	r, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestContract(t *testing.T) {
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			keys := []string{"a/b/hello.rpm", "a/libc++-1.0.rpm", "a/with space.txt", "a/ünïcode.txt", "a-b/z.txt"}
			for _, k := range keys {
				body := []byte("content of " + k)
				if err := s.Put(ctx, k, bytes.NewReader(body), int64(len(body)), PutOptions{SHA256: sum(body), ContentType: "text/plain"}); err != nil {
					t.Fatalf("put %s: %v", k, err)
				}
				if got := readAll(t, s, k); !bytes.Equal(got, []byte("content of "+k)) {
					t.Errorf("get %s = %q", k, got)
				}
				info, err := s.Head(ctx, k)
				if err != nil || info.Size != int64(len(body)) || info.Key != k {
					t.Errorf("head %s: %+v %v", k, info, err)
				}
			}

			// A body that does not match its announced SHA-256 is refused and not stored.
			body := []byte("the real bytes")
			err := s.Put(ctx, "a/corrupt.txt", bytes.NewReader(body), int64(len(body)), PutOptions{SHA256: sum([]byte("other bytes"))})
			if !errors.Is(err, ErrChecksum) {
				t.Errorf("put with a wrong checksum: %v, want ErrChecksum", err)
			}
			if _, err := s.Head(ctx, "a/corrupt.txt"); !errors.Is(err, ErrNotExist) {
				t.Errorf("refused object exists: %v", err)
			}
			if _, err := s.Get(ctx, "nope/x"); !errors.Is(err, ErrNotExist) {
				t.Errorf("get missing: %v", err)
			}

			var listed []string
			if err := s.List(ctx, "a/", "", func(i Info) error { listed = append(listed, i.Key); return nil }); err != nil {
				t.Fatal(err)
			}
			want := []string{"a/b/hello.rpm", "a/libc++-1.0.rpm", "a/with space.txt", "a/ünïcode.txt"}
			if strings.Join(listed, "|") != strings.Join(want, "|") {
				t.Errorf("list a/ = %q, want %q", listed, want)
			}
			var all int
			if err := s.List(ctx, "", "", func(Info) error { all++; return nil }); err != nil || all != len(keys) {
				t.Errorf("list all: %d %v", all, err)
			}

			// A range: after a key, stopping early.
			var ranged []string
			err = s.List(ctx, "", "a/libc++-1.0.rpm", func(i Info) error {
				ranged = append(ranged, i.Key)
				if len(ranged) == 2 {
					return ErrStop
				}
				return nil
			})
			if err != nil || strings.Join(ranged, "|") != "a/with space.txt|a/ünïcode.txt" {
				t.Errorf("ranged list = %q, %v", ranged, err)
			}

			src := []byte("content of a/libc++-1.0.rpm")
			if err := s.Copy(ctx, "a/libc++-1.0.rpm", "a/libc  -1.0.rpm", PutOptions{SHA256: sum(src)}); err != nil {
				t.Fatalf("copy: %v", err)
			}
			if got := readAll(t, s, "a/libc  -1.0.rpm"); !bytes.Equal(got, src) {
				t.Errorf("copy content %q", got)
			}

			if err := s.Delete(ctx, "a/b/hello.rpm"); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(ctx, "a/b/hello.rpm"); err != nil {
				t.Errorf("deleting a missing object: %v", err)
			}
			if _, err := s.Head(ctx, "a/b/hello.rpm"); !errors.Is(err, ErrNotExist) {
				t.Errorf("deleted object: %v", err)
			}
			for _, bad := range []string{"../escape", "a/../../b", "/abs", "", "a//b"} {
				if err := s.Put(ctx, bad, bytes.NewReader(nil), 0, PutOptions{SHA256: sum(nil)}); err == nil {
					t.Errorf("put accepted key %q", bad)
				}
			}
		})
	}
}

func TestMultipart(t *testing.T) {
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			part1 := make([]byte, 5<<20) // S3's smallest part
			part2 := make([]byte, 1234)
			rand.Read(part1)
			rand.Read(part2)
			whole := append(append([]byte{}, part1...), part2...)
			up, err := s.Multipart(ctx, "big/file.iso", PutOptions{SHA256: sum(whole), ContentType: "application/octet-stream"})
			if err != nil {
				t.Fatal(err)
			}
			if err := up.PutPart(ctx, 1, part1, sum(part1)); err != nil {
				t.Fatal(err)
			}
			if err := up.PutPart(ctx, 2, part2, sum(part2)); err != nil {
				t.Fatal(err)
			}
			if err := up.Complete(ctx); err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, s, "big/file.iso"); !bytes.Equal(got, whole) {
				t.Errorf("multipart content differs (%d bytes)", len(got))
			}

			up, err = s.Multipart(ctx, "big/bad.iso", PutOptions{SHA256: sum(whole)})
			if err != nil {
				t.Fatal(err)
			}
			if err := up.PutPart(ctx, 1, part1, sum(part2)); !errors.Is(err, ErrChecksum) {
				t.Errorf("part with a wrong checksum: %v", err)
			}
			if err := up.Abort(ctx); err != nil {
				t.Errorf("abort: %v", err)
			}
			if _, err := s.Head(ctx, "big/bad.iso"); !errors.Is(err, ErrNotExist) {
				t.Errorf("aborted upload exists: %v", err)
			}
		})
	}
}

func TestS3Specifics(t *testing.T) {
	ctx := context.Background()
	srv := testenv.SharedS3(t)
	bucket := srv.NewBucket(t, true)
	s, err := NewS3(ctx, S3Config{Bucket: bucket, Endpoint: srv.Endpoint, Region: testenv.S3Region},
		Options{AccessKey: testenv.S3AccessKey, SecretKey: testenv.S3SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("<repomd/>")
	if err := s.Put(ctx, "r/repodata/repomd.xml", bytes.NewReader(body), int64(len(body)),
		PutOptions{SHA256: sum(body), ContentType: "application/xml", CacheControl: "no-cache"}); err != nil {
		t.Fatal(err)
	}
	info, err := s.Head(ctx, "r/repodata/repomd.xml")
	if err != nil {
		t.Fatal(err)
	}
	m := md5.Sum(body)
	if !bytes.Equal(ETagMD5(info.ETag), m[:]) {
		t.Errorf("single-part ETag %q is not the MD5 %s", info.ETag, hex.EncodeToString(m[:]))
	}
	// The scanner relies on the stored checksum where ETags are not MD5s (SSE-KMS).
	if !bytes.Equal(info.SHA256, sum(body)) {
		t.Errorf("stored checksum %x", info.SHA256)
	}
	if info.Encryption != "" && info.Encryption != "AES256" {
		t.Errorf("unencrypted object reported as %q", info.Encryption)
	}
	// A bucket without encryption says so, or cannot say; neither is an error.
	if enc, known, err := s.BucketEncryption(ctx); err != nil || (known && enc != "none" && enc != "AES256") {
		t.Errorf("bucket encryption: %q %v %v", enc, known, err)
	} else {
		t.Logf("bucket encryption: %q known %v", enc, known)
	}
	// What an anonymous client gets: the headers set at upload.
	resp, err := http.Get(srv.URL(bucket, "r/repodata/repomd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Cache-Control") != "no-cache" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/xml") {
		t.Errorf("public GET headers: %v", resp.Header)
	}
	if ETagMD5("abc-2") != nil || ETagMD5(`"0123456789abcdef0123456789abcdef"`) == nil {
		t.Error("ETagMD5 misreads ETags")
	}

	// Wrong credentials: a clear error, nothing secret in it.
	bad, err := NewS3(ctx, S3Config{Bucket: bucket, Endpoint: srv.Endpoint, Region: testenv.S3Region},
		Options{AccessKey: "testaccess", SecretKey: "wrong-secret-value"})
	if err != nil {
		t.Fatal(err)
	}
	err = bad.Put(ctx, "x", bytes.NewReader(body), int64(len(body)), PutOptions{SHA256: sum(body)})
	if err == nil || strings.Contains(err.Error(), "wrong-secret-value") {
		t.Errorf("bad credentials: %v", err)
	}
}

func TestFileStoreLeavesNoPartialFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("0123456789")
	// A short body (the origin shrank while reading) fails the checksum and leaves nothing.
	err = s.Put(ctx, "x/y.bin", bytes.NewReader(body[:5]), 10, PutOptions{SHA256: sum(body)})
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("short body: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "x"))
	if len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
	if _, err := NewFile("relative/dir"); err == nil {
		t.Error("relative root accepted")
	}
}

// TestBreakerFailsFastOnDeadEndpoint: once the S3 server is gone, a burst of concurrent
// requests (a push's) stops retrying connection failures instead of each retrying for its
// full backoff; the endpoint answering again closes the breaker.
func TestBreakerFailsFastOnDeadEndpoint(t *testing.T) {
	ctx := context.Background()
	srv, err := testenv.StartS3(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	bucket := srv.NewBucket(t, false)
	s, err := NewS3(ctx, S3Config{Bucket: bucket, Endpoint: srv.Endpoint, Region: testenv.S3Region},
		Options{AccessKey: testenv.S3AccessKey, SecretKey: testenv.S3SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("x")
	put := func(key string) error {
		return s.Put(ctx, key, bytes.NewReader(body), 1, PutOptions{SHA256: sum(body)})
	}
	if err := put("before"); err != nil || s.breaker.open() {
		t.Fatalf("put to a live server: %v, breaker open %v", err, s.breaker.open())
	}
	srv.Kill()
	const n = 16
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- put(fmt.Sprintf("during-%d", i)) }()
	}
	exhausted := 0
	for range n {
		err := <-errs
		if err == nil {
			t.Fatal("a put to a dead server succeeded")
		}
		// The SDK says so when a request used up its attempts; the breaker ends them sooner.
		if strings.Contains(err.Error(), "exceeded maximum number of attempts") {
			exhausted++
		}
	}
	if !s.breaker.open() || exhausted > breakerThreshold {
		t.Errorf("breaker open %v; %d of %d requests retried to the end", s.breaker.open(), exhausted, n)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := put("after"); err != nil || s.breaker.open() {
		t.Errorf("put after the restart: %v, breaker open %v", err, s.breaker.open())
	}
}
