package bot_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/otpgate/otpgate/bot"
	"github.com/otpgate/otpgate/internal/app"
	"github.com/otpgate/otpgate/internal/app/apptest"
	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/otp"
)

// The oracle test's cast. Every number shares the +91 90000 range except
// farAway, so the prefix window couples them all.
const (
	oracleTarget    = "9000000399"     // registered in world A only: the secret
	oracleTargetRef = "50000000000099" // its reference id (world A)
	oracleBystander = "9000000390"     // registered in both, nobody's chat
	oracleNobody    = "9000000398"     // registered in neither
	oracleFarAway   = "9123400000"     // another number range, registered in neither
	oracleStaff     = 50
	oracleGroup     = -100
)

// oracleUsers are the requesters; each has its own registered mobile.
var oracleUsers = []int64{1, 2, 3, 4, oracleStaff}

func ownMobile(u int64) string { return fmt.Sprintf("90000003%02d", u) }

// oracleCaps are small, so that a thousand steps reach every window.
func oracleCaps(c *config.Config) {
	c.OTPTTL, c.OTPMaxAttempts, c.ResendCooldown = 3*time.Minute, 3, time.Minute
	c.SendsPerMobileHour, c.SendsPerMobileDay, c.OwnerSendsPerHour = 3, 5, 1
	c.WrongCodesPerMobileHour, c.WrongCodesPerRequesterHour = 4, 8
	c.RequestsPerRequesterHour, c.StaffRequestsPerHour = 6, 8
	c.SendsPerPrefixHour, c.GlobalSMSPerHour = 10, 14
	c.FloodPerMinute = 1 << 30 // flood control (ulule's memory store, on the wall clock) is not under test here (TestFloodControl is)
	c.StaffUsers, c.StaffChats = config.StaffUsers{{ID: oracleStaff, Label: "desk 3"}}, []int64{oracleGroup}
}

// oracleWorld is one program: world A (the target registered) or world B.
type oracleWorld struct {
	a        *apptest.App
	clk      *apptest.Clock
	public   *prometheus.Registry // what anyone scraping /metrics sees
	ops      *prometheus.Registry // the operator's, behind the ops token
	link     string               // the latest staff deep-link token
	seen     map[string]int       // messages read so far, per phone
	total    int                  // messages read so far, all phones
	codeSeen map[string][]string  // code → the phones it went to
}

var oraclePhones = []string{oracleTarget, oracleBystander, oracleNobody, oracleFarAway}

func newOracleWorld(t *testing.T, registered bool) *oracleWorld {
	t.Helper()
	w := &oracleWorld{clk: apptest.NewClock(time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)),
		public: prometheus.NewRegistry(), ops: prometheus.NewRegistry(), seen: map[string]int{}, codeSeen: map[string][]string{}}
	w.a = apptest.New(t, apptest.Options{Config: oracleCaps,
		// Logs are another test's business (TestLogsOfAWholeFlowCarryNoPII);
		// formatting ten thousand steps' worth would dominate this one.
		Deps: app.Deps{Now: w.clk.Now, Registry: w.public, OpsRegistry: w.ops, SMSWorkers: 1, Logger: slog.New(slog.DiscardHandler)}})
	people := []apptest.Person{{Ref: "50000000000090", Name: "Bina Das", Mobile: oracleBystander}}
	for i, u := range oracleUsers {
		people = append(people, apptest.Person{Ref: fmt.Sprintf("500000000000%02d", 10+i), Name: fmt.Sprintf("Own Person %d", u), Mobile: ownMobile(u)})
	}
	if registered {
		people = append(people, apptest.Person{Ref: oracleTargetRef, Name: "Secret Person", Mobile: oracleTarget, ID: "777788889999"})
	}
	w.a.Import(t, people...)
	return w
}

// oracleAction is one step of a sequence, decided before either world acts.
type oracleAction struct {
	user    int64
	group   bool   // in the helpdesk group (staff) rather than the private chat
	text    string // literal text; see kind for texts that depend on the world
	kind    string // "", "own-code" (the latest code on the user's own phone), "redeem" (the latest staff link)
	contact *bot.Contact
	advance time.Duration
}

