package telegramtest

import (
	"context"
	"testing"
	"time"

	"github.com/otpgate/otpgate/bot/telegram"
)

// CoordinatorCheck is one part of the telegram.Coordinator contract, run
// against two replicas' connections (a, b) to one fresh shared state.
type CoordinatorCheck struct {
	Name string
	Run  func(t *testing.T, a, b telegram.Coordinator)
}

// CoordinatorChecks hold any telegram.Coordinator to its contract: run
// each against a fresh state, the in-memory one inside a synctest bubble
// (where its waits take no time and its answers are exact) and a
// database's in real time (each check sleeps a few seconds at most, and
// allows checkTolerance for the calls' own time):
//
//	for _, c := range telegramtest.CoordinatorChecks {
//		t.Run(c.Name, func(t *testing.T) { a, b := open(t); c.Run(t, a, b) })
//	}
var CoordinatorChecks = []CoordinatorCheck{
	{"claims", checkClaims},
	{"claim lapses", checkClaimLapses},
	{"reserve", checkReserve},
	{"backoff", checkBackoff},
	{"lead", checkLead},
}

// checkTolerance is how far a measured wait may stray in real time.
const checkTolerance = 250 * time.Millisecond

func claimIs(t *testing.T, c telegram.Coordinator, id int64, lease time.Duration, want telegram.Claim) {
	t.Helper()
	got, err := c.ClaimUpdate(context.Background(), id, lease)
	if err != nil || got != want {
		t.Fatalf("ClaimUpdate(%d) = %v, %v; want %v", id, got, err, want)
	}
}

func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func checkClaims(t *testing.T, a, b telegram.Coordinator) {
	ctx := context.Background()
	claimIs(t, a, 1, time.Minute, telegram.ClaimNew)
	claimIs(t, b, 1, time.Minute, telegram.ClaimBusy)
	claimIs(t, a, 1, time.Minute, telegram.ClaimBusy) // nobody handles it twice at once, its holder included
	noErr(t, "UpdateDone", a.UpdateDone(ctx, 1))
	claimIs(t, b, 1, time.Minute, telegram.ClaimDone)
	noErr(t, "UpdateDone again", b.UpdateDone(ctx, 1))
	noErr(t, "ReleaseUpdate of a done update", b.ReleaseUpdate(ctx, 1))
	claimIs(t, a, 1, time.Minute, telegram.ClaimDone) // releasing does not undo done

	noErr(t, "UpdateDone unclaimed", b.UpdateDone(ctx, 2))
	claimIs(t, a, 2, time.Minute, telegram.ClaimDone)

	claimIs(t, a, 3, time.Minute, telegram.ClaimNew)
	noErr(t, "ReleaseUpdate", a.ReleaseUpdate(ctx, 3))
	claimIs(t, b, 3, time.Minute, telegram.ClaimNew) // given back: the next claim is new
	claimIs(t, a, 3, time.Minute, telegram.ClaimBusy)

	noErr(t, "ReleaseUpdate unknown", a.ReleaseUpdate(ctx, 4))
	claimIs(t, b, 4, time.Minute, telegram.ClaimNew)
}

func checkClaimLapses(t *testing.T, a, b telegram.Coordinator) {
	const lease = time.Second
	claimIs(t, a, 10, lease, telegram.ClaimNew)
	time.Sleep(lease / 2)
	claimIs(t, b, 10, lease, telegram.ClaimBusy)
	time.Sleep(lease/2 + checkTolerance)
	claimIs(t, b, 10, time.Minute, telegram.ClaimNew) // its holder died: new again
	claimIs(t, a, 10, time.Minute, telegram.ClaimBusy)
	// The first holder finishing late still marks it done.
	noErr(t, "UpdateDone", a.UpdateDone(context.Background(), 10))
	claimIs(t, b, 10, time.Minute, telegram.ClaimDone)
}

// reserveIs books s on c and checks the answer: booked as wanted, the
// wait want at most and want less the time since start at least.
func reserveIs(t *testing.T, c telegram.Coordinator, s telegram.Slot, start time.Time, want time.Duration, booked bool) {
	t.Helper()
	wait, ok, err := c.Reserve(context.Background(), s)
	if err != nil || ok != booked {
		t.Fatalf("Reserve(%+v) = %v, %v, %v; want booked %v", s, wait, ok, err, booked)
	}
	if lo, hi := max(want-time.Since(start)-checkTolerance, 0), want+checkTolerance/5; wait < lo || wait > hi {
		t.Fatalf("Reserve(%+v) waits %v; want %v (from %v to %v)", s, wait, want, lo, hi)
	}
}

