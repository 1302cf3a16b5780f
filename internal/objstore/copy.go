package objstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/regionmirror/regionmirror/internal/model"
)

// ErrSourceChanged: the source object no longer has the ETag the copy was pinned to
// (x-amz-copy-source-if-match failed), so what would be copied is not what was verified.
var ErrSourceChanged = errors.New("copy source changed")

// ErrDestChanged: a conditional write (PutOptions.IfMatch/IfAbsent, CopyOptions'
// DestIfMatch/DestIfAbsent) found the key no longer as the writer saw it: someone wrote
// or removed it since. Nothing was written.
var ErrDestChanged = errors.New("destination changed since it was looked at")

func ifMatch(etag string) *string {
	if etag == "" {
		return nil
	}
	return aws.String(quoteETag(etag))
}

func ifNoneMatch(absent bool) *string {
	if !absent {
		return nil
	}
	return aws.String("*")
}

// isPrecondition: S3 refused a conditional request: 412, 409 ConditionalRequestConflict
// (a concurrent write to the key), or, with ifMatch, NoSuchKey (the key is gone; not
// NoSuchBucket, a region's real fault).
func isPrecondition(err error, ifMatch bool) bool {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "PreconditionFailed", "ConditionalRequestConflict":
			return true
		case "NoSuchKey":
			return ifMatch
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case http.StatusPreconditionFailed, http.StatusConflict:
			return true
		}
	}
	return false
}

// mapWriteErr is mapErr, with the refusal of a write conditional on ifMatch or absent
// named ErrDestChanged.
func mapWriteErr(op, key string, err error, ifMatch string, absent bool) error {
	if (ifMatch != "" || absent) && isPrecondition(err, ifMatch != "") {
		return fmt.Errorf("%s %s: %w", op, key, ErrDestChanged)
	}
	return mapErr(op, key, err)
}

// CopyOptions go with a server-side copy between buckets.
type CopyOptions struct {
	// SourceETag pins the source (x-amz-copy-source-if-match on every request); required.
	SourceETag string
	// Size is the source's size, from the Head that gave SourceETag.
	Size int64
	// SHA256 is the file's hash; a single CopyObject's checksum must equal it.
	SHA256 []byte
	// MultipartThreshold: sources larger than this are copied in parts of PartSize
	// (UploadPartCopy); S3 copies at most 5GiB in one CopyObject.
	MultipartThreshold int64
	PartSize           int64
	ContentType        string
	CacheControl       string
	// DestIfMatch and DestIfAbsent make the copy conditional on the destination key, as
	// PutOptions.IfMatch and IfAbsent do (ErrDestChanged when it lost the race). A
	// multipart copy checks them at CompleteMultipartUpload; a single CopyObject sends
	// them too, but not every S3 service checks them there (versitygw 1.8 does not).
	DestIfMatch  string
	DestIfAbsent bool
}

// CrossCopier is a store that can copy objects into itself from another store of the same
// S3 service without the bytes passing through the client.
type CrossCopier interface {
	// SameService reports whether other lives on the same service, reachable with this
	// store's credentials, so that CopyFrom can read from it.
	SameService(other Store) bool
	// CopyFrom copies src's srcKey to dstKey and returns the new object's Info (as Head
	// reports it). A single copy is verified against o.SHA256 (S3's checksum); a multipart
	// copy by its size, the source being pinned by o.SourceETag. On any error of a
	// multipart copy the upload is aborted. ErrSourceChanged when the source's ETag moved.
	CopyFrom(ctx context.Context, src Store, srcKey, dstKey string, o CopyOptions) (Info, error)
}

var _ CrossCopier = (*S3)(nil)

// SameService: both stores talk to the same endpoint and signing region with the same
// credentials provider settings. Credentials themselves are compared by the caller
// (regions name their profile).
func (s *S3) SameService(other Store) bool {
	o, ok := other.(*S3)
	if !ok {
		return false
	}
	a, b := s.client.Options(), o.client.Options()
	return aws.ToString(a.BaseEndpoint) == aws.ToString(b.BaseEndpoint) && a.Region == b.Region
}

// copySource is CopySource's "bucket/key", URL-encoded.
func (s *S3) copySource(key string) string {
	return url.PathEscape(s.bucket) + "/" + model.EscapePath(joinKey(s.prefix, key))
}

