package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// region edit of a public URL (issue 12, defect 6): before the fix the region kept every
// verified record, clients went at once to the new, empty place and the next push
// uploaded nothing. Now the edit forgets the old place's records; the next push writes
// the tree there again and only then is the repository fresh.
func TestRegionMoveForgetsVerifiedCopies(t *testing.T) {
	env, _, _ := pushEnv(t)
	mustCLI(t, env, "push")
	newDir := t.TempDir()
	fs := httptest.NewServer(http.FileServer(http.Dir(newDir)))
	t.Cleanup(fs.Close)
	out := mustCLI(t, env, "region", "edit", "us-east-1", "--dir", newDir, "--public-url", fs.URL)
	if !strings.Contains(out, "region us-east-1 moved: forgot") || strings.Contains(out, "forgot 0 verified copies") {
		t.Errorf("edit printed %q", out)
	}
	var status struct {
		Repositories []struct {
			Regions map[string]struct{ State string } `json:"regions"`
		} `json:"repositories"`
	}
	if err := json.Unmarshal([]byte(mustCLI(t, env, "status", "--json")), &status); err != nil || len(status.Repositories) != 1 {
		t.Fatalf("status --json: %v", err)
	}
	if st := status.Repositories[0].Regions["us-east-1"].State; st == "fresh" || st == "alternate" {
		t.Errorf("the moved region is %s before anything was verified there", st)
	}
	var loc struct {
		Copies []struct{ Region, State string } `json:"regions"`
	}
	if err := json.Unmarshal([]byte(mustCLI(t, env, "locate", "--json", "demo/1/x86_64/os/repodata/repomd.xml")), &loc); err != nil {
		t.Fatal(err)
	}
	for _, c := range loc.Copies {
		if c.Region == "us-east-1" && c.State != "not-pushed" {
			t.Errorf("locate still shows a copy at the old place: %+v", c)
		}
	}
	var res struct {
		Regions []struct {
			Region   string
			Uploaded int `json:"uploaded_files"`
		}
	}
	if err := json.Unmarshal([]byte(mustCLI(t, env, "push", "--json", "--region", "us-east-1")), &res); err != nil || len(res.Regions) != 1 || res.Regions[0].Uploaded == 0 {
		t.Fatalf("the push after the move uploaded nothing: %+v %v", res, err)
	}
	// A weight edit moves nothing.
	if out := mustCLI(t, env, "region", "edit", "us-east-1", "--weight", "50"); strings.Contains(out, "moved") {
		t.Errorf("weight edit printed %q", out)
	}
}
