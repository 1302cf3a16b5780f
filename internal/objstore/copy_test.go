package objstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

// twoBuckets opens two stores in two buckets of one versitygw.
func twoBuckets(t *testing.T) (*testenv.S3Server, *S3, *S3) {
	t.Helper()
	srv := testenv.SharedS3(t)
	open := func(prefix string) *S3 {
		st, err := Open(context.Background(), &model.Region{Name: "r", Kind: model.KindS3, Bucket: srv.NewBucket(t, false),
			Endpoint: srv.Endpoint, S3Region: testenv.S3Region, Prefix: prefix},
			Options{AccessKey: testenv.S3AccessKey, SecretKey: testenv.S3SecretKey})
		if err != nil {
			t.Fatal(err)
		}
		return st.(*S3)
	}
	return srv, open("pub"), open("mirror")
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func putObject(t *testing.T, s *S3, key string, data []byte) Info {
	t.Helper()
	ctx := context.Background()
	if err := s.Put(ctx, key, bytes.NewReader(data), int64(len(data)), PutOptions{SHA256: sum(data)}); err != nil {
		t.Fatal(err)
	}
	info, err := s.Head(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// incompleteUploads counts the multipart uploads left open in a store's bucket.
func incompleteUploads(t *testing.T, srv *testenv.S3Server, s *S3) int {
	t.Helper()
	out, err := srv.Client().ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(s.bucket)})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Uploads)
}

