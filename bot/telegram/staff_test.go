package telegram_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/otpgate/otpgate/bot"
	tf "github.com/otpgate/otpgate/bot/telegram/telegramtest"
	"github.com/otpgate/otpgate/store"
)

const (
	helpdesk = int64(-100500) // the allowlisted staff group
	stranger = int64(-100900) // any other group
	agentA   = int64(4521)
	agentB   = int64(4522)
)

func staffBackend(t *testing.T, mutate func(*bot.Options)) *backend {
	return newBackend(t, func(o *bot.Options) {
		o.StaffUsers = map[int64]string{agentA: "desk 7", agentB: "desk 9"}
		o.StaffChats = []int64{helpdesk}
		if mutate != nil {
			mutate(o)
		}
	})
}

func groupChat(id int64) tf.Chat { return tf.Chat{ID: id, Type: tf.TypeSupergroup, Title: "helpdesk"} }

// deepLinkToken reads the one-time token from the group reply's button.
func deepLinkToken(t *testing.T, m tf.SentMessage) string {
	t.Helper()
	for _, row := range tf.Buttons(m) {
		for _, b := range row {
			if u, err := url.Parse(b.URL); err == nil && u.Query().Get("start") != "" {
				if u.Host != "t.me" || u.Path != "/"+tf.DefaultBotUsername {
					t.Fatalf("deep link %q", b.URL)
				}
				return u.Query().Get("start")
			}
		}
	}
	t.Fatalf("no deep-link button in %+v", m)
	return ""
}

func TestStaffLookupReleasesOnlyInPrivate(t *testing.T) {
	t.Parallel()
	be := staffBackend(t, nil)
	synctest.Test(t, func(t *testing.T) {
		h := start(t, be, tf.Options{}, false)
		agent := tf.User{ID: agentA, FirstName: "Agent", LanguageCode: "en"}
		lookupMsg := h.fake.SendText(groupChat(helpdesk), agent, "/lookup 50000000000003") // by reference id
		reply := h.wait(t, helpdesk, 1)[0]
		token := deepLinkToken(t, reply)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.fake.WaitFor(ctx, func() bool { return contains(h.fake.Deleted(helpdesk), lookupMsg) }); err != nil {
			t.Fatal("the lookup (it names a person) was not removed from the group")
		}
		h.idle(t)
		sms := h.ph.Last("9000000302")
		if !strings.Contains(sms, "helpdesk agent #desk 7") || strings.Contains(sms, fmt.Sprint(agentA)) {
			t.Fatalf("consent SMS does not name the agent: %q", sms)
		}

		// The agent opens the private chat with the token and types the code.
		private := tf.Private(agentA)
		h.fake.SendText(private, agent, "/start "+token)
		h.wait(t, agentA, 1)
		h.fake.SendText(private, agent, h.ph.Code("9000000302"))
		rec := h.wait(t, agentA, 2)[1]
		if !strings.Contains(rec.Text, "Ayesha Siddiqui") || !rec.ProtectContent {
			t.Fatalf("staff release: %+v", rec)
		}
		if strings.Contains(rec.Text, "50000000000003") || !strings.Contains(rec.Text, "0003") {
			t.Fatalf("staff see the reference id masked to its last 4: %q", rec.Text)
		}
		// The audit names the agent for the lookup and the release.
		entries := h.audit(t, func(e store.AuditEntry) bool { return e.Agent == "desk 7" })
		var events []string
		for _, e := range entries {
			events = append(events, e.Event)
		}
		for _, want := range []string{store.EventCodeRequested, store.EventCodeSent, store.EventCodeVerified, store.EventReleased} {
			if !containsStr(events, want) {
				t.Fatalf("no %s audit entry naming the agent: %v", want, events)
			}
		}

		// The owner sees the agent in /history.
		owner := tf.User{ID: 9302, FirstName: "Ayesha", LanguageCode: "en"}
		h.fake.SendText(tf.Private(9302), owner, "/lookup 9000000302")
		h.wait(t, 9302, 1)
		h.idle(t)
		h.fake.SendText(tf.Private(9302), owner, h.ph.Code("9000000302"))
		h.wait(t, 9302, 2)
		h.fake.SendText(tf.Private(9302), owner, "/history")
		hist := h.wait(t, 9302, 3)[2]
		if !strings.Contains(hist.Text, "helpdesk agent #desk 7") || strings.Contains(hist.Text, fmt.Sprint(agentA)) || !strings.Contains(hist.Text, "you") {
			t.Fatalf("/history: %q", hist.Text)
		}
	})
}