func (a oracleAction) String() string {
	s := fmt.Sprintf("user %d", a.user)
	if a.group {
		s += " in the group"
	}
	switch {
	case a.contact != nil:
		s += fmt.Sprintf(" shares contact %s (user id %d)", a.contact.Phone, a.contact.UserID)
	case a.kind != "":
		s += " types " + a.kind
	default:
		s += fmt.Sprintf(" types %q", a.text)
	}
	return s + fmt.Sprintf(" after %s", a.advance)
}

// oraclePlan draws the steps. It remembers only its own earlier actions,
// never what either world did.
type oraclePlan struct {
	rng        *rand.Rand
	lookedUpBy map[string]int64 // a requester's own mobile → the last other user who looked it up
	probe      int64            // a user whose code for someone else's number the owner just took over
}

func newOraclePlan(seed uint64) *oraclePlan {
	return &oraclePlan{rng: rand.New(rand.NewPCG(seed, 11)), lookedUpBy: map[string]int64{}}
}

// next draws a step. Wrong codes are drawn so that they match no code sent
// in either world (a lucky guess is not what this test is about). Half the
// time after an owner shares their contact, the stranger who last asked for
// a code to that number types one: the takeover path is otherwise rare.
func (p *oraclePlan) next(worlds ...*oracleWorld) oracleAction {
	rng := p.rng
	wrong := func() string {
		for {
			c := fmt.Sprintf("%06d", rng.IntN(1000000))
			if !slices.ContainsFunc(worlds, func(w *oracleWorld) bool { return len(w.codeSeen[c]) > 0 }) {
				return c
			}
		}
	}
	if v := p.probe; v != 0 {
		p.probe = 0
		if rng.IntN(2) == 0 {
			return oracleAction{user: v, text: wrong(), advance: time.Second}
		}
	}
	act := p.draw(wrong)
	switch {
	case act.contact != nil && act.contact.UserID == act.user:
		p.probe = p.lookedUpBy[ownMobile(act.user)]
	case !act.group && strings.HasPrefix(act.text, "/lookup 90000003"):
		if m := strings.TrimPrefix(act.text, "/lookup "); m != ownMobile(act.user) {
			p.lookedUpBy[m] = act.user
		}
	}
	return act
}

func (p *oraclePlan) draw(wrong func() string) oracleAction {
	rng := p.rng
	advances := []time.Duration{0, 0, 0, time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, 61 * time.Second}
	act := oracleAction{user: oracleUsers[rng.IntN(len(oracleUsers))], advance: advances[rng.IntN(len(advances))]}
	switch n := rng.IntN(200); {
	case n == 0:
		act.advance = 25 * time.Hour
	case n < 3:
		act.advance = 61 * time.Minute
	case n < 11:
		act.advance = 3 * time.Minute
	}
	other := oracleUsers[rng.IntN(len(oracleUsers))]
	targets := []string{oracleTarget, oracleTarget, oracleTarget, ownMobile(act.user), ownMobile(other), ownMobile(other), ownMobile(other), oracleBystander, oracleNobody, oracleFarAway}
	switch n := rng.IntN(100); {
	case n < 24:
		act.text = "/lookup " + targets[rng.IntN(len(targets))]
	case n < 34:
		act.contact = &bot.Contact{Phone: "+91" + ownMobile(act.user), UserID: act.user}
	case n < 36:
		act.contact = &bot.Contact{Phone: oracleTarget, UserID: act.user + 1000} // someone else's card
	case n < 50:
		act.kind = "own-code"
	case n < 72:
		act.text = wrong()
	case n < 84:
		act.user, act.group = oracleStaff, true
		staffTargets := []string{oracleTarget, oracleTargetRef, oracleTargetRef, ownMobile(oracleStaff), oracleNobody, "50000000000090"}
		act.text = "/lookup " + staffTargets[rng.IntN(len(staffTargets))]
	case n < 90:
		act.user, act.kind = oracleStaff, "redeem"
	default:
		act.text = []string{"/cancel", "/logout", "/start", "/history", "/lookup"}[rng.IntN(5)]
	}
	return act
}

