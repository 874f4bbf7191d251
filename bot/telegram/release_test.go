package telegram_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/otpgate/otpgate/bot"
	"github.com/otpgate/otpgate/bot/telegram"
	tf "github.com/otpgate/otpgate/bot/telegram/telegramtest"
)

// These tests hold the adapter to one rule: a message that carries record
// fields never exists in a chat without its deletion on the durable
// schedule, whatever answer is lost and wherever the process dies.

const (
	recordText = "Asha Verma · born 1987 · ID …1234"
	releaseTTL = 2 * time.Minute
	// deletedWithin bounds how late a due deletion may come: one sweep of
	// the schedule, and a moment for the send queue.
	deletedWithin = 6 * time.Second
)

// releaser is an engine that answers every new text with a released
// record. It never looks at edits.
type releaser struct{}

func (releaser) Handle(_ context.Context, u bot.Update) []bot.Reply {
	if u.Text == "" || u.Edited {
		return nil
	}
	return []bot.Reply{{ChatID: u.ChatID, Text: recordText, Sensitive: true, DeleteAfter: releaseTTL}}
}

// copies returns every message of the bot in chat that carried the record
// text at any time, as sent or by an edit, with the time it was sent.
func copies(fake *tf.Server, chat int64) []tf.SentMessage {
	var out []tf.SentMessage
	sent := fake.Sent(chat)
	for _, m := range sent {
		carried := strings.Contains(m.Text, "Asha")
		for _, e := range fake.Edits(chat) {
			carried = carried || (e.MessageID == m.MessageID && strings.Contains(e.Text, "Asha"))
		}
		if carried {
			out = append(out, m)
		}
	}
	return out
}

// assertAllDeletedOnTime waits for every copy of the record in chat to be
// deleted, checks each went at its time (due releaseTTL after it was
// sent, gone within deletedWithin) and that every message of the bot left
// in the chat is empty of it.
func assertAllDeletedOnTime(t *testing.T, fake *tf.Server, chat int64) []tf.SentMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), releaseTTL+time.Minute)
	defer cancel()
	var cs []tf.SentMessage
	err := fake.WaitFor(ctx, func() bool {
		cs = copies(fake, chat)
		for _, m := range cs {
			if _, ok := fake.DeletedAt(chat, m.MessageID); !ok {
				return false
			}
		}
		return len(cs) > 0
	})
	if err != nil {
		t.Fatalf("copies of the record %+v not all deleted: deleted %v: %v", cs, fake.Deleted(chat), err)
	}
	for _, m := range cs {
		at, _ := fake.DeletedAt(chat, m.MessageID)
		if late := at.Sub(m.Time.Add(releaseTTL)); late < 0 || late > deletedWithin {
			t.Errorf("message %d sent %v, due %v, deleted %v", m.MessageID, m.Time, m.Time.Add(releaseTTL), at)
		}
	}
	for _, m := range fake.Latest(chat) {
		if _, gone := fake.DeletedAt(chat, m.MessageID); !gone && m.Text != placeholder {
			t.Errorf("message %d left in the chat says %q", m.MessageID, m.Text)
		}
	}
	return cs
}

func TestLostAnswersLeaveNoCopyBehind(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		script func(*tf.Server)
	}{
		{"placeholder delivered, then 502", func(f *tf.Server) { f.FailAfter("sendMessage", 1, http.StatusBadGateway) }},
		{"placeholder delivered, then the connection drops", func(f *tf.Server) { f.FailAfter("sendMessage", 1, 0) }},
		{"record edited in, then 502", func(f *tf.Server) { f.FailAfter("editMessageText", 1, http.StatusBadGateway) }},
		{"record edited in, then the connection drops", func(f *tf.Server) { f.FailAfter("editMessageText", 1, 0) }},
		{"record edited in, then 502 twice", func(f *tf.Server) { f.FailAfter("editMessageText", 2, http.StatusInternalServerError) }},
		{"every step's answer lost once", func(f *tf.Server) {
			f.FailAfter("sendMessage", 1, http.StatusBadGateway)
			f.FailAfter("editMessageText", 1, 0)
			f.FailAfter("deleteMessage", 1, http.StatusBadGateway)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				logs := &bytes.Buffer{}
				log := slog.New(slog.NewTextHandler(&lockedBuf{b: logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
				h := startWith(t, nil, releaser{}, log, tf.Options{EnforceLimits: true}, false)
				tc.script(h.fake)
				h.fake.SendText(tf.Private(900), tf.User{ID: 900, FirstName: "A"}, "show me")
				cs := assertAllDeletedOnTime(t, h.fake, 900)
				if len(cs) != 1 {
					t.Fatalf("%d copies of the record were made, want one: %+v", len(cs), cs)
				}
				if st := h.fake.Stats(); st.LimitChat+st.LimitGlobal != 0 {
					t.Fatalf("retries broke Telegram's limits: %+v", st)
				}
				advance(time.Minute) // a deletion whose answer was lost is retried, then done
				if left := h.dels.Scheduled(); len(left) != 0 {
					t.Fatalf("still scheduled: %+v", left)
				}
				if err := h.stop(); err != nil {
					t.Fatal(err)
				}
				if strings.Contains(logs.String(), "Asha") {
					t.Fatal("the record text was logged")
				}
			})
		})
	}
}

