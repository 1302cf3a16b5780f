package objstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/regionmirror/regionmirror/internal/model"
)

// S3Config locates a bucket.
type S3Config struct {
	Bucket   string
	Prefix   string
	Endpoint string // "" for AWS; any S3-compatible endpoint uses path-style addressing
	Region   string // signing region
	Profile  string // shared-config profile; "" for the default chain
}

// S3 is a store in an S3 bucket.
type S3 struct {
	client  *s3.Client
	bucket  string
	prefix  string
	breaker *breaker
}

var (
	_ Store              = (*S3)(nil)
	_ EncryptionReporter = (*S3)(nil)
)

// NewS3 builds a client the way the SDK's users expect: the default credential chain or a
// named profile, AWS_CA_BUNDLE and the rest of the SDK's environment, and a retryer with
// more patience than the default, because a sync of many files meets throttling.
func NewS3(ctx context.Context, c S3Config, opts Options) (*S3, error) {
	maxConns := opts.MaxConns
	if maxConns <= 0 {
		maxConns = 64
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	// A BuildableClient, not an *http.Client: LoadDefaultConfig applies AWS_CA_BUNDLE to it.
	httpClient := awshttp.NewBuildableClient().WithTimeout(timeout).WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConns = maxConns * 2
		t.MaxIdleConnsPerHost = maxConns
		t.MaxConnsPerHost = maxConns
	})
	attempts := opts.MaxAttempts
	if attempts <= 0 {
		attempts = 6
	}
	brk := &breaker{}
	loadOpts := []func(*config.LoadOptions) error{
		config.WithRegion(c.Region),
		config.WithHTTPClient(httpClient),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = attempts
				o.MaxBackoff = 20 * time.Second
				// First: the breaker's "no" overrides the SDK's "retry connection errors".
				o.Retryables = append([]retry.IsErrorRetryable{retry.IsErrorRetryableFunc(brk.retryable)}, o.Retryables...)
			})
		}),
	}
	if c.Profile != "" {
		loadOpts = append(loadOpts, config.WithSharedConfigProfile(c.Profile))
	}
	if opts.AccessKey != "" {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(opts.AccessKey, opts.SecretKey, "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("s3://%s: load AWS configuration: %w", c.Bucket, err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
			o.UsePathStyle = true
		}
		o.APIOptions = append(o.APIOptions, brk.middleware)
		// We send our own SHA-256 on every write; no extra CRC on top.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	return &S3{client: client, bucket: c.Bucket, prefix: c.Prefix, breaker: brk}, nil
}

func (s *S3) String() string {
	if s.prefix == "" {
		return "s3://" + s.bucket
	}
	return "s3://" + s.bucket + "/" + s.prefix
}

func b64(sum []byte) *string {
	if sum == nil {
		return nil
	}
	return aws.String(base64.StdEncoding.EncodeToString(sum))
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

// knownPayloadHash gives SigV4 the body's SHA-256, which the caller knows already: the SDK
// would otherwise read and hash every body once more to sign it (on plain-HTTP endpoints).
// The server still checks the body against it.
func knownPayloadHash(sum []byte) func(*s3.Options) {
	hexSum := hex.EncodeToString(sum)
	return func(o *s3.Options) {
		if sum == nil {
			return
		}
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("regionmirrorKnownPayloadHash",
				func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
					return next.HandleInitialize(v4.SetPayloadHash(ctx, hexSum), in)
				}), middleware.After)
		})
	}
}

// mapErr turns S3's answers into the package's sentinels.
func mapErr(op, key string, err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return fmt.Errorf("%s %s: %w", op, key, ErrNotExist)
		case "BadDigest", "XAmzContentSHA256Mismatch", "InvalidDigest":
			return fmt.Errorf("%s %s: %w (%s)", op, key, ErrChecksum, apiErr.ErrorMessage())
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound && op == "head" {
		return fmt.Errorf("%s %s: %w", op, key, ErrNotExist)
	}
	return fmt.Errorf("%s %s: %w", op, key, err)
}

