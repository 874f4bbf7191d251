package telegram_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/otpgate/otpgate/bot"
	tf "github.com/otpgate/otpgate/bot/telegram/telegramtest"
)

// placeholder is what the adapter sends first for a message that carries
// record fields, before it edits the record in.
const placeholder = "…"

// wait returns the first n (or more) messages the bot sent to chat, as the
// user sees them: once each of the first n is there and, if it is a
// released record, edited in.
func (h *harness) wait(t *testing.T, chat int64, n int) []tf.SentMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var msgs []tf.SentMessage
	err := h.fake.WaitFor(ctx, func() bool {
		msgs = h.fake.Latest(chat)
		if len(msgs) < n {
			return false
		}
		for _, m := range msgs[:n] {
			if m.Text == placeholder {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("waiting for %d messages in chat %d: %v; got %+v", n, chat, err, msgs)
	}
	return msgs
}

// flow runs the whole beneficiary flow for user on mobile and returns the
// record message.
func flow(t *testing.T, h *harness, user int64, mobile string) tf.SentMessage {
	t.Helper()
	chat, from := tf.Private(user), tf.User{ID: user, FirstName: "U", LanguageCode: "en"}
	base := len(h.fake.Sent(user))
	h.fake.SendText(chat, from, "/lookup")
	msgs := h.wait(t, user, base+1)
	if bs := tf.Buttons(msgs[base]); len(bs) != 1 || !bs[0][0].RequestContact {
		t.Fatalf("/lookup should offer the share-contact button: %+v", msgs[base])
	}
	h.fake.SendText(chat, from, mobile)
	h.wait(t, user, base+2)
	h.idle(t)
	code := h.ph.Code(mobile)
	codeMsg := h.fake.SendText(chat, from, code)
	msgs = h.wait(t, user, base+3)
	chooser := msgs[base+2]
	bs := tf.Buttons(chooser)
	if len(bs) != 2 || !chooser.ProtectContent {
		t.Fatalf("want a protected chooser with 2 buttons, got %+v", chooser)
	}
	// The code message is deleted.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.fake.WaitFor(ctx, func() bool { return contains(h.fake.Deleted(user), codeMsg) }); err != nil {
		t.Fatalf("the code message was not deleted: %v", h.fake.Deleted(user))
	}
	cb := h.fake.PressButton(chat, from, chooser.MessageID, bs[1][0].CallbackData)
	msgs = h.wait(t, user, base+4)
	if err := h.fake.WaitFor(ctx, func() bool { return containsStr(h.fake.Answered(), cb) }); err != nil {
		t.Fatal("the button press was not answered")
	}
	rec := msgs[base+3]
	if !rec.ProtectContent || !strings.Contains(rec.Text, "Reference ID") {
		t.Fatalf("record message: %+v", rec)
	}
	return rec
}

func contains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func containsStr(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func TestFlowOverPolling(t *testing.T) {
	t.Parallel()
	be := newBackend(t, nil)
	synctest.Test(t, func(t *testing.T) {
		h := start(t, be, tf.Options{}, false)
		rec := flow(t, h, 1001, "9000000301")
		if !strings.Contains(rec.Text, "Gopal Nair") && !strings.Contains(rec.Text, "Lakshmi Nair") {
			t.Fatalf("record: %q", rec.Text)
		}
		// The command menu is registered in every language.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.fake.WaitFor(ctx, func() bool { return len(h.fake.Commands()) == len(bot.Languages()) }); err != nil {
			t.Fatalf("setMyCommands: %+v", h.fake.Commands())
		}
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"Gopal", "Lakshmi", "9000000301", token, strings.Split(token, ":")[1]} {
			if strings.Contains(h.logs.String(), s) {
				t.Errorf("logs contain %q", s)
			}
		}
	})
}

