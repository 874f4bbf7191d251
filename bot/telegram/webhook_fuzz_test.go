package telegram

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	tgbotapi "github.com/go-telegram-bot-api/telegram-bot-api/v5"

	"github.com/otpgate/otpgate/bot"
)

// Fuzz targets for what Telegram — or anyone holding the webhook secret —
// posts: the webhook handler, the dispatcher it feeds, and the conversion of
// a Bot API update into the engine's terms.

var fzUpdateSeeds = []string{
	// What Telegram sends.
	`{"update_id":1,"message":{"message_id":7,"from":{"id":5001,"is_bot":false,"first_name":"Asha","language_code":"hi"},"chat":{"id":5001,"type":"private","first_name":"Asha"},"date":1700000000,"text":"/lookup 98765 43210","entities":[{"offset":0,"length":7,"type":"bot_command"}]}}`,
	`{"update_id":2,"message":{"message_id":8,"from":{"id":5001,"is_bot":false,"first_name":"Asha"},"chat":{"id":5001,"type":"private"},"date":1700000000,"text":"४८२९१३"}}`,
	`{"update_id":3,"message":{"message_id":9,"from":{"id":5001,"is_bot":false,"first_name":"Asha"},"chat":{"id":5001,"type":"private"},"date":1700000000,"contact":{"phone_number":"919876543210","first_name":"Asha","user_id":5001}}}`,
	`{"update_id":4,"callback_query":{"id":"4382bfdwdsb323b2d9","from":{"id":5001,"is_bot":false,"first_name":"Asha"},"message":{"message_id":10,"chat":{"id":5001,"type":"private"},"date":1700000000,"text":"Choose"},"chat_instance":"-1","data":"r:0123abcd"}}`,
	`{"update_id":29,"callback_query":{"id":"4382bfdwdsb323b2e0","from":{"id":5001,"is_bot":false,"first_name":"Asha"},"inline_message_id":"AgAAAHcBAAA","chat_instance":"-2","data":"lang:hi"}}`, // a button under an inline-mode message: no message
	`{"update_id":5,"my_chat_member":{"chat":{"id":-1001234567890,"type":"supergroup","title":"helpdesk"},"from":{"id":5001,"is_bot":false,"first_name":"Asha"},"date":1700000000,"old_chat_member":{"user":{"id":42,"is_bot":true,"first_name":"otpgate"},"status":"left"},"new_chat_member":{"user":{"id":42,"is_bot":true,"first_name":"otpgate"},"status":"member"}}}`,
	`{"update_id":6,"message":{"message_id":11,"from":{"id":5002,"is_bot":false,"first_name":"Ravi"},"chat":{"id":-1001234567890,"type":"supergroup","title":"helpdesk"},"date":1700000000,"text":"/lookup@otpgate_bot 12345678901234"}}`,
	`{"update_id":7,"message":{"message_id":12,"from":{"id":5002,"is_bot":false,"first_name":"Ravi"},"chat":{"id":-1001234567890,"type":"supergroup"},"date":1700000000,"new_chat_members":[{"id":9,"is_bot":false,"first_name":"New"}]}}`,
	`{"update_id":8,"message":{"message_id":13,"from":{"id":5002,"is_bot":false,"first_name":"Ravi"},"chat":{"id":5002,"type":"private"},"date":1700000000,"sticker":{"file_id":"x","file_unique_id":"y","width":1,"height":1,"is_animated":false}}}`,
	`{"update_id":9,"edited_message":{"message_id":13,"from":{"id":5002,"is_bot":false,"first_name":"Ravi"},"chat":{"id":5002,"type":"private"},"date":1700000000,"text":"/lookup 9876543210"}}`,
	`{"update_id":10,"channel_post":{"message_id":14,"chat":{"id":-1009999,"type":"channel","title":"news"},"date":1700000000,"text":"/lookup 9876543210"}}`,
	`{"update_id":11,"message":{"message_id":15,"from":{"id":5003,"is_bot":false,"first_name":"F"},"chat":{"id":5003,"type":"private"},"date":1700000000,"forward_date":1690000000,"text":"forwarded 9876543210"}}`,
	`{"update_id":12,"message":{"message_id":16,"from":{"id":77,"is_bot":true,"first_name":"other bot"},"chat":{"id":-100555,"type":"supergroup"},"date":1700000000,"text":"/lookup 9876543210"}}`,
	// Hostile or broken.
	`{"update_id":13,"message":{"message_id":17,"from":{"id":5003,"is_bot":false,"first_name":"F"},"chat":{"id":5003,"type":"private"},"date":1700000000,"text":"98765\u0000\u200b\u202e43210\ufeff"}}`,
	`{"update_id":14,"message":{"message_id":18,"from":{"id":5003},"chat":{"id":5003,"type":"private"},"text":"` + "\xff\xfe invalid \xc0\xaf UTF-8" + `"}}`,
	`{"update_id":15,"message":{"message_id":19,"from":{"id":5003},"chat":{"id":5003,"type":"private"},"text":"` + strings.Repeat("𝟿", 1100) + `"}}`,
	`{"update_id":16,"message":{"message_id":20,"from":{"id":5003},"chat":{"id":5003,"type":"private"},"text":"/lookup","contact":{"phone_number":"+919876543210","user_id":5003}}}`,
	`{"update_id":17,"message":{"message_id":21,"from":{"id":5003},"chat":{"id":5003,"type":"private"},"text":"x"},"callback_query":{"id":"c","from":{"id":5003},"data":"lang:hi"}}`,
	`{"update_id":18,"message":{"message_id":22,"chat":{"id":5003,"type":"private"},"text":"no sender"}}`,
	`{"update_id":19,"message":{"message_id":23,"from":{"id":5003},"text":"no chat"}}`,
	`{"update_id":20,"callback_query":{"id":"c","message":{"message_id":1,"chat":{"id":5003,"type":"private"}},"data":"r:x"}}`,
	`{"update_id":21,"my_chat_member":{"chat":{"id":5003,"type":"private"},"from":{"id":5003},"new_chat_member":{"status":"member"}}}`,
	`{"update_id":22,"my_chat_member":{}}`,
	`{"update_id":23,"message":{"message_id":24,"from":{"id":99999999999999999999},"chat":{"id":1,"type":"private"},"text":"x"}}`,
	`{"update_id":"24","message":null}`,
	`{"update_id":25,"message":{"message_id":25,"from":{"id":-5003},"chat":{"id":-5003,"type":"secret"},"text":"/start"}}`,
	`{"update_id":26,"message":{"message_id":26,"from":{"id":5003},"chat":{"id":5003,"type":"private"},"text":"/start","reply_to_message":` +
		strings.Repeat(`{"message_id":1,"reply_to_message":`, 200) + `{}` + strings.Repeat(`}`, 200) + `}}`,
	`{"update_id":27,"poll":{"id":"1","question":"?","options":[]}}`,
	`{"update_id":28,"some_future_update":{"x":1}}`,
	`{}`, `null`, `[]`, `""`, `0`, `{"update_id":1}{"update_id":2}`, `{"update_id":1`, ``, "\x00", "\xff",
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
}

