package model

import (
	"strings"
	"testing"
)

// The error texts below are what aws-sdk-go-v2, net/http, crypto/tls and our own code
// write into region_health.last_error, region_repos.error and runs.error.
func TestPublicReason(t *testing.T) {
	tests := []struct{ err, want string }{
		{"", ""},
		{"scan eu-west-1: list pub/demo/: operation error S3: ListObjectsV2, exceeded maximum number of attempts, 3, https response error StatusCode: 0, RequestID: , HostID: , request send failed, Get \"http://127.0.0.1:42253/mirror-eu-west-1?list-type=2&prefix=pub%2Fdemo%2F\": dial tcp 127.0.0.1:42253: connect: connection refused",
			"listing failed: connection refused"},
		{"push eu-central-1: put demo/1/x86_64/os/Packages/a.rpm: operation error S3: PutObject, https response error StatusCode: 403, RequestID: 1831B2A9E6F1C0A4, HostID: dd9025bab4ad464b049177c95eb6ebf374d3b3fd1af9251148b658df7ac2e3e8, api error AccessDenied: Access Denied",
			"upload failed: access denied"},
		{"put demo/1/x: operation error S3: PutObject, https response error StatusCode: 403, https://s3.eu.example/bucket-eu/pub/demo/1/x, api error AccessDenied: Access Denied",
			"upload failed: access denied"},
		{"scan us-east-1: list : operation error S3: ListObjectsV2, https response error StatusCode: 404, RequestID: tx00000a, HostID: , api error NoSuchBucket: The specified bucket does not exist",
			"listing failed: bucket does not exist"},
		{"push us-east-1: multipart pub/big.iso part 3: operation error S3: UploadPart, https response error StatusCode: 400, RequestID: 17, HostID: , api error BadDigest: The sha256 you specified did not match the calculated checksum.",
			"upload failed: checksum mismatch"},
		{"push us-east-1: put pub/a.rpm: checksum mismatch", "upload failed: checksum mismatch"},
		{"scan ap-south-1: list : operation error S3: ListObjectsV2, exceeded maximum number of attempts, 3, https response error StatusCode: 503, RequestID: , HostID: , api error SlowDown: Please reduce your request rate.",
			"listing failed: service unavailable"},
		{"push eu-west-3: put a: operation error S3: PutObject, https response error StatusCode: 500, RequestID: x, HostID: y, api error InternalError: We encountered an internal error. Please try again.",
			"upload failed: server error"},
		{"scan eu-west-3: list demo/: operation error S3: ListObjectsV2, https response error StatusCode: 0, RequestID: , HostID: , request send failed, Get \"https://s3.eu-west-3.example.net/mirror?list-type=2\": dial tcp: lookup s3.eu-west-3.example.net on 127.0.0.53:53: no such host",
			"listing failed: host not found"},
		{"scan eu-west-3: list demo/: operation error S3: ListObjectsV2, https response error StatusCode: 0, RequestID: , HostID: , request send failed, Get \"https://10.9.8.7:9000/mirror?list-type=2\": dial tcp 10.9.8.7:9000: i/o timeout",
			"listing failed: timed out"},
		{"scan eu-west-3: head pub/repodata/repomd.xml: operation error S3: HeadObject, https response error StatusCode: 0, request send failed, Head \"https://minio.internal:9000/b/pub/repodata/repomd.xml\": tls: failed to verify certificate: x509: certificate signed by unknown authority",
			"checking an object failed: TLS error"},
		{"push us-east-1: get pub/x: operation error S3: GetObject, https response error StatusCode: 0, RequestID: , HostID: , request send failed, Get \"http://127.0.0.1:9000/b/x\": read tcp 127.0.0.1:51234->127.0.0.1:9000: read: connection reset by peer",
			"download failed: connection reset"},
		{"push us-east-1: put a: operation error S3: PutObject, failed to sign request: failed to retrieve credentials: failed to refresh cached credentials, no EC2 IMDS role found",
			"upload failed: credentials rejected"},
		{"scan us-east-1: list : operation error S3: ListObjectsV2, https response error StatusCode: 403, api error InvalidAccessKeyId: The AWS Access Key Id you provided does not exist in our records.",
			"listing failed: access denied"},
		{"gc us-east-1: delete pub/old.rpm: operation error S3: DeleteObject, https response error StatusCode: 0, dial tcp 127.0.0.1:1: connect: connection refused",
			"delete failed: connection refused"},
		// Our own messages: counts and words are shown as they are.
		{"3 files of the repository are missing or corrupt in this region", "3 files of the repository are missing or corrupt in this region"},
		{"serves a repomd.xml the origin did not publish", "serves a repomd.xml the origin did not publish"},
		{"HTTP 404", "HTTP 404"},
		{"scan eu-west-1: 2 repositories unreachable through the public URL: GET https://mirror-eu.s3.eu-west-1.amazonaws.com/pub/demo/repodata/repomd.xml: dial tcp 52.1.2.3:443: connect: connection refused",
			"2 repositories unreachable through the public URL: connection refused"},
		{"GET https://bucket-x.s3.example/demo/repodata/repomd.xml: 404 Not Found", "download failed: not found"},
		{"Get \"https://bucket-x.s3.example/demo/repodata/repomd.xml\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
			"download failed: timed out"},
		{"HEAD https://mirror-eu.example/pub/: no answer within 5s", "checking an object failed: timed out"},
		{"HEAD https://mirror-eu.example/pub/: HTTP 503", "checking an object failed: service unavailable"},
		{"push eu-west-1: origin file demo/1/x86_64/os/repodata/primary.xml.gz could not be read; the metadata of its repository is withheld",
			"push failed: metadata withheld"},
		{"push eu-west-1: pub/a.rpm changed at the origin since the inventory; the next push takes it", "push failed: the origin changed during the run"},
		{"gc eu-west-1: not collecting: repository demo-1/x86_64 is not fresh there; push it first", "not collecting: a repository is not fresh there"},
		{"file store: /srv/mirror/eu is not an absolute path", "file store (details in the logs)"},
		{"dial tcp 10.9.8.7:5432: connect: connection refused", "connection refused"},
		{"scan eu-west-1: something odd at /srv/mirror/eu", "scan failed (details in the logs)"},
		{"probe failed", "probe failed"},
		{"push eu-west-1: put demo/repodata/repomd.xml: open /srv/mirror/eu/demo/repodata/.repomd.xml.tmp: permission denied", "upload failed: permission denied"},
	}
	for _, tt := range tests {
		got := PublicReason(tt.err)
		if got != tt.want {
			t.Errorf("PublicReason(%.90q) = %q, want %q", tt.err, got, tt.want)
		}
		for _, secret := range []string{"127.0.0.1", "10.9.8.7", "52.1.2.3", "http", "amazonaws", "example", "mirror-", "bucket-", "/srv", "pub/", "demo/", ".rpm", "RequestID", "HostID"} {
			if strings.Contains(got, secret) {
				t.Errorf("PublicReason(%.90q) = %q shows %q", tt.err, got, secret)
			}
		}
	}
}

// FuzzPublicReason: whatever an error says, the public reason never contains a URL, an
// address, a path or a dotted name, and is short.
func FuzzPublicReason(f *testing.F) {
	f.Add("push eu: put pub/x: operation error S3: PutObject, https://s3.eu.example/bucket/pub/x")
	f.Add("10 files missing: bucket.example.org")
	f.Add("HTTP 404")
	f.Fuzz(func(t *testing.T, err string) {
		got := PublicReason(err)
		if strings.Contains(got, "://") || strings.Contains(got, "/") || len(got) > 200 {
			t.Fatalf("PublicReason(%q) = %q", err, got)
		}
		if d := strings.ReplaceAll(got, "repomd.xml", ""); strings.Contains(d, ".") {
			t.Fatalf("PublicReason(%q) = %q has a dotted name", err, got)
		}
	})
}
