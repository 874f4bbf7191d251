package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/otpgate/otpgate/store"
)

// One update delivered to several replicas at once is claimed by one; a
// handled one stays handled; a claim given back, or whose holder died
// (lease over), is new again.
func testUpdateClaimedOnce(t *testing.T, e Engine) {
	clk := NewClock()
	ss := e.replicas(t, 3, clk)
	ctx := context.Background()
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		got = map[store.UpdateClaim]int{}
	)
	for i := range 16 {
		wg.Go(func() {
			c, err := ss[i%3].ClaimUpdate(ctx, 900001, 30*time.Second)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			got[c]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if got[store.ClaimNew] != 1 || got[store.ClaimBusy] != 15 {
		t.Fatalf("claims = %v, want one new and 15 busy", got)
	}
	if err := ss[1].UpdateDone(ctx, 900001); err != nil {
		t.Fatal(err)
	}
	claim := func(s *store.Store, id int64) store.UpdateClaim {
		t.Helper()
		c, err := s.ClaimUpdate(ctx, id, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := claim(ss[2], 900001); c != store.ClaimDone {
		t.Fatalf("a handled update: %v", c)
	}
	if err := ss[2].ReleaseUpdate(ctx, 900001); err != nil { // a handled one stays handled
		t.Fatal(err)
	}
	if c := claim(ss[0], 900001); c != store.ClaimDone {
		t.Fatalf("a handled update after a release: %v", c)
	}
	if c := claim(ss[0], 900002); c != store.ClaimNew {
		t.Fatal(c)
	}
	if err := ss[0].ReleaseUpdate(ctx, 900002); err != nil {
		t.Fatal(err)
	}
	if c := claim(ss[1], 900002); c != store.ClaimNew {
		t.Fatalf("a released claim: %v", c)
	}
	clk.Add(31 * time.Second) // its holder died
	if c := claim(ss[2], 900002); c != store.ClaimNew {
		t.Fatalf("a claim whose lease ran out: %v", c)
	}
	clk.Add(24 * time.Hour)
	if err := ss[2].UpdateDone(ctx, 900002); err != nil {
		t.Fatal(err)
	}
	clk.Add(24 * time.Hour)
	if c := claim(ss[0], 900002); c != store.ClaimDone {
		t.Fatalf("a mark a day old: %v", c)
	}
}

// Reservations from every replica at once share one budget: no two slots
// of the bot are closer than its interval, nor two of a chat closer than
// the chat's; a busy chat books nothing and says how long to wait.
func testReservationsShareOneBudget(t *testing.T, e Engine) {
	clk := NewClock()
	ss := e.replicas(t, 3, clk)
	ctx := context.Background()
	bot := store.Budget{Name: "bot", Interval: 34 * time.Millisecond}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		slots = map[string][]time.Time{}
	)
	for i := range 30 {
		wg.Go(func() {
			chat := store.Budget{Name: fmt.Sprintf("chat:%d", i), Interval: time.Second}
			at, booked, err := ss[i%3].Reserve(ctx, chat, bot)
			if err != nil || !booked {
				t.Errorf("reserve: %v %v", booked, err)
				return
			}
			mu.Lock()
			slots["bot"] = append(slots["bot"], at)
			mu.Unlock()
		})
	}
	wg.Wait()
	ts := slots["bot"]
	slices.SortFunc(ts, time.Time.Compare)
	for i := 1; i < len(ts); i++ {
		if d := ts[i].Sub(ts[i-1]); d < bot.Interval {
			t.Fatalf("bot slots %v apart, want at least %v", d, bot.Interval)
		}
	}
	if len(ts) != 30 || !ts[0].Equal(clk.Now()) {
		t.Fatalf("%d reservations, first at %v (now %v)", len(ts), first(ts), clk.Now())
	}
	// The chat just booked is busy for its interval: nothing is booked.
	chat := store.Budget{Name: "chat:0", Interval: time.Second}
	at, booked, err := ss[1].Reserve(ctx, chat, bot)
	if wait := at.Sub(clk.Now()); err != nil || booked || wait <= 0 || wait > 2*time.Second {
		t.Fatalf("a busy chat: wait %v, booked %v, %v", wait, booked, err)
	}
	// A 429 pushes the chat back for every replica.
	clk.Add(2 * time.Second)
	if err := ss[0].PushBack(ctx, chat, time.Hour); err != nil {
		t.Fatal(err)
	}
	if at, booked, err := ss[2].Reserve(ctx, chat, bot); err != nil || booked || at.Sub(clk.Now()) < 59*time.Minute {
		t.Fatalf("after a push back: free at %v, booked %v, %v", at, booked, err)
	}
}

func first[T any](s []T) (z T) {
	if len(s) > 0 {
		return s[0]
	}
	return z
}

// One holder at a time; renewals keep it; another takes over when it ends
// or runs out.
func testLeaseHasOneHolder(t *testing.T, e Engine) {
	clk := NewClock()
	ss := e.replicas(t, 3, clk)
	ctx := context.Background()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		holders []string
	)
	for i := range 9 {
		wg.Go(func() {
			h := fmt.Sprintf("replica-%d", i)
			ok, err := ss[i%3].Lease(ctx, "poll", h, 10*time.Second)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				holders = append(holders, h)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(holders) != 1 {
		t.Fatalf("holders = %v", holders)
	}
	lead, other := holders[0], "replica-x"
	clk.Add(8 * time.Second)
	if ok, _ := ss[0].Lease(ctx, "poll", lead, 10*time.Second); !ok {
		t.Fatal("the holder could not renew")
	}
	clk.Add(8 * time.Second)
	if ok, _ := ss[1].Lease(ctx, "poll", other, 10*time.Second); ok {
		t.Fatal("taken over while renewed")
	}
	clk.Add(3 * time.Second) // the holder died: no renewal for 11 s
	if ok, _ := ss[1].Lease(ctx, "poll", other, 10*time.Second); !ok {
		t.Fatal("not taken over after the lease ran out")
	}
	if err := ss[2].DropLease(ctx, "poll", lead); err != nil { // not its lease any more
		t.Fatal(err)
	}
	if ok, _ := ss[0].Lease(ctx, "poll", lead, 10*time.Second); ok {
		t.Fatal("a dropped-by-the-wrong-holder lease changed hands")
	}
	if err := ss[1].DropLease(ctx, "poll", other); err != nil {
		t.Fatal(err)
	}
	if ok, _ := ss[0].Lease(ctx, "poll", lead, 10*time.Second); !ok {
		t.Fatal("a dropped lease could not be taken")
	}
}

// A session is held by one handler at a time; what it saves is what the
// next holder reads; a hold that ran out and was taken over saves nothing.
func testSessionHeldByOne(t *testing.T, e Engine) {
	clk := NewClock()
	ss := e.replicas(t, 3, clk)
	ctx := context.Background()
	const lease = 15 * time.Second
	ok, state, err := ss[0].HoldSession(ctx, "tg:7", "h1", lease)
	if err != nil || !ok || state != nil {
		t.Fatalf("first hold: %v %q %v", ok, state, err)
	}
	if ok, _, _ := ss[1].HoldSession(ctx, "tg:7", "h2", lease); ok {
		t.Fatal("two holders at once")
	}
	if ok, _, _ := ss[1].HoldSession(ctx, "tg:8", "h2", lease); !ok {
		t.Fatal("another user's session is blocked")
	}
	if err := ss[0].ReleaseSession(ctx, "tg:7", "h1", []byte(`{"state":"await_code"}`), time.Hour); err != nil {
		t.Fatal(err)
	}
	ok, state, err = ss[2].HoldSession(ctx, "tg:7", "h3", lease)
	if err != nil || !ok || string(state) != `{"state":"await_code"}` {
		t.Fatalf("next hold: %v %q %v", ok, state, err)
	}
	clk.Add(lease + time.Second) // h3 died
	if ok, _, _ := ss[1].HoldSession(ctx, "tg:7", "h4", lease); !ok {
		t.Fatal("a dead holder's session was not taken over")
	}
	if err := ss[2].ReleaseSession(ctx, "tg:7", "h3", []byte(`{"stale":true}`), time.Hour); !errors.Is(err, store.ErrHoldLost) {
		t.Fatalf("a lost hold saved: %v", err)
	}
	if err := ss[1].ReleaseSession(ctx, "tg:7", "h4", nil, time.Hour); err != nil { // nil keeps the state
		t.Fatal(err)
	}
	if _, state, _ := ss[0].HoldSession(ctx, "tg:7", "h5", lease); string(state) != `{"state":"await_code"}` {
		t.Fatalf("state after a keep-as-is release: %q", state)
	}
}

// The tag a requester was shown is shared: the same lookup repeated on
// another replica inside the window is shown the same tag.
func testTagsSharedAcrossReplicas(t *testing.T, e Engine) {
	clk := NewClock()
	ss := e.replicas(t, 3, clk)
	ctx := context.Background()
	recall := func(s *store.Store, who, lookup, fresh string) string {
		t.Helper()
		got, err := s.RecallTag(ctx, who, lookup, time.Minute, fresh)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := recall(ss[0], "tg:1", "L1", "KX42"); got != "KX42" {
		t.Fatalf("first tag = %q", got)
	}
	if got := recall(ss[1], "tg:1", "L1", "AB12"); got != "KX42" {
		t.Fatalf("the same lookup on another replica was shown %q, want KX42", got)
	}
	if got := recall(ss[2], "tg:2", "L1", "CD34"); got != "CD34" {
		t.Fatalf("another requester got %q", got)
	}
	clk.Add(50 * time.Second) // sliding: still inside a minute of the last showing
	if got := recall(ss[2], "tg:1", "L1", "EF56"); got != "KX42" {
		t.Fatalf("after 50 s: %q", got)
	}
	if got := recall(ss[0], "tg:1", "L2", "HJ78"); got != "HJ78" {
		t.Fatalf("another lookup got %q", got)
	}
	clk.Add(61 * time.Second)
	if got := recall(ss[1], "tg:1", "L2", "KL90"); got != "KL90" {
		t.Fatalf("after the window: %q", got)
	}
}
