package main

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
)

// apiGrid is the freshness grid of the server's /api/v1/status: the current repomd.xml
// and the state by region of the repository demo-1/x86_64.
func apiGrid(t *testing.T, base string) (current string, states map[string]string) {
	t.Helper()
	res, err := http.Get(base + "/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var v struct {
		Repositories []struct {
			Name, Arch string
			Current    *struct{ SHA256 string }
			Regions    map[string]struct{ State string }
		}
	}
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	states = map[string]string{}
	for _, r := range v.Repositories {
		if r.Name != "demo-1" || r.Arch != "x86_64" {
			continue
		}
		if r.Current != nil {
			current = r.Current.SHA256
		}
		for name, c := range r.Regions {
			states[name] = c.State
		}
	}
	return current, states
}

// cliGrid is the same grid as `regionmirror status --json` prints it.
func cliGrid(t *testing.T, env []string) (current string, states map[string]string) {
	t.Helper()
	var rep statusReport
	if err := json.Unmarshal([]byte(mustCLI(t, env, "status", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	states = map[string]string{}
	for _, r := range rep.Repositories {
		if r.Repo != "demo-1" || r.Arch != "x86_64" {
			continue
		}
		current = r.Current
		for name, c := range r.Regions {
			states[name] = c.State
		}
	}
	return current, states
}

// TestStatusAgreesWithServe: `regionmirror status` (and explain) and a running `regionmirror serve` read
// the same configuration and database and show the same grid, inside the alternates window
// and beyond it (metalink.alternates_max_age), for every kind of cell: fresh, alternate,
// stale by the clock, stale as recorded, excluded (includes of repodata/ only) and
// unverified. Status judges with the server's policy (servePolicy) and the server's cells
// (selection.Cell), from one snapshot of the database.
func TestStatusAgreesWithServe(t *testing.T) {
	env := servedEnv(t)
	mustCLI(t, env, "region", "add", "ap-south-1", "--bucket", "m-aps1", "--public-url", "https://m-aps1.example",
		"--include", "demo/1/x86_64/os/repodata")
	mustCLI(t, env, "region", "add", "ca-central-1", "--bucket", "m-cac1", "--public-url", "https://m-cac1.example")
	ctx := context.Background()
	d, err := db.Open(ctx, getenv(env, "REGIONMIRROR_DATABASE_URL"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	repo, _ := d.GetRepository(ctx, "demo-1", "x86_64")
	aps1, _ := d.GetRegion(ctx, "ap-south-1")
	old := sha256.Sum256([]byte("<repomd/>"))
	if err := d.SetRegionRepo(ctx, db.NoFence, model.RegionRepo{RegionID: aps1.ID, RepositoryID: repo.ID, RepomdSHA256: old[:], State: model.RepoFresh}); err != nil {
		t.Fatal(err)
	}
	const window = 3 * time.Second
	short := append(env[:len(env):len(env)], "REGIONMIRROR_METALINK_ALTERNATES_MAX_AGE="+window.String())
	long, brief := startServe(t, env).base, startServe(t, short).base

	compare := func(what string, env []string, base string, want map[string]string) {
		t.Helper()
		cliCur, cli := cliGrid(t, env)
		apiCur, api := apiGrid(t, base)
		if cliCur != apiCur || !maps.Equal(cli, api) {
			t.Errorf("%s: status says %s %v, serve says %s %v", what, cliCur, cli, apiCur, api)
		}
		if !maps.Equal(cli, want) {
			t.Errorf("%s: status says %v, want %v", what, cli, want)
		}
	}
	want := map[string]string{"us-east-1": "fresh", "eu-central-1": "stale", "ap-south-1": "excluded", "ca-central-1": "unverified"}
	compare("before a new version", env, long, want)
	compare("before a new version, short window", short, brief, want)

	// A new repomd.xml: us-east-1 serves the superseded one.
	body := []byte("<repomd>2</repomd>")
	m, s1, s2, s5 := md5.Sum(body), sha1.Sum(body), sha256.Sum256(body), sha512.Sum512(body)
	v := &model.RepomdVersion{RepositoryID: repo.ID, MD5: m[:], SHA1: s1[:], SHA256: s2[:], SHA512: s5[:], Size: int64(len(body)), Timestamp: 1700000100}
	if _, err := d.RecordRepomdVersion(ctx, v); err != nil {
		t.Fatal(err)
	}
	for _, base := range []string{long, brief} { // each server rebuilds its snapshot on NOTIFY
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if cur, _ := apiGrid(t, base); cur == hex.EncodeToString(s2[:]) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never saw the new repomd.xml", base)
			}
		}
	}
	want["us-east-1"] = "alternate"
	compare("within metalink.alternates_max_age", env, long, want)
	time.Sleep(time.Until(v.FirstSeen.Add(window + 500*time.Millisecond)))
	want["us-east-1"] = "stale"
	compare("beyond metalink.alternates_max_age", short, brief, want)
	// The long window still offers it, in both.
	want["us-east-1"] = "alternate"
	compare("within the long window", env, long, want)

	// status says why a region recorded fresh is stale now; the server's public grid does not.
	var rep statusReport
	if err := json.Unmarshal([]byte(mustCLI(t, short, "status", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	if c := rep.Repositories[0].Regions["us-east-1"]; !strings.Contains(c.Error, "beyond metalink.alternates_max_age ("+window.String()+")") {
		t.Errorf("us-east-1 beyond the window: error %q", c.Error)
	}
	if c := rep.Repositories[0].Regions["eu-central-1"]; c.Error != "serves an unknown repomd.xml" {
		t.Errorf("eu-central-1: error %q, want the recorded one", c.Error)
	}
	if out, errs, code := cli(t, short, "status"); code != 0 || !strings.Contains(out, "stale") {
		t.Errorf("status: exit %d %s\n%s", code, errs, out)
	}
	// explain gives the server's reasons too (issue 12, defects 16 and 11).
	out := mustCLI(t, short, "explain", "--repo", "demo-1", "--arch", "x86_64")
	for _, want := range []string{"us-east-1     serves a repomd.xml superseded", "beyond metalink.alternates_max_age (" + window.String() + ")",
		"ap-south-1    does not carry demo/1/x86_64/os"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain lacks %q:\n%s", want, out)
		}
	}
}
