package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/regionmirror/regionmirror/server/selection"
)

// Review 2: the stale bound (ondemand.stale_after) is applied to redirects and metalinks
// but not to a file's HTML mirror list (?mirrorlist), which answerFile returns before
// computing it: an instance cut off from the database keeps listing the on-demand copy's
// bucket URL, which gc deletes stale_after after a mark the instance cannot read.
func TestStaleInstanceMirrorlistLeavesOutOnDemandCopies(t *testing.T) {
	w := startOnDemand(t, onDemandOptions{})
	ctx := context.Background()
	w.location(t, http.MethodGet, "/pub/"+odHello+"?location=od")
	waitFor(t, "the fill job", func() bool { return len(w.jobs(t, odHello)) == 1 })
	w.complete(t, odHello)

	const staleAfter = time.Second
	l := &cutLoader{DB: w.d}
	storeB := NewStore(l, StoreOptions{LoadFiles: true, Debounce: 20 * time.Millisecond, Interval: 100 * time.Millisecond,
		FilesMinInterval: 20 * time.Millisecond, Policy: selection.Policy{OriginURL: "https://origin.example/pub", AlternatesMaxAge: 72 * time.Hour}})
	if err := storeB.Refresh(ctx, true); err != nil {
		t.Fatal(err)
	}
	b := httptest.NewServer(New(Options{Store: storeB, DownloadPrefix: "/pub", OnDemandStaleAfter: staleAfter}).Handler())
	defer b.Close()
	l.cut.Store(true)
	time.Sleep(staleAfter + 200*time.Millisecond)
	res, _ := doURL(t, http.MethodGet, b.URL+"/pub/"+odHello+"?location=od")
	if got := res.Header.Get("Location"); got == odURL(odHello) {
		t.Fatalf("redirect, stale: %s (the bound itself failed)", got)
	}
	res, body := doURL(t, http.MethodGet, b.URL+"/pub/"+odHello+"?location=od&mirrorlist")
	if strings.Contains(string(body), odURL(odHello)) {
		t.Errorf("mirror list of a stale instance (%d) lists the on-demand copy %s", res.StatusCode, odURL(odHello))
	}
}