var (
	oracleTagRe  = regexp.MustCompile(`request ([` + otp.TagLetters + `]{2}[0-9]{2})\b`)
	oracleCodeRe = regexp.MustCompile(`\b\d{6}\b`)
)

// oracleHistory keeps the last steps, for a failure's message.
type oracleHistory []oracleRecord

type oracleRecord struct {
	step    int
	act     oracleAction
	replies string
}

func (h oracleHistory) String() string {
	var b strings.Builder
	for _, r := range h {
		fmt.Fprintf(&b, "%4d %s\n     %s\n", r.step, r.act, strings.ReplaceAll(strings.TrimSpace(r.replies), "\n", "\n     "))
	}
	return b.String()
}

// oracleStep is what one requester could observe of one step in one world.
type oracleStep struct {
	replies string   // every reply, in order, tags and link tokens masked
	sms     []string // new SMS on the requesters' own phones, codes and tags masked
	metrics string   // the public metrics
	tags    []string // the tags the replies showed (checked within the world)
	smsTags []string // the tags the new own-phone SMS name
	toHide  int      // new SMS to the target (world A only, unobservable)
}

// text resolves a world-dependent action; ok is false when the step must
// be skipped in every world (nothing to type, or a code that also went to
// a phone the user does not hold).
func (w *oracleWorld) text(act oracleAction) (string, bool) {
	switch act.kind {
	case "own-code":
		own := ownMobile(act.user)
		c := w.a.Phone.Code(own)
		for _, m := range w.codeSeen[c] {
			if m != own {
				return "", false
			}
		}
		return c, c != ""
	case "redeem":
		return "/start " + w.link, w.link != ""
	}
	return act.text, true
}

// do runs one step and returns what a requester could observe of it. It
// may run on a goroutine of its own: it reports failures as errors.
func (w *oracleWorld) do(act oracleAction, text string) (oracleStep, error) {
	w.clk.Add(act.advance)
	u := bot.Update{UserID: act.user, ChatID: act.user, ChatKind: bot.ChatPrivate, MessageID: 7, Text: text, Contact: act.contact, Lang: "en"}
	if act.group {
		u.ChatID, u.ChatKind = oracleGroup, bot.ChatGroup
	}
	replies := w.a.Engine.Handle(context.Background(), u)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var st oracleStep
	if err := w.a.OTP.Idle(ctx); err != nil {
		return st, err
	}
	var b strings.Builder
	for _, r := range replies {
		for _, m := range oracleTagRe.FindAllStringSubmatch(r.Text, -1) {
			st.tags = append(st.tags, m[1])
		}
		fmt.Fprintf(&b, "[chat %d] %s", r.ChatID, oracleTagRe.ReplaceAllString(r.Text, "request <tag>"))
		for _, row := range r.Buttons {
			for _, btn := range row {
				fmt.Fprintf(&b, " |%s %s", btn.Text, btn.Data)
				if btn.Start != "" {
					w.link = btn.Start
					b.WriteString(" <link>")
				}
			}
		}
		fmt.Fprintf(&b, " {contact=%q remove=%v sensitive=%v delete_after=%s delete=%d leave=%v delete_failed=%q answer=%q}\n",
			r.ContactButton, r.RemoveKeyboard, r.Sensitive, r.DeleteAfter, r.DeleteMessage, r.LeaveChat, r.DeleteFailed, r.AnswerCallback)
	}
	st.replies = b.String()
	if n := w.a.Phone.Count(); n != w.total {
		w.total = n
		w.readPhones(&st)
	}
	var err error
	st.metrics, err = scrape(w.public)
	return st, err
}

// readPhones collects the messages every phone received since the last call.
func (w *oracleWorld) readPhones(st *oracleStep) {
	phones := slices.Clone(oraclePhones)
	for _, u := range oracleUsers {
		phones = append(phones, ownMobile(u))
	}
	for _, p := range phones {
		msgs := w.a.Phone.Messages(p)
		for _, m := range msgs[w.seen[p]:] {
			for _, c := range oracleCodeRe.FindAllString(m, -1) {
				w.codeSeen[c] = append(w.codeSeen[c], p)
			}
			switch {
			case p == oracleTarget:
				st.toHide++
			case !slices.Contains(oraclePhones, p): // a requester's own phone
				for _, m := range oracleTagRe.FindAllStringSubmatch(m, -1) {
					st.smsTags = append(st.smsTags, m[1])
				}
				masked := oracleTagRe.ReplaceAllString(oracleCodeRe.ReplaceAllString(m, "<code>"), "request <tag>")
				st.sms = append(st.sms, p+": "+masked)
			}
		}
		w.seen[p] = len(msgs)
	}
}

