package app

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ulule/limiter/v3"
	"github.com/ulule/limiter/v3/drivers/store/memory"

	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/store/storetest"
)

// newFloodStore is the adapter over a real store in memory, on clk.
func newFloodStore(t *testing.T, now func() time.Time) floodStore {
	t.Helper()
	o := backupStoreOptions(backupTestKeys(t, 3), "")
	o.Now = now
	st, err := store.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return floodStore{st: st, now: now}
}

// TestFloodStoreKeepsUluleSemantics: Reached past Limit hits, Remaining
// counting down, Reset the window's end in unix seconds, Peek counting
// nothing, Reset starting over, and a new window once the period is over —
// on the store's clock.
func TestFloodStoreKeepsUluleSemantics(t *testing.T) {
	clk := storetest.NewClock()
	f := newFloodStore(t, clk.Now)
	ctx := context.Background()
	rate := limiter.Rate{Period: time.Minute, Limit: 3}
	start := clk.Now()
	want := func(op string, got limiter.Context, err error, remaining int64, reached bool, reset time.Time) {
		t.Helper()
		w := limiter.Context{Limit: 3, Remaining: remaining, Reset: reset.Unix(), Reached: reached}
		if err != nil || got != w {
			t.Fatalf("%s: %+v, %v; want %+v", op, got, err, w)
		}
	}
	end := start.Add(time.Minute)
	lc, err := f.Peek(ctx, "1", rate)
	want("a peek before any hit", lc, err, 3, false, end)
	for i := range 3 {
		if i > 0 {
			clk.Add(time.Second) // later hits do not move the window's end
		}
		lc, err := f.Get(ctx, "1", rate)
		want(fmt.Sprintf("hit %d", i+1), lc, err, int64(2-i), false, end)
	}
	lc, err = f.Get(ctx, "1", rate)
	want("hit 4", lc, err, 0, true, end)
	for range 2 {
		lc, err = f.Peek(ctx, "1", rate)
		want("a peek past the limit", lc, err, 0, true, end)
	}
	lc, err = f.Peek(ctx, "2", rate)
	want("another key", lc, err, 3, false, clk.Now().Add(time.Minute))
	lc, err = f.Increment(ctx, "2", 2, rate)
	want("increment by 2", lc, err, 1, false, clk.Now().Add(time.Minute))
	if _, err := f.Increment(ctx, "2", -1, rate); !errors.Is(err, store.ErrBadHit) {
		t.Fatalf("a negative increment: %v", err)
	}
	// The period over (on the store's clock), a new window begins.
	clk.Add(end.Sub(clk.Now()))
	next := clk.Now().Add(time.Minute)
	lc, err = f.Get(ctx, "1", rate)
	want("the first hit of the next window", lc, err, 2, false, next)
	clk.Add(10 * time.Second)
	lc, err = f.Reset(ctx, "1", rate)
	want("reset", lc, err, 3, false, clk.Now().Add(time.Minute))
	lc, err = f.Get(ctx, "1", rate)
	want("the first hit after a reset", lc, err, 2, false, clk.Now().Add(time.Minute))
	// And the limiter the engine builds reads it the same way.
	l := limiter.New(f, limiter.Rate{Period: time.Minute, Limit: 1})
	if lc, err := l.Get(ctx, "3"); err != nil || lc.Reached {
		t.Fatalf("limiter, first: %+v, %v", lc, err)
	}
	if lc, err := l.Get(ctx, "3"); err != nil || !lc.Reached || lc.Remaining != 0 {
		t.Fatalf("limiter, second: %+v, %v", lc, err)
	}
}

// TestFloodStoreMatchesUlulesMemoryStore runs one random sequence of Get,
// Peek, Increment and Reset on ulule's memory store and on the adapter
// (both on the wall clock, within one window) and compares every Context:
// the same Limit, Remaining and Reached; Reset within the second the two
// windows began apart.
func TestFloodStoreMatchesUlulesMemoryStore(t *testing.T) {
	f := newFloodStore(t, time.Now)
	ref := memory.NewStore()
	ctx := context.Background()
	rate := limiter.Rate{Period: time.Hour, Limit: 5}
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		key := fmt.Sprint(rnd.IntN(3))
		var (
			op       string
			got, exp limiter.Context
			err      error
		)
		switch n := rnd.IntN(10); {
		case n < 5:
			op = "Get"
			got, err = f.Get(ctx, key, rate)
			exp, _ = ref.Get(ctx, key, rate)
		case n < 7:
			op = "Peek"
			got, err = f.Peek(ctx, key, rate)
			exp, _ = ref.Peek(ctx, key, rate)
		case n < 9:
			c := 1 + rnd.Int64N(3) // 0 is a peek here, not a window begun empty (flood.go)
			op = fmt.Sprintf("Increment(%d)", c)
			got, err = f.Increment(ctx, key, c, rate)
			exp, _ = ref.Increment(ctx, key, c, rate)
		default:
			op = "Reset"
			got, err = f.Reset(ctx, key, rate)
			exp, _ = ref.Reset(ctx, key, rate)
		}
		if err != nil {
			t.Fatalf("step %d, %s(%s): %v", i, op, key, err)
		}
		d := got.Reset - exp.Reset
		got.Reset, exp.Reset = 0, 0
		if got != exp || d < -1 || d > 1 {
			t.Fatalf("step %d, %s(%s): %+v (reset %+ds), ulule's memory store %+v", i, op, key, got, d, exp)
		}
	}
}
