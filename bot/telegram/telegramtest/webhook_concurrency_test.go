package telegramtest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	tgbotapi "github.com/go-telegram-bot-api/telegram-bot-api/v5"
)

// Webhook deliveries as Telegram's Bot API server makes them: chats in
// parallel up to max_connections, each chat in order, one update at a
// time. Most tests run in a synctest bubble: after synctest.Wait every
// delivery the fake can make has arrived and is held, so "the second
// update of a chat has not arrived" is a fact, not a timeout.

// heldHook is a webhook endpoint that holds every delivery until the test
// answers it, or, with auto set, answers 200 after auto.
type heldHook struct {
	auto time.Duration

	mu          sync.Mutex
	held        []*heldPost // arrived and not answered, in arrival order
	arrived     []heldPost  // every arrival, in order
	inFlight    int
	maxInFlight int
}

type heldPost struct {
	id     int
	chat   int64
	text   string
	at     time.Time
	answer chan int
}

func (h *heldHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var u tgbotapi.Update
	if err := json.NewDecoder(r.Body).Decode(&u); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p := &heldPost{id: u.UpdateID, at: time.Now(), answer: make(chan int, 1)}
	switch {
	case u.Message != nil:
		p.chat, p.text = u.Message.Chat.ID, u.Message.Text
	case u.CallbackQuery != nil:
		p.chat, p.text = u.CallbackQuery.Message.Chat.ID, u.CallbackQuery.Data
	case u.InlineQuery != nil:
		p.text = u.InlineQuery.Query
	}
	h.mu.Lock()
	h.inFlight++
	h.maxInFlight = max(h.maxInFlight, h.inFlight)
	h.arrived = append(h.arrived, *p)
	if h.auto == 0 {
		h.held = append(h.held, p)
	}
	h.mu.Unlock()

	status := 0
	if h.auto > 0 {
		time.Sleep(h.auto)
		status = http.StatusOK
	} else {
		select {
		case status = <-p.answer:
		case <-r.Context().Done():
		}
	}
	// Out of flight before the answer is written: the fake may post the
	// chat's next update as soon as it reads it.
	h.mu.Lock()
	h.inFlight--
	h.mu.Unlock()
	if status == 0 {
		return // the fake went away
	}
	w.WriteHeader(status)
}

// heldTexts returns the texts of the deliveries being held, sorted:
// deliveries in flight together arrive in any order.
func (h *heldHook) heldTexts() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, p := range h.held {
		out = append(out, p.text)
	}
	slices.Sort(out)
	return out
}

// answer answers the held delivery of text with status.
func (h *heldHook) answer(t *testing.T, text string, status int) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, p := range h.held {
		if p.text == text {
			p.answer <- status
			h.held = slices.Delete(h.held, i, i+1)
			return
		}
	}
	t.Fatalf("%q is not being held; held: %v", text, h.heldTextsLocked())
}

func (h *heldHook) heldTextsLocked() []string {
	var out []string
	for _, p := range h.held {
		out = append(out, p.text)
	}
	return out
}

// arrivals returns every delivery so far, in arrival order.
func (h *heldHook) arrivals() []heldPost {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.arrived)
}

// textsOf returns, in arrival order, the texts delivered for chat.
func (h *heldHook) textsOf(chat int64) []string {
	var out []string
	for _, p := range h.arrivals() {
		if p.chat == chat {
			out = append(out, p.text)
		}
	}
	return out
}

// hookInBubble builds a fake in the current bubble whose webhook, set with
// params (url filled in), is h served over a Listener. Cleanup closes the
// fake, then the server.
func hookInBubble(t *testing.T, opts Options, h *heldHook, params tgbotapi.Params) (*Server, *tgbotapi.BotAPI) {
	t.Helper()
	ln := NewListener()
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	opts.WebhookClient = ln.Client()
	s := NewUnstarted(token, opts)
	t.Cleanup(func() {
		s.Close()
		_ = srv.Close()
		_ = ln.Close()
	})
	bot := inBubbleBot(t, s)
	if params == nil {
		params = tgbotapi.Params{}
	}
	params["url"] = "http://bot.test/hook"
	if _, err := bot.MakeRequest("setWebhook", params); err != nil {
		t.Fatal(err)
	}
	return s, bot
}