// scrape renders every otpgate_ series of reg, sorted.
func scrape(reg *prometheus.Registry) (string, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return "", err
	}
	var lines []string
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "otpgate_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			var b strings.Builder
			b.WriteString(mf.GetName())
			b.WriteByte('{')
			for _, l := range m.GetLabel() {
				b.WriteString(l.GetName() + "=" + l.GetValue() + ",")
			}
			b.WriteString("} ")
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
			b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
			lines = append(lines, b.String())
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n"), nil
}

func mustScrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	s, err := scrape(reg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// diffLines lists the lines of a and b that the other lacks.
func diffLines(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for _, l := range al {
		if !slices.Contains(bl, l) {
			out = append(out, "A: "+l)
		}
	}
	for _, l := range bl {
		if !slices.Contains(al, l) {
			out = append(out, "B: "+l)
		}
	}
	return strings.Join(out, "\n")
}

// counts returns the samples of one counter family of reg by label value.
func counts(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			key := ""
			if len(m.GetLabel()) > 0 {
				key = m.GetLabel()[0].GetValue()
			}
			out[key] += m.GetCounter().GetValue()
		}
	}
	return out
}

// TestNothingObservableTellsRegistered is the property of issue 11: for
// randomised sequences of lookups (typed, by a shared contact, by staff by
// mobile and by reference id), right and wrong codes, cancels, logouts and
// clock jumps by several requesters, everything a requester can observe is
// the same whether the target is registered (world A) or not (world B): the
// replies (text, order, count, buttons, flags), the SMS on the requesters'
// own registered phones (order, count, text), and the public metrics. Both
// worlds run the same sequence; only world A's target phone, which no
// requester holds, gets SMS.
func TestNothingObservableTellsRegistered(t *testing.T) {
	const seeds, steps = 10, 1000 // 10,000 steps, each run in both worlds
	var (
		mu              sync.Mutex // guards the totals
		coverage        = map[string]float64{}
		hidden, skipped int
		next            = make(chan uint64, seeds)
		runners         sync.WaitGroup
	)
	for seed := range uint64(seeds) {
		next <- seed
	}
	close(next)
	// A few seeds at a time: each step is a chain of hand-offs between
	// goroutines (engine, SMS queue, Badger's writer) more than it is work,
	// so several chains overlap well even on two cores.
	for range parallelSeeds {
		runners.Go(func() {
			for seed := range next {
				// A subtest per seed: its two programs are torn down when it ends.
				t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { runOracleSeed(t, seed, steps, &mu, coverage, &hidden, &skipped) })
			}
		})
	}
	runners.Wait()
	if t.Failed() {
		return
	}
	t.Logf("%d steps (%d skipped), %d SMS to the target in world A; coverage: %v", seeds*steps, skipped, hidden, coverage)
	if hidden < 50 {
		t.Errorf("only %d SMS reached the target in world A: the worlds hardly differed", hidden)
	}
	for _, want := range []string{"not sent: no_target", "not sent: requester_limited", "not sent: requester_locked", "not sent: cooldown",
		"not sent: mobile_hourly_limit", "not sent: mobile_locked", "not sent: owner_limit", "not sent: prefix_velocity", "not sent: global_limit",
		"verify: verified", "verify: wrong", "verify: no_challenge", "verify: expired", "verify: attempts_exhausted",
		"verify: replaced_by_owner", "verify: mobile_locked", "verify: requester_locked", "released"} {
		if coverage[want] == 0 {
			t.Errorf("the sequences never reached %q", want)
		}
	}
}

// parallelSeeds is how many seeds run at once.
const parallelSeeds = 2