func slot(chat int64) telegram.Slot {
	return telegram.Slot{ChatID: chat, ChatInterval: time.Second, GlobalInterval: 100 * time.Millisecond}
}

func checkReserve(t *testing.T, a, b telegram.Coordinator) {
	start := time.Now()
	reserveIs(t, a, slot(1), start, 0, true)
	reserveIs(t, b, slot(1), start, time.Second, false) // the chat is not free: nothing booked
	reserveIs(t, b, slot(2), start, 100*time.Millisecond, true)
	reserveIs(t, a, slot(3), start, 200*time.Millisecond, true) // behind the bot's two bookings, not chat 1's wait
	reserveIs(t, a, slot(1), start, time.Second, false)
	time.Sleep(time.Second)
	start = time.Now()
	reserveIs(t, b, slot(1), start, 0, true) // free: the bot's instant is past
	reserveIs(t, a, slot(4), start, 100*time.Millisecond, true)
}

func checkBackoff(t *testing.T, a, b telegram.Coordinator) {
	ctx := context.Background()
	start := time.Now()
	noErr(t, "Backoff", a.Backoff(ctx, 7, 5*time.Second))
	reserveIs(t, b, slot(7), start, 5*time.Second, false)
	noErr(t, "Backoff shorter", b.Backoff(ctx, 7, time.Second)) // never moves back
	reserveIs(t, a, slot(7), start, 5*time.Second, false)
	reserveIs(t, b, slot(8), start, 0, true) // only that chat is held back
}

// leadResult is what a Lead call in a goroutine returned.
type leadResult struct {
	lead    context.Context
	release func()
	err     error
}

func leadAsync(ctx context.Context, c telegram.Coordinator, lease time.Duration) chan leadResult {
	got := make(chan leadResult, 1)
	go func() {
		l, r, err := c.Lead(ctx, lease)
		got <- leadResult{l, r, err}
	}()
	return got
}

func leads(t *testing.T, what string, got chan leadResult, within time.Duration) leadResult {
	t.Helper()
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatalf("%s: Lead: %v", what, r.err)
		}
		return r
	case <-time.After(within):
		t.Fatalf("%s: not leading after %v", what, within)
	}
	panic("unreachable")
}

func waits(t *testing.T, what string, got chan leadResult, d time.Duration) {
	t.Helper()
	select {
	case r := <-got:
		t.Fatalf("%s: leads (%v) while another does", what, r.err)
	case <-time.After(d):
	}
}

func checkLead(t *testing.T, a, b telegram.Coordinator) {
	const lease = time.Second
	first := leads(t, "a", leadAsync(context.Background(), a, lease), lease)

	// b stands by while a renews, three leases long.
	bctx, bcancel := context.WithCancel(context.Background())
	defer bcancel()
	standby := leadAsync(bctx, b, lease)
	waits(t, "b", standby, 3*lease)
	if first.lead.Err() != nil {
		t.Fatalf("a lost the lease it renews: %v", first.lead.Err())
	}
	// a gives it up: b leads within half a lease, not when it lapses
	// (renewed every third of a lease, it has two thirds left at least).
	first.release()
	if first.lead.Err() == nil {
		t.Fatal("a's lead lasts after release")
	}
	second := leads(t, "b after a's release", standby, lease/2)

	// b dies (no release): a leads within a lease of b's last renewal.
	died := time.Now()
	bcancel()
	if second.lead.Err() == nil {
		t.Fatal("b's lead outlasts its ctx")
	}
	third := leads(t, "a after b died", leadAsync(context.Background(), a, lease), lease+checkTolerance)
	if took := time.Since(died); took > lease+checkTolerance {
		t.Fatalf("took over %v after the leader died; the lease is %v", took, lease)
	}
	// b's release, late, gives up nothing of a's lease.
	second.release()
	late, cancel := context.WithTimeout(context.Background(), 2*lease)
	defer cancel()
	if r := <-leadAsync(late, b, lease); r.err == nil {
		r.release()
		t.Fatal("b leads again while a renews: its late release gave a's lease up")
	}
	if third.lead.Err() != nil {
		t.Fatalf("a lost its lease: %v", third.lead.Err())
	}
	third.release()

	// Lead gives up when its ctx ends.
	gone, cancelGone := context.WithCancel(context.Background())
	cancelGone()
	if _, _, err := a.Lead(gone, lease); err == nil {
		t.Fatal("Lead with an ended ctx leads")
	}
}