func wantHeld(t *testing.T, h *heldHook, want ...string) {
	t.Helper()
	synctest.Wait()
	slices.Sort(want)
	if got := h.heldTexts(); !slices.Equal(got, want) {
		t.Fatalf("in flight: %v, want %v", got, want)
	}
}

func TestWebhookChatsInParallel(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := &heldHook{}
		s, _ := hookInBubble(t, Options{}, h, nil)
		s.SendText(Private(1), User{ID: 1}, "a")
		s.SendText(Private(2), User{ID: 2}, "b")
		s.SendText(Group(3, "G"), User{ID: 1}, "c")
		wantHeld(t, h, "a", "b", "c")
		if w := s.Webhook(); w.PendingUpdates != 3 {
			t.Fatalf("pending while in flight = %d, want 3", w.PendingUpdates)
		}
		for _, text := range []string{"b", "c", "a"} {
			h.answer(t, text, http.StatusOK)
		}
		synctest.Wait()
		if d := s.WebhookDeliveries(); d != (WebhookStats{Attempts: 3, Delivered: 3}) {
			t.Fatalf("WebhookDeliveries = %+v", d)
		}
		if w := s.Webhook(); w.PendingUpdates != 0 {
			t.Fatalf("pending after delivery = %d", w.PendingUpdates)
		}
	})
}

func TestWebhookOneChatInOrder(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := &heldHook{}
		s, bot := hookInBubble(t, Options{}, h, nil)
		a, b := Private(asha.ID), Private(ravi.ID)
		msg := s.SendText(a, asha, "a1")
		s.SendText(a, asha, "a2")
		s.SendText(b, ravi, "b1")
		s.PressButton(a, asha, msg, "a3 button") // the chat of its message
		if _, err := s.SendRaw(json.RawMessage(`{"inline_query":{"id":"1","from":{"id":42,"is_bot":false,"first_name":"Asha"},"query":"inline","offset":""}}`)); err != nil {
			t.Fatal(err)
		}
		// a2 waits for a1; b1 and the chat-less inline query do not.
		wantHeld(t, h, "a1", "b1", "inline")
		h.answer(t, "b1", http.StatusOK)
		h.answer(t, "inline", http.StatusOK)
		wantHeld(t, h, "a1")

		// Only a 2xx for a1 lets a2 go, and only a2.
		h.answer(t, "a1", http.StatusNoContent)
		wantHeld(t, h, "a2")
		h.answer(t, "a2", http.StatusOK)
		wantHeld(t, h, "a3 button")
		h.answer(t, "a3 button", http.StatusOK)
		synctest.Wait()

		if got := h.textsOf(a.ID); !slices.Equal(got, []string{"a1", "a2", "a3 button"}) {
			t.Fatalf("chat a delivered %v", got)
		}
		// Within the chat, update ids rise in arrival order.
		var last int
		for _, p := range h.arrivals() {
			if p.chat == a.ID {
				if p.id <= last {
					t.Fatalf("update %d after %d: %+v", p.id, last, h.arrivals())
				}
				last = p.id
			}
		}
		info, err := bot.GetWebhookInfo()
		if err != nil || info.PendingUpdateCount != 0 || info.LastErrorMessage != "" {
			t.Fatalf("GetWebhookInfo = %+v, %v", info, err)
		}
	})
}

func TestWebhookMaxConnections(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := &heldHook{}
		s, _ := hookInBubble(t, Options{}, h, tgbotapi.Params{"max_connections": "2"})
		for i := range 5 {
			id := int64(100 + i)
			s.SendText(Private(id), User{ID: id}, "u"+strconv.Itoa(i))
		}
		// The heads of the queue go first, two at a time.
		wantHeld(t, h, "u0", "u1")
		h.answer(t, "u1", http.StatusOK)
		wantHeld(t, h, "u0", "u2")
		h.answer(t, "u0", http.StatusOK)
		h.answer(t, "u2", http.StatusOK)
		wantHeld(t, h, "u3", "u4")
		h.answer(t, "u3", http.StatusOK)
		h.answer(t, "u4", http.StatusOK)
		synctest.Wait()
		if d := s.WebhookDeliveries(); d.Delivered != 5 || h.maxInFlight != 2 {
			t.Fatalf("WebhookDeliveries = %+v, at most %d in flight", d, h.maxInFlight)
		}
	})
}

