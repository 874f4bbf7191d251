package telegramtest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	tgbotapi "github.com/go-telegram-bot-api/telegram-bot-api/v5"
)

func TestFailAfterTakesEffectAndLosesTheAnswer(t *testing.T) {
	t.Parallel()
	s := newFake(t, Options{})
	bot := newBot(t, s)

	s.FailAfter("sendMessage", 1, http.StatusBadGateway)
	_, err := bot.Send(tgbotapi.NewMessage(asha.ID, "one"))
	apiErr(t, err, 502)
	// Over a real socket, a dropped connection.
	s.FailAfter("SENDMESSAGE", 1, 0)
	if _, err := bot.Send(tgbotapi.NewMessage(asha.ID, "two")); err == nil {
		t.Fatal("a dropped connection answered")
	}
	if _, err := bot.Send(tgbotapi.NewMessage(asha.ID, "three")); err != nil {
		t.Fatalf("after the script: %v", err)
	}
	sent := s.Sent(asha.ID)
	if len(sent) != 3 || sent[0].Text != "one" || sent[1].Text != "two" {
		t.Fatalf("the calls whose answers were lost were not performed: %+v", sent)
	}
	calls := s.CallsTo("sendMessage")
	if calls[0].Status != 502 || calls[1].Status != 0 || calls[1].Description != "connection dropped" || calls[2].Status != 200 {
		t.Fatalf("calls logged: %+v", calls)
	}
	if st := s.Stats(); st.Injected != 2 || st.Sent != 3 {
		t.Fatalf("Stats = %+v", st)
	}

	// In process, the drop is an unexpected EOF.
	s.FailAfter("*", 1, 0)
	client := &http.Client{Transport: s.Transport()}
	resp, err := client.Get("http://x/bot" + token + "/getMe")
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("in-process drop: %v, %v", resp, err)
	}
}

func TestHangAfterHoldsTheAnswer(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := NewUnstarted(token, Options{})
		defer s.Close()
		bot := inBubbleBot(t, s)
		s.HangAfter("sendMessage", 1)
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost,
			"http://x/bot"+token+"/sendMessage?chat_id=42&text=held", nil)
		start := time.Now()
		if _, err := s.Transport().RoundTrip(req); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("held call: %v", err)
		}
		if time.Since(start) != time.Hour {
			t.Fatalf("answered after %v, not when the client gave up", time.Since(start))
		}
		if sent := s.Sent(42); len(sent) != 1 || sent[0].Text != "held" {
			t.Fatalf("not performed: %+v", sent)
		}
		if c := s.CallsTo("sendMessage"); len(c) != 1 || c[0].Description != "no answer" {
			t.Fatalf("calls: %+v", c)
		}
		// The next call is answered; a hang still held at Close ends then.
		if _, err := bot.Send(tgbotapi.NewMessage(42, "answered")); err != nil {
			t.Fatal(err)
		}
		s.HangAfter("sendMessage", 1)
		errc := make(chan error, 1)
		go func() { _, err := bot.Send(tgbotapi.NewMessage(42, "at close")); errc <- err }()
		wctx, wcancel := context.WithTimeout(context.Background(), time.Minute)
		defer wcancel()
		if err := s.WaitFor(wctx, func() bool { return len(s.Sent(42)) == 3 }); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if err := <-errc; err == nil {
			t.Fatal("a call held at Close was answered")
		}
	})
}

func TestLatestShowsEdits(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	s := newFake(t, Options{Now: func() time.Time { return now }})
	bot := newBot(t, s)
	a, _ := bot.Send(tgbotapi.NewMessage(asha.ID, "…"))
	b, _ := bot.Send(tgbotapi.NewMessage(ravi.ID, "plain"))
	now = now.Add(time.Second)
	if _, err := bot.Send(tgbotapi.NewEditMessageText(asha.ID, a.MessageID, "revealed")); err != nil {
		t.Fatal(err)
	}
	l := s.Latest(asha.ID)
	if len(l) != 1 || l[0].Text != "revealed" || !l[0].Time.Equal(now.Add(-time.Second)) || !l[0].EditTime.Equal(now) {
		t.Fatalf("Latest = %+v", l)
	}
	if s.Sent(asha.ID)[0].Text != "…" || !s.Sent(asha.ID)[0].EditTime.IsZero() {
		t.Fatal("Sent shows messages as sent")
	}
	all := s.LatestAll()
	if len(all) != 2 || all[0].Text != "revealed" || all[1].MessageID != b.MessageID || !all[1].EditTime.IsZero() {
		t.Fatalf("LatestAll = %+v", all)
	}
	got, err := s.WaitLatest(ctxT(t), asha.ID, 1, func(m SentMessage) bool { return m.Text == "revealed" })
	if err != nil || len(got) != 1 {
		t.Fatalf("WaitLatest = %+v, %v", got, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.WaitLatest(ctx, asha.ID, 2, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitLatest for a message never sent: %v", err)
	}
}
