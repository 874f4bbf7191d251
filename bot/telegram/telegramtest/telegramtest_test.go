package telegramtest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	tgbotapi "github.com/go-telegram-bot-api/telegram-bot-api/v5"
)

const token = "123456789:AAtest-Token_for_the_fake"

var (
	asha  = User{ID: 42, FirstName: "Asha", LanguageCode: "hi"}
	ravi  = User{ID: 43, FirstName: "Ravi", Username: "ravi"}
	chatA = Private(asha.ID)
)

func newFake(t *testing.T, opts Options) *Server {
	t.Helper()
	s := New(token, opts)
	t.Cleanup(s.Close)
	return s
}

// newBot connects the real library to s.
func newBot(t *testing.T, s *Server) *tgbotapi.BotAPI {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	bot, err := tgbotapi.NewBotAPIWithClient(token, s.URL()+"/bot%s/%s", client)
	if err != nil {
		t.Fatalf("NewBotAPIWithClient: %v", err)
	}
	return bot
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// apiErr asserts err is a *tgbotapi.Error with the given code.
func apiErr(t *testing.T, err error, code int) *tgbotapi.Error {
	t.Helper()
	var te *tgbotapi.Error
	if !errors.As(err, &te) {
		t.Fatalf("error %v (%T) is not a *tgbotapi.Error", err, err)
	}
	if te.Code != code {
		t.Fatalf("error code = %d (%q), want %d", te.Code, te.Message, code)
	}
	return te
}

// fakeClock is a settable clock for the flood-limit tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestGetMe(t *testing.T) {
	s := newFake(t, Options{})
	bot := newBot(t, s)
	if bot.Self.ID != DefaultBotID || bot.Self.UserName != "otpgate_test_bot" || !bot.Self.IsBot {
		t.Fatalf("Self = %+v", bot.Self)
	}
	if c := s.CallsTo("getMe"); len(c) != 1 || c[0].Status != http.StatusOK {
		t.Fatalf("getMe calls = %+v", c)
	}
}

func TestWrongTokenAndUnknownMethod(t *testing.T) {
	s := newFake(t, Options{})
	_, err := tgbotapi.NewBotAPIWithClient("987:wrong", s.URL()+"/bot%s/%s", http.DefaultClient)
	if te := apiErr(t, err, 401); te.Message != "Unauthorized" {
		t.Fatalf("message = %q", te.Message)
	}

	for _, tc := range []struct {
		path   string
		status int
		body   string
	}{
		{"/bot987:wrong/getMe", 401, `{"ok":false,"error_code":401,"description":"Unauthorized"}`},
		{"/bot" + token + "/noSuchMethod", 404, `{"ok":false,"error_code":404,"description":"Not Found"}`},
		{"/somewhere/else", 404, `{"ok":false,"error_code":404,"description":"Not Found"}`},
	} {
		resp, err := http.Post(s.URL()+tc.path, "application/x-www-form-urlencoded", nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || strings.TrimSpace(string(b)) != tc.body {
			t.Errorf("%s: %d %s, want %d %s", tc.path, resp.StatusCode, b, tc.status, tc.body)
		}
	}

	bot := newBot(t, s)
	_, err = bot.MakeRequest("noSuchMethod", nil)
	apiErr(t, err, 404)
	// Method names are case-insensitive, as on Telegram.
	if _, err := bot.MakeRequest("GETME", nil); err != nil {
		t.Fatalf("GETME: %v", err)
	}
}

func TestGetUpdatesBlocksUntilAnUpdate(t *testing.T) {
	t.Parallel()
	s := newFake(t, Options{MaxPollWait: 10 * time.Second})
	bot := newBot(t, s)

	type result struct {
		ups []tgbotapi.Update
		err error
	}
	done := make(chan result, 1)
	go func() {
		ups, err := bot.GetUpdates(tgbotapi.UpdateConfig{Timeout: 30})
		done <- result{ups, err}
	}()
	if err := s.WaitFor(ctxT(t), s.Polling); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		t.Fatalf("getUpdates returned before any update: %+v", r)
	default:
	}

	id := s.SendText(chatA, asha, "/start ref-77")
	r := <-done
	if r.err != nil || len(r.ups) != 1 {
		t.Fatalf("GetUpdates = %+v, %v", r.ups, r.err)
	}
	msg := r.ups[0].Message
	if msg == nil || !msg.IsCommand() || msg.Command() != "start" || msg.CommandArguments() != "ref-77" {
		t.Fatalf("message = %+v", msg)
	}
	if msg.MessageID != id || msg.Chat.ID != asha.ID || msg.Chat.Type != "private" ||
		msg.Chat.FirstName != "Asha" || msg.From.ID != asha.ID || msg.From.LanguageCode != "hi" || msg.Date == 0 {
		t.Fatalf("message fields = %+v chat %+v from %+v", msg, msg.Chat, msg.From)
	}

	// Plain text is not a command; neither is a slash alone.
	s.SendText(chatA, asha, "hello /start")
	s.SendText(chatA, asha, "/")
	ups, err := bot.GetUpdates(tgbotapi.UpdateConfig{Offset: r.ups[0].UpdateID + 1})
	if err != nil || len(ups) != 2 {
		t.Fatalf("GetUpdates = %+v, %v", ups, err)
	}
	for _, u := range ups {
		if u.Message.IsCommand() {
			t.Errorf("%q parsed as a command", u.Message.Text)
		}
	}
}