// mapCopyErr is mapErr, with a failed precondition on the source named as such.
func mapCopyErr(op, key string, err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "PreconditionFailed" {
		return fmt.Errorf("%s %s: %w", op, key, ErrSourceChanged)
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusPreconditionFailed {
		return fmt.Errorf("%s %s: %w", op, key, ErrSourceChanged)
	}
	return mapErr(op, key, err)
}

func quoteETag(etag string) string { return `"` + strings.Trim(etag, `"`) + `"` }

func (s *S3) CopyFrom(ctx context.Context, src Store, srcKey, dstKey string, o CopyOptions) (Info, error) {
	from, ok := src.(*S3)
	if !ok || !s.SameService(src) {
		return Info{}, fmt.Errorf("copy %s: %s and %s are not on the same S3 service", srcKey, src, s)
	}
	if err := checkKey(srcKey); err != nil {
		return Info{}, err
	}
	if err := checkKey(dstKey); err != nil {
		return Info{}, err
	}
	if o.SourceETag == "" {
		return Info{}, fmt.Errorf("copy %s: no source ETag to pin", srcKey)
	}
	if o.MultipartThreshold > 0 && o.Size > o.MultipartThreshold {
		return s.copyParts(ctx, from, srcKey, dstKey, o)
	}
	if len(o.SHA256) != 32 {
		return Info{}, fmt.Errorf("copy %s: no SHA-256 to verify against", srcKey)
	}
	out, err := s.client.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket:            aws.String(s.bucket),
		Key:               aws.String(joinKey(s.prefix, dstKey)),
		CopySource:        aws.String(from.copySource(srcKey)),
		CopySourceIfMatch: aws.String(quoteETag(o.SourceETag)),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		MetadataDirective: types.MetadataDirectiveReplace,
		ContentType:       optString(o.ContentType),
		CacheControl:      optString(o.CacheControl),
		IfMatch:           ifMatch(o.DestIfMatch),
		IfNoneMatch:       ifNoneMatch(o.DestIfAbsent),
	})
	if err != nil {
		if (o.DestIfMatch != "" || o.DestIfAbsent) && isPrecondition(err, false) {
			// The source's pin or the destination's condition: S3 does not say which, so
			// look at the source (when it still has the pinned ETag, the destination moved).
			if info, herr := from.Head(ctx, srcKey); herr == nil && strings.Trim(info.ETag, `"`) == strings.Trim(o.SourceETag, `"`) {
				return Info{}, fmt.Errorf("copy %s to %s: %w", srcKey, dstKey, ErrDestChanged)
			}
			return Info{}, fmt.Errorf("copy %s to %s: %w", srcKey, dstKey, ErrSourceChanged)
		}
		return Info{}, mapCopyErr("copy", srcKey+" to "+dstKey, err)
	}
	var got []byte
	if out.CopyObjectResult != nil {
		got = decodeSum(aws.ToString(out.CopyObjectResult.ChecksumSHA256))
	}
	if got != nil && bytes.Equal(got, o.SHA256) {
		// The store hashed what it wrote to the inventory's SHA-256: those are the file's
		// bytes, so its size too; no Head needed.
		info := Info{Key: dstKey, Size: o.Size, SHA256: got, ETag: strings.Trim(aws.ToString(out.CopyObjectResult.ETag), `"`)}
		if out.CopyObjectResult.LastModified != nil {
			info.LastModified = *out.CopyObjectResult.LastModified
		}
		return info, nil
	}
	info, err := s.Head(ctx, dstKey)
	if err != nil {
		return Info{}, err
	}
	if got == nil {
		got = info.SHA256 // some servers keep it without answering it from CopyObject
	}
	switch {
	case got == nil:
		return info, fmt.Errorf("copy %s to %s: the store gave no SHA-256 checksum to verify", srcKey, dstKey)
	case !bytes.Equal(got, o.SHA256):
		return info, fmt.Errorf("copy %s to %s: %w: store says %s, inventory %s", srcKey, dstKey, ErrChecksum,
			hex.EncodeToString(got), hex.EncodeToString(o.SHA256))
	case info.Size != o.Size:
		return info, fmt.Errorf("copy %s to %s: size %d, source %d", srcKey, dstKey, info.Size, o.Size)
	}
	return info, nil
}