func TestDeepLinkMisuseRefused(t *testing.T) {
	t.Parallel()
	be := staffBackend(t, func(o *bot.Options) { o.CodeTTL = 2 * time.Second })
	synctest.Test(t, func(t *testing.T) {
		h := start(t, be, tf.Options{}, false)
		agent := tf.User{ID: agentA, FirstName: "A"}
		other := tf.User{ID: agentB, FirstName: "B"}
		h.fake.SendText(groupChat(helpdesk), agent, "/lookup 9000000301")
		token := deepLinkToken(t, h.wait(t, helpdesk, 1)[0])

		// Another staff member, and a stranger, cannot use it.
		h.fake.SendText(tf.Private(agentB), other, "/start "+token)
		h.fake.SendText(tf.Private(777), tf.User{ID: 777}, "/start "+token)
		if m := h.wait(t, agentB, 1)[0]; !strings.Contains(m.Text, "not yours") {
			t.Fatalf("token used by another agent: %q", m.Text)
		}
		if m := h.wait(t, 777, 1)[0]; !strings.Contains(m.Text, "not yours") {
			t.Fatalf("token used by a stranger: %q", m.Text)
		}
		// Its owner can, once.
		h.fake.SendText(tf.Private(agentA), agent, "/start "+token)
		if m := h.wait(t, agentA, 1)[0]; !strings.Contains(m.Text, "Enter the 6-digit code") {
			t.Fatalf("owner: %q", m.Text)
		}
		h.fake.SendText(tf.Private(agentA), agent, "/start "+token)
		if m := h.wait(t, agentA, 2)[1]; !strings.Contains(m.Text, "already used") {
			t.Fatalf("reuse: %q", m.Text)
		}
		// A fresh token, after it expires.
		h.fake.SendText(groupChat(helpdesk), agent, "/lookup 9000000302")
		token = deepLinkToken(t, h.wait(t, helpdesk, 2)[1])
		advance(2100 * time.Millisecond) // the token expires
		h.fake.SendText(tf.Private(agentA), agent, "/start "+token)
		if m := h.wait(t, agentA, 3)[2]; !strings.Contains(m.Text, "expired") {
			t.Fatalf("expired token: %q", m.Text)
		}
		// A made-up token.
		h.fake.SendText(tf.Private(agentA), agent, "/start AAAAAAAAAAAAAAAAAAAAAA")
		if m := h.wait(t, agentA, 4)[3]; !strings.Contains(m.Text, "expired") {
			t.Fatalf("made-up token: %q", m.Text)
		}
	})
}

func TestWhoMayStartALookup(t *testing.T) {
	t.Parallel()
	be := staffBackend(t, nil)
	synctest.Test(t, func(t *testing.T) {
		h := start(t, be, tf.Options{}, false)
		citizen := tf.User{ID: 31, FirstName: "C"}
		h.fake.SendText(groupChat(helpdesk), citizen, "/lookup 9000000301")
		if m := h.wait(t, helpdesk, 1)[0]; !strings.Contains(m.Text, "Only helpdesk staff") {
			t.Fatalf("non-staff in the helpdesk group: %q", m.Text)
		}
		h.fake.AddedToGroup(groupChat(stranger), citizen)
		h.fake.SendText(groupChat(stranger), tf.User{ID: agentA, FirstName: "A"}, "/lookup 9000000301")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.fake.WaitFor(ctx, func() bool { return len(h.fake.Left()) >= 1 }); err != nil {
			t.Fatal("did not leave an unknown group")
		}
		if m := h.wait(t, stranger, 1)[0]; !strings.Contains(m.Text, "not enabled") {
			t.Fatalf("unknown group: %q", m.Text)
		}
		h.idle(t)
		if h.ph.Code("9000000301") != "" {
			t.Fatal("an SMS was sent for a lookup nobody was allowed to start")
		}
		// Staff in a private chat cannot start a staff lookup: /lookup there is
		// their own beneficiary lookup, and a code typed without a link is a
		// beneficiary code.
	})
}

