package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/regionmirror/regionmirror/internal/model"
)

// ErrNotExist: no object under that key.
var ErrNotExist = errors.New("object does not exist")

// ErrStop, returned by a List callback, ends the listing without error.
var ErrStop = errors.New("stop listing")

// ErrChecksum: the store refused a body whose SHA-256 is not the one announced.
var ErrChecksum = errors.New("checksum mismatch")

// Info describes a stored object.
type Info struct {
	Key          string
	Size         int64
	ETag         string // without quotes; the MD5 in hex for single-part S3 uploads
	LastModified time.Time
	SHA256       []byte // when the store keeps it (S3 checksums); nil otherwise
	// Encryption is the object's server-side encryption as Head reports it: "" (none or
	// not said), "AES256", "aws:kms", "aws:kms:dsse", or "sse-c" for customer keys. With
	// KMS or customer keys the ETag is not the MD5 of the bytes.
	Encryption string
}

// EncryptionReporter is a store that can say how its bucket encrypts new objects by
// default ("none", "AES256", "aws:kms", ...); ok is false when the store would not say.
type EncryptionReporter interface {
	BucketEncryption(ctx context.Context) (enc string, ok bool, err error)
}

// PutOptions go with every write. SHA256 is required: the store itself rejects a body that
// does not match it, so corruption on the way is never stored.
type PutOptions struct {
	SHA256       []byte
	ContentType  string
	CacheControl string
	// IfMatch and IfAbsent make the write conditional on the key being as the writer saw
	// it before writing: still of ETag IfMatch, or still absent (S3's If-Match and
	// If-None-Match: *, checked when the object is published: PutObject,
	// CompleteMultipartUpload). A write that lost the race fails with ErrDestChanged, so a
	// late write cannot replace a newer object. The file store does not check them.
	IfMatch  string
	IfAbsent bool
}

// Store is what the pusher and the scanner need from a region's storage.
type Store interface {
	// Put writes size bytes from body (seekable, so a retry can rewind) under key.
	Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts PutOptions) error
	// Multipart starts a write in parts of at most a few GiB each, for large files.
	Multipart(ctx context.Context, key string, opts PutOptions) (Upload, error)
	// Copy copies an object within the store without reading it through the client.
	Copy(ctx context.Context, srcKey, dstKey string, opts PutOptions) error
	Head(ctx context.Context, key string) (Info, error)
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// List calls fn for every object whose key starts with prefix and sorts after
	// startAfter ("" for all), in key order. fn may return ErrStop to end the listing.
	List(ctx context.Context, prefix, startAfter string, fn func(Info) error) error
	// Delete removes an object; deleting a missing object is not an error.
	Delete(ctx context.Context, key string) error
	// String names the store in messages, never with credentials.
	String() string
}

// Upload is a multipart write in progress. Parts are numbered from 1 and sent in order.
type Upload interface {
	// PutPart sends part n; sum is the part's SHA-256, checked by the store.
	PutPart(ctx context.Context, n int, data []byte, sum []byte) error
	// Complete makes the object visible. The caller has checked the whole file's hash.
	Complete(ctx context.Context) error
	// Abort discards the parts sent.
	Abort(ctx context.Context) error
}

// Options are the settings a store takes that do not come from the region.
type Options struct {
	MaxConns    int // connections per host (S3)
	Timeout     time.Duration
	MaxAttempts int // per request, retries included (default 6)
	// Test-only: static S3 credentials instead of the SDK's default chain or profile.
	AccessKey, SecretKey string
}

// Open returns the store of a region.
func Open(ctx context.Context, r *model.Region, opts Options) (Store, error) {
	switch r.Kind {
	case model.KindFile:
		return NewFile(path.Join(r.Dir, r.Prefix))
	case model.KindS3:
		return NewS3(ctx, S3Config{Bucket: r.Bucket, Prefix: r.Prefix, Endpoint: r.Endpoint,
			Region: r.S3Region, Profile: r.Credentials}, opts)
	default:
		return nil, fmt.Errorf("region %s: unknown kind %q", r.Name, r.Kind)
	}
}

// joinKey puts a region's prefix before a key.
func joinKey(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "/" + key
}

// checkKey refuses keys that could leave the store's root.
func checkKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "\x00") {
		return fmt.Errorf("invalid key %q", key)
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == ".." || seg == "." || seg == "" {
			return fmt.Errorf("invalid key %q", key)
		}
	}
	return nil
}