// TestWebhookBurst is the load test's case: 300 users at once, a bot that
// takes 100 ms an update, Telegram's default of 40 connections.
func TestWebhookBurst(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := &heldHook{auto: 100 * time.Millisecond}
		s, _ := hookInBubble(t, Options{}, h, nil)
		start := time.Now()
		for i := range 300 {
			id := int64(1000 + i)
			s.SendText(Private(id), User{ID: id}, "/start")
			s.SendText(Private(id), User{ID: id}, "second")
		}
		if err := s.WaitFor(context.Background(), func() bool { return s.WebhookDeliveries().Delivered == 600 }); err != nil {
			t.Fatal(err)
		}
		// Eight blocks of 40 chats (the last of 20), two rounds of 100 ms
		// each: the first updates, then the second ones. One at a time it
		// would take a minute.
		if took := time.Since(start); took != 1600*time.Millisecond || h.maxInFlight != 40 {
			t.Fatalf("600 updates took %v, at most %d in flight", took, h.maxInFlight)
		}
		seen := map[int64]string{}
		for _, p := range h.arrivals() {
			if want := map[string]string{"": "/start", "/start": "second"}[seen[p.chat]]; p.text != want {
				t.Fatalf("chat %d: %q after %q", p.chat, p.text, seen[p.chat])
			}
			seen[p.chat] = p.text
		}
	})
}

func TestWebhookFailureHoldsBackOnlyItsChat(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := &heldHook{}
		const backoff = time.Second
		s, bot := hookInBubble(t, Options{WebhookBackoff: backoff, WebhookMaxBackoff: time.Minute}, h, nil)
		a, b := Private(asha.ID), Private(ravi.ID)
		s.SendText(a, asha, "a1")
		s.SendText(a, asha, "a2")
		for i := 1; i <= 3; i++ {
			s.SendText(b, ravi, "b"+strconv.Itoa(i))
		}
		start := time.Now()
		wantHeld(t, h, "a1", "b1")
		h.answer(t, "a1", http.StatusInternalServerError)
		wantHeld(t, h, "b1") // a1 backs off, a2 waits behind it

		// Chat b flows meanwhile, with no time passing.
		for i := 1; i <= 3; i++ {
			text := "b" + strconv.Itoa(i)
			wantHeld(t, h, text)
			h.answer(t, text, http.StatusOK)
		}
		wantHeld(t, h)
		if got := h.textsOf(b.ID); !slices.Equal(got, []string{"b1", "b2", "b3"}) || time.Since(start) != 0 {
			t.Fatalf("chat b delivered %v after %v", got, time.Since(start))
		}
		info, err := bot.GetWebhookInfo()
		if err != nil || info.PendingUpdateCount != 2 ||
			info.LastErrorMessage != "Wrong response from the webhook: 500 Internal Server Error" {
			t.Fatalf("GetWebhookInfo = %+v, %v", info, err)
		}

		// a1 is retried after the back-off, doubled after a second failure.
		time.Sleep(backoff)
		wantHeld(t, h, "a1")
		h.answer(t, "a1", http.StatusBadGateway)
		time.Sleep(2*backoff - time.Millisecond)
		wantHeld(t, h)
		time.Sleep(time.Millisecond)
		wantHeld(t, h, "a1")
		h.answer(t, "a1", http.StatusOK)
		wantHeld(t, h, "a2")
		h.answer(t, "a2", http.StatusOK)
		synctest.Wait()

		var tries []time.Duration
		for _, p := range h.arrivals() {
			if p.text == "a1" {
				tries = append(tries, p.at.Sub(start))
			}
		}
		if !slices.Equal(tries, []time.Duration{0, backoff, 3 * backoff}) {
			t.Fatalf("a1 tried at %v", tries)
		}
		if got := h.textsOf(a.ID); !slices.Equal(got, []string{"a1", "a1", "a1", "a2"}) {
			t.Fatalf("chat a delivered %v", got)
		}
		if d := s.WebhookDeliveries(); d != (WebhookStats{Attempts: 7, Delivered: 5, Failures: 2}) {
			t.Fatalf("WebhookDeliveries = %+v", d)
		}
	})
}