func TestGetUpdatesOffsetLimitTimeout(t *testing.T) {
	t.Parallel()
	s := newFake(t, Options{MaxPollWait: 40 * time.Millisecond})
	bot := newBot(t, s)
	for i := range 3 {
		s.SendText(chatA, asha, "m"+strconv.Itoa(i))
	}

	ups, err := bot.GetUpdates(tgbotapi.UpdateConfig{})
	if err != nil || len(ups) != 3 {
		t.Fatalf("GetUpdates = %d, %v", len(ups), err)
	}
	if ups[0].UpdateID+1 != ups[1].UpdateID || ups[1].UpdateID+1 != ups[2].UpdateID {
		t.Fatalf("update ids not consecutive: %d %d %d", ups[0].UpdateID, ups[1].UpdateID, ups[2].UpdateID)
	}
	// Unconfirmed updates come again; an offset confirms those below it.
	again, _ := bot.GetUpdates(tgbotapi.UpdateConfig{Limit: 1})
	if len(again) != 1 || again[0].UpdateID != ups[0].UpdateID {
		t.Fatalf("limit 1 = %+v", again)
	}
	rest, _ := bot.GetUpdates(tgbotapi.UpdateConfig{Offset: ups[1].UpdateID})
	if len(rest) != 2 || rest[0].UpdateID != ups[1].UpdateID || s.Pending() != 2 {
		t.Fatalf("offset = %d updates, pending %d", len(rest), s.Pending())
	}

	// Confirming everything empties the queue; the empty poll is held for
	// the (capped) timeout, not answered at once.
	start := time.Now()
	none, err := bot.GetUpdates(tgbotapi.UpdateConfig{Offset: ups[2].UpdateID + 1, Timeout: 30})
	if err != nil || len(none) != 0 || s.Pending() != 0 {
		t.Fatalf("GetUpdates = %+v, %v, pending %d", none, err, s.Pending())
	}
	if el := time.Since(start); el < 40*time.Millisecond || el > 2*time.Second {
		t.Fatalf("empty long poll took %v, want about MaxPollWait", el)
	}
	// timeout=0 is held for ShortPollWait (10 ms by default).
	start = time.Now()
	if none, _ := bot.GetUpdates(tgbotapi.UpdateConfig{}); len(none) != 0 {
		t.Fatalf("short poll = %+v", none)
	}
	if el := time.Since(start); el < 10*time.Millisecond {
		t.Fatalf("empty short poll answered after %v", el)
	}

	// A negative offset keeps only the last -offset updates.
	for range 3 {
		s.SendText(chatA, asha, "x")
	}
	last, _ := bot.GetUpdates(tgbotapi.UpdateConfig{Offset: -1})
	if len(last) != 1 || s.Pending() != 1 {
		t.Fatalf("offset -1 = %d updates, pending %d", len(last), s.Pending())
	}
}

func TestSecondPollerGetsConflict(t *testing.T) {
	t.Parallel()
	s := newFake(t, Options{MaxPollWait: 10 * time.Second})
	bot := newBot(t, s)
	first := make(chan error, 1)
	go func() {
		_, err := bot.GetUpdates(tgbotapi.UpdateConfig{Timeout: 30})
		first <- err
	}()
	if err := s.WaitFor(ctxT(t), s.Polling); err != nil {
		t.Fatal(err)
	}
	second := make(chan error, 1)
	go func() {
		_, err := bot.GetUpdates(tgbotapi.UpdateConfig{Timeout: 30})
		second <- err
	}()
	te := apiErr(t, <-first, 409)
	if !strings.Contains(te.Message, "terminated by other getUpdates request") {
		t.Fatalf("message = %q", te.Message)
	}
	s.SendText(chatA, asha, "hi")
	if err := <-second; err != nil {
		t.Fatalf("second poller: %v", err)
	}
}

func TestSendMessage(t *testing.T) {
	t.Parallel()
	s := newFake(t, Options{})
	bot := newBot(t, s)

	in := s.SendText(chatA, asha, "/start")
	m1, err := bot.Send(tgbotapi.NewMessage(asha.ID, "Welcome"))
	if err != nil {
		t.Fatal(err)
	}
	m2, err := bot.Send(tgbotapi.NewMessage(asha.ID, "Again"))
	if err != nil {
		t.Fatal(err)
	}
	if m1.MessageID != in+1 || m2.MessageID != in+2 {
		t.Fatalf("message ids %d, %d after incoming %d: want per-chat sequence", m1.MessageID, m2.MessageID, in)
	}
	if m1.Chat.ID != asha.ID || m1.Text != "Welcome" || m1.Date == 0 || m1.From == nil || !m1.From.IsBot {
		t.Fatalf("message = %+v", m1)
	}
	other, _ := bot.Send(tgbotapi.NewMessage(ravi.ID, "Hi Ravi"))
	if other.MessageID != 1 {
		t.Fatalf("first message to another chat has id %d", other.MessageID)
	}

	// Keyboards: inline ones come back on the Message, reply ones do not.
	inline := tgbotapi.NewMessage(asha.ID, "Pick")
	inline.ReplyMarkup = tgbotapi.NewInlineKeyboardMarkup(tgbotapi.NewInlineKeyboardRow(
		tgbotapi.NewInlineKeyboardButtonData("Yes", "y:1"),
		tgbotapi.NewInlineKeyboardButtonURL("Help", "https://example.com/help")))
	mi, err := bot.Send(inline)
	if err != nil || mi.ReplyMarkup == nil || len(mi.ReplyMarkup.InlineKeyboard[0]) != 2 {
		t.Fatalf("inline send = %+v, %v", mi.ReplyMarkup, err)
	}
	ask := tgbotapi.NewMessage(asha.ID, "Share your number")
	ask.ReplyMarkup = tgbotapi.NewOneTimeReplyKeyboard(tgbotapi.NewKeyboardButtonRow(
		tgbotapi.NewKeyboardButtonContact("Share my number")))
	mr, err := bot.Send(ask)
	if err != nil || mr.ReplyMarkup != nil {
		t.Fatalf("reply keyboard send = %+v, %v", mr.ReplyMarkup, err)
	}
	rm := tgbotapi.NewMessage(asha.ID, "Thanks")
	rm.ReplyMarkup = tgbotapi.NewRemoveKeyboard(true)
	if _, err := bot.Send(rm); err != nil {
		t.Fatal(err)
	}

	sent, err := s.WaitSent(ctxT(t), asha.ID, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(sent) != 5 || sent[0].Text != "Welcome" || sent[0].MessageID != m1.MessageID {
		t.Fatalf("Sent = %+v", sent)
	}
	want := [][]Button{{{Text: "Yes", CallbackData: "y:1"}, {Text: "Help", URL: "https://example.com/help"}}}
	if got := Buttons(sent[2]); !equalButtons(got, want) {
		t.Errorf("inline Buttons = %+v, want %+v", got, want)
	}
	if got := Buttons(sent[3]); len(got) != 1 || !got[0][0].RequestContact || got[0][0].Text != "Share my number" {
		t.Errorf("reply Buttons = %+v", got)
	}
	if Buttons(sent[0]) != nil || RemovesKeyboard(sent[3]) || !RemovesKeyboard(sent[4]) {
		t.Errorf("keyboard views wrong: %+v", sent)
	}
	if st := s.Stats(); st.Sent != 6 {
		t.Errorf("Stats.Sent = %d", st.Sent)
	}
	if all := s.SentAll(); len(all) != 6 || all[2].ChatID != ravi.ID {
		t.Errorf("SentAll = %+v", all)
	}
}

func equalButtons(a, b [][]Button) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return false
		}
		for j := range a[i] {
			if a[i][j] != b[i][j] {
				return false
			}
		}
	}
	return true
}

