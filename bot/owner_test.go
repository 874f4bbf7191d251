package bot_test

import (
	"context"
	"strings"
	"testing"

	"github.com/otpgate/otpgate/bot"
	"github.com/otpgate/otpgate/internal/app/apptest"
	"github.com/otpgate/otpgate/internal/config"
)

// TestStrangersCannotLockTheOwnerOut: with the shipped limits, strangers
// spend a mobile's hourly codes; its owner, sharing their own Telegram
// contact, still gets one — named by the tag their chat shows — and the
// strangers' codes die with it.
func TestStrangersCannotLockTheOwnerOut(t *testing.T) {
	a := apptest.New(t, apptest.Options{Config: func(c *config.Config) { c.FloodPerMinute = 1000 }})
	a.Import(t, people...)
	h := &harness{eng: a.Engine, svc: a.OTP, st: a.Store, ph: a.Phone, logs: a.Logs}
	const owner = "9000000202"
	for u := int64(101); u <= 106; u++ {
		h.send(t, u, "/lookup "+owner)
	}
	if got := len(a.Phone.Messages(owner)); got != 5 {
		t.Fatalf("six strangers got %d codes sent to the owner's phone, want the hourly 5", got)
	}
	strangerCode := a.Phone.Code(owner)
	r := h.eng.Handle(context.Background(), bot.Update{ChatID: 7, UserID: 7, ChatKind: bot.ChatPrivate,
		Contact: &bot.Contact{Phone: "91" + owner, UserID: 7}})
	a.Idle(t)
	_, tag := untagged(t, joined(r))
	sms := a.Phone.Messages(owner)
	if len(sms) != 6 || !strings.Contains(sms[5], "request "+tag) {
		t.Fatalf("the owner's contact-proved request: tag %s, SMS %q", tag, sms)
	}
	if out := joined(h.send(t, 105, strangerCode)); !strings.Contains(out, "didn't work") {
		t.Fatalf("a stranger's code after the owner's request: %q", out)
	}
	if out := joined(h.send(t, 7, a.Phone.Code(owner))); !strings.Contains(out, "Farah Khan") {
		t.Fatalf("the owner's code: %q", out)
	}
	// A typed number is not a proof: past the hourly 5 the owner typing it
	// gets nothing more.
	h.send(t, 8, "/lookup "+owner)
	if got := len(a.Phone.Messages(owner)); got != 6 {
		t.Fatalf("a typed lookup drew on the owner's reserve: %d SMS", got)
	}
}

func TestStaffReplyShowsTheTagTheSMSNames(t *testing.T) {
	a := apptest.New(t, apptest.Options{Lenient: true, Config: func(c *config.Config) {
		c.StaffUsers, c.StaffChats = config.StaffUsers{{ID: 77, Label: "desk 77"}}, []int64{-5}
	}})
	a.Import(t, people...)
	r := a.Engine.Handle(context.Background(), bot.Update{ChatID: -5, UserID: 77, ChatKind: bot.ChatGroup, MessageID: 3, Text: "/lookup " + people[2].Ref})
	a.Idle(t)
	_, tag := untagged(t, joined(r))
	if sms := a.Phone.Last(people[2].Mobile); !strings.Contains(sms, "request "+tag) || !strings.Contains(sms, "#desk 77") {
		t.Fatalf("group reply tag %s, SMS %q", tag, sms)
	}
}