// fzWebhook is a webhook handler whose dispatcher hands every update to
// got, and never fills up.
func fzWebhook(t testing.TB) (*webhookHandler, chan tgbotapi.Update) {
	got := make(chan tgbotapi.Update, 64)
	b, err := New(Options{Token: "123456:TEST-token_for-the-fuzzer", APIURL: "http://127.0.0.1:1", Handler: nopHandler{}, Deletions: noDeletions{}})
	if err != nil {
		t.Fatal(err)
	}
	d := newDispatcher(2, 64, func(u tgbotapi.Update) { got <- u }, b.log, systemClock{})
	t.Cleanup(func() { _ = d.close(context.Background()) })
	return &webhookHandler{secret: []byte(fzSecret), d: d, b: b}, got
}

const fzSecret = "s3cret-Token_1"

// post sends body to h with the right secret and checks the outcome: never
// a 5xx (503 is for a full queue, and this one never fills), 400 past the
// size limit, 200 otherwise (garbage is acknowledged, or Telegram would
// retry it for a day); a body that decodes is dispatched exactly once and
// unchanged, anything else not at all.
func post(t *testing.T, h *webhookHandler, got chan tgbotapi.Update, body []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/tg/hook", bytes.NewReader(body))
	req.Header.Set("X-Telegram-Bot-Api-Secret-Token", fzSecret)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)

	var want tgbotapi.Update
	decodes := json.Unmarshal(body, &want) == nil
	switch {
	case rec.Code >= 500:
		t.Fatalf("status %d for %q", rec.Code, body)
	case len(body) > maxUpdateBytes:
		if rec.Code != http.StatusBadRequest {
			t.Fatalf("a body of %d bytes: status %d, want 400", len(body), rec.Code)
		}
		decodes = false
	case rec.Code != http.StatusOK:
		t.Fatalf("status %d for %q, want 200", rec.Code, body)
	}
	if decodes {
		select {
		case u := <-got:
			if !reflect.DeepEqual(u, want) {
				t.Fatalf("dispatched %+v, want %+v", u, want)
			}
			checkConversion(t, u)
		case <-time.After(10 * time.Second):
			t.Fatalf("a decodable update was not dispatched: %q", body)
		}
	}
	select {
	case u := <-got:
		t.Fatalf("dispatched %+v for %q", u, body)
	default:
	}
}