// crashable stands between a Bot and the world: once killed, nothing the
// Bot does reaches Telegram or the schedule, and no answer reaches the Bot,
// as after kill -9 of its process.
type crashable struct {
	killed atomic.Bool
	rt     http.RoundTripper
	dels   telegram.Deletions
}

var errKilled = errors.New("the process is dead")

func (c *crashable) RoundTrip(r *http.Request) (*http.Response, error) {
	if c.killed.Load() {
		return nil, errKilled
	}
	resp, err := c.rt.RoundTrip(r)
	if c.killed.Load() {
		if resp != nil {
			resp.Body.Close()
		}
		return nil, errKilled
	}
	return resp, err
}

func (c *crashable) ScheduleDeletion(ctx context.Context, d telegram.Deletion) error {
	if c.killed.Load() {
		return errKilled
	}
	return c.dels.ScheduleDeletion(ctx, d)
}

func (c *crashable) DueDeletions(ctx context.Context, now time.Time, limit int) ([]telegram.Deletion, error) {
	if c.killed.Load() {
		return nil, errKilled
	}
	return c.dels.DueDeletions(ctx, now, limit)
}

func (c *crashable) DeletionDone(ctx context.Context, d telegram.Deletion) error {
	if c.killed.Load() {
		return errKilled
	}
	return c.dels.DeletionDone(ctx, d)
}

func TestKilledMidSendStillDeletes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, hang string
		revealed   bool // whether the record reached the chat before the kill
	}{
		{"killed waiting for the record edit's answer", "editMessageText", true},
		{"killed waiting for the placeholder's answer", "sendMessage", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				fake := tf.NewUnstarted(token, tf.Options{EnforceLimits: true})
				t.Cleanup(fake.Close)
				dels := &tf.Deletions{}
				proc := &crashable{rt: fake.Transport(), dels: dels}
				opts := telegram.Options{Token: token, APIURL: apiURL, HTTPTransport: proc, Handler: releaser{}, Deletions: proc,
					PollTimeout: time.Second, ShutdownTimeout: time.Second}
				first, err := telegram.New(opts)
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				wg.Go(func() { _ = first.Run(ctx) }) // it cannot flush: it is dead
				t.Cleanup(func() { cancel(); wg.Wait() })
				wctx, wcancel := context.WithTimeout(context.Background(), time.Minute)
				defer wcancel()
				if err := fake.WaitFor(wctx, fake.Polling); err != nil {
					t.Fatal(err)
				}

				fake.HangAfter(tc.hang, 1)
				fake.SendText(tf.Private(901), tf.User{ID: 901, FirstName: "A"}, "show me")
				hung := func() bool {
					return slices.ContainsFunc(fake.CallsTo(tc.hang), func(c tf.Call) bool { return c.Description == "no answer" })
				}
				if err := fake.WaitFor(wctx, hung); err != nil {
					t.Fatalf("the %s was not made: %v", tc.hang, err)
				}
				// Kill only once the first process's next poll confirmed the
				// update; before that a new process is rightly given it again.
				if err := fake.WaitFor(wctx, func() bool { return fake.Pending() == 0 }); err != nil {
					t.Fatalf("the update was never confirmed: %v", err)
				}
				proc.killed.Store(true)
				if got := len(copies(fake, 901)) == 1; got != tc.revealed {
					t.Fatalf("record in the chat at the kill: %v, want %v", got, tc.revealed)
				}

				// A new process on the same schedule.
				opts.HTTPTransport, opts.Deletions, opts.ShutdownTimeout = fake.Transport(), dels, 0
				second, err := telegram.New(opts)
				if err != nil {
					t.Fatal(err)
				}
				ctx2, cancel2 := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- second.Run(ctx2) }()
				defer func() {
					cancel2()
					if err := <-done; err != nil {
						t.Errorf("second Run: %v", err)
					}
				}()
				if tc.revealed {
					if cs := assertAllDeletedOnTime(t, fake, 901); len(cs) != 1 {
						t.Fatalf("copies: %+v", cs)
					}
					synctest.Wait()
					if left := dels.Scheduled(); len(left) != 0 {
						t.Fatalf("still scheduled: %+v", left)
					}
					return
				}
				// The record never went out: the chat holds an empty
				// placeholder at most, then and for good.
				advance(releaseTTL + time.Minute)
				if cs := copies(fake, 901); len(cs) != 0 {
					t.Fatalf("the record reached the chat: %+v", cs)
				}
				for _, m := range fake.Latest(901) {
					if m.Text != placeholder {
						t.Fatalf("message %+v", m)
					}
				}
			})
		})
	}
}