func TestSendMessageValidation(t *testing.T) {
	t.Parallel()
	s := newFake(t, Options{})
	bot := newBot(t, s)
	long := tgbotapi.NewMessage(1, strings.Repeat("x", 4097))
	badData := tgbotapi.NewMessage(1, "x")
	badData.ReplyMarkup = tgbotapi.NewInlineKeyboardMarkup(tgbotapi.NewInlineKeyboardRow(
		tgbotapi.NewInlineKeyboardButtonData("Too long", strings.Repeat("d", 65))))
	md := tgbotapi.NewMessage(1, "Your code is 123.456")
	md.ParseMode = tgbotapi.ModeMarkdownV2
	mdOK := tgbotapi.NewMessage(1, "Your code is *123\\.456* `a.b` [site](https://x.org)")
	mdOK.ParseMode = tgbotapi.ModeMarkdownV2
	html := tgbotapi.NewMessage(1, "a <foo>b</foo>")
	html.ParseMode = tgbotapi.ModeHTML
	htmlOK := tgbotapi.NewMessage(1, `<b>bold</b> <a href="https://x.org">x</a> &lt;`)
	htmlOK.ParseMode = tgbotapi.ModeHTML

	for _, tc := range []struct {
		name string
		msg  tgbotapi.MessageConfig
		desc string // "" for success
	}{
		{"empty", tgbotapi.NewMessage(1, ""), "Bad Request: message text is empty"},
		{"long", long, "Bad Request: message is too long"},
		{"no chat", tgbotapi.NewMessage(0, "x"), "Bad Request: chat_id is empty"},
		{"callback data", badData, "Bad Request: BUTTON_DATA_INVALID"},
		{"markdown", md, "Bad Request: can't parse entities: Character '.' is reserved and must be escaped with the preceding '\\'"},
		{"markdown ok", mdOK, ""},
		{"html", html, `Bad Request: can't parse entities: Unsupported start tag "foo" at byte offset 2`},
		{"html ok", htmlOK, ""},
	} {
		_, err := bot.Send(tc.msg)
		if tc.desc == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if te := apiErr(t, err, 400); te.Message != tc.desc {
			t.Errorf("%s: %q, want %q", tc.name, te.Message, tc.desc)
		}
	}
}

func TestMakeRequestRecordsRawParams(t *testing.T) {
	t.Parallel()
	s := newFake(t, Options{})
	bot := newBot(t, s)
	_, err := bot.MakeRequest("sendMessage", tgbotapi.Params{
		"chat_id": "42", "text": "Code 123456", "protect_content": "true", "disable_notification": "true",
	})
	if err != nil {
		t.Fatal(err)
	}
	sent := s.Sent(42)
	if len(sent) != 1 || !sent[0].ProtectContent || !sent[0].DisableNotification || sent[0].Text != "Code 123456" {
		t.Fatalf("Sent = %+v", sent)
	}
	calls := s.CallsTo("sendMessage")
	if len(calls) != 1 || calls[0].Params["protect_content"] != "true" || calls[0].Status != 200 {
		t.Fatalf("calls = %+v", calls)
	}
	// Calls hands out copies.
	calls[0].Params["text"] = "changed"
	if s.CallsTo("sendMessage")[0].Params["text"] != "Code 123456" {
		t.Fatal("Calls shares its maps")
	}
}

