package bot_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/bot"
	"github.com/otpgate/otpgate/internal/app"
	"github.com/otpgate/otpgate/internal/app/apptest"
	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/proof"
	"github.com/otpgate/otpgate/store"
)

type certHarness struct {
	*apptest.App
	clock *apptest.Clock
	t     *testing.T
}

func newCertHarness(t *testing.T) *certHarness {
	t.Helper()
	clk := apptest.NewClock(time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC))
	a := apptest.New(t, apptest.Options{Lenient: true, Deps: app.Deps{Now: clk.Now}, Config: func(c *config.Config) {
		c.StaffUsers, c.StaffChats = config.StaffUsers{{ID: agent, Label: "desk 7"}}, []int64{helpdesk}
	}})
	a.Import(t, people...)
	a.Import(t, apptest.Person{Ref: "40000000000004", Name: "Meena Kumari Rao", Mobile: "9000000203", BirthYear: 1990, Gender: "F",
		Doses: []store.Dose{{Number: 1, Vaccine: "COVAXIN", Date: "2021-06-01", Center: "CHC Tonk"}, {Number: 2, Vaccine: "COVAXIN", Date: "2021-07-09", Center: "CHC Tonk"}}})
	return &certHarness{App: a, clock: clk, t: t}
}

func (h *certHarness) send(user int64, u bot.Update) []bot.Reply {
	h.t.Helper()
	u.ChatID, u.UserID = user, user
	if u.ChatKind == 0 {
		u.ChatKind = bot.ChatPrivate
	}
	r := h.Engine.Handle(context.Background(), u)
	h.Idle(h.t)
	return r
}

func (h *certHarness) verified(user int64, mobile string) []bot.Reply {
	h.t.Helper()
	h.send(user, bot.Update{Text: "/lookup " + mobile})
	code := h.Phone.Code(mobile)
	if code == "" {
		h.t.Fatalf("no code for %s", mobile)
	}
	return h.send(user, bot.Update{Text: code})
}

func photos(rs []bot.Reply) (n int, last bot.Reply) {
	for _, r := range rs {
		if len(r.Photo) > 0 {
			n++
			last = r
		}
	}
	return n, last
}

// TestCertificateFlow: after a verified code, /certificate sends a QR
// image that a QR decoder reads, that verifies with the published keys,
// and that states exactly the minimum; the issuance is audited and shown
// in /history.
func TestCertificateFlow(t *testing.T) {
	h := newCertHarness(t)
	const user = 31
	h.verified(user, "9000000203")
	r := h.send(user, bot.Update{Text: "/certificate"})
	n, ph := photos(r)
	if n != 1 {
		t.Fatalf("/certificate sent %d images: %+v", n, r)
	}
	if ph.Sensitive || ph.DeleteAfter != 0 {
		t.Fatalf("the proof is meant to be kept: %+v", ph)
	}
	if strings.Contains(ph.Text, "Meena") || strings.Contains(ph.Text, "40000000000004") || !strings.Contains(ph.Text, "2027-02-28") {
		t.Fatalf("caption %q: should state status, doses and expiry only", ph.Text)
	}
	text, err := proof.DecodeImage(bytes.NewReader(ph.Photo))
	if err != nil {
		t.Fatalf("decoding the sent PNG: %v", err)
	}
	if text != ph.PhotoText {
		t.Fatalf("QR holds %q, reply says %q", text, ph.PhotoText)
	}
	c, err := proof.Verify(text, h.ProofKeys, proof.Revocations{}, h.clock.Now())
	if err != nil {
		t.Fatalf("verify with the published keys: %v", err)
	}
	want := proof.Claims{Issuer: "otpgate", IssuedAt: h.clock.Now(), Expires: h.clock.Now().Add(90 * 24 * time.Hour), ID: c.ID,
		Status: proof.StatusFull, Doses: 2, LastDose: "2021-07", BirthYear: 1990, Initials: c.Initials}
	if c != want || len(c.ID) != 16 || !strings.HasPrefix(c.Initials, "M") || strings.Contains(c.Initials, "eena") {
		t.Fatalf("claims %+v, want %+v", c, want)
	}
	entries, err := h.Store.AuditEntries(context.Background(), func(e store.AuditEntry) bool { return strings.Contains(e.Outcome, c.ID) })
	if err != nil || len(entries) != 1 || entries[0].Event != store.EventReleased {
		t.Fatalf("audit of the issuance: %+v, %v", entries, err)
	}
	if hist := joined(h.send(user, bot.Update{Text: "/history"})); !strings.Contains(hist, "a vaccination proof issued") {
		t.Fatalf("/history: %s", hist)
	}
}

