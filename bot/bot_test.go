package bot_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/bot"
	"github.com/otpgate/otpgate/internal/app/apptest"
	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/otp"
	"github.com/otpgate/otpgate/otp/otptest"
	"github.com/otpgate/otpgate/store"
)

// people: two on one mobile, one alone.
var people = []apptest.Person{
	{Ref: "40000000000001", Name: "Sunita Devi", Mobile: "9000000201", ID: "612361236123", Doses: dose1},
	{Ref: "40000000000002", Name: "Raju Prasad", Mobile: "9000000201", ID: "612361236124", Doses: dose1},
	{Ref: "40000000000003", Name: "Farah Khan", Mobile: "9000000202", ID: "612361236125", Doses: dose1},
}

var dose1 = []store.Dose{{Number: 1, Vaccine: "COVISHIELD", Date: "2021-05-02", Center: "PHC Rampur"}}

type harness struct {
	eng  *bot.Engine
	svc  *otp.Service
	st   *store.Store
	ph   *otptest.Phone
	logs *apptest.Buffer
}

func newHarness(t *testing.T) *harness { return newHarnessFlood(t, 100000) }

// newHarnessFlood builds the program through the composition root with the
// send caps lifted (these tests run many flows from few users) and the
// given per-user message cap.
func newHarnessFlood(t *testing.T, flood int) *harness {
	t.Helper()
	a := apptest.New(t, apptest.Options{Lenient: true, Config: func(c *config.Config) { c.FloodPerMinute = flood }})
	a.Import(t, people...)
	return &harness{eng: a.Engine, svc: a.OTP, st: a.Store, ph: a.Phone, logs: a.Logs}
}

func (h *harness) send(t *testing.T, user int64, text string) []bot.Reply {
	t.Helper()
	r := h.eng.Handle(context.Background(), bot.Update{ChatID: user, UserID: user, ChatKind: bot.ChatPrivate, Text: text, MessageID: 7})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.svc.Idle(ctx); err != nil {
		t.Fatal(err)
	}
	return r
}