func TestFlowOverWebhook(t *testing.T) {
	t.Parallel()
	be := newBackend(t, nil)
	synctest.Test(t, func(t *testing.T) {
		h := start(t, be, tf.Options{}, true)
		wh := h.fake.Webhook()
		if wh.SecretToken == "" || !strings.HasSuffix(wh.URL, "/tg/hook") {
			t.Fatalf("webhook registration: %+v", wh)
		}
		flow(t, h, 1002, "9000000301")

		// A forged update with the wrong secret is refused and changes nothing.
		forged, _ := json.Marshal(map[string]any{"update_id": 999999, "message": map[string]any{
			"message_id": 1, "date": time.Now().Unix(), "text": "/start",
			"chat": map[string]any{"id": 1003, "type": "private"}, "from": map[string]any{"id": 1003, "first_name": "X"},
			"entities": []map[string]any{{"type": "bot_command", "offset": 0, "length": 6}}}})
		for _, secret := range []string{"wrong", "", wh.SecretToken + "x"} {
			status, err := h.fake.PostUpdateWithSecret(context.Background(), secret, forged)
			if err != nil || status != http.StatusForbidden {
				t.Fatalf("secret %q: status %d, %v", secret, status, err)
			}
		}
		advance(time.Minute) // anything the forged update caused has been sent by now
		if n := len(h.fake.Sent(1003)); n != 0 {
			t.Fatalf("a forged update got %d replies", n)
		}
	})
}

func TestTooManyRequestsHonoured(t *testing.T) {
	t.Parallel()
	be := newBackend(t, nil)
	synctest.Test(t, func(t *testing.T) {
		h := start(t, be, tf.Options{EnforceLimits: true}, false)
		h.fake.FailNext("sendMessage", 1, 429, 2)
		sent := time.Now()
		h.fake.SendText(tf.Private(2001), tf.User{ID: 2001, FirstName: "A"}, "/start")
		msgs := h.wait(t, 2001, 1)
		if gap := msgs[0].Time.Sub(sent); gap < 2*time.Second {
			t.Fatalf("resent %v after a 429 with retry_after 2", gap)
		}
		// Five quick messages to one chat: all answered, in order, none refused.
		for i := range 5 {
			h.fake.SendText(tf.Private(2002), tf.User{ID: 2002, FirstName: "B"}, fmt.Sprintf("/lookup 90000003%02d", i))
		}
		msgs = h.wait(t, 2002, 5)
		st := h.fake.Stats()
		if st.LimitChat+st.LimitGlobal+st.LimitGroup != 0 {
			t.Fatalf("the bot broke Telegram's limits: %+v", st)
		}
		// (The spacing itself is the fake's to judge: it answers 429 to a
		// second message within a second, and counts it above.)
		for i, m := range msgs {
			if !strings.Contains(m.Text, "If this number is registered") {
				t.Fatalf("reply %d: %q", i, m.Text)
			}
		}
	})
}

func TestOrderPerChat(t *testing.T) {
	t.Parallel()
	be := newBackend(t, nil)
	synctest.Test(t, func(t *testing.T) {
		h := start(t, be, tf.Options{}, false)
		chat, from := tf.Private(3001), tf.User{ID: 3001, FirstName: "C"}
		want := []string{"/help", "/privacy", "/language", "/start", "/cancel"}
		for _, m := range want {
			h.fake.SendText(chat, from, m)
		}
		msgs := h.wait(t, 3001, len(want))
		marks := []string{"Commands:", "What happens to your data", "Choose your language", "Hello!", "nothing to cancel"}
		for i, m := range msgs {
			if !strings.Contains(m.Text, marks[i]) {
				t.Fatalf("reply %d is %q, want the answer to %s", i, m.Text, want[i])
			}
		}
	})
}

