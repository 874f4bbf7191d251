package telegramtest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	tgbotapi "github.com/go-telegram-bot-api/telegram-bot-api/v5"

	"github.com/otpgate/otpgate/bot/telegram"
)

// inBubbleBot connects the real library to s through Transport.
func inBubbleBot(t *testing.T, s *Server) *tgbotapi.BotAPI {
	t.Helper()
	client := &http.Client{Timeout: time.Minute, Transport: s.Transport()}
	bot, err := tgbotapi.NewBotAPIWithClient(token, "http://api.telegram.test/bot%s/%s", client)
	if err != nil {
		t.Fatalf("NewBotAPIWithClient: %v", err)
	}
	return bot
}

func TestTransportInABubble(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := NewUnstarted(token, Options{MaxPollWait: 30 * time.Second})
		defer s.Close()
		bot := inBubbleBot(t, s)
		if bot.Self.UserName != DefaultBotUsername {
			t.Fatalf("getMe over the transport: %+v", bot.Self)
		}
		// A long poll is held on the bubble's clock: 30 s pass, no real time.
		start := time.Now()
		ups, err := bot.GetUpdates(tgbotapi.UpdateConfig{Timeout: 30})
		if err != nil || len(ups) != 0 {
			t.Fatalf("empty poll = %+v, %v", ups, err)
		}
		if waited := time.Since(start); waited != 30*time.Second {
			t.Fatalf("held %v, want the 30 s asked for", waited)
		}
		// An update arriving while the poll is held answers it at once.
		time.AfterFunc(3*time.Second, func() { s.SendText(chatA, asha, "hello") })
		start = time.Now()
		ups, err = bot.GetUpdates(tgbotapi.UpdateConfig{Timeout: 30})
		if err != nil || len(ups) != 1 || ups[0].Message.Text != "hello" || time.Since(start) != 3*time.Second {
			t.Fatalf("poll = %+v, %v after %v", ups, err, time.Since(start))
		}
		// Errors come back as Telegram's, and the client's context still rules.
		if _, err := bot.Send(tgbotapi.NewMessage(chatA.ID, "")); err == nil {
			t.Fatal("an empty message was accepted")
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		poll := fmt.Sprintf("http://x/bot%s/getUpdates?timeout=30&offset=%d", token, ups[0].UpdateID+1)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, poll, nil)
		if _, err := s.Transport().RoundTrip(req); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a poll whose client gave up: %v", err)
		}
	})
}

func TestListenerCarriesWebhooksInABubble(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ln := NewListener()
		rec := &hookRecorder{secret: "s3cret"}
		srv := &http.Server{Handler: rec}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		s := NewUnstarted(token, Options{WebhookClient: ln.Client()})
		defer s.Close()
		bot := inBubbleBot(t, s)
		if _, err := bot.MakeRequest("setWebhook", tgbotapi.Params{"url": "http://bot.test/hook", "secret_token": rec.secret}); err != nil {
			t.Fatal(err)
		}
		s.SendText(chatA, asha, "over the pipe")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.WaitFor(ctx, func() bool { return s.WebhookDeliveries().Delivered == 1 }); err != nil {
			t.Fatal(err)
		}
		if got := rec.updates(); len(got) != 1 || got[0].Message.Text != "over the pipe" {
			t.Fatalf("delivered %+v", got)
		}
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Fatalf("Serve: %v", err)
		}
		if _, err := ln.DialContext(ctx, "tcp", "x"); !errors.Is(err, ErrListenerClosed) {
			t.Fatalf("dial after close: %v", err)
		}
	})
}

func TestDeletedAt(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	s := newFake(t, Options{Now: func() time.Time { return now }})
	bot := newBot(t, s)
	m, err := bot.Send(tgbotapi.NewMessage(chatA.ID, "x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.DeletedAt(chatA.ID, m.MessageID); ok {
		t.Fatal("not deleted yet")
	}
	if _, err := bot.Request(tgbotapi.NewDeleteMessage(chatA.ID, m.MessageID)); err != nil {
		t.Fatal(err)
	}
	if at, ok := s.DeletedAt(chatA.ID, m.MessageID); !ok || !at.Equal(now) {
		t.Fatalf("DeletedAt = %v, %v", at, ok)
	}
	if _, ok := s.DeletedAt(999, 1); ok {
		t.Fatal("an unknown chat has deletions")
	}
}

func TestMemoryDeletions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var d Deletions
	t0 := time.Unix(1_700_000_000, 0)
	for i, off := range []time.Duration{3 * time.Minute, time.Minute, 2*time.Minute + 1500*time.Microsecond} {
		if err := d.ScheduleDeletion(ctx, telegram.Deletion{Due: t0.Add(off), ChatID: int64(i + 1), MessageID: 10 + i}); err != nil {
			t.Fatal(err)
		}
	}
	due, _ := d.DueDeletions(ctx, t0.Add(150*time.Second), 10)
	if len(due) != 2 || due[0].ChatID != 2 || due[1].ChatID != 3 || due[1].Due.Nanosecond()%int(time.Millisecond) != 0 {
		t.Fatalf("due = %+v", due)
	}
	if due, _ := d.DueDeletions(ctx, t0.Add(time.Hour), 1); len(due) != 1 || due[0].ChatID != 2 {
		t.Fatalf("limit 1 = %+v", due)
	}
	if err := d.DeletionDone(ctx, due[0]); err != nil {
		t.Fatal(err)
	}
	if err := d.DeletionDone(ctx, due[0]); err != nil {
		t.Fatalf("done twice: %v", err)
	}
	if left := d.Scheduled(); len(left) != 2 || left[0].ChatID != 3 || left[1].ChatID != 1 {
		t.Fatalf("left = %+v", left)
	}
	boom := errors.New("disk full")
	d.Fail(boom)
	if err := d.ScheduleDeletion(ctx, telegram.Deletion{Due: t0, ChatID: 9, MessageID: 9}); !errors.Is(err, boom) {
		t.Fatalf("failing schedule: %v", err)
	}
	d.Fail(nil)
	if err := d.ScheduleDeletion(ctx, telegram.Deletion{Due: t0, ChatID: 9, MessageID: 9}); err != nil || len(d.Scheduled()) != 3 {
		t.Fatalf("after Fail(nil): %v, %+v", err, d.Scheduled())
	}
}