func (s *S3) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts PutOptions) error {
	if err := checkKey(key); err != nil {
		return err
	}
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:            aws.String(s.bucket),
		Key:               aws.String(joinKey(s.prefix, key)),
		Body:              body,
		ContentLength:     aws.Int64(size),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		ChecksumSHA256:    b64(opts.SHA256),
		ContentType:       optString(opts.ContentType),
		CacheControl:      optString(opts.CacheControl),
		IfMatch:           ifMatch(opts.IfMatch),
		IfNoneMatch:       ifNoneMatch(opts.IfAbsent),
	}, knownPayloadHash(opts.SHA256))
	if err != nil {
		return mapWriteErr("put", key, err, opts.IfMatch, opts.IfAbsent)
	}
	return nil
}

func (s *S3) Copy(ctx context.Context, srcKey, dstKey string, opts PutOptions) error {
	if err := checkKey(srcKey); err != nil {
		return err
	}
	if err := checkKey(dstKey); err != nil {
		return err
	}
	// CopySource is "bucket/key", URL-encoded.
	src := url.PathEscape(s.bucket) + "/" + model.EscapePath(joinKey(s.prefix, srcKey))
	_, err := s.client.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket:            aws.String(s.bucket),
		Key:               aws.String(joinKey(s.prefix, dstKey)),
		CopySource:        aws.String(src),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		MetadataDirective: types.MetadataDirectiveReplace,
		ContentType:       optString(opts.ContentType),
		CacheControl:      optString(opts.CacheControl),
	})
	if err != nil {
		return mapErr("copy", srcKey+" to "+dstKey, err)
	}
	return nil
}

func (s *S3) Head(ctx context.Context, key string) (Info, error) {
	if err := checkKey(key); err != nil {
		return Info{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket:       aws.String(s.bucket),
		Key:          aws.String(joinKey(s.prefix, key)),
		ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		return Info{}, mapErr("head", key, err)
	}
	info := Info{Key: key, Size: aws.ToInt64(out.ContentLength), ETag: strings.Trim(aws.ToString(out.ETag), `"`),
		Encryption: string(out.ServerSideEncryption)}
	if aws.ToString(out.SSECustomerAlgorithm) != "" {
		info.Encryption = "sse-c"
	}
	if out.LastModified != nil {
		info.LastModified = *out.LastModified
	}
	// A multipart object's checksum is a checksum of checksums ("...-3"): not the file's.
	if c := aws.ToString(out.ChecksumSHA256); c != "" && !strings.Contains(c, "-") {
		if sum, err := base64.StdEncoding.DecodeString(c); err == nil && len(sum) == 32 {
			info.SHA256 = sum
		}
	}
	return info, nil
}

// BucketEncryption asks the bucket's default encryption. A bucket without a configuration
// says "none"; a server that does not implement the call (or denies it) leaves it unknown.
func (s *S3) BucketEncryption(ctx context.Context) (string, bool, error) {
	out, err := s.client.GetBucketEncryption(ctx, &s3.GetBucketEncryptionInput{Bucket: aws.String(s.bucket)})
	if err != nil {
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) {
			switch apiErr.ErrorCode() {
			case "ServerSideEncryptionConfigurationNotFoundError":
				return "none", true, nil
			case "NotImplemented", "AccessDenied", "MethodNotAllowed", "InvalidRequest":
				return "", false, nil
			}
		}
		var re *awshttp.ResponseError
		if errors.As(err, &re) && (re.HTTPStatusCode() == http.StatusNotImplemented || re.HTTPStatusCode() == http.StatusForbidden) {
			return "", false, nil
		}
		return "", false, mapErr("get bucket encryption of", s.String(), err)
	}
	if out.ServerSideEncryptionConfiguration == nil {
		return "none", true, nil
	}
	for _, rule := range out.ServerSideEncryptionConfiguration.Rules {
		if d := rule.ApplyServerSideEncryptionByDefault; d != nil && d.SSEAlgorithm != "" {
			return string(d.SSEAlgorithm), true, nil
		}
	}
	return "none", true, nil
}

func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(joinKey(s.prefix, key))})
	if err != nil {
		return nil, mapErr("get", key, err)
	}
	return out.Body, nil
}

