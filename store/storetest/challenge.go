package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/otpgate/otpgate/pii"
	"github.com/otpgate/otpgate/store"
)

// caps are small send windows so that tests reach them.
var caps = store.IssueParams{
	Requests: store.Limit{Max: 50, Period: time.Hour}, Cooldown: time.Minute,
	MobileHour: store.Limit{Max: 2, Period: time.Hour}, MobileDay: store.Limit{Max: 3, Period: 24 * time.Hour},
	OwnerSends: store.Limit{Max: 2, Period: time.Hour}, PrefixHour: store.Limit{Max: 100, Period: time.Hour},
	Global:      store.Limit{Max: 100, Period: time.Hour},
	MobileWrong: Limits.Mobile, RequesterWrong: Limits.Requester,
}

// issueWith issues for requester on key (a MobileKey or LookupKey), with
// caps adjusted by mutate; it returns the outcome and whether the stored
// challenge is a decoy.
func issueWith(t *testing.T, s *store.Store, clk *Clock, requester, key string, records []string, mac string, mutate func(*store.IssueParams)) (store.IssueOutcome, bool) {
	t.Helper()
	p := caps
	p.Challenge = store.Challenge{Requester: requester, Purpose: "beneficiary", Audience: store.AudienceBeneficiary,
		MobileKey: key, Lookup: key, Records: records, MAC: []byte(mac), ExpiresAt: clk.Now().Add(3 * time.Minute), MaxAttempts: 3}
	if records == nil {
		p.Decoy = "no_target"
	}
	if mutate != nil {
		mutate(&p)
	}
	c, out, err := s.Issue(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return out, c.Decoy
}

func mobileKey(t *testing.T, s *store.Store, m string) string {
	return s.LookupKey(pii.Identifier{Kind: pii.KindMobile, Mobile: Mobile(t, m)})
}

// TestDecoyCountsLikeARealTarget runs one sequence of requests and wrong
// codes against a registered mobile and against an unregistered one and
// compares every outcome: only the decoy flag may differ.
func testDecoyCountsLikeARealTarget(t *testing.T, e Engine) {
	type step struct{ out string }
	run := func(registered bool) []step {
		s, clk := newStore(t, e)
		Seed(t, s)
		key, records := mobileKey(t, s, "9000000002"), []string(nil)
		if registered {
			tgt := Resolve(t, s, "9000000002")
			if tgt.MobileKey != key {
				t.Fatal("LookupKey of a mobile is not its MobileKey")
			}
			records = tgt.Records
		} else {
			key = mobileKey(t, s, "9000000099")
		}
		var steps []step
		for i := range 14 {
			req := "tg:" + string(rune('a'+i%3))
			out, _ := issueWith(t, s, clk, req, key, records, "never", nil)
			steps = append(steps, step{string(out)})
			for range i % 4 {
				_, v, _ := Verify(s, req, "000000")
				steps = append(steps, step{out: string(v)})
			}
			clk.Add(time.Duration(10+i*7) * time.Second)
		}
		return steps
	}
	a, b := run(true), run(false)
	if len(a) != len(b) {
		t.Fatalf("%d steps against %d", len(a), len(b))
	}
	sawLimit, sawLock := false, false
	for i := range a {
		if a[i].out != b[i].out {
			t.Fatalf("step %d: registered %v, unregistered %v\nregistered:   %v\nunregistered: %v", i, a[i], b[i], a, b)
		}
		sawLimit = sawLimit || a[i].out == string(store.IssueMobileHourly) || a[i].out == string(store.IssueMobileDaily)
		sawLock = sawLock || a[i].out == string(store.VerifyMobileLocked) || a[i].out == string(store.IssueMobileLocked)
	}
	if !sawLimit || !sawLock {
		t.Fatalf("the sequence never reached a send window (%v) or the mobile lock (%v): %v", sawLimit, sawLock, a)
	}
}

func testCooldownIsPerRequester(t *testing.T, e Engine) {
	s, clk := newStore(t, e)
	Seed(t, s)
	tgt := Resolve(t, s, "9000000002")
	if out, _ := issueWith(t, s, clk, "tg:stranger", tgt.MobileKey, tgt.Records, "1", nil); out != store.IssueStored {
		t.Fatal(out)
	}
	if out, _ := issueWith(t, s, clk, "tg:owner", tgt.MobileKey, tgt.Records, "2", nil); out != store.IssueStored {
		t.Fatalf("a stranger's request put the owner in a cooldown: %v", out)
	}
	if out, _ := issueWith(t, s, clk, "tg:stranger", tgt.MobileKey, tgt.Records, "3", func(p *store.IssueParams) { p.Challenge.Tag = "AB12" }); out != store.IssueCooldown {
		t.Fatalf("the stranger's own repeat: %v", out)
	}
}

func testOwnerBudgetAndTakeover(t *testing.T, e Engine) {
	s, clk := newStore(t, e)
	Seed(t, s)
	tgt := Resolve(t, s, "9000000002")
	owner := func(p *store.IssueParams) { p.ByOwner = true }
	// Strangers spend the mobile's hourly window…
	for i, req := range []string{"tg:s1", "tg:s2"} {
		if out, decoy := issueWith(t, s, clk, req, tgt.MobileKey, tgt.Records, "s", nil); out != store.IssueStored || decoy {
			t.Fatalf("stranger %d: %v decoy=%v", i, out, decoy)
		}
	}
	if out, _ := issueWith(t, s, clk, "tg:s3", tgt.MobileKey, tgt.Records, "s", nil); out != store.IssueMobileHourly {
		t.Fatalf("third stranger: %v", out)
	}
	// …and lock it with wrong codes, on their decoys as on real codes.
	for i := range 4 {
		req := "tg:w" + string(rune('0'+i))
		issueWith(t, s, clk, req, tgt.MobileKey, tgt.Records, "w", nil)
		for range 3 {
			Verify(s, req, "000000")
		}
	}
	if out, _ := issueWith(t, s, clk, "tg:s4", tgt.MobileKey, tgt.Records, "s", nil); out != store.IssueMobileLocked {
		t.Fatalf("after ten wrong codes: %v", out)
	}
	// The owner, proved by contact, still gets a code, and it replaces the
	// codes strangers hold.
	if out, decoy := issueWith(t, s, clk, "tg:owner", tgt.MobileKey, tgt.Records, "own", owner); out != store.IssueStored || decoy {
		t.Fatalf("owner: %v decoy=%v", out, decoy)
	}
	if _, out, _ := Verify(s, "tg:s2", "s"); out != store.VerifyReplaced {
		t.Fatalf("a stranger's code after the owner's request: %v", out)
	}
	if _, out, _ := Verify(s, "tg:owner", "own"); out != store.VerifyOK {
		t.Fatalf("the owner's code on a mobile strangers locked: %v", out)
	}
	// A stranger asking later gets a code of their own again (not replaced).
	clk.Add(2 * time.Hour)
	if out, _ := issueWith(t, s, clk, "tg:s2", tgt.MobileKey, tgt.Records, "late", nil); out != store.IssueStored {
		t.Fatal(out)
	}
	if _, out, _ := Verify(s, "tg:s2", "late"); out != store.VerifyOK {
		t.Fatalf("a stranger's code issued after the takeover: %v", out)
	}
	// The reserved budget is the owner's alone and bounded: strangers'
	// requests do not spend it, and it refuses past its cap.
	for i := range 3 {
		clk.Add(2 * time.Minute)
		out, _ := issueWith(t, s, clk, "tg:owner", tgt.MobileKey, tgt.Records, "own", owner)
		if want := store.IssueStored; i == 2 {
			if out != store.IssueOwnerLimit {
				t.Fatalf("owner request %d past the reserved cap: %v", i+1, out)
			}
		} else if out != want {
			t.Fatalf("owner request %d: %v", i+1, out)
		}
	}
}

func testEveryRejectedCodeCountsAgainstTheRequester(t *testing.T, e Engine) {
	s, clk := newStore(t, e)
	Seed(t, s)
	tgt := Resolve(t, s, "9000000002")
	// Ten codes typed with nothing pending lock the requester…
	for i := range 10 {
		if _, out, _ := Verify(s, "tg:1", "000000"); out != store.VerifyNoChallenge {
			t.Fatalf("submission %d: %v", i, out)
		}
	}
	// …so its next request is refused and its next right code rejected.
	if out, decoy := issueWith(t, s, clk, "tg:1", tgt.MobileKey, tgt.Records, "1", nil); out != store.IssueRequesterLocked || !decoy {
		t.Fatalf("request after ten rejected codes: %v decoy=%v", out, decoy)
	}
	if _, out, _ := Verify(s, "tg:1", "1"); out != store.VerifyRequesterLocked {
		t.Fatal(out)
	}
	locked, _ := s.AuditEntries(context.Background(), func(e store.AuditEntry) bool {
		return e.Event == store.EventLocked && e.Outcome == "limit_reached"
	})
	if len(locked) != 1 {
		t.Fatalf("%d limit_reached entries, want 1", len(locked))
	}
}

func testSendWindowsLiveInTheStore(t *testing.T, e Engine) {
	dir := e.Fresh(t, true)
	clk := &Clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s := e.openStore(t, dir, clk)
	Seed(t, s)
	tgt := Resolve(t, s, "9000000002")
	limited := func(p *store.IssueParams) {
		p.Prefix = "+9190000"
		p.PrefixHour = store.Limit{Max: 3, Period: time.Hour}
		p.Global = store.Limit{Max: 4, Period: time.Hour}
		p.Requests = store.Limit{Max: 2, Period: time.Hour}
		p.MobileHour, p.MobileDay = store.Limit{Max: 10, Period: time.Hour}, store.Limit{Max: 10, Period: 24 * time.Hour}
	}
	if out, _ := issueWith(t, s, clk, "tg:1", tgt.MobileKey, tgt.Records, "1", limited); out != store.IssueStored {
		t.Fatal(out)
	}
	if out, _ := issueWith(t, s, clk, "tg:2", tgt.MobileKey, tgt.Records, "1", limited); out != store.IssueStored {
		t.Fatal(out)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	clk.Add(30 * time.Second)
	s = e.openStore(t, dir, clk)
	defer s.Close()
	// The cooldown of tg:1 and its request count came back…
	if out, _ := issueWith(t, s, clk, "tg:1", tgt.MobileKey, tgt.Records, "1", limited); out != store.IssueCooldown {
		t.Fatalf("cooldown after reopen: %v", out)
	}
	if out, _ := issueWith(t, s, clk, "tg:1", tgt.MobileKey, tgt.Records, "1", limited); out != store.IssueRequesterLimited {
		t.Fatalf("requests after reopen: %v", out)
	}
	// …and so did the prefix window, which the repeat counted although the
	// cooldown refused it (shared windows count before the destination's
	// checks): it is full.
	if out, _ := issueWith(t, s, clk, "tg:3", tgt.MobileKey, tgt.Records, "1", limited); out != store.IssuePrefixVelocity {
		t.Fatalf("prefix after reopen: %v", out)
	}
	ws, err := s.SendWindows(context.Background(), limited2().Global, limited2().PrefixHour)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 2 || ws[0].Cap != store.CapGlobal || ws[0].Count != 3 || ws[0].Drained() ||
		ws[1].Cap != store.CapPrefix || ws[1].Range != "+9190000" || ws[1].Count != 3 || !ws[1].Drained() {
		t.Fatalf("send windows: %+v", ws)
	}
	// The operator lifts the prefix window; it is audited.
	if found, err := s.LiftSendWindow(context.Background(), store.CapPrefix, "+9190000", "operator"); err != nil || !found {
		t.Fatal(found, err)
	}
	if out, _ := issueWith(t, s, clk, "tg:4", tgt.MobileKey, tgt.Records, "1", limited); out != store.IssueStored {
		t.Fatalf("after lifting the prefix window: %v", out)
	}
	if out, _ := issueWith(t, s, clk, "tg:5", tgt.MobileKey, tgt.Records, "1", limited); out != store.IssueGlobalLimit {
		t.Fatalf("global: %v", out)
	}
	if _, err := s.LiftSendWindow(context.Background(), "mobile", "", "operator"); err == nil {
		t.Fatal("an unknown cap was lifted")
	}
	lifted, _ := s.AuditEntries(context.Background(), func(e store.AuditEntry) bool { return e.Event == store.EventLimitLifted })
	if len(lifted) != 1 || lifted[0].Outcome != "prefix +9190000" || lifted[0].Requester != "operator" {
		t.Fatalf("lift audit: %+v", lifted)
	}
}

func limited2() store.IssueParams {
	return store.IssueParams{PrefixHour: store.Limit{Max: 3, Period: time.Hour}, Global: store.Limit{Max: 4, Period: time.Hour}}
}
