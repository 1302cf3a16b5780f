package watch

import (
	"slices"
	"time"
)

// Retry bounds: a region that came back busy or failed is pushed again for its scope
// after 1 s, doubling up to 60 s, for about ten minutes; after that the scheduled push is
// the safety net.
const (
	retryFirst  = time.Second
	retryMax    = 60 * time.Second
	retryGiveUp = 10 * time.Minute
)

// retryBackoff is the wait before retry number attempt (1, 2, ...).
func retryBackoff(attempt int) time.Duration {
	d := retryFirst
	for i := 1; i < attempt && d < retryMax; i++ {
		d *= 2
	}
	return min(d, retryMax)
}

// regionRetry is a scope to push again into some regions only.
type regionRetry struct {
	scope   []string // nil: the whole origin
	regions []string // by name
	attempt int
	first   time.Time // the first failure
	next    time.Time
}

// retries is the queue of region retries: pure, tested with tables.
type retries struct{ list []*regionRetry }

// failed records that the push of scope left regions busy or failed at now; attempt is
// the retry's number (0 for a first push). It reports false when the retry gives up.
func (q *retries) failed(scope, regions []string, prev *regionRetry, now time.Time) bool {
	if len(regions) == 0 {
		return true
	}
	r := &regionRetry{scope: scope, regions: slices.Sorted(slices.Values(regions)), attempt: 1, first: now}
	if prev != nil {
		r.attempt, r.first = prev.attempt+1, prev.first
	}
	if now.Sub(r.first) >= retryGiveUp {
		return false
	}
	r.next = now.Add(retryBackoff(r.attempt))
	q.list = append(q.list, r)
	return true
}

// take removes and returns the first retry due at now.
func (q *retries) take(now time.Time) *regionRetry {
	for i, r := range q.list {
		if !r.next.After(now) {
			q.list = slices.Delete(q.list, i, i+1)
			return r
		}
	}
	return nil
}

// next is when the earliest retry is due.
func (q *retries) next() (at time.Time, ok bool) {
	for _, r := range q.list {
		if !ok || r.next.Before(at) {
			at, ok = r.next, true
		}
	}
	return at, ok
}