func TestCopyFromSingle(t *testing.T) {
	srv, src, dst := twoBuckets(t)
	ctx := context.Background()
	data := randomBytes(t, 100<<10)
	info := putObject(t, src, "a/file+1.rpm", data)
	if !dst.SameService(src) {
		t.Fatal("two buckets of one server are not the same service")
	}
	got, err := dst.CopyFrom(ctx, src, "a/file+1.rpm", "a/file+1.rpm", CopyOptions{SourceETag: info.ETag, Size: info.Size,
		SHA256: sum(data), MultipartThreshold: 5 << 20, PartSize: 5 << 20, ContentType: "application/x-rpm", CacheControl: "max-age=60"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Size != int64(len(data)) || !bytes.Equal(got.SHA256, sum(data)) {
		t.Fatalf("copy info %+v", got)
	}
	if !bytes.Equal(readAll(t, dst, "a/file+1.rpm"), data) {
		t.Fatal("copied bytes differ")
	}
	head, err := srv.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(dst.bucket), Key: aws.String("mirror/a/file+1.rpm")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(head.ContentType) != "application/x-rpm" || aws.ToString(head.CacheControl) != "max-age=60" {
		t.Errorf("headers: %q %q", aws.ToString(head.ContentType), aws.ToString(head.CacheControl))
	}

	// A wrong expected hash: the store's checksum disagrees, the copy is refused.
	wrong := sum([]byte("other"))
	if _, err := dst.CopyFrom(ctx, src, "a/file+1.rpm", "b", CopyOptions{SourceETag: info.ETag, Size: info.Size, SHA256: wrong,
		MultipartThreshold: 5 << 20, PartSize: 5 << 20}); !errors.Is(err, ErrChecksum) {
		t.Fatalf("wrong sha256: err %v, want ErrChecksum", err)
	}

	// The source changed after its ETag was read: the pinned copy fails.
	putObject(t, src, "a/file+1.rpm", randomBytes(t, 1000))
	_, err = dst.CopyFrom(ctx, src, "a/file+1.rpm", "c", CopyOptions{SourceETag: info.ETag, Size: info.Size, SHA256: sum(data),
		MultipartThreshold: 5 << 20, PartSize: 5 << 20})
	if !errors.Is(err, ErrSourceChanged) {
		t.Fatalf("changed source: err %v, want ErrSourceChanged", err)
	}
	// With the destination's condition too, a 412 is told apart by the source's ETag.
	_, err = dst.CopyFrom(ctx, src, "a/file+1.rpm", "c", CopyOptions{SourceETag: info.ETag, Size: info.Size, SHA256: sum(data),
		MultipartThreshold: 5 << 20, PartSize: 5 << 20, DestIfAbsent: true})
	if !errors.Is(err, ErrSourceChanged) || errors.Is(err, ErrDestChanged) {
		t.Fatalf("changed source, conditional destination: err %v, want ErrSourceChanged only", err)
	}
	if _, err := dst.Head(ctx, "c"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("changed source left an object: %v", err)
	}
}

func TestCopyFromMultipart(t *testing.T) {
	srv, src, dst := twoBuckets(t)
	ctx := context.Background()
	data := randomBytes(t, 12<<20)
	info := putObject(t, src, "big.iso", data)
	opts := CopyOptions{SourceETag: info.ETag, Size: info.Size, SHA256: sum(data), MultipartThreshold: 5 << 20, PartSize: 5 << 20}
	got, err := dst.CopyFrom(ctx, src, "big.iso", "big.iso", opts)
	if err != nil {
		t.Fatal(err)
	}
	if got.Size != int64(len(data)) || !bytes.HasSuffix([]byte(got.ETag), []byte("-3")) {
		t.Fatalf("multipart copy info %+v (want 3 parts)", got)
	}
	if !bytes.Equal(readAll(t, dst, "big.iso"), data) {
		t.Fatal("copied bytes differ")
	}
	if n := incompleteUploads(t, srv, dst); n != 0 {
		t.Fatalf("%d incomplete uploads after a copy", n)
	}

	// Changed source: every part is pinned; the upload is aborted, no object appears.
	putObject(t, src, "big.iso", randomBytes(t, 6<<20))
	_, err = dst.CopyFrom(ctx, src, "big.iso", "big2.iso", opts)
	if !errors.Is(err, ErrSourceChanged) {
		t.Fatalf("changed source: err %v, want ErrSourceChanged", err)
	}
	if _, err := dst.Head(ctx, "big2.iso"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("changed source left an object: %v", err)
	}
	if n := incompleteUploads(t, srv, dst); n != 0 {
		t.Fatalf("%d incomplete uploads after a failed copy", n)
	}

	// A cancelled copy aborts its upload too.
	info = putObject(t, src, "big.iso", data)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	opts.SourceETag = info.ETag
	if _, err := dst.CopyFrom(cctx, src, "big.iso", "big3.iso", opts); err == nil {
		t.Fatal("cancelled copy succeeded")
	}
	if n := incompleteUploads(t, srv, dst); n != 0 {
		t.Fatalf("%d incomplete uploads after a cancelled copy", n)
	}
}

func TestCopyParts(t *testing.T) {
	for _, c := range []struct {
		size, part int64
		n          int
		last       [2]int64
	}{
		{12 << 20, 5 << 20, 3, [2]int64{10 << 20, 12<<20 - 1}},
		{10 << 20, 5 << 20, 2, [2]int64{5 << 20, 10<<20 - 1}},
		{1, 5 << 20, 1, [2]int64{0, 0}},
		{0, 5 << 20, 0, [2]int64{}},
	} {
		n := CopyParts(c.size, c.part)
		if n != c.n {
			t.Errorf("CopyParts(%d, %d) = %d, want %d", c.size, c.part, n, c.n)
			continue
		}
		if n > 0 {
			if f, l := partRange(n, c.size, c.part); f != c.last[0] || l != c.last[1] {
				t.Errorf("last part of %d: %d-%d, want %v", c.size, f, l, c.last)
			}
		}
	}
}

func TestSameService(t *testing.T) {
	srv := testenv.SharedS3(t)
	ctx := context.Background()
	open := func(endpoint, region string) Store {
		st, err := Open(ctx, &model.Region{Name: "r", Kind: model.KindS3, Bucket: "b", Endpoint: endpoint, S3Region: region},
			Options{AccessKey: testenv.S3AccessKey, SecretKey: testenv.S3SecretKey})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	a := open(srv.Endpoint, "us-east-1").(*S3)
	file, err := NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !a.SameService(open(srv.Endpoint, "us-east-1")) || a.SameService(open("http://127.0.0.1:1", "us-east-1")) ||
		a.SameService(open(srv.Endpoint, "eu-west-1")) || a.SameService(file) {
		t.Fatal("SameService")
	}
}

// TestConditionalWrites: a write conditional on the key as it was seen (absent, or of an
// ETag) is refused with ErrDestChanged once someone else wrote the key, for a PUT, a
// multipart upload and a multipart copy (checked at CompleteMultipartUpload), and leaves
// the other writer's object in place; with the condition still true it writes.
func TestConditionalWrites(t *testing.T) {
	_, src, dst := twoBuckets(t)
	ctx := context.Background()
	theirs := randomBytes(t, 1000)
	mine := randomBytes(t, 1000)
	seen := putObject(t, dst, "k", randomBytes(t, 1000)) // what a worker saw before writing
	putObject(t, dst, "k", theirs)                       // another writer since

	put := func(o PutOptions) error {
		o.SHA256 = sum(mine)
		return dst.Put(ctx, "k", bytes.NewReader(mine), int64(len(mine)), o)
	}
	if err := put(PutOptions{IfMatch: seen.ETag}); !errors.Is(err, ErrDestChanged) {
		t.Errorf("put if-match a replaced ETag: %v, want ErrDestChanged", err)
	}
	if err := put(PutOptions{IfAbsent: true}); !errors.Is(err, ErrDestChanged) {
		t.Errorf("put if-absent over an object: %v, want ErrDestChanged", err)
	}
	if err := dst.Put(ctx, "gone", bytes.NewReader(mine), int64(len(mine)), PutOptions{SHA256: sum(mine), IfMatch: seen.ETag}); !errors.Is(err, ErrDestChanged) {
		t.Errorf("put if-match on a missing key: %v, want ErrDestChanged", err)
	}
	up, err := dst.Multipart(ctx, "k", PutOptions{IfAbsent: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := up.PutPart(ctx, 1, mine, sum(mine)); err != nil {
		t.Fatal(err)
	}
	if err := up.Complete(ctx); !errors.Is(err, ErrDestChanged) {
		t.Errorf("multipart if-absent over an object: %v, want ErrDestChanged", err)
	}
	_ = up.Abort(ctx)

	big := randomBytes(t, 6<<20)
	info := putObject(t, src, "big", big)
	putObject(t, dst, "big", theirs)
	if _, err := dst.CopyFrom(ctx, src, "big", "big", CopyOptions{SourceETag: info.ETag, Size: info.Size, SHA256: sum(big),
		MultipartThreshold: 5 << 20, PartSize: 5 << 20, DestIfAbsent: true}); !errors.Is(err, ErrDestChanged) {
		t.Errorf("multipart copy if-absent over an object: %v, want ErrDestChanged", err)
	}
	for _, key := range []string{"k", "big"} {
		if !bytes.Equal(readAll(t, dst, key), theirs) {
			t.Errorf("%s: the other writer's object was replaced", key)
		}
	}

	now, err := dst.Head(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if err := put(PutOptions{IfMatch: now.ETag}); err != nil {
		t.Fatalf("put if-match the current ETag: %v", err)
	}
	if err := dst.Put(ctx, "new", bytes.NewReader(mine), int64(len(mine)), PutOptions{SHA256: sum(mine), IfAbsent: true}); err != nil {
		t.Fatalf("put if-absent on a new key: %v", err)
	}
	if !bytes.Equal(readAll(t, dst, "k"), mine) || !bytes.Equal(readAll(t, dst, "new"), mine) {
		t.Fatal("conditional writes whose condition held did not write")
	}
}