// TestWebhookDropsAndPauses: updates dropped while one of their chat's
// is backing off or while no webhook is set are never posted, and nothing
// is posted while the fake is down.
func TestWebhookDropsAndPauses(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := &heldHook{}
		s, bot := hookInBubble(t, Options{WebhookBackoff: time.Second}, h, nil)
		a := Private(asha.ID)
		s.SendText(a, asha, "a1")
		s.SendText(a, asha, "a2")
		wantHeld(t, h, "a1")
		h.answer(t, "a1", http.StatusServiceUnavailable)
		synctest.Wait()
		if _, err := bot.Request(tgbotapi.DeleteWebhookConfig{DropPendingUpdates: true}); err != nil {
			t.Fatal(err)
		}
		// Polled and confirmed while no webhook is set.
		s.SendText(a, asha, "polled")
		if ups, err := bot.GetUpdates(tgbotapi.UpdateConfig{}); err != nil || len(ups) != 1 {
			t.Fatalf("GetUpdates = %+v, %v", ups, err)
		} else if _, err := bot.GetUpdates(tgbotapi.UpdateConfig{Offset: ups[0].UpdateID + 1}); err != nil {
			t.Fatal(err)
		}
		s.SendText(a, asha, "a3")
		if _, err := bot.MakeRequest("setWebhook", tgbotapi.Params{"url": "http://bot.test/hook"}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // a1's back-off runs out
		wantHeld(t, h, "a3")

		s.SetDown(true)
		s.SendText(Private(ravi.ID), ravi, "b1")
		h.answer(t, "a3", http.StatusOK)
		s.SendText(a, asha, "a4")
		time.Sleep(time.Minute)
		wantHeld(t, h)
		s.SetDown(false)
		wantHeld(t, h, "a4", "b1")
		h.answer(t, "a4", http.StatusOK)
		h.answer(t, "b1", http.StatusOK)
		synctest.Wait()
		if got := h.textsOf(a.ID); !slices.Equal(got, []string{"a1", "a3", "a4"}) {
			t.Fatalf("chat a delivered %v", got)
		}
		if d := s.WebhookDeliveries(); d != (WebhookStats{Attempts: 4, Delivered: 3, Failures: 1}) || s.Pending() != 0 {
			t.Fatalf("WebhookDeliveries = %+v, %d pending", d, s.Pending())
		}
	})
}

func TestWebhookCloseWithDeliveriesHeld(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := &heldHook{}
		s, _ := hookInBubble(t, Options{}, h, nil)
		for i := range 3 {
			id := int64(10 + i)
			s.SendText(Private(id), User{ID: id}, "held"+strconv.Itoa(i))
			s.SendText(Private(id), User{ID: id}, "queued"+strconv.Itoa(i))
		}
		wantHeld(t, h, "held0", "held1", "held2")
		start := time.Now()
		s.Close()
		if took := time.Since(start); took != 0 {
			t.Fatalf("Close took %v", took)
		}
		synctest.Wait()
		if d := s.WebhookDeliveries(); d.Attempts != 0 || len(h.arrivals()) != 3 {
			t.Fatalf("after Close: %+v, arrivals %+v", d, h.arrivals())
		}
		// synctest.Test fails if any goroutine of the fake is left
		// blocked once the cleanups have run.
	})
}

// TestWebhookCloseLeaksNoGoroutine holds deliveries over real sockets and
// expects the goroutine count to come back down after Close. It does not
// run in parallel with other tests.
func TestWebhookCloseLeaksNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		h := &heldHook{}
		hs := httptest.NewServer(h)
		defer hs.Close()
		s := New(token, Options{})
		defer s.Close()
		bot := newBot(t, s)
		if _, err := bot.MakeRequest("setWebhook", tgbotapi.Params{"url": hs.URL}); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			id := int64(10 + i)
			s.SendText(Private(id), User{ID: id}, "held")
			s.SendText(Private(id), User{ID: id}, "queued")
		}
		ctx := ctxT(t)
		for len(h.heldTexts()) < 3 {
			if ctx.Err() != nil {
				t.Fatalf("held: %v", h.heldTexts())
			}
			time.Sleep(time.Millisecond)
		}
		start := time.Now()
		s.Close()
		if took := time.Since(start); took > time.Second {
			t.Fatalf("Close took %v", took)
		}
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
