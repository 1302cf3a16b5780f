package objstore

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// PendingUpload is a multipart upload that was started and neither completed nor aborted
// (a fill or push worker killed mid-upload leaves one; S3 bills its parts until aborted).
type PendingUpload struct {
	Key       string // relative to the store's prefix
	UploadID  string
	Initiated time.Time
}

// UploadCleaner is a store that can list and abort its incomplete multipart uploads. A
// directory store has none (a partial file never takes its name): it does not implement it.
type UploadCleaner interface {
	// ListMultipartUploads returns every incomplete upload under the store's prefix.
	ListMultipartUploads(ctx context.Context) ([]PendingUpload, error)
	// AbortMultipartUpload discards one upload's parts; one already gone is no error.
	AbortMultipartUpload(ctx context.Context, key, uploadID string) error
}

var _ UploadCleaner = (*S3)(nil)

// ListMultipartUploads lists the bucket's incomplete uploads under the store's prefix,
// every page of them. Uploads outside the prefix belong to others and are not listed.
func (s *S3) ListMultipartUploads(ctx context.Context) ([]PendingUpload, error) {
	return s.listUploads(ctx, 1000)
}

func (s *S3) listUploads(ctx context.Context, pageSize int32) ([]PendingUpload, error) {
	var prefix *string
	if s.prefix != "" {
		prefix = aws.String(s.prefix + "/")
	}
	var out []PendingUpload
	var keyMarker, idMarker *string
	for {
		in := &s3.ListMultipartUploadsInput{Bucket: aws.String(s.bucket), Prefix: prefix, MaxUploads: aws.Int32(pageSize),
			KeyMarker: keyMarker, UploadIdMarker: idMarker}
		page, err := s.client.ListMultipartUploads(ctx, in)
		var apiErr smithy.APIError
		if idMarker != nil && errors.As(err, &apiErr) && apiErr.ErrorCode() == "InvalidArgument" {
			// versitygw (1.8) refuses the upload-id-marker S3 hands out; going on after the
			// key alone skips only the key's further uploads on this page, which the next
			// gc lists once the others are gone.
			in.UploadIdMarker = nil
			page, err = s.client.ListMultipartUploads(ctx, in)
		}
		if err != nil {
			return nil, mapErr("list multipart uploads in", s.String(), err)
		}
		for _, u := range page.Uploads {
			key := aws.ToString(u.Key)
			if s.prefix != "" {
				key = strings.TrimPrefix(key, s.prefix+"/")
			}
			out = append(out, PendingUpload{Key: key, UploadID: aws.ToString(u.UploadId), Initiated: aws.ToTime(u.Initiated)})
		}
		if !aws.ToBool(page.IsTruncated) {
			return out, nil
		}
		// Some servers leave the next markers out; the last entry is where to go on.
		keyMarker, idMarker = page.NextKeyMarker, page.NextUploadIdMarker
		if aws.ToString(keyMarker) == "" && len(page.Uploads) > 0 {
			last := page.Uploads[len(page.Uploads)-1]
			keyMarker, idMarker = last.Key, last.UploadId
		}
		if aws.ToString(keyMarker) == "" {
			return out, nil // truncated without a way on: what was listed is all there is to do
		}
		if aws.ToString(idMarker) == "" {
			idMarker = nil // an empty marker is refused by some servers
		}
	}
}

// AbortMultipartUpload aborts one incomplete upload (key relative to the prefix).
func (s *S3) AbortMultipartUpload(ctx context.Context, key, uploadID string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(s.bucket), Key: aws.String(joinKey(s.prefix, key)), UploadId: aws.String(uploadID)})
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "NoSuchUpload" {
		return nil // aborted or completed meanwhile
	}
	if err != nil {
		return mapErr("abort multipart", key, err)
	}
	return nil
}