// TestCertificateChooser: with several beneficiaries on the number, a
// chooser comes first, and the button issues that record's proof.
func TestCertificateChooser(t *testing.T) {
	h := newCertHarness(t)
	const user = 32
	h.verified(user, "9000000201")
	r := h.send(user, bot.Update{Text: "/certificate"})
	if n, _ := photos(r); n != 0 || len(r) != 1 || len(r[0].Buttons) != 2 {
		t.Fatalf("want a chooser of two: %+v", r)
	}
	data := r[0].Buttons[1][0].Data
	r = h.send(user, bot.Update{Callback: &bot.Callback{ID: "cb", Data: data}})
	if n, ph := photos(r); n != 1 || r[0].AnswerCallback != "cb" {
		t.Fatalf("pressing the button: %+v", r)
	} else if c, err := proof.Verify(ph.PhotoText, h.ProofKeys, proof.Revocations{}, h.clock.Now()); err != nil || c.Initials != "R.P." {
		t.Fatalf("Raju Prasad's proof: %+v, %v", c, err)
	}
}

// TestNoCertificateWithoutAGrant: no image without a verified code, after
// the grant expired, through the staff path, or for a record the grant
// does not cover.
func TestNoCertificateWithoutAGrant(t *testing.T) {
	h := newCertHarness(t)
	check := func(name string, r []bot.Reply) {
		t.Helper()
		if n, _ := photos(r); n != 0 {
			t.Errorf("%s: an image was sent", name)
		}
	}
	check("no code", h.send(41, bot.Update{Text: "/certificate"}))
	check("no code, forged button", h.send(41, bot.Update{Callback: &bot.Callback{ID: "x", Data: "c:00"}}))

	h.verified(42, "9000000203")
	h.clock.Add(11 * time.Minute) // the grant lasts 10
	check("expired grant", h.send(42, bot.Update{Text: "/certificate"}))

	// A handle the grant does not cover: another mobile's record.
	h.verified(43, "9000000201")
	other := h.send(43, bot.Update{Text: "/certificate"})[0].Buttons[0][0].Data
	h.verified(44, "9000000203")
	check("record not covered", h.send(44, bot.Update{Callback: &bot.Callback{ID: "y", Data: other}}))

	// The staff path: an agent's lookup, deep link and the owner's code.
	r := h.Engine.Handle(context.Background(), bot.Update{ChatID: helpdesk, UserID: agent, ChatKind: bot.ChatGroup, Text: "/lookup 9000000203", MessageID: 9})
	h.Idle(t)
	var token string
	for _, rep := range r {
		for _, row := range rep.Buttons {
			for _, b := range row {
				if b.Start != "" {
					token = b.Start
				}
			}
		}
	}
	if token == "" {
		t.Fatalf("no deep link: %+v", r)
	}
	h.send(agent, bot.Update{Text: "/start " + token})
	if rec := joined(h.send(agent, bot.Update{Text: h.Phone.Code("9000000203")})); !strings.Contains(rec, "Meena") {
		t.Fatalf("the staff flow did not release the record: %s", rec)
	}
	check("staff grant", h.send(agent, bot.Update{Text: "/certificate"}))
}