func TestDeleteMessage(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	s := newFake(t, Options{Now: clock.Now})
	bot := newBot(t, s)

	in := s.SendText(chatA, asha, "my number is 98765 43210")
	m, err := bot.Send(tgbotapi.NewMessage(asha.ID, "secret"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bot.Request(tgbotapi.NewDeleteMessage(asha.ID, m.MessageID)); err != nil {
		t.Fatalf("delete own message: %v", err)
	}
	if _, err := bot.Request(tgbotapi.NewDeleteMessage(asha.ID, in)); err != nil {
		t.Fatalf("delete incoming message: %v", err)
	}
	_, err = bot.Request(tgbotapi.NewDeleteMessage(asha.ID, m.MessageID))
	if te := apiErr(t, err, 400); te.Message != "Bad Request: message to delete not found" {
		t.Fatalf("second delete: %q", te.Message)
	}
	_, err = bot.Request(tgbotapi.NewDeleteMessage(ravi.ID, 1))
	apiErr(t, err, 400)
	if got := s.Deleted(asha.ID); len(got) != 2 || got[0] != m.MessageID || got[1] != in {
		t.Fatalf("Deleted = %v", got)
	}

	old, _ := bot.Send(tgbotapi.NewMessage(asha.ID, "old"))
	clock.Advance(48 * time.Hour)
	_, err = bot.Request(tgbotapi.NewDeleteMessage(asha.ID, old.MessageID))
	if te := apiErr(t, err, 400); te.Message != "Bad Request: message can't be deleted" {
		t.Fatalf("old delete: %q", te.Message)
	}
}

func TestCallbackQuery(t *testing.T) {
	t.Parallel()
	s := newFake(t, Options{})
	bot := newBot(t, s)
	msg := tgbotapi.NewMessage(asha.ID, "Pick")
	msg.ReplyMarkup = tgbotapi.NewInlineKeyboardMarkup(tgbotapi.NewInlineKeyboardRow(
		tgbotapi.NewInlineKeyboardButtonData("Yes", "yes")))
	m, err := bot.Send(msg)
	if err != nil {
		t.Fatal(err)
	}
	id := s.PressButton(chatA, asha, m.MessageID, "yes")
	ups, err := bot.GetUpdates(tgbotapi.UpdateConfig{})
	if err != nil || len(ups) != 1 || ups[0].CallbackQuery == nil {
		t.Fatalf("GetUpdates = %+v, %v", ups, err)
	}
	cq := ups[0].CallbackQuery
	if cq.ID != id || cq.Data != "yes" || cq.From.ID != asha.ID || cq.Message.MessageID != m.MessageID ||
		cq.Message.Text != "Pick" || cq.Message.ReplyMarkup == nil || cq.Message.Chat.ID != asha.ID {
		t.Fatalf("callback = %+v message %+v", cq, cq.Message)
	}
	if u := s.Unanswered(); len(u) != 1 || u[0] != id {
		t.Fatalf("Unanswered = %v", u)
	}
	if _, err := bot.Request(tgbotapi.NewCallback(id, "Done")); err != nil {
		t.Fatal(err)
	}
	_, err = bot.Request(tgbotapi.NewCallback(id, "Again"))
	if te := apiErr(t, err, 400); !strings.HasPrefix(te.Message, "Bad Request: query is too old") {
		t.Fatalf("second answer: %q", te.Message)
	}
	_, err = bot.Request(tgbotapi.NewCallback("nope", ""))
	apiErr(t, err, 400)
	if a := s.Answered(); len(a) != 1 || a[0] != id || s.Answers()[0].Text != "Done" || len(s.Unanswered()) != 0 {
		t.Fatalf("Answered = %v %+v", a, s.Answers())
	}
}

func TestEditMessage(t *testing.T) {
	t.Parallel()
	s := newFake(t, Options{})
	bot := newBot(t, s)
	msg := tgbotapi.NewMessage(asha.ID, "Pick")
	msg.ReplyMarkup = tgbotapi.NewInlineKeyboardMarkup(tgbotapi.NewInlineKeyboardRow(
		tgbotapi.NewInlineKeyboardButtonData("Yes", "yes")))
	m, _ := bot.Send(msg)
	edited, err := bot.Send(tgbotapi.NewEditMessageText(asha.ID, m.MessageID, "Picked"))
	if err != nil || edited.Text != "Picked" || edited.ReplyMarkup != nil || edited.EditDate == 0 {
		t.Fatalf("edit = %+v, %v", edited, err)
	}
	_, err = bot.Send(tgbotapi.NewEditMessageText(asha.ID, m.MessageID, "Picked"))
	if te := apiErr(t, err, 400); !strings.HasPrefix(te.Message, "Bad Request: message is not modified") {
		t.Fatalf("same edit: %q", te.Message)
	}
	in := s.SendText(chatA, asha, "hello")
	_, err = bot.Send(tgbotapi.NewEditMessageText(asha.ID, in, "x"))
	apiErr(t, err, 400)
	if e := s.Edits(asha.ID); len(e) != 1 || e[0].Text != "Picked" || e[0].MessageID != m.MessageID {
		t.Fatalf("Edits = %+v", e)
	}
}

func TestFailNext(t *testing.T) {
	t.Parallel()
	s := newFake(t, Options{})
	bot := newBot(t, s)

	s.FailNext("sendMessage", 1, http.StatusTooManyRequests, 7)
	_, err := bot.Send(tgbotapi.NewMessage(asha.ID, "x"))
	te := apiErr(t, err, 429)
	if te.RetryAfter != 7 || te.Message != "Too Many Requests: retry after 7" {
		t.Fatalf("429 = %+v", te)
	}
	if len(s.Sent(asha.ID)) != 0 {
		t.Fatal("a failed send was performed")
	}

	s.FailNext("*", 1, http.StatusBadGateway, 0)
	s.FailNext("sendMessage", 1, http.StatusForbidden, 0)
	_, err = bot.Send(tgbotapi.NewMessage(asha.ID, "x")) // method's own failure first
	if te := apiErr(t, err, 403); te.Message != "Forbidden: bot was blocked by the user" {
		t.Fatalf("403 = %q", te.Message)
	}
	_, err = bot.GetMe()
	apiErr(t, err, 502)
	if _, err := bot.Send(tgbotapi.NewMessage(asha.ID, "x")); err != nil {
		t.Fatalf("after the failures: %v", err)
	}
	st := s.Stats()
	if st.Injected != 3 || st.TooMany429 != 1 || st.Sent != 1 {
		t.Fatalf("Stats = %+v", st)
	}

	s.SetBlocked(asha.ID, true)
	_, err = bot.Send(tgbotapi.NewMessage(asha.ID, "x"))
	apiErr(t, err, 403)
	s.SetBlocked(asha.ID, false)
	if _, err := bot.Send(tgbotapi.NewMessage(asha.ID, "x")); err != nil {
		t.Fatal(err)
	}
}

func TestSetDownAndLatency(t *testing.T) {
	t.Parallel()
	s := newFake(t, Options{MaxPollWait: 10 * time.Second})
	bot := newBot(t, s)

	polled := make(chan error, 1)
	go func() {
		_, err := bot.GetUpdates(tgbotapi.UpdateConfig{Timeout: 30})
		polled <- err
	}()
	if err := s.WaitFor(ctxT(t), s.Polling); err != nil {
		t.Fatal(err)
	}
	s.SetDown(true)
	if err := <-polled; err == nil {
		t.Fatal("held getUpdates succeeded while down")
	}
	_, err := bot.GetMe()
	var te *tgbotapi.Error
	if err == nil || errors.As(err, &te) {
		t.Fatalf("GetMe while down = %v, want a decode error", err)
	}
	resp, err := http.Post(s.URL()+"/bot"+token+"/getMe", "application/x-www-form-urlencoded", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Content-Type") != "text/html" {
		t.Fatalf("down answer = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s.SetDown(false)

	s.SetLatency(30 * time.Millisecond)
	start := time.Now()
	if _, err := bot.GetMe(); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 30*time.Millisecond {
		t.Fatalf("latency %v not applied", el)
	}
}

func TestLimitsRealClock(t *testing.T) {
	t.Parallel()
	s := newFake(t, Options{EnforceLimits: true})
	bot := newBot(t, s)

	if _, err := bot.Send(tgbotapi.NewMessage(asha.ID, "one")); err != nil {
		t.Fatal(err)
	}
	_, err := bot.Send(tgbotapi.NewMessage(asha.ID, "two"))
	if te := apiErr(t, err, 429); te.RetryAfter != 1 {
		t.Fatalf("retry_after = %d", te.RetryAfter)
	}
	// 29 more chats fill the global second; the 31st send is refused.
	for i := range 29 {
		if _, err := bot.Send(tgbotapi.NewMessage(int64(1000+i), "hi")); err != nil {
			t.Fatalf("send %d: %v", i+2, err)
		}
	}
	_, err = bot.Send(tgbotapi.NewMessage(5000, "hi"))
	if te := apiErr(t, err, 429); te.RetryAfter != 1 {
		t.Fatalf("global retry_after = %d", te.RetryAfter)
	}
	st := s.Stats()
	if st.LimitChat != 1 || st.LimitGlobal != 1 || st.TooMany429 != 2 || st.Sent != 30 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestLimitsFakeClock(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	s := newFake(t, Options{EnforceLimits: true, Now: clock.Now})
	bot := newBot(t, s)
	send := func(chat int64) error {
		_, err := bot.Send(tgbotapi.NewMessage(chat, "m"))
		return err
	}

	// Private chat: one per second, less the 50 ms slack.
	if err := send(asha.ID); err != nil {
		t.Fatal(err)
	}
	clock.Advance(900 * time.Millisecond)
	apiErr(t, send(asha.ID), 429)
	clock.Advance(60 * time.Millisecond)
	if err := send(asha.ID); err != nil {
		t.Fatalf("after 960 ms: %v", err)
	}

	// Group: 20 per minute; retry_after counts whole seconds to the slot.
	group := Group(7, "Family").ID
	for i := range 20 {
		if err := send(group); err != nil {
			t.Fatalf("group send %d: %v", i, err)
		}
		clock.Advance(2 * time.Second)
	}
	// First group send at t0; now t0+40s; the window is 59.95 s.
	if te := apiErr(t, send(group), 429); te.RetryAfter != 20 {
		t.Fatalf("group retry_after = %d, want 20", te.RetryAfter)
	}
	clock.Advance(20 * time.Second)
	if err := send(group); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	if st := s.Stats(); st.LimitChat != 1 || st.LimitGroup != 1 || st.LimitGlobal != 0 {
		t.Fatalf("Stats = %+v", st)
	}
}

// hookRecorder is a webhook endpoint that checks the secret like a bot
// should and fails the first failFirst deliveries.
type hookRecorder struct {
	secret    string
	mu        sync.Mutex
	failFirst int
	got       []tgbotapi.Update
	headers   []string
}

func (h *hookRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.Header.Get(SecretHeader) != h.secret {
		http.Error(w, "forbidden", http.StatusUnauthorized)
		return
	}
	if h.failFirst > 0 {
		h.failFirst--
		http.Error(w, "boom", http.StatusInternalServerError)
		return
	}
	var u tgbotapi.Update
	if err := json.NewDecoder(r.Body).Decode(&u); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	_, present := r.Header[http.CanonicalHeaderKey(SecretHeader)]
	h.headers = append(h.headers, strconv.FormatBool(present))
	h.got = append(h.got, u)
}

func (h *hookRecorder) updates() []tgbotapi.Update {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]tgbotapi.Update(nil), h.got...)
}

func TestWebhook(t *testing.T) {
	t.Parallel()
	s := newFake(t, Options{})
	bot := newBot(t, s)
	rec := &hookRecorder{secret: "s3cret_-Token", failFirst: 1}
	hs := httptest.NewServer(rec)
	t.Cleanup(hs.Close)

	// The library has no secret_token: set it with MakeRequest.
	_, err := bot.MakeRequest("setWebhook", tgbotapi.Params{
		"url": hs.URL + "/hook", "secret_token": rec.secret, "allowed_updates": `["message","callback_query"]`,
		"max_connections": "10",
	})
	if err != nil {
		t.Fatal(err)
	}
	if w := s.Webhook(); w.URL != hs.URL+"/hook" || w.SecretToken != rec.secret || w.MaxConnections != 10 ||
		len(w.AllowedUpdates) != 2 {
		t.Fatalf("Webhook = %+v", w)
	}

	s.SendText(chatA, asha, "/start")
	s.SendText(chatA, asha, "second")
	err = s.WaitFor(ctxT(t), func() bool { return s.WebhookDeliveries().Delivered == 2 })
	if err != nil {
		t.Fatal(err)
	}
	got := rec.updates()
	if got[0].Message.Text != "/start" || got[1].Message.Text != "second" || got[0].UpdateID >= got[1].UpdateID {
		t.Fatalf("delivered out of order: %+v", got)
	}
	if d := s.WebhookDeliveries(); d.Attempts != 3 || d.Failures != 1 || d.Delivered != 2 {
		t.Fatalf("WebhookDeliveries = %+v", d)
	}
	info, err := bot.GetWebhookInfo()
	if err != nil || info.URL != hs.URL+"/hook" || info.PendingUpdateCount != 0 ||
		info.LastErrorMessage != "Wrong response from the webhook: 500 Internal Server Error" {
		t.Fatalf("GetWebhookInfo = %+v, %v", info, err)
	}

	// getUpdates conflicts with a webhook.
	_, err = bot.GetUpdates(tgbotapi.UpdateConfig{})
	if te := apiErr(t, err, 409); !strings.Contains(te.Message, "webhook is active") {
		t.Fatalf("409 = %q", te.Message)
	}

	// A forged delivery with the wrong secret is refused by the endpoint.
	forged := json.RawMessage(`{"update_id":1,"message":{"message_id":1,"date":1,"chat":{"id":1,"type":"private"},"text":"/start"}}`)
	if status, err := s.PostUpdateWithSecret(ctxT(t), "wrong", forged); err != nil || status != http.StatusUnauthorized {
		t.Fatalf("forged post = %d, %v", status, err)
	}
	if status, _ := s.PostUpdateWithSecret(ctxT(t), rec.secret, forged); status != http.StatusOK {
		t.Fatalf("genuine post = %d", status)
	}
	if d := s.WebhookDeliveries(); d.Attempts != 3 {
		t.Fatalf("PostUpdateWithSecret counted as delivery: %+v", d)
	}

	// Secret tokens are restricted to A-Z a-z 0-9 _ -.
	_, err = bot.MakeRequest("setWebhook", tgbotapi.Params{"url": hs.URL, "secret_token": "a+b/c="})
	apiErr(t, err, 400)

	// Deleting the webhook lets getUpdates work again.
	if _, err := bot.Request(tgbotapi.DeleteWebhookConfig{}); err != nil {
		t.Fatal(err)
	}
	s.SendText(chatA, asha, "polled")
	ups, err := bot.GetUpdates(tgbotapi.UpdateConfig{})
	if err != nil || len(ups) != 1 || ups[0].Message.Text != "polled" {
		t.Fatalf("GetUpdates after deleteWebhook = %+v, %v", ups, err)
	}
	if _, err := s.PostUpdateWithSecret(ctxT(t), "", json.RawMessage(`{}`)); !errors.Is(err, ErrNoWebhook) {
		t.Fatalf("PostUpdateWithSecret without webhook: %v", err)
	}
}

func TestWebhookWithoutSecretAndPendingUpdates(t *testing.T) {
	t.Parallel()
	s := newFake(t, Options{})
	bot := newBot(t, s)
	rec := &hookRecorder{}
	hs := httptest.NewServer(rec)
	t.Cleanup(hs.Close)

	// Updates queued before setWebhook are delivered to it.
	s.SendText(chatA, asha, "early")
	u, _ := url.Parse(hs.URL)
	if _, err := bot.Request(tgbotapi.WebhookConfig{URL: u}); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitFor(ctxT(t), func() bool { return s.WebhookDeliveries().Delivered == 1 }); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.headers[0] != "false" || rec.got[0].Message.Text != "early" {
		t.Fatalf("secret header present without secret_token: %v", rec.headers)
	}
}

func TestCloseReleasesBlockedPoll(t *testing.T) {
	s := New(token, Options{MaxPollWait: time.Minute})
	bot := newBot(t, s)
	done := make(chan error, 1)
	go func() {
		_, err := bot.GetUpdates(tgbotapi.UpdateConfig{Timeout: 60})
		done <- err
	}()
	if err := s.WaitFor(ctxT(t), s.Polling); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s.Close()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("getUpdates still blocked after Close")
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("Close took %v", el)
	}
	if err := s.WaitFor(ctxT(t), func() bool { return false }); !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitFor after Close = %v", err)
	}
}

func TestClientGoneReleasesPoll(t *testing.T) {
	t.Parallel()
	s := newFake(t, Options{MaxPollWait: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+"/bot"+token+"/getUpdates",
		strings.NewReader("timeout=60"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	if err := s.WaitFor(ctxT(t), s.Polling); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
	if err := s.WaitFor(ctxT(t), func() bool { return !s.Polling() }); err != nil {
		t.Fatal("poll still held after the client went away")
	}
}

func TestInjectedUpdateShapes(t *testing.T) {
	t.Parallel()
	s := newFake(t, Options{})
	bot := newBot(t, s)
	group := Supergroup(55, "Staff")

	s.ShareContact(chatA, asha, "919876543210", asha.ID)
	s.ShareContact(chatA, asha, "+919999999999", 0)
	s.SendSticker(chatA, asha)
	s.SendPhoto(chatA, asha, "look")
	s.SendForwarded(chatA, asha, "fwd")
	first := s.SendText(chatA, asha, "typo")
	s.EditText(chatA, asha, first, "fixed")
	s.ChannelPost(Channel(9, "News"), "post")
	s.AddedToGroup(group, ravi)
	s.SendText(group, ravi, "/start@otpgate_test_bot")
	rawID, err := s.SendRaw(json.RawMessage(`{"update_id":0,"business_message":{"message_id":1}}`))
	if err != nil {
		t.Fatal(err)
	}

	ups, err := bot.GetUpdates(tgbotapi.UpdateConfig{})
	if err != nil || len(ups) != 12 {
		t.Fatalf("GetUpdates = %d, %v", len(ups), err)
	}
	c := ups[0].Message.Contact
	if c == nil || c.PhoneNumber != "919876543210" || c.UserID != asha.ID {
		t.Errorf("contact = %+v", c)
	}
	if c := ups[1].Message.Contact; c == nil || c.UserID != 0 {
		t.Errorf("foreign contact = %+v", c)
	}
	if ups[2].Message.Sticker == nil || ups[2].Message.Text != "" {
		t.Errorf("sticker = %+v", ups[2].Message)
	}
	if len(ups[3].Message.Photo) == 0 || ups[3].Message.Caption != "look" {
		t.Errorf("photo = %+v", ups[3].Message)
	}
	if ups[4].Message.ForwardFrom == nil || ups[4].Message.ForwardDate == 0 {
		t.Errorf("forward = %+v", ups[4].Message)
	}
	if e := ups[6].EditedMessage; e == nil || e.MessageID != first || e.Text != "fixed" || e.EditDate == 0 {
		t.Errorf("edited = %+v", e)
	}
	if p := ups[7].ChannelPost; p == nil || p.SenderChat == nil || p.Chat.Type != "channel" || p.From != nil {
		t.Errorf("channel post = %+v", p)
	}
	mcm := ups[8].MyChatMember
	if mcm == nil || mcm.Chat.ID != group.ID || mcm.Chat.Type != "supergroup" || mcm.From.ID != ravi.ID ||
		mcm.OldChatMember.Status != "left" || mcm.NewChatMember.Status != "member" ||
		mcm.NewChatMember.User.ID != DefaultBotID {
		t.Errorf("my_chat_member = %+v", mcm)
	}
	if m := ups[9].Message; m == nil || len(m.NewChatMembers) != 1 || m.NewChatMembers[0].ID != DefaultBotID {
		t.Errorf("service message = %+v", m)
	}
	if m := ups[10].Message; !m.IsCommand() || m.Command() != "start" || m.Chat.Title != "Staff" || group.ID > -1_000_000_000_000 {
		t.Errorf("group command = %+v (chat %+v)", m, m.Chat)
	}
	if ups[11].UpdateID != rawID || ups[11].Message != nil {
		t.Errorf("raw update = %+v, id %d", ups[11], rawID)
	}
	for i := 1; i < len(ups); i++ {
		if ups[i].UpdateID != ups[i-1].UpdateID+1 {
			t.Fatalf("update ids not increasing at %d", i)
		}
	}
	if _, err := s.SendRaw(json.RawMessage(`[1]`)); err == nil {
		t.Error("SendRaw accepted a non-object")
	}
}

func TestAllowedUpdatesFilter(t *testing.T) {
	t.Parallel()
	s := newFake(t, Options{})
	bot := newBot(t, s)
	if _, err := bot.GetUpdates(tgbotapi.UpdateConfig{AllowedUpdates: []string{"message"}}); err != nil {
		t.Fatal(err)
	}
	s.PressButton(chatA, asha, 1, "x") // the bot did not ask for callback queries
	s.SendText(chatA, asha, "hi")
	ups, _ := bot.GetUpdates(tgbotapi.UpdateConfig{}) // sends allowed_updates=null: setting kept
	if len(ups) != 1 || ups[0].Message == nil || s.Stats().Filtered != 1 {
		t.Fatalf("updates = %+v, stats %+v", ups, s.Stats())
	}
	// An empty list restores the default, which leaves chat_member out.
	if _, err := bot.GetUpdates(tgbotapi.UpdateConfig{Offset: ups[0].UpdateID + 1, AllowedUpdates: []string{}}); err != nil {
		t.Fatal(err)
	}
	s.PressButton(chatA, asha, 1, "x")
	if id, _ := s.SendRaw(json.RawMessage(`{"chat_member":{}}`)); id != 0 {
		t.Fatalf("chat_member queued by default: %d", id)
	}
	if s.Pending() != 1 {
		t.Fatalf("Pending = %d", s.Pending())
	}
}

func TestCommandsLeaveChatAndChatInfo(t *testing.T) {
	t.Parallel()
	s := newFake(t, Options{})
	bot := newBot(t, s)

	cmds := tgbotapi.NewSetMyCommandsWithScopeAndLanguage(tgbotapi.NewBotCommandScopeAllPrivateChats(), "hi",
		tgbotapi.BotCommand{Command: "start", Description: "शुरू करें"})
	if _, err := bot.Request(cmds); err != nil {
		t.Fatal(err)
	}
	got := s.Commands()
	if len(got) != 1 || got[0].Commands[0].Command != "start" || got[0].LanguageCode != "hi" ||
		!strings.Contains(string(got[0].Scope), "all_private_chats") {
		t.Fatalf("Commands = %+v", got)
	}
	back, err := bot.GetMyCommandsWithConfig(tgbotapi.NewGetMyCommandsWithScopeAndLanguage(
		tgbotapi.NewBotCommandScopeAllPrivateChats(), "hi"))
	if err != nil || len(back) != 1 || back[0].Description != "शुरू करें" {
		t.Fatalf("GetMyCommands = %+v, %v", back, err)
	}
	_, err = bot.Request(tgbotapi.NewSetMyCommands(tgbotapi.BotCommand{Command: "Start", Description: "x"}))
	if te := apiErr(t, err, 400); te.Message != "Bad Request: BOT_COMMAND_INVALID" {
		t.Fatalf("uppercase command: %q", te.Message)
	}

	group := Group(7, "Family")
	s.AddedToGroup(group, ravi)
	if _, err := bot.Request(tgbotapi.LeaveChatConfig{ChatID: group.ID}); err != nil {
		t.Fatal(err)
	}
	if l := s.Left(); len(l) != 1 || l[0] != group.ID {
		t.Fatalf("Left = %v", l)
	}
	_, err = bot.Send(tgbotapi.NewMessage(group.ID, "still here?"))
	if te := apiErr(t, err, 403); te.Message != "Forbidden: bot is not a member of the group chat" {
		t.Fatalf("send after leave: %q", te.Message)
	}
	_, err = bot.Request(tgbotapi.LeaveChatConfig{ChatID: asha.ID})
	apiErr(t, err, 400)

	chat, err := bot.GetChat(tgbotapi.ChatInfoConfig{ChatConfig: tgbotapi.ChatConfig{ChatID: group.ID}})
	if err != nil || chat.Title != "Family" || chat.Type != "group" {
		t.Fatalf("GetChat = %+v, %v", chat, err)
	}
	_, err = bot.GetChat(tgbotapi.ChatInfoConfig{ChatConfig: tgbotapi.ChatConfig{ChatID: -999}})
	apiErr(t, err, 400)
	member, err := bot.GetChatMember(tgbotapi.GetChatMemberConfig{ChatConfigWithUser: tgbotapi.ChatConfigWithUser{
		ChatID: group.ID, UserID: ravi.ID}})
	if err != nil || member.User.ID != ravi.ID || member.Status != "member" {
		t.Fatalf("GetChatMember = %+v, %v", member, err)
	}
	me, _ := bot.GetChatMember(tgbotapi.GetChatMemberConfig{ChatConfigWithUser: tgbotapi.ChatConfigWithUser{
		ChatID: group.ID, UserID: DefaultBotID}})
	if me.Status != "left" {
		t.Fatalf("bot status after leaving = %q", me.Status)
	}
}

func TestWaitSent(t *testing.T) {
	t.Parallel()
	s := newFake(t, Options{})
	bot := newBot(t, s)

	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.WaitSent(short, asha.ID, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitSent on nothing = %v", err)
	}

	go func() {
		for i := range 3 {
			_, _ = bot.Send(tgbotapi.NewMessage(asha.ID, strconv.Itoa(i)))
		}
	}()
	sent, err := s.WaitSent(ctxT(t), asha.ID, 3)
	if err != nil || len(sent) != 3 || sent[2].Text != "2" {
		t.Fatalf("WaitSent = %+v, %v", sent, err)
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	s := newFake(t, Options{MaxCalls: 50})
	bot := newBot(t, s)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				chat := int64(100 + g)
				if _, err := bot.Send(tgbotapi.NewMessage(chat, strconv.Itoa(i))); err != nil {
					t.Error(err)
					return
				}
				s.SendText(Private(chat), User{ID: chat}, "x")
				_ = s.Calls()
				_ = s.Stats()
			}
		})
	}
	wg.Go(func() {
		offset := 0
		for n := 0; n < 160; {
			ups, err := bot.GetUpdates(tgbotapi.UpdateConfig{Offset: offset, Timeout: 1})
			if err != nil {
				t.Error(err)
				return
			}
			for _, u := range ups {
				offset = u.UpdateID + 1
			}
			n += len(ups)
		}
	})
	wg.Wait()
	for g := range 8 {
		sent := s.Sent(int64(100 + g))
		for i := 1; i < len(sent); i++ {
			if sent[i].MessageID <= sent[i-1].MessageID {
				t.Fatalf("chat %d: message ids not increasing", 100+g)
			}
		}
	}
	if st := s.Stats(); st.Sent != 160 || st.MaxInFlight < 1 {
		t.Fatalf("Stats = %+v", st)
	}
	if n := len(s.Calls()); n < 50 || n >= 100 {
		t.Fatalf("MaxCalls 50 kept %d calls", n)
	}
}

func TestOptionsValidate(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New accepted a negative MaxCalls")
		}
	}()
	NewUnstarted(token, Options{MaxCalls: -1})
}

