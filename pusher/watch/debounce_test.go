package watch

import (
	"slices"
	"testing"
	"time"
)

// step is one thing that happens to a debouncer at a time (ms from t0).
type step struct {
	at   int    // ms
	op   string // event, trigger, now, take, ok, fail
	key  string
	want []string // for take: the keys due
}

func TestDebouncer(t *testing.T) {
	const settle = 2 * time.Second
	cases := []struct {
		name  string
		steps []step
	}{
		{"a key is due once quiet for settle", []step{
			{at: 0, op: "event", key: "a"},
			{at: 1999, op: "take", want: nil},
			{at: 2000, op: "take", want: []string{"a"}},
		}},
		{"events keep a key waiting", []step{
			{at: 0, op: "event", key: "a"},
			{at: 1500, op: "event", key: "a"},
			{at: 3000, op: "take", want: nil},
			{at: 3500, op: "take", want: []string{"a"}},
		}},
		{"a key changing forever is due at ten settles", []step{
			{at: 0, op: "event", key: "a"},
			{at: 5000, op: "event", key: "a"},
			{at: 10000, op: "event", key: "a"},
			{at: 15000, op: "event", key: "a"},
			{at: 19999, op: "event", key: "a"},
			{at: 19999, op: "take", want: nil},
			{at: 20000, op: "take", want: []string{"a"}},
		}},
		{"every key due at once goes into one take", []step{
			{at: 0, op: "event", key: "b"},
			{at: 100, op: "event", key: "a"},
			{at: 2100, op: "take", want: []string{"a", "b"}},
		}},
		{"a key not yet quiet waits for the next take", []step{
			{at: 0, op: "event", key: "a"},
			{at: 1000, op: "event", key: "b"},
			{at: 2000, op: "take", want: []string{"a"}},
			{at: 2000, op: "ok"},
			{at: 3000, op: "take", want: []string{"b"}},
		}},
		{"ten triggers within a second make one push", []step{
			{at: 0, op: "trigger", key: "r"}, {at: 100, op: "trigger", key: "r"}, {at: 200, op: "trigger", key: "r"},
			{at: 300, op: "trigger", key: "r"}, {at: 400, op: "trigger", key: "r"}, {at: 500, op: "trigger", key: "r"},
			{at: 600, op: "trigger", key: "r"}, {at: 700, op: "trigger", key: "r"}, {at: 800, op: "trigger", key: "r"},
			{at: 900, op: "trigger", key: "r"},
			{at: 1399, op: "take", want: nil},
			{at: 1400, op: "take", want: []string{"r"}},
			{at: 1400, op: "ok"},
			{at: 5000, op: "take", want: nil},
		}},
		{"a trigger does not cut short files still being written", []step{
			{at: 0, op: "event", key: "r"},
			{at: 100, op: "trigger", key: "r"},
			{at: 600, op: "take", want: nil},
			{at: 2000, op: "take", want: []string{"r"}},
		}},
		{"an immediate key is due at once", []step{
			{at: 0, op: "event", key: "a"},
			{at: 10, op: "now", key: ""},
			{at: 10, op: "take", want: []string{""}},
		}},
		{"nothing is taken while a push is in flight; changes meanwhile queue the next", []step{
			{at: 0, op: "event", key: "a"},
			{at: 2000, op: "take", want: []string{"a"}},
			{at: 2100, op: "event", key: "a"},
			{at: 2200, op: "event", key: "b"},
			{at: 9000, op: "take", want: nil},
			{at: 9000, op: "ok"},
			{at: 9000, op: "take", want: []string{"a", "b"}},
		}},
		{"a failed push queues its keys again", []step{
			{at: 0, op: "event", key: "a"},
			{at: 2000, op: "take", want: []string{"a"}},
			{at: 2500, op: "fail"}, // retry at +1 s
			{at: 3499, op: "take", want: nil},
			{at: 3500, op: "take", want: []string{"a"}},
		}},
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDebouncer(settle)
			for i, s := range tc.steps {
				now := t0.Add(time.Duration(s.at) * time.Millisecond)
				switch s.op {
				case "event":
					d.Event(s.key, now)
				case "trigger":
					d.Trigger(s.key, now)
				case "now":
					d.Immediate(s.key, now)
				case "ok":
					d.Done(true, now, now)
				case "fail":
					d.Done(false, now, now.Add(time.Second))
				case "take":
					if got := d.Take(now); !slices.Equal(got, s.want) {
						t.Fatalf("step %d (at %d ms): took %q, want %q", i, s.at, got, s.want)
					}
				}
			}
		})
	}
}

func TestDebouncerPendingCountsKeysInFlight(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := NewDebouncer(time.Second)
	d.Event("a", t0)
	d.Event("b", t0)
	if n := d.Pending(); n != 2 {
		t.Fatalf("pending %d, want 2", n)
	}
	d.Take(t0.Add(time.Second))
	d.Event("a", t0.Add(1500*time.Millisecond)) // queued again while in flight: still one key
	if n := d.Pending(); n != 2 {
		t.Fatalf("in flight: pending %d, want 2", n)
	}
	d.Done(true, t0.Add(2*time.Second), t0)
	if n := d.Pending(); n != 1 {
		t.Fatalf("after the push: pending %d, want 1 (a changed during it)", n)
	}
	if at, ok := d.Next(); !ok || !at.Equal(t0.Add(2500*time.Millisecond)) {
		t.Fatalf("next %v %v", at, ok)
	}
}

func TestRetryBackoff(t *testing.T) {
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second,
		6: 32 * time.Second, 7: 60 * time.Second, 40: 60 * time.Second} {
		if got := retryBackoff(attempt); got != want {
			t.Errorf("attempt %d: %v, want %v", attempt, got, want)
		}
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var q retries
	if !q.failed([]string{"r"}, []string{"eu", "us"}, nil, t0) {
		t.Fatal("first failure gave up")
	}
	if r := q.take(t0.Add(999 * time.Millisecond)); r != nil {
		t.Fatal("retry taken before its backoff")
	}
	r := q.take(t0.Add(time.Second))
	if r == nil || !slices.Equal(r.regions, []string{"eu", "us"}) || r.attempt != 1 {
		t.Fatalf("retry %+v", r)
	}
	// Failing again doubles the wait, for the same regions only.
	q.failed(r.scope, []string{"us"}, r, t0.Add(2*time.Second))
	if at, _ := q.next(); !at.Equal(t0.Add(4 * time.Second)) {
		t.Fatalf("second retry at %v", at)
	}
	r = q.take(t0.Add(4 * time.Second))
	if q.failed(r.scope, r.regions, r, t0.Add(retryGiveUp)) {
		t.Fatal("a retry still failing after ten minutes did not give up")
	}
}
