package testenv

import (
	"context"
	"fmt"
	"go/build"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/regionmirror/regionmirror/internal/childproc"
)

// InstallVersitygw is what makes the S3 server available.
const InstallVersitygw = "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// S3 credentials of the test server. They are test-only values.
const (
	S3AccessKey = "testaccess"
	S3SecretKey = "testsecret123"
	S3Region    = "us-east-1"
)

// S3Server is a versitygw S3 gateway over a private directory.
type S3Server struct {
	Endpoint string // http://127.0.0.1:PORT
	Dir      string
	port     int
	proc     *childproc.Process
	bin      string
}

// VersitygwPath finds versitygw on PATH or in $GOPATH/bin.
func VersitygwPath() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		gopath = build.Default.GOPATH
	}
	for _, d := range filepath.SplitList(gopath) {
		if p := filepath.Join(d, "bin", "versitygw"); childproc.IsExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("versitygw not found on PATH or in $GOPATH/bin: %s: %w", InstallVersitygw, ErrMissing)
}

// StartS3 starts versitygw with a posix backend under dir.
func StartS3(dir string) (*S3Server, error) {
	bin, err := VersitygwPath()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "s3data"), 0o755); err != nil {
		return nil, err
	}
	var lastErr error
	for range 3 {
		port, err := childproc.FreePort()
		if err != nil {
			return nil, err
		}
		s := &S3Server{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), Dir: dir, port: port, bin: bin}
		if err := s.start(); err == nil {
			return s, nil
		} else {
			lastErr = err
		}
	}
	return nil, lastErr
}

func (s *S3Server) start() error {
	// --keep-alive: without it versitygw closes every connection.
	cmd := exec.Command(s.bin, "--port", "127.0.0.1:"+strconv.Itoa(s.port), "--access", S3AccessKey,
		"--secret", S3SecretKey, "--region", S3Region, "--health", "/health", "--quiet", "--keep-alive",
		"posix", filepath.Join(s.Dir, "s3data"))
	proc, err := childproc.Start(cmd, filepath.Join(s.Dir, "versitygw.log"), nil)
	if err != nil {
		return err
	}
	s.proc = proc
	client := &http.Client{Timeout: time.Second}
	err = childproc.WaitReady(proc, 20*time.Second, func() error {
		resp, err := client.Get(s.Endpoint + "/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("health: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		s.Stop()
		return fmt.Errorf("versitygw on port %d %w", s.port, err)
	}
	return nil
}

// Stop stops the server; its data stays until the directory is removed.
func (s *S3Server) Stop() { s.proc.Stop(syscall.SIGTERM, 10*time.Second) }

// Kill stops the server at once, as a crash would.
func (s *S3Server) Kill() { s.proc.Stop(syscall.SIGKILL, 10*time.Second) }

// Restart starts a stopped server again on the same port and data.
func (s *S3Server) Restart() error {
	s.Stop()
	return s.start()
}

// Client returns an S3 client for the server. It is built with s3.New, not
// config.LoadDefaultConfig, so that the machine's AWS_* environment does not leak in.
func (s *S3Server) Client() *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(s.Endpoint),
		Region:       S3Region,
		Credentials:  credentials.NewStaticCredentialsProvider(S3AccessKey, S3SecretKey, ""),
		UsePathStyle: true,
	})
}

// PublicReadPolicy is the bucket policy that lets anonymous clients GET objects.
func PublicReadPolicy(bucket string) string {
	return fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::%s/*"]}]}`, bucket)
}

var bucketSeq atomic.Int64

// NewBucket creates a bucket with a unique name; public ones get a public-read policy.
func (s *S3Server) NewBucket(t testing.TB, public bool) string {
	t.Helper()
	name := fmt.Sprintf("rm-test-%d-%d", os.Getpid(), bucketSeq.Add(1))
	ctx := context.Background()
	c := s.Client()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("testenv: create bucket %s: %v", name, err)
	}
	if public {
		if _, err := c.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(name), Policy: aws.String(PublicReadPolicy(name))}); err != nil {
			t.Fatalf("testenv: bucket policy %s: %v", name, err)
		}
	}
	return name
}

// URL is the path-style URL of an object, as an anonymous client fetches it.
func (s *S3Server) URL(bucket, key string) string {
	return s.Endpoint + "/" + bucket + "/" + key
}

var (
	s3Once   sync.Once
	s3Shared *S3Server
	s3Err    error
)

// SharedS3 returns this test binary's S3 server, starting it on first use.
func SharedS3(t testing.TB) *S3Server {
	t.Helper()
	s3Once.Do(func() {
		dir, err := os.MkdirTemp("", "regionmirror-s3-")
		if err != nil {
			s3Err = err
			return
		}
		s3Shared, s3Err = StartS3(dir)
		if s3Err != nil {
			os.RemoveAll(dir)
			return
		}
		addStopper(func() {
			s3Shared.Stop()
			os.RemoveAll(dir)
		})
	})
	if s3Err != nil {
		t.Fatalf("testenv: S3: %v", s3Err)
	}
	return s3Shared
}