func (s *S3) List(ctx context.Context, prefix, startAfter string, fn func(Info) error) error {
	full := joinKey(s.prefix, prefix)
	if s.prefix != "" && prefix == "" {
		full = s.prefix + "/"
	}
	in := &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(full)}
	if startAfter != "" {
		in.StartAfter = aws.String(joinKey(s.prefix, startAfter))
	}
	p := s3.NewListObjectsV2Paginator(s.client, in)
	strip := ""
	if s.prefix != "" {
		strip = s.prefix + "/"
	}
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return mapErr("list", s.String()+"/"+prefix, err)
		}
		for _, o := range page.Contents {
			info := Info{Key: strings.TrimPrefix(aws.ToString(o.Key), strip), Size: aws.ToInt64(o.Size), ETag: strings.Trim(aws.ToString(o.ETag), `"`)}
			if o.LastModified != nil {
				info.LastModified = *o.LastModified
			}
			if err := fn(info); err != nil {
				if errors.Is(err, ErrStop) {
					return nil
				}
				return err
			}
		}
	}
	return nil
}

func (s *S3) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(joinKey(s.prefix, key))})
	if err != nil {
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode() == "NoSuchKey" {
			return nil
		}
		return mapErr("delete", key, err)
	}
	return nil
}

type s3Upload struct {
	s     *S3
	key   string
	id    string
	parts []types.CompletedPart
	// the PutOptions' conditions, checked by CompleteMultipartUpload
	ifMatch  string
	ifAbsent bool
}

var _ Upload = (*s3Upload)(nil)

func (s *S3) Multipart(ctx context.Context, key string, opts PutOptions) (Upload, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	out, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:            aws.String(s.bucket),
		Key:               aws.String(joinKey(s.prefix, key)),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		ContentType:       optString(opts.ContentType),
		CacheControl:      optString(opts.CacheControl),
	})
	if err != nil {
		return nil, mapErr("multipart", key, err)
	}
	return &s3Upload{s: s, key: key, id: aws.ToString(out.UploadId), ifMatch: opts.IfMatch, ifAbsent: opts.IfAbsent}, nil
}

func (u *s3Upload) PutPart(ctx context.Context, n int, data []byte, sum []byte) error {
	out, err := u.s.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket:            aws.String(u.s.bucket),
		Key:               aws.String(joinKey(u.s.prefix, u.key)),
		UploadId:          aws.String(u.id),
		PartNumber:        aws.Int32(int32(n)),
		Body:              bytes.NewReader(data),
		ContentLength:     aws.Int64(int64(len(data))),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		ChecksumSHA256:    b64(sum),
	}, knownPayloadHash(sum))
	if err != nil {
		return mapErr(fmt.Sprintf("upload part %d of", n), u.key, err)
	}
	u.parts = append(u.parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(n)), ChecksumSHA256: b64(sum)})
	return nil
}

func (u *s3Upload) Complete(ctx context.Context) error {
	_, err := u.s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(u.s.bucket),
		Key:             aws.String(joinKey(u.s.prefix, u.key)),
		UploadId:        aws.String(u.id),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: u.parts},
		IfMatch:         ifMatch(u.ifMatch),
		IfNoneMatch:     ifNoneMatch(u.ifAbsent),
	})
	if err != nil {
		return mapWriteErr("complete multipart", u.key, err, u.ifMatch, u.ifAbsent)
	}
	return nil
}

func (u *s3Upload) Abort(ctx context.Context) error {
	_, err := u.s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(u.s.bucket), Key: aws.String(joinKey(u.s.prefix, u.key)), UploadId: aws.String(u.id)})
	if err != nil {
		return mapErr("abort multipart", u.key, err)
	}
	return nil
}

// ETagMD5 returns the MD5 an ETag stands for, or nil when it is not a plain MD5
// (multipart uploads, SSE-KMS).
func ETagMD5(etag string) []byte {
	etag = strings.Trim(etag, `"`)
	if len(etag) != 32 {
		return nil
	}
	b, err := hex.DecodeString(etag)
	if err != nil {
		return nil
	}
	return b
}