func TestContactOfAnotherUserRefused(t *testing.T) {
	t.Parallel()
	be := newBackend(t, nil)
	synctest.Test(t, func(t *testing.T) {
		h := start(t, be, tf.Options{}, false)
		chat, from := tf.Private(4001), tf.User{ID: 4001, FirstName: "D"}
		h.fake.SendText(chat, from, "/lookup")
		h.fake.ShareContact(chat, from, "919000000301", 4999) // someone else's card
		msgs := h.wait(t, 4001, 2)
		if !strings.Contains(msgs[1].Text, "your own phone number") {
			t.Fatalf("reply to another user's contact: %q", msgs[1].Text)
		}
		h.idle(t)
		if h.ph.Code("9000000301") != "" {
			t.Fatal("an SMS went to a contact that is not the sender's")
		}
		h.fake.ShareContact(chat, from, "919000000302", 4001) // their own, without "+"
		h.wait(t, 4001, 3)
		h.idle(t)
		if h.ph.Code("9000000302") == "" {
			t.Fatal("the sender's own contact was not accepted")
		}
	})
}

func TestAnyUpdateIsSafe(t *testing.T) {
	t.Parallel()
	be := newBackend(t, nil)
	synctest.Test(t, func(t *testing.T) {
		h := start(t, be, tf.Options{}, false)
		chat, from := tf.Private(5001), tf.User{ID: 5001, FirstName: "E"}
		h.fake.SendSticker(chat, from)
		h.fake.SendPhoto(chat, from, "my vaccination card")
		h.fake.SendForwarded(chat, from, "forwarded text")
		h.fake.ChannelPost(tf.Channel(-100777, "news"), "/lookup 9000000301")
		h.fake.SendText(chat, from, strings.Repeat("अ", 5000))
		h.fake.SendRaw(json.RawMessage(`{"update_id":0,"poll":{"id":"1","question":"?","options":[]}}`))
		h.fake.SendRaw(json.RawMessage(`{"update_id":0,"some_future_update":{"x":1}}`))
		h.fake.SendText(chat, from, "/start")
		msgs := h.wait(t, 5001, 5) // sticker, photo, forwarded, long text, /start
		if !strings.Contains(msgs[4].Text, "Hello!") {
			t.Fatalf("the bot stopped answering after odd updates: %+v", msgs)
		}
		// Added to a group: explains and leaves.
		h.fake.AddedToGroup(tf.Group(-4242, "family"), from)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.fake.WaitFor(ctx, func() bool { return len(h.fake.Left()) == 1 }); err != nil {
			t.Fatal("did not leave the group")
		}
		if g := h.fake.Sent(-4242); len(g) != 1 || !strings.Contains(g[0].Text, "private") {
			t.Fatalf("group message: %+v", g)
		}
		h.idle(t)
		if h.ph.Code("9000000301") != "" {
			t.Fatal("a channel post started a lookup")
		}
	})
}

// TestEditsAndCaptionsReachHygiene: a mobile or a code edited into a
// message, or written under a photo, is removed from the group like a
// typed one.
func TestEditsAndCaptionsReachHygiene(t *testing.T) {
	t.Parallel()
	be := staffBackend(t, nil)
	synctest.Test(t, func(t *testing.T) {
		h := start(t, be, tf.Options{}, false)
		citizen := tf.User{ID: 34, FirstName: "F"}
		posted := h.fake.SendText(groupChat(helpdesk), citizen, "see you tomorrow")
		h.fake.EditText(groupChat(helpdesk), citizen, posted, "my number is 90000 00301")
		photo := h.fake.SendPhoto(groupChat(helpdesk), citizen, "my code is 123456")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, id := range []int{posted, photo} {
			if err := h.fake.WaitFor(ctx, func() bool { _, ok := h.fake.DeletedAt(helpdesk, id); return ok }); err != nil {
				t.Fatalf("message %d (an edit, a caption) not removed from the group: %v", id, h.fake.Deleted(helpdesk))
			}
		}
	})
}

