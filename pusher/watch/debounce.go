package watch

import (
	"slices"
	"time"
)

// TriggerQuiet is how long a key named by a trigger must be quiet before it is pushed:
// publishers' hooks fire in bursts (one per package, one per architecture), and ten
// triggers within a second make one push.
const TriggerQuiet = 500 * time.Millisecond

// capFactor bounds the wait of a key whose files never stop changing: it is pushed at
// the latest this many quiet periods after its first unpushed event.
const capFactor = 10

// Debouncer coalesces changes by scope key. It is pure: every method takes the time, so
// tables test it without a clock. The zero value is not usable; use NewDebouncer.
//
// A key is due when it has been quiet for its quiet period (Settle for file events,
// TriggerQuiet for triggers), or capFactor quiet periods after its first unpushed
// change, whichever comes first. Take hands out every due key at once; Done settles
// them. A change to a key while it is being pushed queues it again, so the change is
// pushed by the next push, never lost in the running one.
type Debouncer struct {
	Settle time.Duration
	keys   map[string]*pendingKey
	flight map[string]bool
}

type pendingKey struct {
	quietUntil time.Time // the last change plus its quiet period
	capAt      time.Time // the first change plus capFactor quiet periods
}

// NewDebouncer returns a debouncer whose file events settle after settle.
func NewDebouncer(settle time.Duration) *Debouncer {
	return &Debouncer{Settle: settle, keys: map[string]*pendingKey{}, flight: map[string]bool{}}
}

// Event records a file change of key at now.
func (d *Debouncer) Event(key string, now time.Time) { d.add(key, now, d.Settle) }

// Trigger records a publisher's request for key at now.
func (d *Debouncer) Trigger(key string, now time.Time) { d.add(key, now, TriggerQuiet) }

// Immediate makes key due at now (an overflow's full push, the start push, a retry).
func (d *Debouncer) Immediate(key string, now time.Time) { d.add(key, now, 0) }

func (d *Debouncer) add(key string, now time.Time, quiet time.Duration) {
	k, ok := d.keys[key]
	if !ok {
		d.keys[key] = &pendingKey{quietUntil: now.Add(quiet), capAt: now.Add(capFactor * quiet)}
		return
	}
	if u := now.Add(quiet); u.After(k.quietUntil) {
		k.quietUntil = u
	}
	// A shorter quiet period (a trigger on a key with file events, an immediate push)
	// pulls the cap in: the publisher says it is done.
	if c := now.Add(capFactor * quiet); c.Before(k.capAt) {
		k.capAt = c
	}
}

func (k *pendingKey) due() time.Time {
	if k.capAt.Before(k.quietUntil) {
		return k.capAt
	}
	return k.quietUntil
}

// Next is when the earliest key becomes due; ok is false when none waits.
func (d *Debouncer) Next() (at time.Time, ok bool) {
	for _, k := range d.keys {
		if t := k.due(); !ok || t.Before(at) {
			at, ok = t, true
		}
	}
	return at, ok
}

// Take returns every key due at now, sorted, and marks them in flight. Nothing is
// returned while a push is in flight: one push at a time, and what changed meanwhile
// goes into the next one.
func (d *Debouncer) Take(now time.Time) []string {
	if len(d.flight) > 0 {
		return nil
	}
	var out []string
	for key, k := range d.keys {
		if !k.due().After(now) {
			out = append(out, key)
		}
	}
	for _, key := range out {
		delete(d.keys, key)
		d.flight[key] = true
	}
	slices.Sort(out)
	return out
}

// Done settles the keys in flight. When the push failed (ok false) they are queued
// again, due at retryAt, unless a newer change already queued them.
func (d *Debouncer) Done(ok bool, now, retryAt time.Time) {
	for key := range d.flight {
		if !ok {
			if k, queued := d.keys[key]; queued {
				if retryAt.Before(k.quietUntil) {
					k.quietUntil = retryAt
				}
			} else {
				d.keys[key] = &pendingKey{quietUntil: retryAt, capAt: retryAt}
			}
		}
	}
	clear(d.flight)
}

// Pending counts the keys changed and not yet pushed: queued or in flight.
func (d *Debouncer) Pending() int {
	n := len(d.keys)
	for key := range d.flight {
		if _, queued := d.keys[key]; !queued {
			n++
		}
	}
	return n
}

// InFlight reports whether a push is out.
func (d *Debouncer) InFlight() bool { return len(d.flight) > 0 }