func TestUnscheduledRecordIsNotSent(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := startWith(t, nil, releaser{}, slog.New(slog.DiscardHandler), tf.Options{}, false)
		h.dels.Fail(errors.New("disk full"))
		h.fake.SendText(tf.Private(902), tf.User{ID: 902, FirstName: "A"}, "show me")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// The placeholder goes, the schedule refuses, the placeholder is
		// taken back and the record never sent.
		if err := h.fake.WaitFor(ctx, func() bool { return len(h.fake.Deleted(902)) == 1 }); err != nil {
			t.Fatalf("placeholder not removed: %+v", h.fake.Latest(902))
		}
		advance(time.Minute)
		if got := h.fake.Latest(902); len(got) != 1 || got[0].Text != placeholder || len(copies(h.fake, 902)) != 0 {
			t.Fatalf("sent %+v", got)
		}
		if n := len(h.fake.CallsTo("editMessageText")); n != 0 {
			t.Fatalf("%d edits", n)
		}
	})
}

// recorder is an engine that keeps every update and answers each.
type recorder struct {
	mu  sync.Mutex
	got []bot.Update
}

func (r *recorder) Handle(_ context.Context, u bot.Update) []bot.Reply {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, u)
	return []bot.Reply{{ChatID: u.ChatID, Text: "seen"}}
}

func (r *recorder) updates() []bot.Update {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func TestEditsAndCaptionsArriveMarked(t *testing.T) {
	t.Parallel()
	for _, webhook := range []bool{false, true} {
		t.Run(map[bool]string{false: "polling", true: "webhook"}[webhook], func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				rec := &recorder{}
				h := startWith(t, nil, rec, slog.New(slog.DiscardHandler), tf.Options{}, webhook)
				chat, from := tf.Private(903), tf.User{ID: 903, FirstName: "A"}
				first := h.fake.SendText(chat, from, "hello")
				h.wait(t, 903, 1)
				// Once the bot has said what it wants, an edit is not
				// filtered out by allowed_updates.
				h.fake.EditText(chat, from, first, "my number is 98765 43210")
				h.wait(t, 903, 2)
				photo := h.fake.SendPhoto(chat, from, "code 123456")
				h.wait(t, 903, 3)
				if _, err := h.fake.SendRaw([]byte(`{"update_id":0,"message":{"message_id":77,"date":1,"chat":{"id":903,"type":"private"},
					"from":{"id":903,"is_bot":false,"first_name":"A"},"document":{"file_id":"d","file_unique_id":"u"},"caption":"ID 1234 5678 9012"}}`)); err != nil {
					t.Fatal(err)
				}
				h.wait(t, 903, 4)
				if st := h.fake.Stats(); st.Filtered != 0 {
					t.Fatalf("%d updates filtered by allowed_updates", st.Filtered)
				}
				got := rec.updates()
				want := []bot.Update{
					{Text: "hello", MessageID: first},
					{Text: "my number is 98765 43210", MessageID: first, Edited: true},
					{Text: "code 123456", MessageID: photo, Caption: true, Unsupported: true},
					{Text: "ID 1234 5678 9012", MessageID: 77, Caption: true, Unsupported: true},
				}
				if len(got) != len(want) {
					t.Fatalf("updates: %+v", got)
				}
				for i, w := range want {
					g := got[i]
					if g.ChatID != 903 || g.UserID != 903 || g.Text != w.Text || g.MessageID != w.MessageID ||
						g.Edited != w.Edited || g.Caption != w.Caption || g.Unsupported != w.Unsupported {
						t.Errorf("update %d = %+v, want %+v", i, g, w)
					}
				}
				if webhook && !slices.Contains(h.fake.Webhook().AllowedUpdates, "edited_message") {
					t.Fatalf("setWebhook allowed_updates: %v", h.fake.Webhook().AllowedUpdates)
				}
				if !webhook {
					polls := h.fake.CallsTo("getUpdates")
					if !strings.Contains(polls[0].Params["allowed_updates"], `"edited_message"`) {
						t.Fatalf("getUpdates allowed_updates: %q", polls[0].Params["allowed_updates"])
					}
				}
			})
		})
	}
}
