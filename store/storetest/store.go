package storetest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/otpgate/otpgate/pii"
	"github.com/otpgate/otpgate/store"
)

// Mobile parses a test mobile number.
func Mobile(t *testing.T, s string) pii.Mobile {
	t.Helper()
	m, err := pii.ParseMobile(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Rec is an import row with one dose.
func Rec(t *testing.T, ref, name, mob, id string) store.ImportRow {
	idn, _ := pii.NormalizeID(id)
	return store.ImportRow{Record: store.Record{RefID: ref, Name: name, BirthYear: 1980, Gender: "F", Mobile: Mobile(t, mob),
		IDType: "aadhaar", IDLast4: idn.Last4(), Doses: []store.Dose{{Number: 1, Vaccine: "COVAXIN", Date: "2021-06-01", Center: "PHC"}}}, ID: idn}
}

// Rows is a source of rs, numbered from line 1 where unnumbered.
func Rows(rs ...store.ImportRow) store.RowSource {
	return func(ctx context.Context, fn func(store.ImportRow) error) error {
		for i, r := range rs {
			if r.Line == 0 {
				r.Line = i + 1
			}
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}
}

// Seed imports three records: two on 9000000001, one on 9000000002.
func Seed(t *testing.T, s *store.Store) []store.ImportRow {
	t.Helper()
	rs := []store.ImportRow{
		Rec(t, "10000000000001", "Asha Verma", "9000000001", "234123412341"),
		Rec(t, "10000000000002", "Ravi Verma", "9000000001", "234123412342"),
		Rec(t, "10000000000003", "Meena Iyer", "9000000002", "234123412343"),
	}
	if _, err := s.Import(context.Background(), Rows(rs...)); err != nil {
		t.Fatal(err)
	}
	return rs
}

// Limits are the guess limits the helpers use: 10 wrong codes an hour per
// mobile and per requester.
var Limits = struct{ Mobile, Requester store.Limit }{store.Limit{Max: 10, Period: time.Hour}, store.Limit{Max: 10, Period: time.Hour}}

// Issue stores a challenge for requester on the target whose MAC is code
// itself (the otp package uses a real HMAC; the store only compares).
func Issue(t *testing.T, s *store.Store, requester string, tgt store.Target, code string, clk *Clock) {
	t.Helper()
	_, out, err := s.Issue(context.Background(), store.IssueParams{
		Challenge: store.Challenge{Requester: requester, Purpose: "beneficiary", Audience: store.AudienceBeneficiary,
			MobileKey: tgt.MobileKey, Records: tgt.Records, MAC: []byte(code), ExpiresAt: clk.Now().Add(3 * time.Minute), MaxAttempts: 3},
		MobileWrong: Limits.Mobile, RequesterWrong: Limits.Requester,
	})
	if err != nil || out != store.IssueStored {
		t.Fatalf("issue: %v %v", out, err)
	}
}

// Verify submits code for requester with the helpers' limits.
func Verify(s *store.Store, requester, code string) (store.Grant, store.VerifyOutcome, error) {
	return s.Verify(context.Background(), store.VerifyParams{
		Requester: requester, Purpose: "beneficiary",
		Match:       func(c store.Challenge) bool { return hmac.Equal(c.MAC, []byte(code)) },
		MobileWrong: Limits.Mobile, RequesterWrong: Limits.Requester, GrantTTL: 10 * time.Minute,
	})
}

// Resolve resolves a mobile to its target.
func Resolve(t *testing.T, s *store.Store, mob string) store.Target {
	t.Helper()
	tgt, err := s.Resolve(context.Background(), pii.Identifier{Kind: pii.KindMobile, Mobile: Mobile(t, mob)})
	if err != nil {
		t.Fatal(err)
	}
	return tgt
}

func testNoFieldWithoutGrant(t *testing.T, e Engine) {
	s, clk := newStore(t, e)
	Seed(t, s)
	ctx := context.Background()
	tgt := Resolve(t, s, "9000000001")
	other := Resolve(t, s, "9000000002")
	Issue(t, s, "tg:1", tgt, "111111", clk)
	g, out, err := Verify(s, "tg:1", "111111")
	if err != nil || out != store.VerifyOK {
		t.Fatalf("verify: %v %v", out, err)
	}

	cases := []struct {
		name   string
		ref    store.GrantRef
		handle string
	}{
		{"no grant", store.GrantRef{}, tgt.Records[0]},
		{"made-up grant id", store.GrantRef{ID: store.NewID(), Requester: "tg:1"}, tgt.Records[0]},
		{"another requester", store.GrantRef{ID: g.ID, Requester: "tg:2"}, tgt.Records[0]},
		{"record not covered", g.Ref(), other.Records[0]},
		{"garbage handle", g.Ref(), "zz"},
		{"over-long id", store.GrantRef{ID: string(bytes.Repeat([]byte("a"), 500)), Requester: "tg:1"}, tgt.Records[0]},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := s.Release(ctx, c.ref, c.handle)
			if !errors.Is(err, store.ErrNoGrant) {
				t.Fatalf("Release: err = %v, want ErrNoGrant", err)
			}
			if v.Name != "" || v.Reference != "" {
				t.Fatalf("Release returned fields with an error: %+v", v)
			}
			if c.handle == tgt.Records[0] {
				if sums, err := s.Summaries(ctx, c.ref); !errors.Is(err, store.ErrNoGrant) || len(sums) != 0 {
					t.Fatalf("Summaries: %v %v", sums, err)
				}
			}
		})
	}

	// The valid grant works, covers exactly the mobile's records…
	sums, err := s.Summaries(ctx, g.Ref())
	if err != nil || len(sums) != 2 {
		t.Fatalf("Summaries = %v, %v", sums, err)
	}
	v, err := s.Release(ctx, g.Ref(), tgt.Records[0])
	if err != nil || v.Name == "" || v.IDLast4 != "2341" || v.Reference == "" {
		t.Fatalf("Release = %+v, %v", v, err)
	}
	// …until it expires.
	clk.Add(10*time.Minute + time.Second)
	if _, err := s.Release(ctx, g.Ref(), tgt.Records[0]); !errors.Is(err, store.ErrNoGrant) {
		t.Fatalf("expired grant: %v", err)
	}
}

func testEndGrant(t *testing.T, e Engine) {
	s, clk := newStore(t, e)
	Seed(t, s)
	tgt := Resolve(t, s, "9000000002")
	Issue(t, s, "tg:1", tgt, "222222", clk)
	g, _, _ := Verify(s, "tg:1", "222222")
	if err := s.EndGrant(context.Background(), store.GrantRef{ID: g.ID, Requester: "tg:9"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Release(context.Background(), g.Ref(), tgt.Records[0]); err != nil {
		t.Fatalf("another requester ended the grant: %v", err)
	}
	if err := s.EndGrant(context.Background(), g.Ref()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Release(context.Background(), g.Ref(), tgt.Records[0]); !errors.Is(err, store.ErrNoGrant) {
		t.Fatalf("after logout: %v", err)
	}
}

func testStaffViewMasksReference(t *testing.T, e Engine) {
	s, clk := newStore(t, e)
	Seed(t, s)
	tgt := Resolve(t, s, "9000000002")
	_, _, err := s.Issue(context.Background(), store.IssueParams{Challenge: store.Challenge{Requester: "tg:5", Purpose: "beneficiary",
		Audience: store.AudienceStaff, Agent: "5", MobileKey: tgt.MobileKey, Records: tgt.Records, MAC: []byte("x"),
		ExpiresAt: clk.Now().Add(time.Minute), MaxAttempts: 3}, MobileWrong: Limits.Mobile, RequesterWrong: Limits.Requester})
	if err != nil {
		t.Fatal(err)
	}
	g, _, _ := Verify(s, "tg:5", "x")
	v, err := s.Release(context.Background(), g.Ref(), tgt.Records[0])
	if err != nil {
		t.Fatal(err)
	}
	if v.Reference != "**********0003" {
		t.Fatalf("staff reference = %q", v.Reference)
	}
}

func testAuditFailureReleasesNothing(t *testing.T, e Engine) {
	clk := NewClock()
	fail := &failAudit{}
	s := e.openWith(t, e.Fresh(t, false), clk, TestKeys(t, 7), fail.wrap)
	Seed(t, s)
	tgt := Resolve(t, s, "9000000002")
	Issue(t, s, "tg:1", tgt, "333333", clk)
	g, _, _ := Verify(s, "tg:1", "333333")
	fail.set(true)
	v, err := s.Release(context.Background(), g.Ref(), tgt.Records[0])
	if err == nil || v.Name != "" {
		t.Fatalf("released with a failing audit: %+v %v", v, err)
	}
	if sums, err := s.Summaries(context.Background(), g.Ref()); err == nil || len(sums) != 0 {
		t.Fatalf("summaries with a failing audit: %v %v", sums, err)
	}
	fail.set(false)
	if _, err := s.Release(context.Background(), g.Ref(), tgt.Records[0]); err != nil {
		t.Fatal(err)
	}
	rel, _ := s.AuditEntries(context.Background(), func(e store.AuditEntry) bool { return e.Event == store.EventReleased })
	if len(rel) != 1 {
		t.Fatalf("released entries = %d, want 1 (the failed attempt must leave none)", len(rel))
	}
}

// When a commit's outcome is unknown, nothing is released: not a grant
// from Verify, not a field from Release or Summaries — even though the
// transaction did commit.
func testUnknownCommitReleasesNothing(t *testing.T, e Engine) {
	clk := NewClock()
	f := &failAudit{}
	s := e.openWith(t, e.Fresh(t, false), clk, TestKeys(t, 7), f.wrap)
	Seed(t, s)
	tgt := Resolve(t, s, "9000000002")
	Issue(t, s, "tg:1", tgt, "818181", clk)
	f.unknown.Store(true)
	if g, _, err := Verify(s, "tg:1", "818181"); err == nil || g.ID != "" {
		t.Fatalf("a grant from an unknown commit: %+v, %v", g, err)
	}
	f.unknown.Store(false)
	Issue(t, s, "tg:2", tgt, "919191", clk)
	g, out, err := Verify(s, "tg:2", "919191")
	if err != nil || out != store.VerifyOK {
		t.Fatalf("verify: %v %v", out, err)
	}
	f.unknown.Store(true)
	if v, err := s.Release(context.Background(), g.Ref(), tgt.Records[0]); err == nil || v.Name != "" {
		t.Fatalf("fields from an unknown commit: %+v, %v", v, err)
	}
	if sums, err := s.Summaries(context.Background(), g.Ref()); err == nil || len(sums) != 0 {
		t.Fatalf("summaries from an unknown commit: %v, %v", sums, err)
	}
}

func testVerifyOutcomes(t *testing.T, e Engine) {
	s, clk := newStore(t, e)
	Seed(t, s)
	tgt := Resolve(t, s, "9000000002")

	if _, out, _ := Verify(s, "tg:1", "000000"); out != store.VerifyNoChallenge {
		t.Fatalf("no challenge: %v", out)
	}
	Issue(t, s, "tg:1", tgt, "444444", clk)
	for i := 0; i < 3; i++ {
		if _, out, _ := Verify(s, "tg:1", "000000"); out != store.VerifyWrong {
			t.Fatalf("wrong %d: %v", i, out)
		}
	}
	// The right code after three wrong ones is dead.
	if _, out, _ := Verify(s, "tg:1", "444444"); out != store.VerifyCodeDead {
		t.Fatalf("after max attempts: %v", out)
	}

	clk.Add(2 * time.Minute) // past the cooldown
	Issue(t, s, "tg:1", tgt, "555555", clk)
	clk.Add(3 * time.Minute)
	if _, out, _ := Verify(s, "tg:1", "555555"); out != store.VerifyExpired {
		t.Fatalf("expired: %v", out)
	}

	clk.Add(2 * time.Minute)
	Issue(t, s, "tg:1", tgt, "666666", clk)
	if _, out, _ := Verify(s, "tg:1", "666666"); out != store.VerifyOK {
		t.Fatalf("right: %v", out)
	}
	if _, out, _ := Verify(s, "tg:1", "666666"); out != store.VerifyUsed {
		t.Fatalf("reuse: %v", out)
	}
	// Another requester cannot use this requester's code.
	clk.Add(2 * time.Minute)
	Issue(t, s, "tg:1", tgt, "777777", clk)
	if _, out, _ := Verify(s, "tg:2", "777777"); out != store.VerifyNoChallenge {
		t.Fatalf("other requester: %v", out)
	}
}

func testWrongCodesPerMobileSurviveNewCodes(t *testing.T, e Engine) {
	s, clk := newStore(t, e)
	Seed(t, s)
	tgt := Resolve(t, s, "9000000002")
	wrong := 0
	// Ten wrong codes spread over four codes from different requesters.
	for wrong < 10 {
		clk.Add(61 * time.Second)
		req := "tg:" + string(rune('a'+wrong))
		Issue(t, s, req, tgt, "123456", clk)
		for i := 0; i < 3 && wrong < 10; i++ {
			if _, out, _ := Verify(s, req, "999999"); out != store.VerifyWrong {
				t.Fatalf("guess %d: %v", wrong, out)
			}
			wrong++
		}
	}
	clk.Add(61 * time.Second)
	// A new code does not reset the count: the mobile is locked, even with the right code…
	_, out, err := s.Issue(context.Background(), store.IssueParams{Challenge: store.Challenge{Requester: "tg:new", Purpose: "beneficiary",
		Audience: store.AudienceBeneficiary, MobileKey: tgt.MobileKey, Records: tgt.Records, MAC: []byte("123456"),
		ExpiresAt: clk.Now().Add(3 * time.Minute), MaxAttempts: 3}, MobileWrong: Limits.Mobile, RequesterWrong: Limits.Requester})
	if err != nil || out != store.IssueMobileLocked {
		t.Fatalf("issue on a locked mobile: %v %v", out, err)
	}
	// …and after the window the owner can try again (no permanent lockout).
	clk.Add(time.Hour)
	Issue(t, s, "tg:new", tgt, "123456", clk)
	if _, out, _ := Verify(s, "tg:new", "123456"); out != store.VerifyOK {
		t.Fatalf("after the window: %v", out)
	}
}

func testReopenKeepsState(t *testing.T, e Engine) {
	dir := e.Fresh(t, true)
	clk := &Clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s := e.openStore(t, dir, clk)
	Seed(t, s)
	tgt := Resolve(t, s, "9000000002")
	Issue(t, s, "tg:1", tgt, "121212", clk)
	for i := 0; i < 2; i++ {
		Verify(s, "tg:1", "000000")
	}
	clk.Add(61 * time.Second)
	Issue(t, s, "tg:2", tgt, "343434", clk)
	if _, out, _ := Verify(s, "tg:2", "343434"); out != store.VerifyOK {
		t.Fatal(out)
	}
	n1, err := s.VerifyAudit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = e.openStore(t, dir, clk)
	defer s.Close()
	// The consumed code stays consumed.
	if _, out, _ := Verify(s, "tg:2", "343434"); out != store.VerifyUsed {
		t.Fatalf("consumed code after reopen: %v", out)
	}
	// The per-code attempt count survived: one more wrong guess kills the code.
	if _, out, _ := Verify(s, "tg:1", "000000"); out != store.VerifyWrong {
		t.Fatal(out)
	}
	if _, out, _ := Verify(s, "tg:1", "121212"); out != store.VerifyCodeDead {
		t.Fatalf("attempts after reopen: %v", out)
	}
	// The per-mobile count survived: 3 wrong so far, 7 more lock it.
	for i := 0; i < 7; i++ {
		clk.Add(61 * time.Second)
		req := "tg:x" + string(rune('a'+i))
		Issue(t, s, req, tgt, "1", clk)
		if _, out, _ := Verify(s, req, "0"); out != store.VerifyWrong {
			t.Fatal(out)
		}
	}
	clk.Add(61 * time.Second)
	if _, out, _ := s.Issue(context.Background(), store.IssueParams{Challenge: store.Challenge{Requester: "tg:y", Purpose: "beneficiary",
		MobileKey: tgt.MobileKey, MAC: []byte("1"), ExpiresAt: clk.Now().Add(time.Minute), MaxAttempts: 3},
		MobileWrong: Limits.Mobile, RequesterWrong: Limits.Requester}); out != store.IssueMobileLocked {
		t.Fatalf("mobile count after reopen: %v", out)
	}
	n2, err := s.VerifyAudit(context.Background())
	if err != nil || n2 <= n1 {
		t.Fatalf("audit after reopen: %d entries (had %d), %v", n2, n1, err)
	}
}

func testWrongKeyRefused(t *testing.T, e Engine) {
	loc := e.Fresh(t, true)
	clk := &Clock{t: time.Now()}
	s := e.openStore(t, loc, clk)
	Seed(t, s)
	s.Close()
	other := TestKeys(t, 8)
	_, err := e.Open(t, loc, other, options(other, clk))
	if !errors.Is(err, store.ErrWrongKey) {
		t.Fatalf("open with another key: %v", err)
	}
	s2 := e.openStore(t, loc, clk)
	defer s2.Close()
	if !e.Exclusive {
		return
	}
	ks := TestKeys(t, 7)
	if _, err := e.Open(t, loc, ks, options(ks, clk)); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
}

func testAuditHasNoPII(t *testing.T, e Engine) {
	s, clk := newStore(t, e)
	Seed(t, s)
	tgt := Resolve(t, s, "9000000001")
	Issue(t, s, "tg:1", tgt, "565656", clk)
	g, _, _ := Verify(s, "tg:1", "565656")
	s.Summaries(context.Background(), g.Ref())
	s.Release(context.Background(), g.Ref(), tgt.Records[0])
	var buf bytes.Buffer
	if _, err := s.ExportAudit(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"565656", "9000000001", "Asha", "Verma", "10000000000001", "234123412341"} {
		if bytes.Contains(buf.Bytes(), []byte(secret)) {
			t.Errorf("audit export contains %q", secret)
		}
	}
}

func testDeletionScheduleSurvivesReopen(t *testing.T, e Engine) {
	dir := e.Fresh(t, true)
	clk := &Clock{t: time.Now()}
	s := e.openStore(t, dir, clk)
	ctx := context.Background()
	now := time.UnixMilli(time.Now().UnixMilli())
	for i, d := range []time.Duration{time.Minute, -time.Second, -time.Minute} {
		if err := s.ScheduleDeletion(ctx, store.Deletion{Due: now.Add(d), ChatID: int64(-100 - i), MessageID: 10 + i}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = e.openStore(t, dir, clk)
	defer s.Close()
	due, err := s.DueDeletions(ctx, now, 10)
	if err != nil || len(due) != 2 || due[0].MessageID != 12 || due[1].ChatID != -101 {
		t.Fatalf("due = %+v, %v", due, err)
	}
	// Claimed: no second caller gets them while the lease runs.
	if again, err := s.DueDeletions(ctx, now, 10); err != nil || len(again) != 0 {
		t.Fatalf("claimed deletions handed out again: %+v, %v", again, err)
	}
	if err := s.DeletionDone(ctx, due[0]); err != nil {
		t.Fatal(err)
	}
	if next, _ := s.DueDeletions(ctx, now.Add(time.Minute), 10); len(next) != 1 || next[0].MessageID != 10 {
		t.Fatalf("a minute later: %+v", next)
	}
	// The claim that was never done is due again after its lease.
	if late, _ := s.DueDeletions(ctx, now.Add(store.DeletionLease), 10); len(late) != 1 || late[0].MessageID != 11 || late[0].ChatID != -101 {
		t.Fatalf("after the lease: %+v", late)
	}
}

// Replicas sweeping the schedule at once each get distinct deletions, and
// together all of them.
func testDeletionsClaimedOnce(t *testing.T, e Engine) {
	ss := e.replicas(t, 3, NewClock())
	ctx := context.Background()
	now := time.UnixMilli(time.Now().UnixMilli())
	const n = 60
	for i := range n {
		if err := ss[i%3].ScheduleDeletion(ctx, store.Deletion{Due: now.Add(-time.Duration(i) * time.Second), ChatID: int64(i), MessageID: i}); err != nil {
			t.Fatal(err)
		}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = map[int]int{}
	)
	for w := range 6 {
		wg.Go(func() {
			for {
				due, err := ss[w%3].DueDeletions(ctx, now, 7)
				if err != nil {
					t.Error(err)
					return
				}
				if len(due) == 0 {
					return
				}
				mu.Lock()
				for _, d := range due {
					seen[d.MessageID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for i := range n {
		if seen[i] != 1 {
			t.Fatalf("deletion %d claimed %d times (all: %v)", i, seen[i], seen)
		}
	}
}

func testGrantDoesNotFollowARecordToAnotherMobile(t *testing.T, e Engine) {
	s, clk := newStore(t, e)
	Seed(t, s)
	tgt := Resolve(t, s, "9000000002")
	Issue(t, s, "tg:1", tgt, "424242", clk)
	g, _, _ := Verify(s, "tg:1", "424242")
	// A corrected import moves the record to another mobile.
	if _, err := s.Import(context.Background(), Rows(Rec(t, "10000000000003", "Meena Iyer", "9000000003", "234123412343"))); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Release(context.Background(), g.Ref(), tgt.Records[0]); !errors.Is(err, store.ErrNoGrant) || v.Name != "" {
		t.Fatalf("the old mobile's grant still releases the moved record: %+v %v", v, err)
	}
	if sums, err := s.Summaries(context.Background(), g.Ref()); !errors.Is(err, store.ErrNoGrant) || len(sums) != 0 {
		t.Fatalf("summaries: %v %v", sums, err)
	}
}

func testCooldownKeepsACodeOnlyForTheSameLookup(t *testing.T, e Engine) {
	s, clk := newStore(t, e)
	Seed(t, s)
	ctx := context.Background()
	byID := func(id string) store.Target {
		n, _ := pii.NormalizeID(id)
		tgt, err := s.Resolve(ctx, pii.Identifier{Kind: pii.KindIDNumber, ID: n})
		if err != nil {
			t.Fatal(err)
		}
		return tgt
	}
	asha, ravi := byID("234123412341"), byID("234123412342") // two people, one mobile
	issueFor := func(tgt store.Target, mac string) store.IssueOutcome {
		_, out, err := s.Issue(ctx, store.IssueParams{Challenge: store.Challenge{Requester: "tg:agent", Purpose: "staff",
			Audience: store.AudienceStaff, MobileKey: tgt.MobileKey, Records: tgt.Records, MAC: []byte(mac),
			ExpiresAt: clk.Now().Add(3 * time.Minute), MaxAttempts: 3}, Cooldown: time.Minute, MobileWrong: Limits.Mobile, RequesterWrong: Limits.Requester})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	staffVerify := func(code string) store.VerifyOutcome {
		_, out, _ := s.Verify(ctx, store.VerifyParams{Requester: "tg:agent", Purpose: "staff",
			Match: func(c store.Challenge) bool { return string(c.MAC) == code }, MobileWrong: Limits.Mobile, RequesterWrong: Limits.Requester, GrantTTL: time.Minute})
		return out
	}
	if out := issueFor(asha, "111"); out != store.IssueStored {
		t.Fatal(out)
	}
	// The same lookup again inside the cooldown: the code on its way stands.
	if out := issueFor(asha, "222"); out != store.IssueCooldown {
		t.Fatal(out)
	}
	if out := staffVerify("111"); out != store.VerifyOK {
		t.Fatalf("repeat of the same lookup: %v", out)
	}
	clk.Add(2 * time.Minute)
	issueFor(asha, "333")
	// Another person on the same mobile: the old code dies — a decoy takes
	// its place — exactly as it would for a number that matches nothing.
	if out := issueFor(ravi, "444"); out != store.IssueCooldown {
		t.Fatal(out)
	}
	if out := staffVerify("333"); out != store.VerifyWrong {
		t.Fatalf("a lookup of another ID on the same mobile left the old code alive: %v", out)
	}
	clk.Add(2 * time.Minute)
	issueFor(asha, "555")
	nobody := store.Target{MobileKey: s.LookupKey(pii.Identifier{Kind: pii.KindReference, Ref: "99999999999999"})}
	_, out, err := s.Issue(ctx, store.IssueParams{Challenge: store.Challenge{Requester: "tg:agent", Purpose: "staff",
		Audience: store.AudienceStaff, MobileKey: nobody.MobileKey, MAC: []byte("555"),
		ExpiresAt: clk.Now().Add(3 * time.Minute), MaxAttempts: 3}, Decoy: "no_target", Cooldown: time.Minute, MobileWrong: Limits.Mobile, RequesterWrong: Limits.Requester})
	if err != nil || out != store.IssueStored {
		t.Fatal(out, err)
	}
	if out := staffVerify("555"); out != store.VerifyWrong {
		t.Fatalf("after a lookup that matches nothing: %v", out)
	}
}
