package telegram

import (
	"errors"
	"log/slog"
	"strconv"
	"testing"
	"time"

	tgbotapi "github.com/go-telegram-bot-api/telegram-bot-api/v5"
)

// These tests drive the scheduler's decisions with a fake clock; the
// end-to-end tests in telegram_test.go drive the whole queue against the
// fake Bot API.

// fakeClock is a Clock that moves only when told. After never fires:
// these tests call the scheduler's steps themselves.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time                       { return c.t }
func (c *fakeClock) After(time.Duration) <-chan time.Time { return nil }
func (c *fakeClock) add(d time.Duration)                  { c.t = c.t.Add(d) }

func newTestOutbox() (*outbox, *fakeClock) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	o := newOutbox(nil, slog.New(slog.DiscardHandler), 1, clk)
	return o, clk
}

// next advances the clock until a call may go, and returns it.
func next(o *outbox, clk *fakeClock) *call {
	for {
		c, wait := o.pick()
		if c != nil {
			return c
		}
		clk.add(wait)
	}
}

func msg(chat int64, text string) *call {
	return &call{chatID: chat, method: "sendMessage", params: tgbotapi.Params{"text": text}}
}

func TestOutboxPerChatOrderAndSpacing(t *testing.T) {
	o, clk := newTestOutbox()
	o.enqueue(msg(1, "a"), false)
	o.enqueue(msg(1, "b"), false)
	c, _ := o.pick()
	if c == nil || c.params["text"] != "a" {
		t.Fatalf("first pick: %+v", c)
	}
	if c2, _ := o.pick(); c2 != nil {
		t.Fatal("a second message to the chat went while the first was in flight")
	}
	o.finish(c, &tgbotapi.APIResponse{Ok: true}, nil)
	c2, wait := o.pick()
	if c2 != nil || wait < time.Second {
		t.Fatalf("second message to the same chat must wait ≥1s, got %v after %v", c2, wait)
	}
	clk.add(wait)
	if c2, _ = o.pick(); c2 == nil || c2.params["text"] != "b" {
		t.Fatalf("after the wait: %+v", c2)
	}
}

func TestOutboxGlobalRate(t *testing.T) {
	o, clk := newTestOutbox()
	for i := range 100 {
		o.enqueue(msg(int64(i+1), strconv.Itoa(i)), false)
	}
	start := clk.t
	sent := 0
	var times []time.Time
	for sent < 100 {
		c, wait := o.pick()
		if c == nil {
			clk.add(wait)
			continue
		}
		if c.params["text"] != strconv.Itoa(sent) {
			t.Fatalf("chats served out of arrival order: got %s, want %d", c.params["text"], sent)
		}
		times = append(times, clk.t)
		o.finish(c, &tgbotapi.APIResponse{Ok: true}, nil)
		sent++
	}
	// No one-second window holds more than 30 sends.
	for i := range times {
		n := 0
		for j := i; j < len(times) && times[j].Sub(times[i]) < time.Second; j++ {
			n++
		}
		if n > 30 {
			t.Fatalf("%d sends within one second starting at send %d", n, i)
		}
	}
	if took := clk.t.Sub(start); took > 4*time.Second {
		t.Fatalf("100 sends took %v of scheduled time; the floor is 3.3s", took)
	}
}

func TestOutboxGroupLimit(t *testing.T) {
	o, clk := newTestOutbox()
	for i := range 25 {
		o.enqueue(msg(-5, strconv.Itoa(i)), true)
	}
	var times []time.Time
	for len(times) < 25 {
		c, wait := o.pick()
		if c == nil {
			clk.add(wait)
			continue
		}
		times = append(times, clk.t)
		o.finish(c, &tgbotapi.APIResponse{Ok: true}, nil)
	}
	if d := times[20].Sub(times[0]); d < time.Minute {
		t.Fatalf("21st group message %v after the first; at most 20 a minute", d)
	}
}

