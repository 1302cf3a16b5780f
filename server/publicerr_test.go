package server

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
	"github.com/regionmirror/regionmirror/server/selection"
)

// TestPublicAnswersHideStorage records, in a real database, the errors a push, a scan and
// a probe really write (an aws-sdk-go-v2 error naming the endpoint and the bucket, a file
// region's directory, a key under the region's prefix), then fetches every page and API
// answer of the real server: none shows a bucket, an endpoint, a directory, a key prefix
// or an address, while the region names and the sanitized reasons are there (issue 12,
// defect 12).
func TestPublicAnswersHideStorage(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	d, _ := testenv.NewDB(t)
	const (
		bucket   = "secret-bucket-euc1"
		endpoint = "s3.secret-endpoint.example"
		prefix   = "pfx-secret"
		dir      = "/srv/secret-dir/euw1"
		addr     = "127.0.0.1:42253"
	)
	euc1 := &model.Region{Name: "eu-central-1", Kind: model.KindS3, Bucket: bucket, Endpoint: "https://" + endpoint + ":9000",
		Prefix: prefix, PublicURL: "https://euc1.mirror.example.org", Weight: 100, Enabled: true, Country: "DE"}
	euw1 := &model.Region{Name: "eu-west-1", Kind: model.KindFile, Dir: dir, PublicURL: "https://euw1.mirror.example.org",
		Weight: 100, Enabled: true, Country: "IE"}
	for _, r := range []*model.Region{euc1, euw1} {
		if err := r.Normalize(); err != nil {
			t.Fatal(err)
		}
		if err := d.CreateRegion(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	repo := &model.Repository{Name: "demo-1", Arch: "x86_64", Directory: "demo/1/x86_64/os"}
	if err := d.CreateRepository(ctx, repo); err != nil {
		t.Fatal(err)
	}
	body := []byte("<repomd/>")
	m, s1, s2, s5 := md5.Sum(body), sha1.Sum(body), sha256.Sum256(body), sha512.Sum512(body)
	if _, err := d.RecordRepomdVersion(ctx, &model.RepomdVersion{RepositoryID: repo.ID, MD5: m[:], SHA1: s1[:], SHA256: s2[:], SHA512: s5[:], Size: 9, Timestamp: 1700000000}); err != nil {
		t.Fatal(err)
	}
	f := dbFile("demo/1/x86_64/os/Packages/hello-1.0-1.noarch.rpm", "hello")
	if _, err := d.ApplyInventory(ctx, db.InventoryChanges{Upsert: []model.File{f}}); err != nil {
		t.Fatal(err)
	}
	got, _ := d.GetFile(ctx, f.Path)
	for _, r := range []*model.Region{euc1, euw1} {
		if err := d.RecordObjects(ctx, db.NoFence, r.ID, []db.ObjectUpdate{{FileID: got.ID, Size: f.Size, SHA256: f.SHA256, State: model.ObjectPresent, Verified: true}}); err != nil {
			t.Fatal(err)
		}
	}

	listErr := "scan eu-central-1: list " + prefix + "/demo/: operation error S3: ListObjectsV2, exceeded maximum number of attempts, 3, " +
		"https response error StatusCode: 0, RequestID: , HostID: , request send failed, Get \"https://" + endpoint + ":9000/" + bucket +
		"?list-type=2&prefix=" + prefix + "%2Fdemo%2F\": dial tcp " + addr + ": connect: connection refused"
	putErr := "push eu-central-1: put " + prefix + "/demo/1/x86_64/os/Packages/hello-1.0-1.noarch.rpm: operation error S3: PutObject, " +
		"https response error StatusCode: 403, RequestID: 1831B2A9E6F1C0A4, HostID: dd90, https://" + endpoint + "/" + bucket + "/" + prefix +
		"/demo/1/x86_64/os/Packages/hello-1.0-1.noarch.rpm, api error AccessDenied: Access Denied"
	dirErr := "push eu-west-1: put demo/1/x86_64/os/repodata/repomd.xml: open " + dir + "/demo/1/x86_64/os/repodata/.repomd.xml.tmp: permission denied"
	repoErr := "GET https://" + endpoint + "/" + bucket + "/" + prefix + "/demo/1/x86_64/os/repodata/repomd.xml: dial tcp " + addr + ": i/o timeout"

	// eu-central-1: its probe failed (health down) and its push failed; eu-west-1: its push
	// failed and its repository could not be read.
	if _, err := d.RecordProbe(ctx, euc1.ID, listErr, 1, 1); err != nil {
		t.Fatal(err)
	}
	for _, rec := range []struct {
		r   *model.Region
		err string
	}{{euc1, putErr}, {euw1, dirErr}, {euc1, listErr}} {
		run, err := d.StartRun(ctx, model.RunPush, rec.r)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.FinishRun(ctx, run, errors.New(rec.err)); err != nil {
			t.Fatal(err)
		}
	}
	for _, rr := range []model.RegionRepo{
		{RegionID: euc1.ID, RepositoryID: repo.ID, RepomdSHA256: s2[:], State: model.RepoFresh},
		{RegionID: euw1.ID, RepositoryID: repo.ID, State: model.RepoUnreachable, Error: repoErr},
	} {
		if err := d.SetRegionRepo(ctx, db.NoFence, rr); err != nil {
			t.Fatal(err)
		}
	}

	store := NewStore(d, StoreOptions{LoadFiles: true, Interval: time.Hour, Policy: selection.Policy{AlternatesMaxAge: 72 * time.Hour}})
	if err := store.Refresh(ctx, true); err != nil {
		t.Fatal(err)
	}
	act := NewActivity(d, ActivityOptions{Interval: time.Hour})
	act.Round(ctx)
	srv := New(Options{Store: store, Metrics: NewMetrics(store), Activity: act, DownloadPrefix: "/pub"})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	base := "http://" + l.Addr().String()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	file := "/pub/" + f.Path
	targets := []string{"/", "/api/v1/regions", "/api/v1/repositories", "/api/v1/status", "/api/v1/locate?path=" + f.Path,
		"/api/v1/locate?path=" + f.Path + "&location=eu-central-1", file, file + "?mirrorlist", file + "?meta4",
		"/metalink?repo=demo-1&arch=x86_64", "/mirrorlist?repo=demo-1&arch=x86_64", "/readyz", "/healthz"}
	var all strings.Builder
	for _, target := range targets {
		res, err := client.Get(base + target)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		// No region can serve the repository (one is down, the other unreachable): 503.
		if res.StatusCode >= 500 && (res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(target, "repo=")) {
			t.Errorf("GET %s: %s", target, res.Status)
		}
		var answer strings.Builder
		for k, vs := range res.Header {
			answer.WriteString(k + ": " + strings.Join(vs, ", ") + "\n")
		}
		answer.Write(b)
		text := answer.String()
		all.WriteString(text)
		// The prefix is part of the region's public URL, where clients are sent; anywhere
		// else it is the storage's layout.
		stripped := strings.ReplaceAll(text, "https://euc1.mirror.example.org/"+prefix+"/", "https://euc1.mirror.example.org/")
		for _, secret := range []string{bucket, endpoint, prefix, dir, "secret-dir", addr, "RequestID", "HostID", "operation error", "dial tcp"} {
			if strings.Contains(stripped, secret) {
				i := strings.Index(stripped, secret)
				t.Errorf("GET %s shows %q: ...%s...", target, secret, stripped[max(0, i-120):min(len(stripped), i+80)])
			}
		}
	}
	// What may be shown is there: the region names and the reasons, sanitized.
	for _, want := range []string{"eu-central-1", "eu-west-1", "upload failed: access denied", "listing failed: connection refused",
		"upload failed: permission denied", "download failed: timed out"} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("no answer says %q", want)
		}
	}
}