func TestGroupHygiene(t *testing.T) {
	t.Parallel()
	be := staffBackend(t, nil)
	synctest.Test(t, func(t *testing.T) {
		h := start(t, be, tf.Options{}, false)
		citizen := tf.User{ID: 32, FirstName: "D"}
		posted := h.fake.SendText(groupChat(helpdesk), citizen, "my number is 90000 00301, please check")
		m := h.wait(t, helpdesk, 1)[0]
		if !strings.Contains(m.Text, "deleted a message") {
			t.Fatalf("warning: %q", m.Text)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.fake.WaitFor(ctx, func() bool { return contains(h.fake.Deleted(helpdesk), posted) }); err != nil {
			t.Fatal("not deleted")
		}
		h.fake.SendText(groupChat(helpdesk), citizen, "thanks, see you tomorrow")
		advance(time.Minute) // whatever the bot would say has been said
		if n := len(h.fake.Sent(helpdesk)); n != 1 {
			t.Fatalf("ordinary chatter got a reply: %d messages", n)
		}
	})
}

func TestGroupHygieneWithoutTheRight(t *testing.T) {
	t.Parallel()
	be := staffBackend(t, nil)
	synctest.Test(t, func(t *testing.T) {
		h := start(t, be, tf.Options{}, false)
		h.fake.FailNext("deleteMessage", 2, 400, 0) // "message can't be deleted"
		u := tf.User{ID: 33, FirstName: "E"}
		h.fake.SendText(groupChat(helpdesk), u, "code 123456")
		h.fake.SendText(groupChat(helpdesk), u, "ABCDE1234F is my PAN")
		msgs := h.wait(t, helpdesk, 3) // two warnings, one notice about the right
		notices := 0
		for _, m := range msgs {
			if strings.Contains(m.Text, "Delete messages") {
				notices++
			}
		}
		advance(time.Minute) // whatever the bot would say has been said
		if notices != 1 || len(h.fake.Sent(helpdesk)) != 3 {
			t.Fatalf("want exactly one notice about the missing right, got %d in %d messages", notices, len(h.fake.Sent(helpdesk)))
		}
	})
}

// TestRandomisedGroupsLeakNothing runs random sessions of staff, non-staff
// and beneficiaries across the helpdesk group, a stranger group and private
// chats, and checks every message the bot sent to a group.
func TestRandomisedGroupsLeakNothing(t *testing.T) {
	t.Parallel()
	be := staffBackend(t, nil)
	synctest.Test(t, func(t *testing.T) {
		h := start(t, be, tf.Options{}, false)
		rng := rand.New(rand.NewPCG(3, 4))
		staff := []tf.User{{ID: agentA, FirstName: "A"}, {ID: agentB, FirstName: "B"}}
		others := []tf.User{{ID: 41, FirstName: "N1"}, {ID: 42, FirstName: "N2"}}
		idents := []string{"9000000301", "+91 90000 00302", "50000000000001", "50000000000003", "7000 7000 7002", "9876543210", "ABCDE1234F", "hello"}
		var tokens []string
		seenGroup := 0
		for step := 0; step < 60; step++ {
			switch rng.IntN(6) {
			case 0, 1:
				u := staff[rng.IntN(2)]
				h.fake.SendText(groupChat(helpdesk), u, "/lookup "+idents[rng.IntN(len(idents))])
			case 2:
				u := others[rng.IntN(2)]
				h.fake.SendText(groupChat(helpdesk), u, []string{"/lookup 9000000301", "my code is " + h.ph.Code("9000000301"), "hi all", "/start"}[rng.IntN(4)])
			case 3:
				u := append(staff, others...)[rng.IntN(4)]
				if len(tokens) > 0 {
					h.fake.SendText(tf.Private(u.ID), u, "/start "+tokens[rng.IntN(len(tokens))])
				}
			case 4:
				u := append(staff, others...)[rng.IntN(4)]
				h.fake.SendText(tf.Private(u.ID), u, []string{h.ph.Code("9000000301"), h.ph.Code("9000000302"), "123456"}[rng.IntN(3)])
			case 5:
				u := others[rng.IntN(2)]
				h.fake.SendText(groupChat(stranger), u, "/lookup 9000000301")
			}
			h.idle(t)
			advance(30 * time.Millisecond)
			for _, m := range h.fake.LatestAll() {
				if m.ChatID >= 0 {
					continue
				}
				if m.ChatID == helpdesk {
					for _, row := range tf.Buttons(m) {
						for _, b := range row {
							if u, err := url.Parse(b.URL); err == nil && u.Query().Get("start") != "" && !containsStr(tokens, u.Query().Get("start")) {
								tokens = append(tokens, u.Query().Get("start"))
							}
						}
					}
				}
				assertNothingPersonal(t, m)
			}
			seenGroup = len(h.fake.Sent(helpdesk))
		}
		if seenGroup < 10 || len(tokens) < 3 {
			t.Fatalf("too little exercised: %d group messages, %d tokens", seenGroup, len(tokens))
		}
	})
}

var digitRun = regexp.MustCompile(`\d[\d\s-]{2,}\d`)

// assertNothingPersonal fails when a group message carries a record field,
// a code, a mobile or an ID number, in full or in part.
func assertNothingPersonal(t *testing.T, m tf.SentMessage) {
	t.Helper()
	text := m.Text + string(m.ReplyMarkup)
	for _, p := range people {
		for _, s := range []string{p.name, strings.Fields(p.name)[0], p.ref, p.ref[10:], p.mobile, p.mobile[6:], p.id, p.id[8:]} {
			if strings.Contains(text, s) {
				t.Fatalf("group %d got %q in %q", m.ChatID, s, m.Text)
			}
		}
	}
	if d := digitRun.FindString(m.Text); d != "" {
		t.Fatalf("group %d got digits %q in %q", m.ChatID, d, m.Text)
	}
}
