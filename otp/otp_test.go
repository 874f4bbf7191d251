package otp_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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
	ops  *prometheus.Registry // the operator's metrics

	dir    string
	policy otp.Policy
}

func newFixture(t *testing.T, mutate func(*otp.Policy)) *fixture {
	return newFixtureIn(t, "", mutate)
}

// newFixtureIn builds the service over a store in dir (in memory when
// empty) holding three records.
func newFixtureIn(t *testing.T, dir string, mutate func(*otp.Policy)) *fixture {
	t.Helper()
	pol := otp.DefaultPolicy()
	if mutate != nil {
		mutate(&pol)
	}
	f := &fixture{clk: &clock{t: time.Now()}, ph: &otptest.Phone{}, logs: &bytes.Buffer{}, dir: dir, policy: pol}
	f.open(t)
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
	if _, err := f.st.Import(context.Background(), func(ctx context.Context, fn func(store.ImportRow) error) error {
		for _, r := range rows {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.close(t) })
	return f
}

var testKeys, _ = keys.Derive(bytes.Repeat([]byte{3}, 32))

// open opens the store and starts the service (again, after close).
func (f *fixture) open(t *testing.T) {
	t.Helper()
	st, err := store.Open(store.Options{Dir: f.dir, InMemory: f.dir == "", EncryptionKey: testKeys.Storage, IndexKey: testKeys.Index, AuditKey: testKeys.Audit, Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	f.st = st
	f.ops = prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(&lockedBuffer{b: f.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.svc, err = otp.New(otp.Options{Store: st, Sender: f.ph, CodeKey: testKeys.Code, Policy: f.policy, Logger: log, Now: f.clk.Now, OpsRegisterer: f.ops})
	if err != nil {
		t.Fatal(err)
	}
}

// close stops the service and closes the store, as a process exit would.
func (f *fixture) close(t *testing.T) {
	t.Helper()
	if f.svc == nil {
		return
	}
	if err := f.svc.Close(context.Background()); err != nil {
		t.Error(err)
	}
	if err := f.st.Close(); err != nil {
		t.Error(err)
	}
	f.svc, f.st = nil, nil
}

// restart closes and reopens the store and the service on the same directory.
func (f *fixture) restart(t *testing.T) {
	t.Helper()
	if f.dir == "" {
		t.Fatal("restart of an in-memory fixture")
	}
	f.close(t)
	f.open(t)
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

// request asks for a code as requester and waits for the queue; it returns
// the request tag.
func (f *fixture) request(t *testing.T, requester, mobile string) string {
	t.Helper()
	return f.send(t, otp.Request{Requester: requester, Audience: store.AudienceBeneficiary,
		Identifier: pii.Identifier{Kind: pii.KindMobile, Mobile: mob(mobile)}, Lang: "en"})
}

func (f *fixture) send(t *testing.T, r otp.Request) string {
	t.Helper()
	tag, err := f.svc.Request(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	f.idle(t)
	return tag
}

func (f *fixture) idle(t *testing.T) {
	t.Helper()
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

type req struct {
	who, mobile string
	owner       bool          // proved by contact
	after       time.Duration // clock advance before the request
}

// sendLimitCases each end with a count of SMS sent.
var sendLimitCases = []struct {
	name   string
	policy func(*otp.Policy)
	reqs   []req
	sent   int
}{
	{"cooldown per mobile and requester", nil,
		[]req{{who: "tg:1", mobile: "9000000101"}, {who: "tg:1", mobile: "9000000101", after: 30 * time.Second}, {who: "tg:2", mobile: "9000000101"}}, 2},
	{"sends per mobile per hour", func(p *otp.Policy) { p.ResendCooldown = 0; p.SendsPerMobileHour = 2 },
		[]req{{who: "tg:1", mobile: "9000000101"}, {who: "tg:2", mobile: "9000000101"}, {who: "tg:3", mobile: "9000000101"}}, 2},
	{"sends per mobile per day", func(p *otp.Policy) { p.ResendCooldown = 0; p.SendsPerMobileHour = 2; p.SendsPerMobileDay = 3 },
		[]req{{who: "tg:1", mobile: "9000000101"}, {who: "tg:2", mobile: "9000000101"},
			{who: "tg:3", mobile: "9000000101", after: 61 * time.Minute}, {who: "tg:4", mobile: "9000000101", after: time.Minute}}, 3},
	{"requests per requester", func(p *otp.Policy) { p.ResendCooldown = 0; p.RequestsPerRequesterHr = 2 },
		[]req{{who: "tg:1", mobile: "9000000101"}, {who: "tg:1", mobile: "9000000102"}, {who: "tg:1", mobile: "9000000102"}}, 2},
	{"global cap", func(p *otp.Policy) { p.GlobalSendsPerHour = 1 },
		[]req{{who: "tg:1", mobile: "9000000101"}, {who: "tg:2", mobile: "9000000102"}}, 1},
	{"global cap counts decoys", func(p *otp.Policy) { p.GlobalSendsPerHour = 1 },
		[]req{{who: "tg:1", mobile: "9999999999"}, {who: "tg:2", mobile: "9000000102"}}, 0},
	{"prefix velocity", func(p *otp.Policy) { p.SendsPerPrefixHour = 1 },
		[]req{{who: "tg:1", mobile: "9000000101"}, {who: "tg:2", mobile: "9000000102"}}, 1},
	{"owner's reserved budget", func(p *otp.Policy) { p.ResendCooldown = 0; p.SendsPerMobileHour = 1; p.OwnerSendsPerHour = 2 },
		[]req{{who: "tg:1", mobile: "9000000101"}, {who: "tg:2", mobile: "9000000101"}, // the shared hour is spent
			{who: "tg:owner", mobile: "9000000101", owner: true}, {who: "tg:owner", mobile: "9000000101", owner: true},
			{who: "tg:owner", mobile: "9000000101", owner: true}}, 3},
	{"owner's cooldown", func(p *otp.Policy) { p.OwnerSendsPerHour = 5 },
		[]req{{who: "tg:owner", mobile: "9000000101", owner: true}, {who: "tg:owner", mobile: "9000000101", owner: true, after: 30 * time.Second},
			{who: "tg:owner", mobile: "9000000101", owner: true, after: 31 * time.Second}}, 2},
	{"country allowlist", func(p *otp.Policy) { p.Countries = []string{"44"} },
		[]req{{who: "tg:1", mobile: "9000000101"}}, 0},
	{"unknown mobile", nil,
		[]req{{who: "tg:1", mobile: "9999999999"}}, 0},
}

func (f *fixture) ask(t *testing.T, r req) string {
	t.Helper()
	f.clk.Add(r.after)
	return f.send(t, otp.Request{Requester: r.who, Audience: store.AudienceBeneficiary, ProvedByContact: r.owner,
		Identifier: pii.Identifier{Kind: pii.KindMobile, Mobile: mob(r.mobile)}, Lang: "en"})
}

func TestSendLimits(t *testing.T) {
	for _, c := range sendLimitCases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, c.policy)
			for _, r := range c.reqs {
				f.ask(t, r)
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

// TestSendLimitsSurviveRestart runs every case of TestSendLimits with the
// store closed and reopened (and the service rebuilt) before each request:
// every window — per mobile hour and day, per requester, per prefix,
// global, the per (mobile, requester) cooldown, the owner's reserved
// budget — lives in the store, so the counts are the same.
func TestSendLimitsSurviveRestart(t *testing.T) {
	for _, c := range sendLimitCases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixtureIn(t, t.TempDir(), c.policy)
			for _, r := range c.reqs {
				f.restart(t)
				f.ask(t, r)
			}
			if got := f.ph.Count(); got != c.sent {
				t.Fatalf("sent %d SMS across restarts, want %d", got, c.sent)
			}
		})
	}
}

var tagShape = regexp.MustCompile(`^[` + otp.TagLetters + `]{2}[0-9]{2}$`)

func TestRequestTag(t *testing.T) {
	f := newFixture(t, nil)
	tag := f.request(t, "tg:1", "9000000101")
	if !tagShape.MatchString(tag) {
		t.Fatalf("tag %q", tag)
	}
	if sms := f.ph.Last("9000000101"); !strings.Contains(sms, "(request "+tag+")") {
		t.Fatalf("the SMS does not name the tag %s: %q", tag, sms)
	}
	code := f.ph.Code("9000000101")
	// The same lookup again inside the cooldown: the same tag, and the code
	// on its way still works.
	f.clk.Add(20 * time.Second)
	if again := f.request(t, "tg:1", "+91 90000 00101"); again != tag {
		t.Fatalf("a repeat inside the cooldown showed tag %s, the SMS carries %s", again, tag)
	}
	if _, err := f.svc.Verify(context.Background(), "tg:1", store.AudienceBeneficiary, pii.Code(code)); err != nil {
		t.Fatalf("the code of a repeated lookup: %v", err)
	}
	// A decoy gets a tag of the same shape; tags are drawn afresh.
	seen := map[string]bool{}
	for i := range 20 {
		d := f.request(t, "tg:d"+string(rune('a'+i)), "9999999999")
		if !tagShape.MatchString(d) {
			t.Fatalf("decoy tag %q", d)
		}
		seen[d] = true
	}
	if len(seen) < 15 {
		t.Fatalf("20 requests drew only %d distinct tags", len(seen))
	}
}

func TestOwnerTakesOverStrangersCodes(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	f.request(t, "tg:stranger", "9000000101")
	strangerCode, strangerSMS := f.ph.Code("9000000101"), f.ph.Last("9000000101")
	ownTag := f.ask(t, req{who: "tg:owner", mobile: "9000000101", owner: true})
	ownSMS := f.ph.Last("9000000101")
	if ownSMS == strangerSMS || !strings.Contains(ownSMS, ownTag) {
		t.Fatalf("the owner's request sent no SMS of its own (tag %s): %q", ownTag, ownSMS)
	}
	if _, err := f.svc.Verify(ctx, "tg:stranger", store.AudienceBeneficiary, pii.Code(strangerCode)); !errors.Is(err, otp.ErrCodeRejected) {
		t.Fatalf("a stranger's code after the owner's request: %v", err)
	}
	if _, err := f.svc.Verify(ctx, "tg:owner", store.AudienceBeneficiary, pii.Code(f.ph.Code("9000000101"))); err != nil {
		t.Fatalf("the owner's code: %v", err)
	}
	// A contact claim does not carry over to a lookup by another kind of
	// identifier, nor to staff: those draw on the shared windows.
	if _, err := f.svc.Request(ctx, otp.Request{Requester: "tg:x", Audience: store.AudienceStaff, Agent: "1", ProvedByContact: true,
		Identifier: pii.Identifier{Kind: pii.KindMobile, Mobile: mob("9000000102")}}); err != nil {
		t.Fatal(err)
	}
	f.idle(t)
	if !strings.Contains(f.logs.String(), "by_owner=false") || strings.Count(f.logs.String(), "by_owner=true") != 1 {
		t.Fatalf("a staff request was treated as the owner's:\n%s", f.logs)
	}
}

func TestOperatorSeesAndLiftsADrainedCap(t *testing.T) {
	f := newFixture(t, func(p *otp.Policy) { p.GlobalSendsPerHour = 2; p.SendsPerPrefixHour = 1 })
	ctx := context.Background()
	f.request(t, "tg:1", "9000000101")
	f.request(t, "tg:2", "9000000102") // same prefix: refused
	f.request(t, "tg:3", "9999999999") // another prefix: a decoy, counted
	caps, err := f.svc.Caps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(caps) != 3 || caps[0].Cap != store.CapGlobal || !caps[0].Drained() || caps[1].Range != "+9190000" || !caps[1].Drained() {
		t.Fatalf("caps: %+v", caps)
	}
	if v := gauge(t, f.ops, "otpgate_sms_cap_remaining"); v != 0 {
		t.Fatalf("otpgate_sms_cap_remaining = %v, want 0", v)
	}
	if v := gauge(t, f.ops, "otpgate_sms_prefixes_drained"); v != 2 {
		t.Fatalf("otpgate_sms_prefixes_drained = %v, want 2", v)
	}
	if _, err := f.svc.LiftCap(ctx, store.CapPrefix, "91 9000O", "test"); err == nil {
		t.Fatal("a malformed range was accepted")
	}
	for _, lift := range [][2]string{{store.CapGlobal, ""}, {store.CapPrefix, "91 90000"}} {
		if ok, err := f.svc.LiftCap(ctx, lift[0], lift[1], "test"); err != nil || !ok {
			t.Fatalf("lift %v: %v %v", lift, ok, err)
		}
	}
	f.request(t, "tg:2", "9000000102")
	if got := f.ph.Count(); got != 2 {
		t.Fatalf("%d SMS after lifting the caps, want 2", got)
	}
	if v := gauge(t, f.ops, "otpgate_sms_cap_remaining"); v != 1 {
		t.Fatalf("otpgate_sms_cap_remaining = %v after the lift, want 1", v)
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
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
		for _, lang := range []string{"en", "hi", "as", "bn", "gu", "kn", "ml", "mr", "or", "pa", "ta", "te", "xx"} {
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
		_, err := f.svc.Request(context.Background(), otp.Request{Requester: "tg:agent", Audience: store.AudienceStaff, Agent: "7",
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

// Shared (replicas on one database): Request returns only once the SMS was
// handed to the provider, and the tag shown is remembered in the store, so
// a second service on the same store (another replica) shows the same tag
// for the same lookup and the code on its way stays valid.
func TestSharedServiceSendsBeforeReturning(t *testing.T) {
	f := newFixture(t, nil)
	mk := func() *otp.Service {
		svc, err := otp.New(otp.Options{Store: f.st, Sender: f.ph, CodeKey: testKeys.Code, Policy: f.policy,
			Logger: slog.New(slog.DiscardHandler), Now: f.clk.Now, Shared: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = svc.Close(context.Background()) })
		return svc
	}
	a, b := mk(), mk()
	m, _ := pii.ParseMobile("9000000102")
	req := otp.Request{Requester: "telegram:7", Identifier: pii.Identifier{Kind: pii.KindMobile, Mobile: m}, Audience: store.AudienceBeneficiary, Lang: "en"}
	tag1, err := a.Request(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if f.ph.Count() != 1 {
		t.Fatalf("Request returned with %d SMS sent, want 1", f.ph.Count())
	}
	code := f.ph.Code(m.E164())
	f.clk.Add(10 * time.Second)
	tag2, err := b.Request(context.Background(), req)
	if err != nil || tag2 != tag1 {
		t.Fatalf("the other replica showed tag %q (%v), want %q", tag2, err, tag1)
	}
	if f.ph.Count() != 1 {
		t.Fatalf("%d SMS for a lookup repeated inside the cooldown", f.ph.Count())
	}
	if _, err := a.Verify(context.Background(), "telegram:7", store.AudienceBeneficiary, pii.Code(code)); err != nil {
		t.Fatalf("the code on its way: %v", err)
	}
}
