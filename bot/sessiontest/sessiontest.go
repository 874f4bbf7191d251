// Package sessiontest is the conformance suite of bot.Sessions: every
// implementation — the engine's in-process one, and the shared ones over
// Badger or PostgreSQL — runs Run from its own tests, so that they all keep
// the one contract the engine relies on. Tests only: it is never linked
// into the shipped binary.
package sessiontest

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otpgate/otpgate/bot"
	"github.com/otpgate/otpgate/store"
)

// Config is what Run builds an implementation with.
type Config struct {
	// Retention: a state not saved for longer than this is forgotten.
	Retention time.Duration
	// Now is the clock the implementation ages states by. Run moves it.
	Now func() time.Time
}

// wait bounds every wait for something that must happen; a correct
// implementation takes milliseconds.
const wait = 10 * time.Second

// overlapWindow is how long Run gives a second Acquire of a held session to
// return wrongly. A correct implementation never returns within it, so the
// window cannot fail a correct implementation; it only decides how surely a
// wrong one is caught (which the saved-state check then confirms).
const overlapWindow = 50 * time.Millisecond

// Run checks the implementation newSessions builds. Each subtest builds its
// own, from a fresh Config, and uses users no other subtest uses, so the
// implementations may share storage (one database) between calls.
func Run(t *testing.T, newSessions func(t *testing.T, c Config) bot.Sessions) {
	t.Helper()
	const retention = time.Hour
	build := func(t *testing.T) (bot.Sessions, *clock) {
		clk := &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
		return newSessions(t, Config{Retention: retention, Now: clk.Now}), clk
	}

	t.Run("RoundTrip", func(t *testing.T) {
		s, _ := build(t)
		const user, other = 1001, 1002
		st, release := acquire(t, s, user)
		if !isZero(st) {
			t.Errorf("a user never saved: got %+v, want the zero state", st)
		}
		full := fullState()
		mustRelease(t, release, &full)
		st, release = acquire(t, s, user)
		if !equal(st, full) {
			t.Errorf("read back %+v\nsaved     %+v", st, full)
		}
		// A zero state overwrites everything, every field back to its zero.
		mustRelease(t, release, &bot.SessionState{})
		st, release = acquire(t, s, user)
		mustRelease(t, release, nil)
		if !isZero(st) {
			t.Errorf("after saving the zero state: got %+v", st)
		}
		st, release = acquire(t, s, other)
		mustRelease(t, release, nil)
		if !isZero(st) {
			t.Errorf("another user sees %+v", st)
		}
		// Negative user ids (Telegram group ids are negative; a user
		// id may one day be) and user 0 are users like any other.
		for _, u := range []int64{0, -1003, 1 << 52} {
			want := bot.SessionState{Lang: "ta", FloodWarned: u % 1000}
			st, release := acquire(t, s, u)
			mustRelease(t, release, &want)
			if st, release = acquire(t, s, u); !equal(st, want) {
				t.Errorf("user %d: read back %+v, want %+v", u, st, want)
			}
			mustRelease(t, release, nil)
		}
	})

	t.Run("SecondHolderWaitsAndSeesTheFirstsSave", func(t *testing.T) {
		s, _ := build(t)
		const user = 2001
		_, release := acquire(t, s, user)
		calling := make(chan struct{})
		got := make(chan acquired, 1)
		go func() {
			close(calling)
			st, rel, err := s.Acquire(context.Background(), user)
			got <- acquired{st, rel, err}
		}()
		<-calling
		select {
		case a := <-got:
			t.Errorf("a second Acquire returned while the first held the session: %+v, %v", a.st, a.err)
			if a.release != nil {
				mustRelease(t, a.release, nil)
			}
			mustRelease(t, release, nil)
			return
		case <-time.After(overlapWindow):
		}
		first := bot.SessionState{Lang: "bn", State: bot.ConvAwaitCode, FloodWarned: 1893561900}
		mustRelease(t, release, &first)
		select {
		case a := <-got:
			if a.err != nil {
				t.Fatalf("second Acquire: %v", a.err)
			}
			if !equal(a.st, first) {
				t.Errorf("the second holder sees %+v, want the first's save %+v", a.st, first)
			}
			mustRelease(t, a.release, nil)
		case <-time.After(wait):
			t.Fatalf("a second Acquire did not return within %v of the first's release", wait)
		}
	})

	t.Run("OneHolderAtATime", func(t *testing.T) {
		// Handlers on many goroutines (replicas) each read a counter (any
		// number field will do) and save it plus one: with one holder at a time, none is lost, and
		// no two hold at once.
		s, _ := build(t)
		const user, workers, rounds = 3001, 8, 25
		var inside, overlaps atomic.Int32
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for range rounds {
					ctx, cancel := context.WithTimeout(context.Background(), wait)
					st, release, err := s.Acquire(ctx, user)
					cancel() // bounds the wait, not the hold
					if err != nil {
						t.Errorf("Acquire: %v", err)
						return
					}
					if n := inside.Add(1); n > 1 {
						overlaps.Add(1)
					}
					runtime.Gosched()
					st.FloodWarned++
					inside.Add(-1)
					if err := release(context.Background(), &st); err != nil {
						t.Errorf("release: %v", err)
						return
					}
				}
			})
		}
		within(t, "the handlers", wg.Wait)
		st, release := acquire(t, s, user)
		mustRelease(t, release, nil)
		if n := overlaps.Load(); n > 0 {
			t.Errorf("%d times a handler held a session another one held", n)
		}
		if st.FloodWarned != workers*rounds {
			t.Errorf("%d increments survived of %d: holds overlapped", st.FloodWarned, workers*rounds)
		}
	})

	t.Run("UsersDoNotBlockEachOther", func(t *testing.T) {
		s, _ := build(t)
		const held, other = 4001, 4002
		_, release := acquire(t, s, held)
		st, rel := acquire(t, s, other) // fails the test if it waits
		want := bot.SessionState{Lang: "hi"}
		mustRelease(t, rel, &want)
		if st, rel = acquire(t, s, other); !equal(st, want) {
			t.Errorf("other user while %d is held: read back %+v", held, st)
		}
		mustRelease(t, rel, nil)
		mustRelease(t, release, nil)
	})

	t.Run("ReleaseWithoutSaveKeepsTheState", func(t *testing.T) {
		s, _ := build(t)
		const user = 5001
		saved := fullState()
		_, release := acquire(t, s, user)
		mustRelease(t, release, &saved)
		st, release := acquire(t, s, user)
		st.Lang, st.FloodWarned = "mr", 99 // changed, but not saved
		mustRelease(t, release, nil)
		st, release = acquire(t, s, user) // and the hold is over
		mustRelease(t, release, nil)
		if !equal(st, saved) {
			t.Errorf("after a release without save: %+v, want %+v", st, saved)
		}
	})

	t.Run("SecondReleaseChangesNothing", func(t *testing.T) {
		s, _ := build(t)
		const user = 6001
		first, second := bot.SessionState{Lang: "gu"}, bot.SessionState{Lang: "kn"}
		_, release := acquire(t, s, user)
		mustRelease(t, release, &first)
		if err := releaseWithin(t, context.Background(), release, &second); err == nil {
			t.Error("a second call of one Release returned nil")
		}
		st, rel := acquire(t, s, user)
		if !equal(st, first) {
			t.Errorf("after a second release: %+v, want %+v", st, first)
		}
		// Nor did the second call end someone else's hold.
		got := make(chan error, 1)
		go func() {
			_, r, err := s.Acquire(context.Background(), user)
			if err == nil {
				err = r(context.Background(), nil)
			}
			got <- err
		}()
		if err := releaseWithin(t, context.Background(), release, nil); err == nil {
			t.Error("a third call of one Release returned nil")
		}
		select {
		case <-got:
			t.Error("a stale Release ended the current holder's hold")
		case <-time.After(overlapWindow):
		}
		mustRelease(t, rel, nil)
		select {
		case err := <-got:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(wait):
			t.Fatal("the waiter did not get the session")
		}
	})

	t.Run("WaiterGivesUpWithItsContext", func(t *testing.T) {
		s, _ := build(t)
		const user = 7001
		_, release := acquire(t, s, user)
		ctx, cancel := context.WithCancel(context.Background())
		got := make(chan error, 1)
		go func() {
			_, rel, err := s.Acquire(ctx, user)
			if err == nil {
				_ = rel(context.Background(), nil)
			}
			got <- err
		}()
		cancel()
		select {
		case err := <-got:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Acquire whose context ended while waiting: %v, want context.Canceled", err)
			}
		case <-time.After(wait):
			t.Fatal("Acquire did not return when its context ended")
		}
		// The waiter that gave up holds nothing: the session goes on.
		want := bot.SessionState{Lang: "pa"}
		mustRelease(t, release, &want)
		st, release := acquire(t, s, user)
		mustRelease(t, release, nil)
		if !equal(st, want) {
			t.Errorf("after a waiter gave up: %+v, want %+v", st, want)
		}
	})

	t.Run("ReleaseWithADoneContextEndsTheHold", func(t *testing.T) {
		s, _ := build(t)
		const user = 8001
		before, next := bot.SessionState{Lang: "or"}, bot.SessionState{Lang: "te"}
		_, release := acquire(t, s, user)
		mustRelease(t, release, &before)
		_, release = acquire(t, s, user)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = releaseWithin(t, ctx, release, &next) // may fail; must end the hold
		st, release := acquire(t, s, user)
		mustRelease(t, release, nil)
		if !equal(st, before) && !equal(st, next) {
			t.Errorf("after a release with a done context: %+v, want %+v or %+v", st, before, next)
		}
	})

	t.Run("ForgottenAfterRetention", func(t *testing.T) {
		s, clk := build(t)
		const user, renewed = 9001, 9002
		saved := fullState()
		for _, u := range []int64{user, renewed} {
			_, release := acquire(t, s, u)
			mustRelease(t, release, &saved)
		}
		clk.Add(retention - time.Second)
		st, release := acquire(t, s, user)
		mustRelease(t, release, nil) // reading is not saving: no renewal
		if !equal(st, saved) {
			t.Errorf("within retention: %+v, want %+v", st, saved)
		}
		_, release = acquire(t, s, renewed)
		mustRelease(t, release, &saved) // saving renews
		clk.Add(2 * time.Second)
		st, release = acquire(t, s, user)
		mustRelease(t, release, nil)
		if !isZero(st) {
			t.Errorf("a state not saved for longer than retention: %+v, want the zero state", st)
		}
		st, release = acquire(t, s, renewed)
		mustRelease(t, release, nil)
		if !equal(st, saved) {
			t.Errorf("a state saved again within retention: %+v, want %+v", st, saved)
		}
	})
}

