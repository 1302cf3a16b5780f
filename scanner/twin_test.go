package scanner

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/internal/testenv"
)

// TestScanTwinThatIsARealPath: when the "+" twin key of a path is itself a file of the
// origin ("a+b.rpm" and "a b.rpm"), no twin is written (model.WritableTwin; the fill
// worker and gc apply the same rule), so the scan must not require one. An on-demand
// region holding a copy of "a+b.rpm" only (the real "a b.rpm" never asked for) keeps it
// present; before, the scan counted it as lacking its twin: never adopted, and a recorded
// copy turned missing.
func TestScanTwinThatIsARealPath(t *testing.T) {
	f := newFixture(t, 0)
	plus, space := repoDir+"/Packages/a+b-1.0-1.noarch.rpm", repoDir+"/Packages/a b-1.0-1.noarch.rpm"
	for _, p := range []string{plus, space} {
		if err := os.WriteFile(filepath.Join(f.origin, p), []byte("real file "+p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f.inventory()
	srv := testenv.SharedS3(t)
	bucket := srv.NewBucket(t, true)
	od := f.add(&model.Region{Name: "od-1", Kind: model.KindS3, Bucket: bucket, Endpoint: srv.Endpoint,
		PublicURL: srv.Endpoint + "/" + bucket, Prefix: "pub", Fill: model.FillOnDemand})
	f.push(od)
	ctx := context.Background()
	body, err := os.ReadFile(filepath.Join(f.origin, plus))
	if err != nil {
		t.Fatal(err)
	}
	// A fill's copy of "a+b.rpm", whose recording failed; no twin, as the worker writes.
	if _, err := srv.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String("pub/" + plus), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
	rep := f.scan(od)[0]
	if s := f.objectState(od, plus); s != model.ObjectPresent {
		t.Fatalf("%s: %s after a scan that saw its object (report %+v); its twin key is a real file, none is needed", plus, s, rep)
	}
	if s := f.objectState(od, space); s != "none" {
		t.Errorf("%s, never copied: %s", space, s)
	}
	rep = f.scan(od)[0] // a recorded copy stays present
	if s := f.objectState(od, plus); s != model.ObjectPresent || rep.Missing != 0 {
		t.Fatalf("%s: %s after a second scan (report %+v)", plus, s, rep)
	}
}
