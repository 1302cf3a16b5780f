package watch

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/internal/config"
)

// TestTriggerRefusals sends POST /api/v1/push what a careless or hostile publisher would:
// no token, a wrong one, tokens not configured, bad JSON, and paths that are outside the
// origin, a file, a symlink out of it, or climb with "..". Each is refused with the
// right 4xx, names the path when one is at fault, never shows the origin's root, and
// changes nothing: no run, no files row, nothing queued. Then ten good triggers within a
// second make one push.
func TestTriggerRefusals(t *testing.T) {
	f := newFixture(t)
	dm := f.daemon(false, nil) // the trigger queue alone: no start push to tell apart
	const token = "trigger-token-0123456789abcdef"
	tokens := []string{config.HashToken(token)}
	api := httptest.NewServer(&TriggerHandler{Root: f.origin, Tokens: func() []string { return tokens }, Queue: dm, Metrics: dm.Metrics})
	defer api.Close()
	unconfigured := httptest.NewServer(&TriggerHandler{Root: f.origin, Tokens: func() []string { return nil }, Queue: dm})
	defer unconfigured.Close()

	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(f.origin, "escape")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	runsBefore, _ := f.db.RecentRuns(ctx, "", 1000)
	filesBefore, err := f.db.ListFiles(ctx, true)
	if err != nil {
		t.Fatal(err)
	}

	post := func(base, auth, body string) (int, http.Header, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/push", strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header, string(b)
	}
	good := `{"paths": ["` + repo1 + `"]}`
	bearer := "Bearer " + token
	cases := []struct {
		name, base, auth, body string
		code                   int
		path                   string // the path the answer must name
	}{
		{"no token", api.URL, "", good, 401, ""},
		{"not a bearer token", api.URL, "Basic dXNlcjpwYXNz", good, 401, ""},
		{"a wrong token", api.URL, "Bearer wrong-token-0123456789abcdef", good, 403, ""},
		{"no tokens configured", unconfigured.URL, bearer, good, 403, ""},
		{"bad JSON", api.URL, bearer, `{"paths": [`, 400, ""},
		{"an unknown field", api.URL, bearer, `{"paths": ["demo"], "force": true}`, 400, ""},
		{"two objects", api.URL, bearer, good + good, 400, ""},
		{"not a list", api.URL, bearer, `{"paths": "demo"}`, 400, ""},
		{"no paths", api.URL, bearer, `{"paths": []}`, 400, ""},
		{"too large", api.URL, bearer, `{"paths": ["` + strings.Repeat("a", 70<<10) + `"]}`, 413, ""},
		{"outside the origin", api.URL, bearer, `{"paths": ["` + repo1 + `", "/etc"]}`, 400, "/etc"},
		{"a file", api.URL, bearer, `{"paths": ["` + repo1 + `/repodata/repomd.xml"]}`, 400, repo1 + "/repodata/repomd.xml"},
		{"a symlink out of the origin", api.URL, bearer, `{"paths": ["escape"]}`, 400, "escape"},
		{"climbing out", api.URL, bearer, `{"paths": ["../etc"]}`, 400, "../etc"},
		{"climbing out through a repository", api.URL, bearer, `{"paths": ["demo/../../etc"]}`, 400, "demo/../../etc"},
		{"missing", api.URL, bearer, `{"paths": ["demo/9"]}`, 400, "demo/9"},
	}
	for _, tc := range cases {
		code, h, body := post(tc.base, tc.auth, tc.body)
		if code != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.code)
			continue
		}
		if code == 401 && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate %q", tc.name, h.Get("WWW-Authenticate"))
		}
		var e struct{ Error, Path string }
		if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
			t.Errorf("%s: not a JSON error: %q", tc.name, body)
		}
		if tc.path != "" && e.Path != tc.path {
			t.Errorf("%s: names %q, want %q (%s)", tc.name, e.Path, tc.path, body)
		}
		if strings.Contains(body, f.origin) || strings.Contains(body, outside) {
			t.Errorf("%s: the answer shows a local directory: %s", tc.name, body)
		}
		if tc.name == "no tokens configured" && !strings.Contains(body, "server.admin_tokens") {
			t.Errorf("%s: does not say how to configure one: %s", tc.name, body)
		}
	}
	if code, _, _ := func() (int, http.Header, string) {
		res, err := http.Get(api.URL + "/api/v1/push")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode, nil, ""
	}(); code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", code)
	}

	// Nothing was queued (no push follows), nothing changed in the database.
	time.Sleep(3 * TriggerQuiet)
	if calls, _ := f.pusher.finished(); len(calls) != 0 {
		t.Fatalf("refused triggers pushed: %v", scopes(calls))
	}
	runsAfter, _ := f.db.RecentRuns(ctx, "", 1000)
	filesAfter, _ := f.db.ListFiles(ctx, true)
	if len(runsAfter) != len(runsBefore) || len(filesAfter) != len(filesBefore) {
		t.Errorf("refused triggers changed the database: runs %d→%d, files %d→%d", len(runsBefore), len(runsAfter), len(filesBefore), len(filesAfter))
	}

	// Ten good triggers within a second, naming the repository three ways: one push.
	names := []string{repo1, filepath.Join(f.origin, repo1), repo1 + "/Packages"}
	for i := range 10 {
		code, _, body := post(api.URL, bearer, `{"paths": ["`+names[i%3]+`"]}`)
		if code != http.StatusAccepted || !strings.Contains(body, `"queued"`) {
			t.Fatalf("trigger %d: %d %s", i, code, body)
		}
		time.Sleep(80 * time.Millisecond)
	}
	waitFor(t, 60*time.Second, "the triggered push returned", func() bool {
		calls, done := f.pusher.finished()
		return len(calls) > 0 && done
	})
	time.Sleep(3 * TriggerQuiet)
	calls, _ := f.pusher.finished()
	if len(calls) != 1 || !slices.Equal(calls[0].scope, []string{repo1}) || calls[0].err != nil {
		t.Errorf("ten triggers made pushes %v (err %v); want one of %s", scopes(calls), calls[0].err, repo1)
	}
}