// TestEditsAndCaptionsAreNeverCommands: the engine never takes an edited
// message or a caption for a command or a code (bot.Update.Edited and
// Caption: the engine's side of the contract).
func TestEditsAndCaptionsAreNeverCommands(t *testing.T) {
	t.Parallel()
	be := newBackend(t, nil)
	synctest.Test(t, func(t *testing.T) {
		h := start(t, be, tf.Options{}, false)
		chat, from := tf.Private(5101), tf.User{ID: 5101, FirstName: "E", LanguageCode: "en"}
		first := h.fake.SendText(chat, from, "hello")
		h.fake.EditText(chat, from, first, "/lookup 9000000301")
		h.fake.SendPhoto(chat, from, "/lookup 9000000302")
		h.fake.SendText(chat, from, "/start")
		msgs := h.wait(t, 5101, 3) // "hello", the photo, /start
		advance(time.Minute)       // anything else the bot would say has been said
		h.idle(t)
		if got := h.fake.Latest(5101); len(got) != 3 || !strings.Contains(got[2].Text, "Hello!") {
			t.Fatalf("want replies to the text, the photo and /start only, got %d, the last %q", len(got), got[len(got)-1].Text)
		}
		if !strings.Contains(msgs[1].Text, "only read text") {
			t.Fatalf("reply to a captioned photo: %q", msgs[1].Text)
		}
		if h.ph.Code("9000000301") != "" || h.ph.Code("9000000302") != "" {
			t.Fatal("an edited message or a caption started a lookup")
		}
		// A code edited into a message is not a code either.
		h.fake.SendText(chat, from, "/lookup 9000000302")
		h.wait(t, 5101, 4)
		h.idle(t)
		h.fake.EditText(chat, from, first, h.ph.Code("9000000302"))
		advance(time.Minute)
		if got := h.fake.Latest(5101); len(got) != 4 {
			t.Fatalf("an edited-in code was taken: %d replies, the last %q", len(got), got[len(got)-1].Text)
		}
	})
}