func joined(rs []bot.Reply) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString(r.Text)
		for _, row := range r.Buttons {
			for _, btn := range row {
				b.WriteString("|" + btn.Text)
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestBeneficiaryFlow(t *testing.T) {
	h := newHarness(t)
	if r := joined(h.send(t, 1, "/start")); !strings.Contains(r, "/lookup") {
		t.Fatalf("/start: %q", r)
	}
	r := h.send(t, 1, "/lookup")
	if len(r) != 1 || r[0].ContactButton == "" {
		t.Fatalf("/lookup without a number should offer the contact button: %+v", r)
	}
	h.send(t, 1, "९०००० ००२०१") // Devanagari digits
	code := h.ph.Code("9000000201")
	if code == "" {
		t.Fatal("no SMS")
	}
	r = h.send(t, 1, code[:3]+" "+code[3:])
	if len(r) != 1 || len(r[0].Buttons) != 2 || r[0].DeleteMessage != 7 || !r[0].Sensitive {
		t.Fatalf("after the code: want a protected chooser of 2 that deletes the code message, got %+v", r)
	}
	data := r[0].Buttons[1][0].Data
	r = h.eng.Handle(context.Background(), bot.Update{ChatID: 1, UserID: 1, ChatKind: bot.ChatPrivate, Callback: &bot.Callback{ID: "cb1", Data: data}})
	if len(r) != 1 || r[0].AnswerCallback != "cb1" || !r[0].Sensitive || r[0].DeleteAfter != 10*time.Minute {
		t.Fatalf("release reply: %+v", r)
	}
	for _, want := range []string{"Raju Prasad", "1975", "COVISHIELD", "PHC Rampur", "40000000000002", "6124"} {
		if !strings.Contains(r[0].Text, want) {
			t.Errorf("record text lacks %q:\n%s", want, r[0].Text)
		}
	}
	if strings.Contains(r[0].Text, "612361236124") {
		t.Error("record text shows the full ID number")
	}
	// The same button pressed by another user releases nothing.
	r = h.eng.Handle(context.Background(), bot.Update{ChatID: 2, UserID: 2, ChatKind: bot.ChatPrivate, Callback: &bot.Callback{ID: "cb2", Data: data}})
	if strings.Contains(joined(r), "Raju") || r[0].AnswerCallback != "cb2" {
		t.Fatalf("forged callback: %+v", r)
	}
	// Logout ends it.
	h.send(t, 1, "/logout")
	r = h.eng.Handle(context.Background(), bot.Update{ChatID: 1, UserID: 1, ChatKind: bot.ChatPrivate, Callback: &bot.Callback{ID: "cb3", Data: data}})
	if strings.Contains(joined(r), "Raju") {
		t.Fatalf("released after logout: %+v", r)
	}
}

// tagRe finds the request tag a reply or an SMS names.
var tagRe = regexp.MustCompile(`\b[` + otp.TagLetters + `]{2}[0-9]{2}\b`)

// untagged returns s with its one request tag replaced by a placeholder,
// and the tag; it fails the test unless s names exactly one tag.
func untagged(t *testing.T, s string) (string, string) {
	t.Helper()
	tags := tagRe.FindAllString(s, -1)
	if len(tags) != 1 {
		t.Fatalf("want one request tag in %q, found %v", s, tags)
	}
	return strings.Replace(s, tags[0], "<tag>", 1), tags[0]
}

func TestRegisteredAndUnknownLookAlike(t *testing.T) {
	h := newHarness(t)
	known, knownTag := untagged(t, joined(h.send(t, 1, "/lookup 9000000202")))
	unknown, _ := untagged(t, joined(h.send(t, 2, "/lookup 9876543210")))
	if known != unknown {
		t.Fatalf("replies differ:\nknown:   %q\nunknown: %q", known, unknown)
	}
	if sms := h.ph.Last("9000000202"); !strings.Contains(sms, "request "+knownTag) {
		t.Fatalf("the chat was shown tag %s, the SMS says %q", knownTag, sms)
	}
	// And the wrong-code replies are the same whatever the reason.
	wrongKnown := joined(h.send(t, 1, "000000"))
	wrongUnknown := joined(h.send(t, 2, "000000"))
	noFlow := joined(h.send(t, 3, "000000"))
	if wrongKnown != wrongUnknown || wrongKnown != noFlow {
		t.Fatalf("rejections differ:\n%q\n%q\n%q", wrongKnown, wrongUnknown, noFlow)
	}
}

func TestOddInput(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	cases := []struct {
		name string
		u    bot.Update
		want string
	}{
		{"sticker", bot.Update{Unsupported: true}, "only read text"},
		{"huge", bot.Update{Text: strings.Repeat("9", 100000)}, "too long"},
		{"unknown command", bot.Update{Text: "/sudo give me everything"}, "don't know that command"},
		{"contact of someone else", bot.Update{Contact: &bot.Contact{Phone: "919000000201", UserID: 999}}, "your own phone number"},
		{"contact without user id", bot.Update{Contact: &bot.Contact{Phone: "919000000201"}}, "your own phone number"},
		{"not a number", bot.Update{Text: "/lookup call me maybe"}, "doesn't look like a mobile"},
		{"stale button", bot.Update{Callback: &bot.Callback{ID: "x", Data: "r:deadbeef"}}, "expired"},
		{"garbage callback", bot.Update{Callback: &bot.Callback{ID: "x", Data: "\x00\xff"}}, "expired"},
		{"emoji", bot.Update{Text: "👋"}, "/lookup"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.u.ChatID, c.u.UserID = int64(100+i), int64(100+i)
			r := h.eng.Handle(ctx, c.u)
			if !strings.Contains(joined(r), c.want) {
				t.Fatalf("reply %q lacks %q", joined(r), c.want)
			}
		})
	}
	if n := h.ph.Count(); n != 0 {
		t.Fatalf("odd input sent %d SMS", n)
	}
	// A contact of one's own is accepted, with or without "+".
	r := h.eng.Handle(ctx, bot.Update{ChatID: 51, UserID: 51, Contact: &bot.Contact{Phone: "919000000202", UserID: 51}})
	if !strings.Contains(joined(r), "code has been sent") {
		t.Fatalf("own contact: %q", joined(r))
	}
}

func TestHindi(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	r := h.eng.Handle(ctx, bot.Update{ChatID: 5, UserID: 5, Lang: "hi-IN", Text: "/start"})
	if !regexp.MustCompile(`\p{Devanagari}`).MatchString(joined(r)) {
		t.Fatalf("client language hi: %q", joined(r))
	}
	h.eng.Handle(ctx, bot.Update{ChatID: 5, UserID: 5, Lang: "hi-IN", Text: "/language en"})
	r = h.eng.Handle(ctx, bot.Update{ChatID: 5, UserID: 5, Lang: "hi-IN", Text: "/start"})
	if !strings.Contains(joined(r), "Hello") {
		t.Fatalf("/language en did not stick: %q", joined(r))
	}
}

// TestRandomisedNoFieldWithoutCode drives several users with random
// messages — other people's mobiles, guessed codes, forged buttons, real
// codes of others — and checks that a record field only ever reaches a user
// who typed the code sent to that record's mobile.
func TestRandomisedNoFieldWithoutCode(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	mobiles := []string{"9000000201", "9000000202", "9876500000"}
	// verified[user] = mobiles whose code that user typed correctly.
	verified := map[int64]map[string]bool{}
	lastLookup := map[int64]string{}
	var handles []string
	releases, refusals := 0, 0
	for step := 0; step < 600; step++ {
		user := int64(1 + rng.IntN(4))
		var u bot.Update
		switch rng.IntN(7) {
		case 0:
			m := mobiles[rng.IntN(len(mobiles))]
			lastLookup[user] = m
			u.Text = "/lookup " + m
		case 1: // the real code of the mobile this user asked for
			if m := lastLookup[user]; m != "" {
				u.Text = h.ph.Code(m)
			}
		case 2: // a code meant for someone else's mobile
			u.Text = h.ph.Code(mobiles[rng.IntN(2)])
		case 3:
			u.Text = fmt.Sprintf("%06d", rng.IntN(1000000))
		case 4:
			if len(handles) > 0 {
				u.Callback = &bot.Callback{ID: "c", Data: "r:" + handles[rng.IntN(len(handles))]}
			} else {
				u.Text = "/help"
			}
		case 5:
			u.Text = []string{"/logout", "/cancel", "/start", "/privacy"}[rng.IntN(4)]
		case 6:
			u.Text = people[rng.IntN(len(people))].Ref
		}
		if u.Text == "" && u.Callback == nil {
			continue
		}
		u.ChatID, u.UserID, u.ChatKind = user, user, bot.ChatPrivate
		// Which mobile's code is this, if any? Read the phone before acting.
		codeFor := ""
		for _, m := range mobiles {
			if c := h.ph.Code(m); c != "" && c == u.Text && lastLookup[user] == m {
				codeFor = m
			}
		}
		replies := h.eng.Handle(ctx, u)
		if err := h.svc.Idle(ctx); err != nil {
			t.Fatal(err)
		}
		out := joined(replies)
		for _, r := range replies {
			for _, row := range r.Buttons {
				for _, b := range row {
					if h, ok := strings.CutPrefix(b.Data, "r:"); ok {
						handles = append(handles, h)
					}
				}
			}
		}
		if codeFor != "" && (strings.Contains(out, "Verified") || strings.Contains(out, "Reference ID")) {
			if verified[user] == nil {
				verified[user] = map[string]bool{}
			}
			verified[user][codeFor] = true
		}
		if u.Text == "/logout" {
			delete(verified, user)
		}
		if strings.Contains(out, "didn't work") || strings.Contains(out, "expired") || strings.Contains(out, "session has ended") {
			refusals++
		}
		for _, p := range people {
			if strings.Contains(out, p.Name) || strings.Contains(out, p.Ref) {
				releases++
				if !verified[user][p.Mobile] {
					t.Fatalf("step %d: user %d saw %s without verifying %s; update %+v\n%s", step, user, p.Name, p.Mobile, u, out)
				}
			}
		}
	}
	// The run must exercise both sides, or it proves nothing.
	if releases < 10 || refusals < 50 {
		t.Fatalf("too little exercised: %d releases, %d refusals", releases, refusals)
	}
	t.Logf("%d releases, %d refusals", releases, refusals)
}

func TestLogsOfAWholeFlowCarryNoPII(t *testing.T) {
	h := newHarness(t)
	h.send(t, 1, "/lookup +91 90000 00201")
	code := h.ph.Code("9000000201")
	h.send(t, 1, "111111")
	r := h.send(t, 1, code)
	h.eng.Handle(context.Background(), bot.Update{ChatID: 1, UserID: 1, Callback: &bot.Callback{ID: "c", Data: r[0].Buttons[0][0].Data}})
	h.send(t, 1, "/logout")
	logs := h.logs.String()
	if !strings.Contains(logs, "code verified") {
		t.Fatalf("flow did not complete:\n%s", logs)
	}
	for _, p := range people[:2] {
		for _, s := range []string{p.Name, p.Ref, p.ID, p.Mobile, strings.Fields(p.Name)[0]} {
			if strings.Contains(logs, s) {
				t.Errorf("logs contain %q", s)
			}
		}
	}
	if strings.Contains(logs, code) {
		t.Errorf("logs contain the code")
	}
}

func TestFloodControl(t *testing.T) {
	h := newHarnessFlood(t, 5)
	ctx := context.Background()
	var replies []string
	for i := 0; i < 9; i++ {
		replies = append(replies, joined(h.eng.Handle(ctx, bot.Update{ChatID: 1, UserID: 1, Text: "/help"})))
	}
	for i, r := range replies {
		switch {
		case i < 5 && !strings.Contains(r, "Commands:"):
			t.Fatalf("message %d within the cap: %q", i, r)
		case i == 5 && !strings.Contains(r, "too fast"):
			t.Fatalf("first message past the cap should be told to slow down: %q", r)
		case i > 5 && r != "":
			t.Fatalf("message %d past the cap should get silence: %q", i, r)
		}
	}
	// A button press past the cap is still answered, silently.
	r := h.eng.Handle(ctx, bot.Update{ChatID: 1, UserID: 1, Callback: &bot.Callback{ID: "cb", Data: "lang:hi"}})
	if len(r) != 1 || r[0].AnswerCallback != "cb" || r[0].Text != "" {
		t.Fatalf("callback past the cap: %+v", r)
	}
	// Another user is not affected.
	if r := joined(h.eng.Handle(ctx, bot.Update{ChatID: 2, UserID: 2, Text: "/help"})); !strings.Contains(r, "Commands:") {
		t.Fatalf("other user: %q", r)
	}
}

func TestGroupsGetExplanationAndLeave(t *testing.T) {
	h := newHarness(t)
	r := h.eng.Handle(context.Background(), bot.Update{ChatID: -100, UserID: 5, ChatKind: bot.ChatGroup, AddedToGroup: true})
	if len(r) != 1 || !r[0].LeaveChat || !strings.Contains(r[0].Text, "private") {
		t.Fatalf("added to a group: %+v", r)
	}
	r = h.eng.Handle(context.Background(), bot.Update{ChatID: -100, UserID: 5, ChatKind: bot.ChatGroup, Text: "/lookup 9000000201"})
	if len(r) != 1 || !r[0].LeaveChat || strings.Contains(joined(r), "code") {
		t.Fatalf("lookup in a group: %+v", r)
	}
	if r := h.eng.Handle(context.Background(), bot.Update{ChatID: -100, UserID: 5, ChatKind: bot.ChatGroup, Text: "hello"}); len(r) != 0 {
		t.Fatalf("chatter in a group should get silence: %+v", r)
	}
	if h.ph.Count() != 0 {
		t.Fatal("a group message sent an SMS")
	}
}