func TestOutboxRetriesAndDrops(t *testing.T) {
	o, clk := newTestOutbox()
	var got []error
	c := msg(1, "x")
	c.done = func(_ *tgbotapi.APIResponse, err error) { got = append(got, err) }
	o.enqueue(c, false)

	p, _ := o.pick()
	o.finish(p, nil, &tgbotapi.Error{Code: 429, Message: "Too Many Requests", ResponseParameters: tgbotapi.ResponseParameters{RetryAfter: 7}})
	if p2, wait := o.pick(); p2 != nil || wait < 7*time.Second {
		t.Fatalf("after 429 retry_after 7: pick %v, wait %v", p2, wait)
	}
	clk.add(7 * time.Second)
	p, _ = o.pick()
	o.finish(p, nil, errors.New("connection reset"))
	clk.add(maxBackoff)
	p, _ = o.pick()
	o.finish(p, nil, &tgbotapi.Error{Code: 502, Message: "Bad Gateway"})
	clk.add(maxBackoff)
	p, _ = o.pick()
	if p != c {
		t.Fatal("the message was not retried")
	}
	o.finish(p, &tgbotapi.APIResponse{Ok: true}, nil)
	if len(got) != 1 || got[0] != nil || o.depth() != 0 {
		t.Fatalf("done called %d times (%v), depth %d", len(got), got, o.depth())
	}
	if tooMany, _ := o.stats(); tooMany != 1 {
		t.Fatalf("429s counted: %d", tooMany)
	}

	// A refusal no retry can fix (the user blocked the bot) is dropped.
	c = msg(2, "y")
	c.done = func(_ *tgbotapi.APIResponse, err error) { got = append(got, err) }
	o.enqueue(c, false)
	p = next(o, clk)
	o.finish(p, nil, &tgbotapi.Error{Code: 403, Message: "Forbidden: bot was blocked by the user"})
	if len(got) != 2 || got[1] == nil || o.depth() != 0 {
		t.Fatalf("permanent failure: %v, depth %d", got, o.depth())
	}
}

func TestOutboxAnswersAreNotPaced(t *testing.T) {
	o, _ := newTestOutbox()
	o.enqueue(msg(1, "a"), false)
	o.enqueue(&call{chatID: 1, method: "answerCallbackQuery"}, false)
	c, _ := o.pick()
	o.finish(c, &tgbotapi.APIResponse{Ok: true}, nil)
	if c, wait := o.pick(); c == nil || c.method != "answerCallbackQuery" {
		t.Fatalf("an answer should not wait for the chat's message spacing: %v %v", c, wait)
	}
}

func TestOutboxSecondStepHoldsTheChat(t *testing.T) {
	o, clk := newTestOutbox()
	edit := &call{chatID: 1, method: "editMessageText", params: tgbotapi.Params{"text": "record"}}
	ph := msg(1, "…")
	var scheduledWhileHeld bool
	ph.next = func(*tgbotapi.APIResponse) *call {
		// Nothing else of the chat may go while the step in between runs.
		c, _ := o.pick()
		scheduledWhileHeld = c == nil
		return edit
	}
	o.enqueue(ph, false)
	o.enqueue(msg(1, "after"), false)
	o.enqueue(&call{chatID: 1, method: "answerCallbackQuery"}, false)
	o.enqueue(msg(2, "other chat"), false)

	if c := next(o, clk); c != ph {
		t.Fatalf("first: %+v", c)
	}
	o.finish(ph, &tgbotapi.APIResponse{Ok: true}, nil)
	if !scheduledWhileHeld {
		t.Fatal("the chat was released before the second step was in place")
	}
	if o.depth() != 4 {
		t.Fatalf("depth %d: the edit takes the placeholder's place", o.depth())
	}
	// The edit goes before the other chat's message (it keeps the
	// placeholder's turn) and without waiting for the chat's pacing.
	if c, _ := o.pick(); c != edit {
		t.Fatalf("after the placeholder: %+v", c)
	}
	o.finish(edit, &tgbotapi.APIResponse{Ok: true}, nil)
	if c := next(o, clk); c.params["text"] != "other chat" {
		t.Fatalf("then the other chat: %+v", c)
	}
}

func TestOutboxRetriedEditThatTookEffect(t *testing.T) {
	o, _ := newTestOutbox()
	var got []error
	e := &call{chatID: 1, method: "editMessageText", done: func(_ *tgbotapi.APIResponse, err error) { got = append(got, err) }}
	o.enqueue(e, false)
	c, _ := o.pick()
	o.finish(c, nil, &tgbotapi.Error{Code: 400, Message: "Bad Request: message is not modified: specified new message content and reply markup are exactly the same"})
	if len(got) != 1 || got[0] != nil || o.depth() != 0 {
		t.Fatalf("done %v, depth %d", got, o.depth())
	}
	if _, permanent := o.stats(); permanent != 0 {
		t.Fatal("counted as refused")
	}
}

func TestOutboxRetryKeepsTheChatsPacing(t *testing.T) {
	o, clk := newTestOutbox()
	o.enqueue(msg(1, "a"), false)
	start := clk.t
	c, _ := o.pick()
	// 502 after Telegram delivered it, perhaps: the retry counts as a
	// second message to the chat.
	o.finish(c, nil, &tgbotapi.Error{Code: 502, Message: "Bad Gateway"})
	c = next(o, clk)
	if gap := clk.t.Sub(start); gap < privateInterval {
		t.Fatalf("retried %v after the first attempt; the chat allows one message a second", gap)
	}
	if c.params["text"] != "a" {
		t.Fatalf("retry: %+v", c)
	}
}
