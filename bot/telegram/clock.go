package telegram

import "time"

// Clock is where the adapter reads the time and waits for it: the due time
// of a deletion and the sweep that finds it, send pacing and retries, the
// poll loop's back-off, the webhook's wait for a busy worker, the wait for
// a claimed update's replies and for a booked send slot, and the health
// window. Options.Clock nil means the system clock. A Coordinator keeps
// its own time: what it answers is relative.
//
// Tests either give their own Clock (the outbox's scheduler is tested that
// way) or run the whole adapter inside a testing/synctest bubble, where the
// system clock, timers and the net/http timeouts the library uses all follow
// the bubble's fake time, so nothing in a test waits in real time.
//
// A Clock is safe for concurrent use.
type Clock interface {
	Now() time.Time
	// After is time.After on this clock.
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
