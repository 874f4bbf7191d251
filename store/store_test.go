package store_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/keys"
	"github.com/otpgate/otpgate/pii"
	"github.com/otpgate/otpgate/store"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func testKeys(t *testing.T, seed byte) keys.Set {
	t.Helper()
	ks, err := keys.Derive(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func options(t *testing.T, ks keys.Set, dir string, clk *clock) store.Options {
	return store.Options{Dir: dir, InMemory: dir == "", EncryptionKey: ks.Storage, IndexKey: ks.Index, AuditKey: ks.Audit, Now: clk.Now}
}

func openStore(t *testing.T, dir string, clk *clock) *store.Store {
	t.Helper()
	s, err := store.Open(options(t, testKeys(t, 7), dir, clk))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newStore(t *testing.T) (*store.Store, *clock) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s := openStore(t, "", clk)
	t.Cleanup(func() { _ = s.Close() })
	return s, clk
}

func mobile(t *testing.T, s string) pii.Mobile {
	t.Helper()
	m, err := pii.ParseMobile(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func rec(t *testing.T, ref, name, mob, id string) store.ImportRow {
	idn, _ := pii.NormalizeID(id)
	return store.ImportRow{Record: store.Record{RefID: ref, Name: name, BirthYear: 1980, Gender: "F", Mobile: mobile(t, mob),
		IDType: "aadhaar", IDLast4: idn.Last4(), Doses: []store.Dose{{Number: 1, Vaccine: "COVAXIN", Date: "2021-06-01", Center: "PHC"}}}, ID: idn}
}

func rows(rs ...store.ImportRow) store.RowSource {
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

func seed(t *testing.T, s *store.Store) []store.ImportRow {
	t.Helper()
	rs := []store.ImportRow{
		rec(t, "10000000000001", "Asha Verma", "9000000001", "234123412341"),
		rec(t, "10000000000002", "Ravi Verma", "9000000001", "234123412342"),
		rec(t, "10000000000003", "Meena Iyer", "9000000002", "234123412343"),
	}
	if _, err := s.Import(context.Background(), rows(rs...)); err != nil {
		t.Fatal(err)
	}
	return rs
}

var limits = struct{ mob, req store.Limit }{store.Limit{Max: 10, Period: time.Hour}, store.Limit{Max: 10, Period: time.Hour}}

// issue stores a challenge for requester on the target whose MAC is code
// itself (the otp package uses a real HMAC; the store only compares).
func issue(t *testing.T, s *store.Store, requester string, tgt store.Target, code string, clk *clock) {
	t.Helper()
	_, out, err := s.Issue(context.Background(), store.IssueParams{
		Challenge: store.Challenge{Requester: requester, Purpose: "beneficiary", Audience: store.AudienceBeneficiary,
			MobileKey: tgt.MobileKey, Records: tgt.Records, MAC: []byte(code), ExpiresAt: clk.Now().Add(3 * time.Minute), MaxAttempts: 3},
		MobileWrong: limits.mob, RequesterWrong: limits.req,
	})
	if err != nil || out != store.IssueStored {
		t.Fatalf("issue: %v %v", out, err)
	}
}

func verify(s *store.Store, requester, code string) (store.Grant, store.VerifyOutcome, error) {
	return s.Verify(context.Background(), store.VerifyParams{
		Requester: requester, Purpose: "beneficiary",
		Match:       func(c store.Challenge) bool { return hmac.Equal(c.MAC, []byte(code)) },
		MobileWrong: limits.mob, RequesterWrong: limits.req, GrantTTL: 10 * time.Minute,
	})
}

func resolve(t *testing.T, s *store.Store, mob string) store.Target {
	t.Helper()
	tgt, err := s.Resolve(context.Background(), pii.Identifier{Kind: pii.KindMobile, Mobile: mobile(t, mob)})
	if err != nil {
		t.Fatal(err)
	}
	return tgt
}

func TestNoFieldWithoutGrant(t *testing.T) {
	s, clk := newStore(t)
	seed(t, s)
	ctx := context.Background()
	tgt := resolve(t, s, "9000000001")
	other := resolve(t, s, "9000000002")
	issue(t, s, "tg:1", tgt, "111111", clk)
	g, out, err := verify(s, "tg:1", "111111")
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

func TestEndGrant(t *testing.T) {
	s, clk := newStore(t)
	seed(t, s)
	tgt := resolve(t, s, "9000000002")
	issue(t, s, "tg:1", tgt, "222222", clk)
	g, _, _ := verify(s, "tg:1", "222222")
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

func TestStaffViewMasksReference(t *testing.T) {
	s, clk := newStore(t)
	seed(t, s)
	tgt := resolve(t, s, "9000000002")
	_, _, err := s.Issue(context.Background(), store.IssueParams{Challenge: store.Challenge{Requester: "tg:5", Purpose: "beneficiary",
		Audience: store.AudienceStaff, Agent: "5", MobileKey: tgt.MobileKey, Records: tgt.Records, MAC: []byte("x"),
		ExpiresAt: clk.Now().Add(time.Minute), MaxAttempts: 3}, MobileWrong: limits.mob, RequesterWrong: limits.req})
	if err != nil {
		t.Fatal(err)
	}
	g, _, _ := verify(s, "tg:5", "x")
	v, err := s.Release(context.Background(), g.Ref(), tgt.Records[0])
	if err != nil {
		t.Fatal(err)
	}
	if v.Reference != "**********0003" {
		t.Fatalf("staff reference = %q", v.Reference)
	}
}

func TestAuditFailureReleasesNothing(t *testing.T) {
	s, clk := newStore(t)
	seed(t, s)
	tgt := resolve(t, s, "9000000002")
	issue(t, s, "tg:1", tgt, "333333", clk)
	g, _, _ := verify(s, "tg:1", "333333")
	s.FailAudit(errors.New("disk full"))
	v, err := s.Release(context.Background(), g.Ref(), tgt.Records[0])
	if err == nil || v.Name != "" {
		t.Fatalf("released with a failing audit: %+v %v", v, err)
	}
	if sums, err := s.Summaries(context.Background(), g.Ref()); err == nil || len(sums) != 0 {
		t.Fatalf("summaries with a failing audit: %v %v", sums, err)
	}
	s.FailAudit(nil)
	if _, err := s.Release(context.Background(), g.Ref(), tgt.Records[0]); err != nil {
		t.Fatal(err)
	}
	rel, _ := s.AuditEntries(context.Background(), func(e store.AuditEntry) bool { return e.Event == store.EventReleased })
	if len(rel) != 1 {
		t.Fatalf("released entries = %d, want 1 (the failed attempt must leave none)", len(rel))
	}
}

func TestVerifyOutcomes(t *testing.T) {
	s, clk := newStore(t)
	seed(t, s)
	tgt := resolve(t, s, "9000000002")

	if _, out, _ := verify(s, "tg:1", "000000"); out != store.VerifyNoChallenge {
		t.Fatalf("no challenge: %v", out)
	}
	issue(t, s, "tg:1", tgt, "444444", clk)
	for i := 0; i < 3; i++ {
		if _, out, _ := verify(s, "tg:1", "000000"); out != store.VerifyWrong {
			t.Fatalf("wrong %d: %v", i, out)
		}
	}
	// The right code after three wrong ones is dead.
	if _, out, _ := verify(s, "tg:1", "444444"); out != store.VerifyCodeDead {
		t.Fatalf("after max attempts: %v", out)
	}

	clk.Add(2 * time.Minute) // past the cooldown
	issue(t, s, "tg:1", tgt, "555555", clk)
	clk.Add(3 * time.Minute)
	if _, out, _ := verify(s, "tg:1", "555555"); out != store.VerifyExpired {
		t.Fatalf("expired: %v", out)
	}

	clk.Add(2 * time.Minute)
	issue(t, s, "tg:1", tgt, "666666", clk)
	if _, out, _ := verify(s, "tg:1", "666666"); out != store.VerifyOK {
		t.Fatalf("right: %v", out)
	}
	if _, out, _ := verify(s, "tg:1", "666666"); out != store.VerifyUsed {
		t.Fatalf("reuse: %v", out)
	}
	// Another requester cannot use this requester's code.
	clk.Add(2 * time.Minute)
	issue(t, s, "tg:1", tgt, "777777", clk)
	if _, out, _ := verify(s, "tg:2", "777777"); out != store.VerifyNoChallenge {
		t.Fatalf("other requester: %v", out)
	}
}

func TestWrongCodesPerMobileSurviveNewCodes(t *testing.T) {
	s, clk := newStore(t)
	seed(t, s)
	tgt := resolve(t, s, "9000000002")
	wrong := 0
	// Ten wrong codes spread over four codes from different requesters.
	for wrong < 10 {
		clk.Add(61 * time.Second)
		req := "tg:" + string(rune('a'+wrong))
		issue(t, s, req, tgt, "123456", clk)
		for i := 0; i < 3 && wrong < 10; i++ {
			if _, out, _ := verify(s, req, "999999"); out != store.VerifyWrong {
				t.Fatalf("guess %d: %v", wrong, out)
			}
			wrong++
		}
	}
	clk.Add(61 * time.Second)
	// A new code does not reset the count: the mobile is locked, even with the right code…
	_, out, err := s.Issue(context.Background(), store.IssueParams{Challenge: store.Challenge{Requester: "tg:new", Purpose: "beneficiary",
		Audience: store.AudienceBeneficiary, MobileKey: tgt.MobileKey, Records: tgt.Records, MAC: []byte("123456"),
		ExpiresAt: clk.Now().Add(3 * time.Minute), MaxAttempts: 3}, MobileWrong: limits.mob, RequesterWrong: limits.req})
	if err != nil || out != store.IssueMobileLocked {
		t.Fatalf("issue on a locked mobile: %v %v", out, err)
	}
	// …and after the window the owner can try again (no permanent lockout).
	clk.Add(time.Hour)
	issue(t, s, "tg:new", tgt, "123456", clk)
	if _, out, _ := verify(s, "tg:new", "123456"); out != store.VerifyOK {
		t.Fatalf("after the window: %v", out)
	}
}

func TestReopenKeepsState(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s := openStore(t, dir, clk)
	seed(t, s)
	tgt := resolve(t, s, "9000000002")
	issue(t, s, "tg:1", tgt, "121212", clk)
	for i := 0; i < 2; i++ {
		verify(s, "tg:1", "000000")
	}
	clk.Add(61 * time.Second)
	issue(t, s, "tg:2", tgt, "343434", clk)
	if _, out, _ := verify(s, "tg:2", "343434"); out != store.VerifyOK {
		t.Fatal(out)
	}
	n1, err := s.VerifyAudit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, dir, clk)
	defer s.Close()
	// The consumed code stays consumed.
	if _, out, _ := verify(s, "tg:2", "343434"); out != store.VerifyUsed {
		t.Fatalf("consumed code after reopen: %v", out)
	}
	// The per-code attempt count survived: one more wrong guess kills the code.
	if _, out, _ := verify(s, "tg:1", "000000"); out != store.VerifyWrong {
		t.Fatal(out)
	}
	if _, out, _ := verify(s, "tg:1", "121212"); out != store.VerifyCodeDead {
		t.Fatalf("attempts after reopen: %v", out)
	}
	// The per-mobile count survived: 3 wrong so far, 7 more lock it.
	for i := 0; i < 7; i++ {
		clk.Add(61 * time.Second)
		req := "tg:x" + string(rune('a'+i))
		issue(t, s, req, tgt, "1", clk)
		if _, out, _ := verify(s, req, "0"); out != store.VerifyWrong {
			t.Fatal(out)
		}
	}
	clk.Add(61 * time.Second)
	if _, out, _ := s.Issue(context.Background(), store.IssueParams{Challenge: store.Challenge{Requester: "tg:y", Purpose: "beneficiary",
		MobileKey: tgt.MobileKey, MAC: []byte("1"), ExpiresAt: clk.Now().Add(time.Minute), MaxAttempts: 3},
		MobileWrong: limits.mob, RequesterWrong: limits.req}); out != store.IssueMobileLocked {
		t.Fatalf("mobile count after reopen: %v", out)
	}
	n2, err := s.VerifyAudit(context.Background())
	if err != nil || n2 <= n1 {
		t.Fatalf("audit after reopen: %d entries (had %d), %v", n2, n1, err)
	}
}

func TestWrongKeyRefused(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: time.Now()}
	s := openStore(t, dir, clk)
	seed(t, s)
	s.Close()
	_, err := store.Open(options(t, testKeys(t, 8), dir, clk))
	if !errors.Is(err, store.ErrWrongKey) {
		t.Fatalf("open with another key: %v", err)
	}
	s2 := openStore(t, dir, clk)
	if _, err := store.Open(options(t, testKeys(t, 7), dir, clk)); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
	s2.Close()
}

func TestAuditVerifyCatchesTampering(t *testing.T) {
	cases := []struct {
		name    string
		tamper  func(map[uint64][]byte) map[uint64][]byte
		wantSeq uint64
	}{
		{"altered", func(all map[uint64][]byte) map[uint64][]byte {
			var e store.AuditEntry
			_ = json.Unmarshal(all[3], &e)
			e.Requester = "tg:someone-else"
			b, _ := json.Marshal(e)
			return map[uint64][]byte{3: b}
		}, 3},
		{"removed", func(all map[uint64][]byte) map[uint64][]byte {
			return map[uint64][]byte{4: nil}
		}, 4},
		{"removed and renumbered", func(all map[uint64][]byte) map[uint64][]byte {
			out := map[uint64][]byte{}
			n := uint64(len(all))
			for i := uint64(4); i < n; i++ {
				var e store.AuditEntry
				_ = json.Unmarshal(all[i+1], &e)
				e.Seq = i
				b, _ := json.Marshal(e)
				out[i] = b
			}
			out[n] = nil
			return out
		}, 4},
		{"reordered", func(all map[uint64][]byte) map[uint64][]byte {
			return map[uint64][]byte{3: all[4], 4: all[3]}
		}, 3},
		{"last removed", func(all map[uint64][]byte) map[uint64][]byte {
			return map[uint64][]byte{uint64(len(all)): nil}
		}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, clk := newStore(t)
			seed(t, s)
			tgt := resolve(t, s, "9000000001")
			for i := 0; i < 3; i++ {
				clk.Add(time.Minute)
				issue(t, s, "tg:1", tgt, "1", clk)
				verify(s, "tg:1", "0")
			}
			n, err := s.VerifyAudit(context.Background())
			if err != nil || n < 6 {
				t.Fatalf("clean chain: %d %v", n, err)
			}
			if err := s.TamperAudit(c.tamper); err != nil {
				t.Fatal(err)
			}
			_, err = s.VerifyAudit(context.Background())
			var p *store.AuditProblem
			if !errors.Is(err, store.ErrAuditBroken) || !errors.As(err, &p) {
				t.Fatalf("tampered chain: %v", err)
			}
			want := c.wantSeq
			if want == 0 {
				want = n
			}
			if p.Seq != want {
				t.Fatalf("first bad entry = %d (%s), want %d", p.Seq, p.Reason, want)
			}
		})
	}
}

func TestAuditHasNoPII(t *testing.T) {
	s, clk := newStore(t)
	seed(t, s)
	tgt := resolve(t, s, "9000000001")
	issue(t, s, "tg:1", tgt, "565656", clk)
	g, _, _ := verify(s, "tg:1", "565656")
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

func TestDeletionScheduleSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: time.Now()}
	s := openStore(t, dir, clk)
	ctx := context.Background()
	now := time.UnixMilli(time.Now().UnixMilli())
	for i, d := range []time.Duration{time.Minute, -time.Second, -time.Minute} {
		if err := s.ScheduleDeletion(ctx, store.Deletion{Due: now.Add(d), ChatID: int64(-100 - i), MessageID: 10 + i}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = openStore(t, dir, clk)
	defer s.Close()
	due, err := s.DueDeletions(ctx, now, 10)
	if err != nil || len(due) != 2 || due[0].MessageID != 12 || due[1].ChatID != -101 {
		t.Fatalf("due = %+v, %v", due, err)
	}
	s.DeletionDone(ctx, due[0])
	if due, _ := s.DueDeletions(ctx, now.Add(2*time.Minute), 10); len(due) != 2 || due[0].MessageID != 11 {
		t.Fatalf("after done: %+v", due)
	}
}

func TestGrantDoesNotFollowARecordToAnotherMobile(t *testing.T) {
	s, clk := newStore(t)
	seed(t, s)
	tgt := resolve(t, s, "9000000002")
	issue(t, s, "tg:1", tgt, "424242", clk)
	g, _, _ := verify(s, "tg:1", "424242")
	// A corrected import moves the record to another mobile.
	if _, err := s.Import(context.Background(), rows(rec(t, "10000000000003", "Meena Iyer", "9000000003", "234123412343"))); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Release(context.Background(), g.Ref(), tgt.Records[0]); !errors.Is(err, store.ErrNoGrant) || v.Name != "" {
		t.Fatalf("the old mobile's grant still releases the moved record: %+v %v", v, err)
	}
	if sums, err := s.Summaries(context.Background(), g.Ref()); !errors.Is(err, store.ErrNoGrant) || len(sums) != 0 {
		t.Fatalf("summaries: %v %v", sums, err)
	}
}

func TestCooldownKeepsACodeOnlyForTheSameLookup(t *testing.T) {
	s, clk := newStore(t)
	seed(t, s)
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
			ExpiresAt: clk.Now().Add(3 * time.Minute), MaxAttempts: 3}, Cooldown: time.Minute, MobileWrong: limits.mob, RequesterWrong: limits.req})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	staffVerify := func(code string) store.VerifyOutcome {
		_, out, _ := s.Verify(ctx, store.VerifyParams{Requester: "tg:agent", Purpose: "staff",
			Match: func(c store.Challenge) bool { return string(c.MAC) == code }, MobileWrong: limits.mob, RequesterWrong: limits.req, GrantTTL: time.Minute})
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
		ExpiresAt: clk.Now().Add(3 * time.Minute), MaxAttempts: 3}, Decoy: "no_target", Cooldown: time.Minute, MobileWrong: limits.mob, RequesterWrong: limits.req})
	if err != nil || out != store.IssueStored {
		t.Fatal(out, err)
	}
	if out := staffVerify("555"); out != store.VerifyWrong {
		t.Fatalf("after a lookup that matches nothing: %v", out)
	}
}