// runOracleSeed runs one seed's sequence in both worlds, comparing every
// step, and adds what world A did to the totals.
func runOracleSeed(t *testing.T, seed uint64, steps int, mu *sync.Mutex, coverage map[string]float64, hidden, skipped *int) {
	worldA, worldB := newOracleWorld(t, true), newOracleWorld(t, false)
	plan := newOraclePlan(seed)
	var history oracleHistory
	for step := range steps {
		act := plan.next(worldA, worldB)
		textA, okA := worldA.text(act)
		textB, okB := worldB.text(act)
		if act.kind == "own-code" {
			// Whether the requester's own phone holds a code must not differ
			// (the SMS comparison of earlier steps says the same); a code
			// whose digits also went to another phone (random codes collide
			// now and then, more often in the world that sends more) is
			// ambiguous to type, so such a step is skipped in both worlds.
			hasA, hasB := worldA.a.Phone.Code(ownMobile(act.user)) != "", worldB.a.Phone.Code(ownMobile(act.user)) != ""
			if hasA != hasB {
				t.Fatalf("seed %d step %d: the own phone holds a code in one world only (A %v, B %v)\n%s", seed, step, hasA, hasB, history)
			}
			okA, okB = okA && okB, okA && okB
		}
		if okA != okB {
			t.Fatalf("seed %d step %d: %s can be typed in one world only (A %v, B %v)\n%s", seed, step, act, okA, okB, history)
		}
		if !okA {
			mu.Lock()
			*skipped++
			mu.Unlock()
			continue
		}
		// The worlds are independent programs: run them side by side.
		var (
			a, b       oracleStep
			errA, errB error
			wg         sync.WaitGroup
		)
		wg.Go(func() { a, errA = worldA.do(act, textA) })
		b, errB = worldB.do(act, textB)
		wg.Wait()
		if err := errors.Join(errA, errB); err != nil {
			t.Fatalf("seed %d step %d: %v", seed, step, err)
		}
		history = append(history, oracleRecord{step, act, a.replies})
		if len(history) > 12 {
			history = history[1:]
		}
		fail := func(what string, x, y any) {
			t.Fatalf("seed %d step %d: %s differs between world A (target registered) and world B (not):\nA: %v\nB: %v\nlast steps:\n%s\n"+
				"operator's metrics (world A, then B, where they differ; the operator may tell the worlds apart):\n%s",
				seed, step, what, x, y, history, diffLines(mustScrape(t, worldA.ops), mustScrape(t, worldB.ops)))
		}
		if a.replies != b.replies {
			fail("the replies", a.replies, b.replies)
		}
		if !slices.Equal(a.sms, b.sms) {
			fail("the SMS on the requesters' own phones", a.sms, b.sms)
		}
		if a.metrics != b.metrics {
			fail("the public metrics", a.metrics, b.metrics)
		}
		if b.toHide != 0 {
			t.Fatalf("seed %d step %d: world B sent an SMS to a number it does not have", seed, step)
		}
		mu.Lock()
		*hidden += a.toHide
		mu.Unlock()
		// Within a world, an SMS to a requester's phone names the tag its
		// request's reply showed.
		for _, st := range []oracleStep{a, b} {
			for _, tag := range st.smsTags {
				if !slices.Contains(st.tags, tag) {
					t.Fatalf("seed %d step %d: an SMS names request %s, the chat was shown %v", seed, step, tag, st.tags)
				}
			}
		}
	}
	// What world A did behind the requesters' backs, and which limits
	// the sequence reached: the test proves nothing if these stay empty.
	mu.Lock()
	defer mu.Unlock()
	for k, v := range counts(t, worldA.ops, "otpgate_codes_not_sent_total") {
		coverage["not sent: "+k] += v
	}
	for k, v := range counts(t, worldA.ops, "otpgate_verification_outcomes_total") {
		coverage["verify: "+k] += v
	}
	for _, v := range counts(t, worldA.ops, "otpgate_codes_sent_total") {
		coverage["sent"] += v
	}
	for _, v := range counts(t, worldA.public, "otpgate_releases_total") {
		coverage["released"] += v
	}
}