func FuzzWebhook(f *testing.F) {
	for _, s := range fzUpdateSeeds {
		f.Add([]byte(s))
	}
	h, got := fzWebhook(f)
	f.Fuzz(func(t *testing.T, body []byte) { post(t, h, got, body) })
}

// TestWebhookBodyLimit posts an update padded with blanks (the same JSON)
// to sizes around the limit: a megabyte a run is too slow to fuzz.
func TestWebhookBodyLimit(t *testing.T) {
	h, got := fzWebhook(t)
	for _, size := range []int{maxUpdateBytes - 1, maxUpdateBytes, maxUpdateBytes + 1, 4 * maxUpdateBytes} {
		body := append([]byte(fzUpdateSeeds[0]), bytes.Repeat([]byte(" "), size-len(fzUpdateSeeds[0]))...)
		post(t, h, got, body)
	}
}

func FuzzUpdateConversion(f *testing.F) {
	for _, s := range fzUpdateSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var u tgbotapi.Update
		if json.Unmarshal(body, &u) != nil {
			return
		}
		checkConversion(t, u)
	})
}

// checkConversion: no panic; the engine's Update has at most one meaning
// (a text, a contact, a button press, an unreadable message, or the bot
// joining a group); and the dispatcher queues it by the chat the engine
// answers in, so that a chat's updates stay in order.
func checkConversion(t *testing.T, tu tgbotapi.Update) {
	t.Helper()
	queuedBy := chatOf(tu) // the dispatcher's key; it must not panic either
	u, ok := toUpdate(tu)
	_ = updateKind(tu, ok)
	if !ok {
		return // the caller drops it
	}
	meanings := 0
	// A captioned file is unreadable and carries its caption as text: one
	// meaning (only hygiene reads it).
	for _, m := range []bool{u.Text != "" && !u.Caption, u.Contact != nil, u.Callback != nil, u.Unsupported, u.AddedToGroup} {
		if m {
			meanings++
		}
	}
	if meanings != 1 {
		t.Fatalf("update %+v has %d meanings", u, meanings)
	}
	if u.ChatKind != bot.ChatPrivate && u.ChatKind != bot.ChatGroup && u.ChatKind != bot.ChatChannel {
		t.Fatalf("chat kind %d", u.ChatKind)
	}
	switch {
	case u.Callback != nil:
		if u.UserID == 0 || u.Callback.ID != tu.CallbackQuery.ID || u.Callback.Data != tu.CallbackQuery.Data {
			t.Fatalf("callback %+v from %+v", u, tu.CallbackQuery)
		}
	case u.AddedToGroup:
		if u.ChatKind == bot.ChatPrivate {
			t.Fatalf("added to a private chat: %+v", u)
		}
	default:
		m := tu.Message
		if u.Edited {
			m = tu.EditedMessage
		}
		if m == nil {
			t.Fatalf("message %+v from no message", u)
		}
		text := m.Text
		if u.Caption {
			text = m.Caption
		}
		if m.From == nil || m.From.IsBot || m.Chat == nil || u.UserID != m.From.ID || u.ChatID != m.Chat.ID ||
			(u.Text != "" && u.Text != text) || (u.Contact != nil && u.Contact.Phone != m.Contact.PhoneNumber) {
			t.Fatalf("message %+v from %+v", u, m)
		}
	}
	// Telegram puts one kind of update in each; for those, the queue key
	// is the chat the reply goes to.
	if kinds(tu) == 1 && !u.AddedToGroup && queuedBy != u.ChatID {
		t.Fatalf("queued by chat %d, answered in chat %d: %+v", queuedBy, u.ChatID, u)
	}
}

func kinds(u tgbotapi.Update) int {
	n := 0
	for _, p := range []bool{u.Message != nil, u.EditedMessage != nil, u.ChannelPost != nil, u.EditedChannelPost != nil,
		u.InlineQuery != nil, u.ChosenInlineResult != nil, u.CallbackQuery != nil, u.ShippingQuery != nil,
		u.PreCheckoutQuery != nil, u.Poll != nil, u.PollAnswer != nil, u.MyChatMember != nil, u.ChatMember != nil,
		u.ChatJoinRequest != nil} {
		if p {
			n++
		}
	}
	return n
}

type nopHandler struct{}

func (nopHandler) Handle(context.Context, bot.Update) []bot.Reply { return nil }

type noDeletions struct{}

func (noDeletions) ScheduleDeletion(context.Context, Deletion) error { return nil }
func (noDeletions) DueDeletions(context.Context, time.Time, int) ([]Deletion, error) {
	return nil, nil
}
func (noDeletions) DeletionDone(context.Context, Deletion) error { return nil }
