package scanner

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

// TestOnDemandRegionScan: in an on-demand region the files it was never asked for are not
// missing and leave its repository fresh; a copy found without a record (a fill whose
// recording failed) is adopted; a copy that vanished is recorded missing without making
// the metadata stale; a copy marked deleting (a purge or expiry under way) stays deleting
// even though the scan still sees the object.
func TestOnDemandRegionScan(t *testing.T) {
	f := newFixture(t, 0)
	srv := testenv.SharedS3(t)
	bucket := srv.NewBucket(t, true)
	od := f.add(&model.Region{Name: "od-1", Kind: model.KindS3, Bucket: bucket, Endpoint: srv.Endpoint,
		PublicURL: srv.Endpoint + "/" + bucket, Prefix: "pub", Fill: model.FillOnDemand})
	ctx := context.Background()
	res, err := f.pusher.Push(ctx, []*model.Region{od})
	if err != nil || res.Failed() {
		t.Fatalf("push: %v %+v", err, res.Regions[0])
	}
	if up := res.Regions[0].Uploaded; up != 4 { // repomd.xml and the three files it names
		t.Fatalf("push of an on-demand region uploaded %d files, want its 4 metadata files", up)
	}
	rep := f.scan(od)[0]
	if rep.Missing != 0 || rep.Corrupt != 0 || rep.Verified != 4 || f.repoState(od) != model.RepoFresh {
		t.Fatalf("scan of an on-demand region holding only its metadata: %+v, repo %s", rep, f.repoState(od))
	}

	// Three copies a fill made whose recording failed: the scan adopts them.
	c := srv.Client()
	pkgs := []string{repoDir + "/Packages/hello-1.0-1.noarch.rpm", repoDir + "/Packages/greet-2.1-1.noarch.rpm", "demo/1/iso/demo-1-x86_64.iso"}
	for _, p := range pkgs {
		body, err := os.ReadFile(filepath.Join(f.origin, p))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String("pub/" + p), Body: bytes.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	rep = f.scan(od)[0]
	if rep.Adopted != 3 || rep.Missing != 0 || f.repoState(od) != model.RepoFresh {
		t.Fatalf("scan after three unrecorded fills: %+v, repo %s", rep, f.repoState(od))
	}
	for _, p := range pkgs {
		if s := f.objectState(od, p); s != model.ObjectPresent {
			t.Fatalf("%s: %s after adoption", p, s)
		}
	}

	// One copy marked deleting (its object still there), one gone from the bucket.
	purged, err := f.db.GetFile(ctx, pkgs[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.MarkCopiesDeleting(ctx, db.Fence{}, od.ID, []int64{purged.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: aws.String("pub/" + pkgs[1])}); err != nil {
		t.Fatal(err)
	}
	rep = f.scan(od)[0]
	if s := f.objectState(od, pkgs[0]); s != model.ObjectDeleting {
		t.Errorf("a copy marked deleting is %s after a scan that saw its object", s)
	}
	if s := f.objectState(od, pkgs[1]); s != model.ObjectMissing {
		t.Errorf("a vanished on-demand copy is %s", s)
	}
	if rep.Missing != 1 || f.repoState(od) != model.RepoFresh {
		t.Errorf("scan: %+v, repo %s; a vanished on-demand copy only sends clients elsewhere", rep, f.repoState(od))
	}
}