func decodeSum(c string) []byte {
	if c == "" || strings.Contains(c, "-") {
		return nil
	}
	if sum, err := base64.StdEncoding.DecodeString(c); err == nil && len(sum) == 32 {
		return sum
	}
	return nil
}

// CopyParts is the number of parts a multipart copy of size bytes in parts of partSize
// makes.
func CopyParts(size, partSize int64) int {
	if size <= 0 || partSize <= 0 {
		return 0
	}
	return int((size + partSize - 1) / partSize)
}

// partRange is the byte range of part n (from 1), both ends included.
func partRange(n int, size, partSize int64) (first, last int64) {
	first = int64(n-1) * partSize
	last = min(first+partSize, size) - 1
	return first, last
}

// copyParts is the multipart copy aws-sdk-go-v2 has no helper for: CreateMultipartUpload,
// one UploadPartCopy per range, each pinned to the source's ETag, then
// CompleteMultipartUpload; on any error (a cancelled ctx included) the upload is aborted.
func (s *S3) copyParts(ctx context.Context, from *S3, srcKey, dstKey string, o CopyOptions) (info Info, err error) {
	if o.PartSize < 5<<20 {
		return Info{}, fmt.Errorf("copy %s: part size %d below S3's 5MiB", srcKey, o.PartSize)
	}
	dst := joinKey(s.prefix, dstKey)
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:            aws.String(s.bucket),
		Key:               aws.String(dst),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		ContentType:       optString(o.ContentType),
		CacheControl:      optString(o.CacheControl),
	})
	if err != nil {
		return Info{}, mapErr("multipart copy", dstKey, err)
	}
	id := created.UploadId
	completed := false
	defer func() {
		if err == nil || completed {
			return
		}
		// The caller's ctx may be what failed (a lost lease, a shutdown): abort anyway.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, aerr := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(s.bucket), Key: aws.String(dst), UploadId: id}); aerr != nil {
			err = errors.Join(err, mapErr("abort multipart copy", dstKey, aerr))
		}
	}()
	n := CopyParts(o.Size, o.PartSize)
	parts := make([]types.CompletedPart, 0, n)
	source := from.copySource(srcKey)
	for i := 1; i <= n; i++ {
		first, last := partRange(i, o.Size, o.PartSize)
		out, err := s.client.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
			Bucket:            aws.String(s.bucket),
			Key:               aws.String(dst),
			UploadId:          id,
			PartNumber:        aws.Int32(int32(i)),
			CopySource:        aws.String(source),
			CopySourceIfMatch: aws.String(quoteETag(o.SourceETag)),
			CopySourceRange:   aws.String(fmt.Sprintf("bytes=%d-%d", first, last)),
		})
		if err != nil {
			return Info{}, mapCopyErr(fmt.Sprintf("copy part %d of", i), srcKey+" to "+dstKey, err)
		}
		part := types.CompletedPart{PartNumber: aws.Int32(int32(i))}
		if out.CopyPartResult != nil {
			part.ETag = out.CopyPartResult.ETag
			part.ChecksumSHA256 = out.CopyPartResult.ChecksumSHA256
		}
		parts = append(parts, part)
	}
	if err := ctx.Err(); err != nil {
		return Info{}, fmt.Errorf("multipart copy %s: %w", dstKey, err)
	}
	if _, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.bucket),
		Key:             aws.String(dst),
		UploadId:        id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		IfMatch:         ifMatch(o.DestIfMatch),
		IfNoneMatch:     ifNoneMatch(o.DestIfAbsent),
	}); err != nil {
		return Info{}, mapWriteErr("complete multipart copy", dstKey, err, o.DestIfMatch, o.DestIfAbsent)
	}
	completed = true
	info, herr := s.Head(ctx, dstKey)
	if herr != nil {
		return Info{}, herr
	}
	if info.Size != o.Size {
		// Completed, so there is nothing to abort. The object is not deleted: by now
		// another writer may have replaced it with a good copy that is recorded. The
		// caller records nothing, and the job's next claim overwrites the key.
		return info, fmt.Errorf("multipart copy %s to %s: size %d, source %d", srcKey, dstKey, info.Size, o.Size)
	}
	return info, nil
}
