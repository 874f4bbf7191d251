package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/otpgate/otpgate/store"
)

// replicas opens n stores on one location where the engine allows it
// (PostgreSQL: replicas on one database), else the one store n times:
// the concurrency tests spread their work over them.
func (e Engine) replicas(t *testing.T, n int, clk *Clock) []*store.Store {
	t.Helper()
	loc := e.Fresh(t, true)
	first := e.openStore(t, loc, clk)
	t.Cleanup(func() { _ = first.Close() })
	out := []*store.Store{first}
	for len(out) < n {
		if e.Exclusive {
			out = append(out, first)
			continue
		}
		s := e.openStore(t, loc, clk)
		t.Cleanup(func() { _ = s.Close() })
		out = append(out, s)
	}
	return out
}

// 32 concurrent submissions of the one correct code, over every replica:
// exactly one is verified and mints a grant; the others find it used (and,
// since every rejected submission counts against the requester, past ten
// the requester is locked).
func testConcurrentCorrectCodesMintOneGrant(t *testing.T, e Engine) {
	clk := NewClock()
	ss := e.replicas(t, 3, clk)
	Seed(t, ss[0])
	tgt := Resolve(t, ss[0], "9000000001")
	Issue(t, ss[0], "tg:1", tgt, "515151", clk)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		outcomes = map[store.VerifyOutcome]int{}
		grants   []store.Grant
	)
	for i := range 32 {
		wg.Go(func() {
			g, out, err := Verify(ss[i%len(ss)], "tg:1", "515151")
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("verify: %v", err)
				return
			}
			outcomes[out]++
			if out == store.VerifyOK {
				grants = append(grants, g)
			}
		})
	}
	wg.Wait()
	if outcomes[store.VerifyOK] != 1 || len(grants) != 1 ||
		outcomes[store.VerifyUsed] != Limits.Requester.Max || outcomes[store.VerifyRequesterLocked] != 31-Limits.Requester.Max {
		t.Fatalf("outcomes = %v, want 1 verified, %d used, the rest requester_locked", outcomes, Limits.Requester.Max)
	}
	verified, _ := ss[0].AuditEntries(context.Background(), func(a store.AuditEntry) bool { return a.Event == store.EventCodeVerified })
	if len(verified) != 1 {
		t.Fatalf("code_verified entries = %d, want 1", len(verified))
	}
	if _, err := ss[len(ss)-1].Release(context.Background(), grants[0].Ref(), tgt.Records[0]); err != nil {
		t.Fatalf("the one grant does not release on another replica: %v", err)
	}
}

// Wrong codes submitted all at once, over every replica, meet the caps
// exactly: per code (MaxAttempts) and per mobile across codes.
func testConcurrentWrongCodesMeetTheCaps(t *testing.T, e Engine) {
	t.Run("per code", func(t *testing.T) {
		clk := NewClock()
		ss := e.replicas(t, 3, clk)
		Seed(t, ss[0])
		tgt := Resolve(t, ss[0], "9000000002")
		Issue(t, ss[0], "tg:1", tgt, "616161", clk) // MaxAttempts 3
		outcomes := concurrently(t, 8, func(i int) store.VerifyOutcome {
			_, out, err := Verify(ss[i%len(ss)], "tg:1", fmt.Sprintf("00000%d", i))
			if err != nil {
				t.Errorf("verify: %v", err)
			}
			return out
		})
		if outcomes[store.VerifyWrong] != 3 || outcomes[store.VerifyCodeDead] != 5 {
			t.Fatalf("outcomes = %v, want 3 wrong then 5 on a dead code", outcomes)
		}
		if _, out, _ := Verify(ss[0], "tg:1", "616161"); out != store.VerifyCodeDead {
			t.Fatalf("the right code after the cap: %v", out)
		}
	})
	t.Run("per mobile", func(t *testing.T) {
		clk := NewClock()
		ss := e.replicas(t, 3, clk)
		Seed(t, ss[0])
		tgt := Resolve(t, ss[0], "9000000002")
		const requesters = 16 // one code each; the mobile's cap is 10
		for i := range requesters {
			Issue(t, ss[i%len(ss)], fmt.Sprintf("tg:%d", 100+i), tgt, "717171", clk)
		}
		outcomes := concurrently(t, requesters, func(i int) store.VerifyOutcome {
			_, out, err := Verify(ss[i%len(ss)], fmt.Sprintf("tg:%d", 100+i), "000000")
			if err != nil {
				t.Errorf("verify: %v", err)
			}
			return out
		})
		if outcomes[store.VerifyWrong] != Limits.Mobile.Max || outcomes[store.VerifyMobileLocked] != requesters-Limits.Mobile.Max {
			t.Fatalf("outcomes = %v, want %d wrong then locked", outcomes, Limits.Mobile.Max)
		}
		// A new code for the mobile does not reset its count.
		clk.Add(2 * time.Minute)
		_, out, err := ss[0].Issue(context.Background(), store.IssueParams{Challenge: store.Challenge{Requester: "tg:new", Purpose: "beneficiary",
			MobileKey: tgt.MobileKey, Records: tgt.Records, MAC: []byte("1"), ExpiresAt: clk.Now().Add(time.Minute), MaxAttempts: 3},
			MobileWrong: Limits.Mobile, RequesterWrong: Limits.Requester})
		if err != nil || out != store.IssueMobileLocked {
			t.Fatalf("a new code on the locked mobile: %v %v", out, err)
		}
	})
}

// concurrently runs fn(0..n-1) at once and counts the outcomes.
func concurrently(t *testing.T, n int, fn func(i int) store.VerifyOutcome) map[store.VerifyOutcome]int {
	t.Helper()
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		out = map[store.VerifyOutcome]int{}
	)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			o := fn(i)
			mu.Lock()
			out[o]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	return out
}

// Appends from every replica at once make one linear, verifiable chain.
func testAuditChainIsLinearUnderConcurrency(t *testing.T, e Engine) {
	clk := NewClock()
	ss := e.replicas(t, 3, clk)
	ctx := context.Background()
	before, err := ss[0].VerifyAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 6, 10
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := ss[w%len(ss)].Audit(ctx, store.AuditEntry{Event: store.EventCodeSent, Requester: fmt.Sprintf("tg:%d", w), Outcome: fmt.Sprint(i)}); err != nil {
					t.Errorf("audit: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, s := range ss {
		n, err := s.VerifyAudit(ctx)
		if err != nil || n != before+writers*each {
			t.Fatalf("chain = %d entries, %v; want %d, intact", n, err, before+writers*each)
		}
	}
}