type acquired struct {
	st      bot.SessionState
	release bot.Release
	err     error
}

// acquire takes user's session, failing the test if that takes longer
// than wait or fails.
func acquire(t *testing.T, s bot.Sessions, user int64) (bot.SessionState, bot.Release) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var (
		st      bot.SessionState
		release bot.Release
		err     error
	)
	within(t, "Acquire", func() { st, release, err = s.Acquire(ctx, user) })
	if err != nil {
		t.Fatalf("Acquire(%d): %v", user, err)
	}
	if release == nil {
		t.Fatalf("Acquire(%d) returned no release", user)
	}
	return st, release
}

func mustRelease(t *testing.T, release bot.Release, next *bot.SessionState) {
	t.Helper()
	if err := releaseWithin(t, context.Background(), release, next); err != nil {
		t.Fatalf("release: %v", err)
	}
}

// releaseWithin calls release, failing the test if it does not return.
func releaseWithin(t *testing.T, ctx context.Context, release bot.Release, next *bot.SessionState) (err error) {
	t.Helper()
	within(t, "Release", func() { err = release(ctx, next) })
	return err
}

// within runs f, failing the test if it does not return within wait: a
// broken implementation fails a subtest instead of hanging the suite.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatalf("%s did not return within %v", what, wait)
	}
}

// fullState sets every field, to something other than its zero. Times are
// whole microseconds (PostgreSQL's resolution) and not in UTC.
func fullState() bot.SessionState {
	ist := time.FixedZone("IST", 5*3600+1800)
	return bot.SessionState{
		Lang:          "hi",
		State:         bot.ConvAwaitStaffCode,
		Grant:         store.GrantRef{ID: "grant-5f3a", Requester: "telegram:42"},
		GrantAudience: store.AudienceStaff,
		StaffTag:      "KM27",
		LastSeen:      time.Date(2030, 1, 2, 8, 30, 1, 234567000, ist),
		FloodWarned:   time.Date(2030, 1, 2, 8, 31, 0, 0, ist).Unix(),
	}
}

// equal compares states, times as instants.
func equal(a, b bot.SessionState) bool {
	if !a.LastSeen.Equal(b.LastSeen) {
		return false
	}
	a.LastSeen, b.LastSeen = time.Time{}, time.Time{}
	return a == b
}

func isZero(s bot.SessionState) bool { return equal(s, bot.SessionState{}) }

// clock is a settable clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }
