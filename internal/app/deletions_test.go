package app_test

import (
	"bytes"
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/otpgate/otpgate/bot"
	"github.com/otpgate/otpgate/bot/telegram"
	tf "github.com/otpgate/otpgate/bot/telegram/telegramtest"
	"github.com/otpgate/otpgate/internal/app"
	"github.com/otpgate/otpgate/internal/keys"
	"github.com/otpgate/otpgate/store"
)

// releaser answers every message with a released record: a Sensitive
// reply that must leave the chat after ttl.
type releaser struct{ ttl time.Duration }

func (r releaser) Handle(_ context.Context, u bot.Update) []bot.Reply {
	return []bot.Reply{{ChatID: u.ChatID, Text: "Name: Asha Verma", Sensitive: true, DeleteAfter: r.ttl}}
}

// TestReleasedRecordDeletedAfterRestart runs the Telegram adapter over the
// real store, on disk: a record released by one process is deleted on time
// by the next, after the store was closed and opened again in between.
func TestReleasedRecordDeletedAfterRestart(t *testing.T) {
	dir := t.TempDir()
	ks, err := keys.Derive(bytes.Repeat([]byte{9}, keys.MasterKeySize))
	if err != nil {
		t.Fatal(err)
	}
	synctest.Test(t, func(t *testing.T) {
		const (
			tok = "4242:app-test-token_for-the-fake-api"
			ttl = 2 * time.Minute
		)
		fake := tf.NewUnstarted(tok, tf.Options{EnforceLimits: true})
		t.Cleanup(fake.Close)
		// process runs one Bot over a freshly opened store until stop.
		process := func() (dels telegram.Deletions, stop func()) {
			st, err := store.Open(store.Options{Dir: dir, EncryptionKey: ks.Storage, IndexKey: ks.Index, AuditKey: ks.Audit})
			if err != nil {
				t.Fatal(err)
			}
			dels = app.TelegramDeletions(st)
			tg, err := telegram.New(telegram.Options{Token: tok, APIURL: "http://api.telegram.test", HTTPTransport: fake.Transport(),
				Handler: releaser{ttl}, Deletions: dels, PollTimeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- tg.Run(ctx) }()
			waitCtx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer wcancel()
			if err := fake.WaitFor(waitCtx, fake.Polling); err != nil {
				t.Fatal(err)
			}
			return dels, func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
				if err := st.Close(); err != nil {
					t.Errorf("closing the store: %v", err)
				}
			}
		}

		_, stop := process()
		fake.SendText(tf.Private(77), tf.User{ID: 77, FirstName: "A"}, "hello")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// The record is edited into a placeholder sent first.
		sent, err := fake.WaitLatest(ctx, 77, 1, func(m tf.SentMessage) bool { return !m.EditTime.IsZero() })
		if err != nil {
			t.Fatal(err)
		}
		rec := sent[0]
		if rec.Text != "Name: Asha Verma" || !rec.ProtectContent {
			t.Fatalf("record: %+v", rec)
		}
		stop()
		if _, ok := fake.DeletedAt(77, rec.MessageID); ok {
			t.Fatal("deleted before its time")
		}

		dels, stop := process()
		defer stop()
		ctx, cancel = context.WithTimeout(context.Background(), ttl+time.Minute)
		defer cancel()
		if err := fake.WaitFor(ctx, func() bool { _, ok := fake.DeletedAt(77, rec.MessageID); return ok }); err != nil {
			t.Fatalf("the record was not deleted after the restart: %v", err)
		}
		// Due at rec.Time+ttl: deleted then, within one sweep of the schedule.
		at, _ := fake.DeletedAt(77, rec.MessageID)
		if late := at.Sub(rec.Time.Add(ttl)); late < 0 || late > 6*time.Second {
			t.Fatalf("sent %v, due %v, deleted %v", rec.Time, rec.Time.Add(ttl), at)
		}
		synctest.Wait() // the Bot has marked it done
		if left, err := dels.DueDeletions(context.Background(), at.Add(24*time.Hour), 10); err != nil || len(left) != 0 {
			t.Fatalf("still scheduled: %+v, %v", left, err)
		}
	})
}
