package storetest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/otpgate/otpgate/store"
)

// Hits from every replica at once on one key each count exactly once, in
// one window that every replica sees end at the same moment; a peek counts
// nothing; the window ends after its period (or when reset, or when it
// ends too far ahead), and the next hit begins a new one.
func testHitsCountAcrossReplicas(t *testing.T, e Engine) {
	clk := NewClock()
	ss := e.replicas(t, 3, clk)
	ctx := context.Background()
	const (
		key    = "flood:7"
		period = time.Minute
		hits   = 30
	)
	start := clk.Now()
	wantReset := start.Add(period)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		totals []int64
	)
	for i := range hits {
		wg.Go(func() {
			total, reset, err := ss[i%3].Hit(ctx, key, 1, period)
			if err != nil {
				t.Error(err)
				return
			}
			if !reset.Equal(wantReset) {
				t.Errorf("hit %d: reset %v, want %v (the first hit's window)", i, reset, wantReset)
			}
			mu.Lock()
			totals = append(totals, total)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(totals)
	for i, n := range totals {
		if n != int64(i+1) {
			t.Fatalf("totals %v: want each of 1…%d once (every hit counted once)", totals, hits)
		}
	}
	if len(totals) != hits {
		t.Fatalf("%d hits answered of %d", len(totals), hits)
	}
	check := func(s *store.Store, count, wantTotal int64, wantReset time.Time) {
		t.Helper()
		total, reset, err := s.Hit(ctx, key, count, period)
		if err != nil || total != wantTotal || !reset.Equal(wantReset) {
			t.Fatalf("Hit(%d) = %d, %v, %v; want %d, %v", count, total, reset, err, wantTotal, wantReset)
		}
	}
	// A peek, from any replica, counts nothing.
	for _, s := range ss {
		check(s, 0, hits, wantReset)
	}
	check(ss[1], 5, hits+5, wantReset)
	// Another key has no window: a peek says when one begun now would end.
	if total, reset, err := ss[2].Hit(ctx, "flood:8", 0, period); err != nil || total != 0 || !reset.Equal(start.Add(period)) {
		t.Fatalf("another key: %d, %v, %v", total, reset, err)
	}
	// Within the period the window goes on; at its end a new one begins.
	clk.Add(period - time.Second)
	check(ss[2], 1, hits+6, wantReset)
	clk.Add(time.Second)
	next := clk.Now().Add(period)
	check(ss[0], 0, 0, next)
	check(ss[0], 1, 1, next)
	check(ss[1], 2, 3, next)
	// A reset on one replica ends the window for all.
	if err := ss[2].ResetHits(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := ss[2].ResetHits(ctx, "flood:never"); err != nil {
		t.Fatalf("reset of a key without a window: %v", err)
	}
	clk.Add(10 * time.Second)
	next = clk.Now().Add(period)
	check(ss[0], 0, 0, next)
	check(ss[1], 1, 1, next)
	// A window that ends further than its period from now was begun on a
	// clock running ahead: it is over.
	clk.Add(-2 * period)
	next = clk.Now().Add(period)
	check(ss[2], 1, 1, next)
	// Nonsense is refused, and counts nothing.
	for _, c := range []struct {
		count  int64
		period time.Duration
	}{{-1, period}, {1, 0}, {0, -time.Second}} {
		if _, _, err := ss[0].Hit(ctx, key, c.count, c.period); !errors.Is(err, store.ErrBadHit) {
			t.Errorf("Hit(%d, %v): %v, want ErrBadHit", c.count, c.period, err)
		}
	}
	check(ss[0], 0, 1, next)
}
