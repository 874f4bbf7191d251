package otp_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/keys"
	"github.com/otpgate/otpgate/otp"
	"github.com/otpgate/otpgate/otp/otptest"
	"github.com/otpgate/otpgate/pii"
	"github.com/otpgate/otpgate/store"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type fixture struct {
	clk  *clock
	st   *store.Store
	svc  *otp.Service
	ph   *otptest.Phone
	logs *bytes.Buffer
}

func newFixture(t *testing.T, mutate func(*otp.Policy)) *fixture {
	t.Helper()
	ks, _ := keys.Derive(bytes.Repeat([]byte{3}, 32))
	clk := &clock{t: time.Now()}
	st, err := store.Open(store.Options{InMemory: true, EncryptionKey: ks.Storage, IndexKey: ks.Index, AuditKey: ks.Audit, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var rows []store.ImportRow
	for i, r := range []struct{ ref, name, mob string }{
		{"30000000000001", "Kavya Rao", "9000000101"},
		{"30000000000002", "Arjun Rao", "9000000101"},
		{"30000000000003", "Imran Sheikh", "9000000102"},
	} {
		m, _ := pii.ParseMobile(r.mob)
		id, _ := pii.NormalizeID("55556666777" + string(rune('0'+i)))
		rows = append(rows, store.ImportRow{Line: i + 1, ID: id, Record: store.Record{RefID: r.ref, Name: r.name, BirthYear: 1990, Gender: "M", Mobile: m, IDType: "aadhaar", IDLast4: id.Last4()}})
	}
	if _, err := st.Import(context.Background(), func(ctx context.Context, fn func(store.ImportRow) error) error {
		for _, r := range rows {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	pol := otp.DefaultPolicy()
	if mutate != nil {
		mutate(&pol)
	}
	f := &fixture{clk: clk, st: st, ph: &otptest.Phone{}, logs: &bytes.Buffer{}}
	log := slog.New(slog.NewTextHandler(&lockedBuffer{b: f.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.svc, err = otp.New(otp.Options{Store: st, Sender: f.ph, CodeKey: ks.Code, Policy: pol, Logger: log, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.svc.Close(context.Background()) })
	return f
}

type lockedBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func mob(s string) pii.Mobile { m, _ := pii.ParseMobile(s); return m }

func (f *fixture) request(t *testing.T, requester, mobile string) {
	t.Helper()
	err := f.svc.Request(context.Background(), otp.Request{Requester: requester, Audience: store.AudienceBeneficiary,
		Identifier: pii.Identifier{Kind: pii.KindMobile, Mobile: mob(mobile)}, Lang: "en"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.svc.Idle(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestCodeRoundTrip(t *testing.T) {
	f := newFixture(t, nil)
	f.request(t, "tg:1", "+91 90000 00101")
	code := f.ph.Code("9000000101")
	if code == "" {
		t.Fatal("no SMS with a 6-digit code")
	}
	g, err := f.svc.Verify(context.Background(), "tg:1", store.AudienceBeneficiary, pii.Code(code))
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Records) != 2 {
		t.Fatalf("grant covers %d records, want the 2 on the mobile", len(g.Records))
	}
	// The grant is bound to the requester.
	if _, err := f.st.Summaries(context.Background(), store.GrantRef{ID: g.ID, Requester: "tg:2"}); !errors.Is(err, store.ErrNoGrant) {
		t.Fatalf("grant used by another requester: %v", err)
	}
}

func TestConcurrentCorrectSubmissionsGiveOneGrant(t *testing.T) {
	f := newFixture(t, nil)
	f.request(t, "tg:1", "9000000102")
	code := pii.Code(f.ph.Code("9000000102"))
	const n = 32
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		grants int
		other  []error
	)
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := f.svc.Verify(context.Background(), "tg:1", store.AudienceBeneficiary, code)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				grants++
			} else if !errors.Is(err, otp.ErrCodeRejected) {
				other = append(other, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if grants != 1 || len(other) > 0 {
		t.Fatalf("%d grants from %d concurrent correct submissions (other errors: %v), want exactly 1", grants, n, other)
	}
}

func TestRejectionsLookAlike(t *testing.T) {
	f := newFixture(t, func(p *otp.Policy) { p.ResendCooldown = 0; p.RequestsPerRequesterHr = 100 })
	ctx := context.Background()
	var outcomes []store.VerifyOutcome
	check := func(requester string, code pii.Code) {
		t.Helper()
		_, err := f.svc.Verify(ctx, requester, store.AudienceBeneficiary, code)
		var re *otp.RejectedError
		if !errors.Is(err, otp.ErrCodeRejected) || !errors.As(err, &re) {
			t.Fatalf("err = %v, want ErrCodeRejected", err)
		}
		outcomes = append(outcomes, re.Outcome)
	}
	check("tg:none", "123456") // no code requested

	f.request(t, "tg:1", "9000000101")
	right := pii.Code(f.ph.Code("9000000101"))
	wrong := pii.Code("000000")
	if right == wrong {
		wrong = "000001"
	}
	check("tg:1", wrong)
	check("tg:1", wrong)
	check("tg:1", wrong)
	check("tg:1", right) // dead after 3 wrong

	f.request(t, "tg:1", "9000000101")
	right = pii.Code(f.ph.Code("9000000101"))
	if _, err := f.svc.Verify(ctx, "tg:1", store.AudienceBeneficiary, right); err != nil {
		t.Fatal(err)
	}
	check("tg:1", right) // used

	f.request(t, "tg:1", "9000000101")
	right = pii.Code(f.ph.Code("9000000101"))
	f.clk.Add(3*time.Minute + time.Second)
	check("tg:1", right) // expired

	// Ten wrong codes from one chat user lock that user, even with a right code.
	for i := 0; i < 6; i++ {
		f.request(t, "tg:1", "9000000102")
		f.svc.Verify(ctx, "tg:1", store.AudienceBeneficiary, wrong)
		f.svc.Verify(ctx, "tg:1", store.AudienceBeneficiary, wrong)
	}
	f.clk.Add(2 * time.Minute)
	check("tg:1", pii.Code(f.ph.Code("9000000102")))
	want := []store.VerifyOutcome{store.VerifyNoChallenge, store.VerifyWrong, store.VerifyWrong, store.VerifyWrong, store.VerifyCodeDead, store.VerifyUsed,
		store.VerifyExpired, store.VerifyRequesterLocked}
	if len(outcomes) != len(want) {
		t.Fatalf("outcomes = %v", outcomes)
	}
	for i := range want {
		if outcomes[i] != want[i] {
			t.Fatalf("outcomes = %v, want %v", outcomes, want)
		}
	}
}

func TestResendReplacesCode(t *testing.T) {
	f := newFixture(t, func(p *otp.Policy) { p.ResendCooldown = 0 })
	f.request(t, "tg:1", "9000000102")
	first := f.ph.Code("9000000102")
	f.request(t, "tg:1", "9000000102")
	second := f.ph.Code("9000000102")
	if first == second {
		t.Skip("the two random codes collided (1 in a million)")
	}
	if _, err := f.svc.Verify(context.Background(), "tg:1", store.AudienceBeneficiary, pii.Code(first)); !errors.Is(err, otp.ErrCodeRejected) {
		t.Fatalf("old code after resend: %v", err)
	}
	if _, err := f.svc.Verify(context.Background(), "tg:1", store.AudienceBeneficiary, pii.Code(second)); err != nil {
		t.Fatalf("new code: %v", err)
	}
}

func TestSendLimits(t *testing.T) {
	cases := []struct {
		name   string
		policy func(*otp.Policy)
		reqs   []struct{ who, mobile string }
		sent   int
	}{
		{"cooldown per mobile", nil,
			[]struct{ who, mobile string }{{"tg:1", "9000000101"}, {"tg:2", "9000000101"}}, 1},
		{"sends per mobile per hour", func(p *otp.Policy) { p.ResendCooldown = 0; p.SendsPerMobileHour = 2 },
			[]struct{ who, mobile string }{{"tg:1", "9000000101"}, {"tg:2", "9000000101"}, {"tg:3", "9000000101"}}, 2},
		{"requests per requester", func(p *otp.Policy) { p.ResendCooldown = 0; p.RequestsPerRequesterHr = 2 },
			[]struct{ who, mobile string }{{"tg:1", "9000000101"}, {"tg:1", "9000000102"}, {"tg:1", "9000000102"}}, 2},
		{"global cap", func(p *otp.Policy) { p.GlobalSendsPerHour = 1 },
			[]struct{ who, mobile string }{{"tg:1", "9000000101"}, {"tg:2", "9000000102"}}, 1},
		{"prefix velocity", func(p *otp.Policy) { p.SendsPerPrefixHour = 1 },
			[]struct{ who, mobile string }{{"tg:1", "9000000101"}, {"tg:2", "9000000102"}}, 1},
		{"country allowlist", func(p *otp.Policy) { p.Countries = []string{"44"} },
			[]struct{ who, mobile string }{{"tg:1", "9000000101"}}, 0},
		{"unknown mobile", nil,
			[]struct{ who, mobile string }{{"tg:1", "9999999999"}}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, c.policy)
			for _, r := range c.reqs {
				f.request(t, r.who, r.mobile)
			}
			if got := f.ph.Count(); got != c.sent {
				t.Fatalf("sent %d SMS, want %d", got, c.sent)
			}
			// Every request left an audit trace, sent or not.
			es, _ := f.st.AuditEntries(context.Background(), func(e store.AuditEntry) bool { return e.Event == store.EventCodeRequested })
			if len(es) != len(c.reqs) {
				t.Fatalf("%d code_requested entries, want %d", len(es), len(c.reqs))
			}
		})
	}
}

func TestDeliveryFailureAudited(t *testing.T) {
	f := newFixture(t, nil)
	f.ph.Fail(errors.Join(otp.ErrPermanent, otp.ErrUnsubscribed))
	f.request(t, "tg:1", "9000000102")
	es, _ := f.st.AuditEntries(context.Background(), func(e store.AuditEntry) bool { return e.Event == store.EventDeliveryFailed })
	if len(es) != 1 || es[0].Outcome != "unsubscribed" {
		t.Fatalf("delivery_failed entries = %+v", es)
	}
}

func TestLogsCarryNoSecrets(t *testing.T) {
	f := newFixture(t, nil)
	f.request(t, "tg:1", "9000000101")
	code := f.ph.Code("9000000101")
	f.svc.Verify(context.Background(), "tg:1", store.AudienceBeneficiary, "999999")
	f.svc.Verify(context.Background(), "tg:1", store.AudienceBeneficiary, pii.Code(code))
	logs := f.logs.String()
	if !strings.Contains(logs, "code sent") || !strings.Contains(logs, "code verified") {
		t.Fatalf("expected flow logs, got:\n%s", logs)
	}
	for _, secret := range []string{code, "9000000101", "919000000101", "Kavya", "30000000000001", "555566667770"} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain %q:\n%s", secret, logs)
		}
	}
}

func TestTemplates(t *testing.T) {
	tpl := otp.DefaultTemplates()
	for _, a := range []store.Audience{store.AudienceBeneficiary, store.AudienceStaff} {
		for _, lang := range []string{"en", "hi", "as", "bn", "gu", "kn", "mr", "xx"} {
			s, err := tpl.Render(a, lang, otp.SMSData{Code: "482913", Minutes: 3, Agent: "4521", Tag: "KX42"})
			if err != nil || !strings.HasPrefix(s, "482913") {
				t.Fatalf("%s/%s: %q %v", a, lang, s, err)
			}
			if !strings.Contains(s, "KX42") {
				t.Fatalf("%s/%s SMS does not name the request: %q", a, lang, s)
			}
			if a == store.AudienceStaff && !strings.Contains(s, "#4521") {
				t.Fatalf("staff SMS does not name the agent: %q", s)
			}
		}
	}
	if _, err := otp.LoadTemplates(strings.NewReader(`{"beneficiary":{"en":"your code"}}`)); err == nil {
		t.Fatal("a template without {{.Code}} was accepted")
	}
	if _, err := otp.LoadTemplates(strings.NewReader(`{"beneficiary":{"en":"{{.Code}} OTP for CoWIN. -GOVT"}}`)); err == nil {
		t.Fatal("a template without {{.Tag}} was accepted")
	}
	if _, err := otp.LoadTemplates(strings.NewReader(`{"staff":{"en":"{{.Code}} is a code, request {{.Tag}}"}}`)); err == nil {
		t.Fatal("a staff template without {{.Agent}} was accepted")
	}
	got, err := otp.LoadTemplates(strings.NewReader(`{"beneficiary":{"en":"{{.Code}} OTP for CoWIN, ref {{.Tag}}. -GOVT"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := got.Render(store.AudienceBeneficiary, "en", otp.SMSData{Code: "111222", Tag: "KX42"}); s != "111222 OTP for CoWIN, ref KX42. -GOVT" {
		t.Fatalf("operator template: %q", s)
	}
}

func TestStaffHaveTheirOwnRequestCap(t *testing.T) {
	f := newFixture(t, func(p *otp.Policy) { p.ResendCooldown = 0; p.RequestsPerRequesterHr = 1; p.StaffRequestsPerHour = 3 })
	for _, m := range []string{"9000000101", "9000000102", "9000000101", "9000000102"} {
		err := f.svc.Request(context.Background(), otp.Request{Requester: "tg:agent", Audience: store.AudienceStaff, Agent: "7",
			Identifier: pii.Identifier{Kind: pii.KindMobile, Mobile: mob(m)}, Lang: "en"})
		if err != nil {
			t.Fatal(err)
		}
		f.request(t, "tg:citizen", m) // also waits for the queue
	}
	// The agent: 3 of 4 (staff cap); the citizen: 1 of 4 (requester cap).
	if got := f.ph.Count(); got != 4 {
		t.Fatalf("sent %d SMS, want 3 for the agent and 1 for the citizen", got)
	}
	if !strings.Contains(f.ph.Last("9000000102"), "helpdesk agent #7") && !strings.Contains(f.ph.Last("9000000101"), "helpdesk agent #7") {
		t.Fatal("no staff SMS went out")
	}
}