func TestShutdownMidFlowLosesNothing(t *testing.T) {
	t.Parallel()
	be := newBackend(t, nil)
	synctest.Test(t, func(t *testing.T) {
		h := start(t, be, tf.Options{EnforceLimits: true}, false)
		const users = 12
		for u := range users {
			h.fake.SendText(tf.Private(int64(6000+u)), tf.User{ID: int64(6000 + u), FirstName: "F"}, "/help")
			h.fake.SendText(tf.Private(int64(6000+u)), tf.User{ID: int64(6000 + u), FirstName: "F"}, "/privacy")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// Stop as soon as the bot has taken the updates, before it can have
		// answered them all (2 messages per chat need > 1 s).
		if err := h.fake.WaitFor(ctx, func() bool { return h.fake.Pending() == 0 }); err != nil {
			t.Fatal(err)
		}
		if err := h.stop(); err != nil {
			t.Fatalf("shutdown: %v", err)
		}
		for u := range users {
			if n := len(h.fake.Sent(int64(6000 + u))); n != 2 {
				t.Fatalf("chat %d got %d of 2 replies after shutdown", 6000+u, n)
			}
		}
	})
}

func TestDeletionScheduleOutlivesTheBot(t *testing.T) {
	t.Parallel()
	const ttl = 2 * time.Second
	be := newBackend(t, func(o *bot.Options) { o.ReleaseTTL = ttl })
	synctest.Test(t, func(t *testing.T) {
		h := start(t, be, tf.Options{}, false)
		rec := flow(t, h, 7001, "9000000301")
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		if _, ok := h.fake.DeletedAt(7001, rec.MessageID); ok {
			t.Fatal("deleted before its time")
		}
		advance(ttl) // the record falls due while no Bot runs
		restarted := time.Now()
		h.run(t, false) // a new Bot over the same schedule: it is there, not in the old Bot
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// Every released message (chooser and record) is deleted, not before
		// its time, and at once by the new Bot since it is overdue.
		var released []tf.SentMessage
		for _, m := range h.fake.Sent(7001) {
			if m.ProtectContent {
				released = append(released, m)
			}
		}
		if len(released) != 2 {
			t.Fatalf("want a chooser and a record, protected: %+v", h.fake.Sent(7001))
		}
		for _, m := range released {
			if err := h.fake.WaitFor(ctx, func() bool { _, ok := h.fake.DeletedAt(7001, m.MessageID); return ok }); err != nil {
				t.Fatalf("released message %d was not deleted after the restart: %v", m.MessageID, h.fake.Deleted(7001))
			}
			at, _ := h.fake.DeletedAt(7001, m.MessageID)
			if at.Before(m.Time.Add(ttl)) || at.Sub(restarted) > time.Second {
				t.Fatalf("message %d sent at %v, restart at %v, deleted at %v", m.MessageID, m.Time, restarted, at)
			}
		}
		// ...and leaves the schedule once deleted.
		synctest.Wait()
		if left := h.dels.Scheduled(); len(left) != 0 {
			t.Fatalf("schedule not emptied: %+v", left)
		}
	})
}

func TestPollingBacksOffWhileTelegramIsDown(t *testing.T) {
	t.Parallel()
	be := newBackend(t, nil)
	synctest.Test(t, func(t *testing.T) {
		h := start(t, be, tf.Options{}, false)
		down := time.Now()
		h.fake.SetDown(true)
		failed := func() []tf.Call {
			var out []tf.Call
			for _, c := range h.fake.CallsTo("getUpdates") {
				if c.Status == http.StatusBadGateway {
					out = append(out, c)
				}
			}
			return out
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := h.fake.WaitFor(ctx, func() bool { return len(failed()) >= 5 }); err != nil {
			t.Fatalf("%d failed polls: %v", len(failed()), err)
		}
		h.fake.SetDown(false)
		// Back-off from 0.5 s doubling, jittered down to half at most: the
		// k-th retry waits at least 250 ms << (k-1). Not a spin.
		calls := failed()
		for k := 1; k < len(calls); k++ {
			if gap, least := calls[k].Time.Sub(calls[k-1].Time), (500*time.Millisecond<<(k-1))/2; gap < least {
				t.Fatalf("retry %d came %v after the failure before it; the back-off is at least %v", k, gap, least)
			}
		}
		// A handful of tries in the first 3 s, not a spin.
		during := 0
		for _, c := range h.fake.CallsTo("getUpdates") {
			if !c.Time.Before(down) && c.Time.Sub(down) < 3*time.Second {
				during++
			}
		}
		if during > 8 {
			t.Fatalf("%d getUpdates calls in 3 s while Telegram was down", during)
		}
		// And it recovers, at the latest when its back-off (capped at 30 s) is over.
		h.fake.SendText(tf.Private(8001), tf.User{ID: 8001, FirstName: "G"}, "/start")
		rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second+5*time.Second)
		defer rcancel()
		if _, err := h.fake.WaitSent(rctx, 8001, 1); err != nil {
			t.Fatalf("no recovery: %v", err)
		}
	})
}

func TestButtonWithoutAMessageIsSafe(t *testing.T) {
	t.Parallel()
	be := newBackend(t, nil)
	synctest.Test(t, func(t *testing.T) {
		h := start(t, be, tf.Options{}, false)
		// A button on an inline-mode message: no message, no chat.
		if _, err := h.fake.SendRaw(json.RawMessage(`{"update_id":0,"callback_query":{"id":"77","from":{"id":5201,"is_bot":false,"first_name":"I"},
			"inline_message_id":"AAA","chat_instance":"1","data":"r:x"}}`)); err != nil {
			t.Fatal(err)
		}
		h.fake.SendText(tf.Private(5201), tf.User{ID: 5201, FirstName: "I"}, "/start")
		if m := h.wait(t, 5201, 2); !strings.Contains(m[1].Text, "Hello!") { // the button is answered, then /start
			t.Fatalf("the bot stopped after a button without a message: %+v", m)
		}
	})
}
