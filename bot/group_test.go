package bot_test

import (
	"context"
	"strings"
	"testing"

	"github.com/otpgate/otpgate/bot"
	"github.com/otpgate/otpgate/internal/app/apptest"
	"github.com/otpgate/otpgate/internal/config"
)

const (
	helpdesk = int64(-1001)
	agent    = int64(4521)
)

func newStaffHarness(t *testing.T) *apptest.App {
	t.Helper()
	a := apptest.New(t, apptest.Options{Lenient: true, Config: func(c *config.Config) {
		c.StaffUsers, c.StaffChats = config.StaffUsers{{ID: agent, Label: "desk 7"}}, []int64{helpdesk}
	}})
	a.Import(t, people...)
	return a
}

// TestGroupHygieneCaptionsAndEdits: personal data in a caption or an edited
// message is deleted like any other; neither ever starts a lookup.
func TestGroupHygieneCaptionsAndEdits(t *testing.T) {
	a := newStaffHarness(t)
	ctx := context.Background()
	for _, u := range []bot.Update{
		{Text: "for 9000000201 the code is 123456", Caption: true},
		{Text: "98765\u200b43210", Edited: true},
		{Text: "/lookup 9000000201", Edited: true},
		{Text: "/lookup 9000000201", Caption: true},
	} {
		u.ChatID, u.ChatKind, u.UserID, u.MessageID = helpdesk, bot.ChatGroup, agent, 77
		r := a.Engine.Handle(ctx, u)
		a.Idle(t)
		if len(r) != 1 || r[0].DeleteMessage != 77 {
			t.Errorf("%+v: replies %+v, want the message deleted with a warning", u, r)
		}
	}
	if n := a.Phone.Count(); n != 0 {
		t.Fatalf("an edited message or a caption triggered %d SMS", n)
	}
}

// TestPrivateEditsAndCaptionsAreNotCodes: in a private chat an edited
// message and a caption neither count as a code nor start a lookup.
func TestPrivateEditsAndCaptionsAreNotCodes(t *testing.T) {
	a := newStaffHarness(t)
	ctx := context.Background()
	send := func(u bot.Update) []bot.Reply {
		u.ChatID, u.UserID, u.ChatKind = 9, 9, bot.ChatPrivate
		r := a.Engine.Handle(ctx, u)
		a.Idle(t)
		return r
	}
	send(bot.Update{Text: "/lookup 9000000201"})
	code := a.Phone.Code("9000000201")
	if code == "" {
		t.Fatal("no code sent")
	}
	if r := send(bot.Update{Text: code, Edited: true}); len(r) != 0 {
		t.Fatalf("an edited code was answered: %+v", r)
	}
	if r := send(bot.Update{Text: "/lookup 9000000202", Caption: true}); joined(r) == "" || a.Phone.Count() != 1 {
		t.Fatalf("a caption started a lookup or got no answer: %+v, %d SMS", r, a.Phone.Count())
	}
	// The code is still good: neither touched it.
	r := send(bot.Update{Text: code})
	if len(r) == 0 || len(r[0].Buttons) != 2 {
		t.Fatalf("the code no longer works after an edit and a caption: %s", joined(r))
	}
}

// TestStaffLinkOnlyForItsLookup: a one-time link works only for the lookup
// it came from; the code of a later lookup cannot be entered through it.
func TestStaffLinkOnlyForItsLookup(t *testing.T) {
	a := newStaffHarness(t)
	ctx := context.Background()
	lookup := func(id string) string {
		r := a.Engine.Handle(ctx, bot.Update{ChatID: helpdesk, ChatKind: bot.ChatGroup, UserID: agent, MessageID: 5, Text: "/lookup " + id})
		a.Idle(t)
		for _, rep := range r {
			for _, row := range rep.Buttons {
				for _, b := range row {
					if b.Start != "" {
						return b.Start
					}
				}
			}
		}
		t.Fatalf("no link: %+v", r)
		return ""
	}
	private := func(text string) string {
		r := a.Engine.Handle(ctx, bot.Update{ChatID: agent, ChatKind: bot.ChatPrivate, UserID: agent, MessageID: 6, Text: text})
		a.Idle(t)
		return joined(r)
	}
	first := lookup("9000000201")
	second := lookup("9000000202")
	private("/start " + first)
	if out := private(a.Phone.Code("9000000202")); strings.Contains(out, "Farah Khan") {
		t.Fatalf("the second lookup's code worked through the first lookup's link: %q", out)
	}
	// Through its own link, a fresh lookup's code works.
	third := lookup("9000000202")
	_ = second
	private("/start " + third)
	if out := private(a.Phone.Code("9000000202")); !strings.Contains(out, "Farah Khan") {
		t.Fatalf("the lookup's own link and code: %q", out)
	}
}