// TestNoGoroutinesAfterClose closes one fake whose webhook sender is in
// retry back-off and one holding a getUpdates, and expects the goroutine
// count to come back down. It does not run in parallel with other tests.
func TestNoGoroutinesAfterClose(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		rec := &hookRecorder{failFirst: 1 << 30}
		hs := httptest.NewServer(rec)
		defer hs.Close()

		hooked := New(token, Options{WebhookBackoff: time.Millisecond})
		defer hooked.Close()
		bot := newBot(t, hooked)
		if _, err := bot.MakeRequest("setWebhook", tgbotapi.Params{"url": hs.URL}); err != nil {
			t.Fatal(err)
		}
		hooked.SendText(chatA, asha, "never delivered")
		if err := hooked.WaitFor(ctxT(t), func() bool { return hooked.WebhookDeliveries().Failures >= 3 }); err != nil {
			t.Fatal(err)
		}

		polled := New(token, Options{MaxPollWait: time.Minute})
		defer polled.Close()
		pbot := newBot(t, polled)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = pbot.GetUpdates(tgbotapi.UpdateConfig{Timeout: 60})
		}()
		if err := polled.WaitFor(ctxT(t), polled.Polling); err != nil {
			t.Fatal(err)
		}
		hooked.Close()
		polled.Close()
		<-done
		pbot.Client.(*http.Client).CloseIdleConnections()
		bot.Client.(*http.Client).CloseIdleConnections()
	}()

	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines before, %d after Close:\n%s", before, runtime.NumGoroutine(),
				buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}
