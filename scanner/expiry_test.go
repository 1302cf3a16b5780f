package scanner

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
	"github.com/regionmirror/regionmirror/pusher"
)

// TestUnrequestedCopiesExpireDespiteScans: expiry measures a copy's age from
// last_requested_at, else verified_at (pusher.LastUsed). A copy never requested through
// a server (adopted by a scan, or every file of a push region turned on-demand) has no
// last_requested_at, and every scan sets verified_at to now: with scans more frequent than
// ondemand.expire_after (hourly vs 14 days by default) such a copy never expires.
func TestUnrequestedCopiesExpireDespiteScans(t *testing.T) {
	f := newFixture(t, 0)
	srv := testenv.SharedS3(t)
	bucket := srv.NewBucket(t, true)
	od := f.add(&model.Region{Name: "od-1", Kind: model.KindS3, Bucket: bucket, Endpoint: srv.Endpoint,
		PublicURL: srv.Endpoint + "/" + bucket, Prefix: "pub", Fill: model.FillOnDemand})
	ctx := context.Background()
	f.push(od)
	p := "demo/1/iso/demo-1-x86_64.iso"
	body, err := os.ReadFile(filepath.Join(f.origin, p))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String("pub/" + p), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
	f.scan(od) // adopted: present, verified now, never requested
	// 30 days pass without a single request; the hourly scans go on.
	conn, err := pgx.Connect(ctx, f.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `UPDATE region_objects SET verified_at = now() - interval '30 days', pushed_at = NULL
		WHERE region_id = $1 AND file_id = (SELECT id FROM files WHERE path = $2)`, od.ID, p); err != nil {
		t.Fatal(err)
	}
	f.scan(od) // the latest hourly scan
	res, _, err := f.pusher.GC(ctx, []*model.Region{od}, pusher.GCOptions{ExpireAfter: 14 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if s := f.objectState(od, p); s != "none" {
		t.Fatalf("a copy no client asked for in 30 days is still %s after gc (expire_after 14d): %+v", s, res[0])
	}
}
