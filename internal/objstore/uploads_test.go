package objstore

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

// TestIncompleteUploads: uploads started and never completed are listed (every page,
// only under the store's prefix) and aborted; a completed one is not listed; aborting one
// already gone is no error. The directory store has nothing of the kind.
func TestIncompleteUploads(t *testing.T) {
	ctx := context.Background()
	srv := testenv.SharedS3(t)
	bucket := srv.NewBucket(t, true)
	st, err := NewS3(ctx, S3Config{Bucket: bucket, Endpoint: srv.Endpoint, Region: testenv.S3Region, Prefix: "pub"},
		Options{AccessKey: testenv.S3AccessKey, SecretKey: testenv.S3SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, k := range []string{"a/one.bin", "a/two.bin", "b/three.bin", "b/three.bin", "c+d.bin"} {
		if _, err := st.Multipart(ctx, k, PutOptions{}); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	// One completed (not incomplete), one outside the prefix (not ours).
	done := []byte("finished")
	up, err := st.Multipart(ctx, "done.bin", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := up.PutPart(ctx, 1, done, sum(done)); err != nil {
		t.Fatal(err)
	}
	if err := up.Complete(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Client().CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &bucket, Key: aws.String("other/x.bin")}); err != nil {
		t.Fatal(err)
	}

	list, err := st.listUploads(ctx, 2) // three pages
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range list {
		got = append(got, u.Key)
		if u.UploadID == "" || u.Initiated.IsZero() || time.Since(u.Initiated) > time.Hour {
			t.Errorf("upload %+v: no id or initiation time", u)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, keys) {
		t.Fatalf("incomplete uploads %v, want %v", got, keys)
	}
	for _, u := range list {
		if err := st.AbortMultipartUpload(ctx, u.Key, u.UploadID); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.AbortMultipartUpload(ctx, list[0].Key, list[0].UploadID); err != nil {
		t.Errorf("aborting an upload already aborted: %v", err)
	}
	if left, err := st.ListMultipartUploads(ctx); err != nil || len(left) != 0 {
		t.Fatalf("after aborting: %v %v", left, err)
	}
	out, err := srv.Client().ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket})
	if err != nil || len(out.Uploads) != 1 || aws.ToString(out.Uploads[0].Key) != "other/x.bin" {
		t.Errorf("the upload outside the prefix must stay: %v %v", out, err)
	}

	fileStore, err := Open(ctx, &model.Region{Name: "file", Kind: model.KindFile, Dir: t.TempDir()}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := fileStore.(UploadCleaner); ok {
		t.Error("a directory store has no multipart uploads to clean")
	}
}
