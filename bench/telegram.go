package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/otpgate/otpgate/bot/telegram"
	tf "github.com/otpgate/otpgate/bot/telegram/telegramtest"
	"github.com/otpgate/otpgate/internal/app"
	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/otp/otptest"
	"github.com/otpgate/otpgate/pii"
	"github.com/otpgate/otpgate/store"
)

// benchTelegram: a burst of users, each doing the whole beneficiary flow
// (/lookup with the mobile, the code, a button, the record) against a fake
// Bot API that enforces Telegram's limits and answers 429 past them.
func benchTelegram(args []string) error {
	fs := flag.NewFlagSet("telegram", flag.ContinueOnError)
	users := fs.Int("users", 1000, "distinct users starting at once")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "otpbench-tg-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	const token = "999:bench-token-for-the-fake-bot-api"
	fake := tf.New(token, tf.Options{EnforceLimits: true, MaxCalls: 1})
	defer fake.Close()
	ph := &otptest.Phone{}
	a, err := newApp(dir, app.Deps{
		Channel: app.ChannelTelegram, Sender: ph, SMSWorkers: 8, SMSQueue: 4 * *users,
		Telegram: telegram.Options{PollTimeout: time.Second},
	}, func(c *config.Config) {
		c.TelegramAPIURL = fake.URL()
		// One burst from many numbers in one range is exactly what the SMS
		// caps are there to stop; lift them for this measurement of
		// Telegram pacing.
		c.GlobalSMSPerHour, c.SendsPerPrefixHour = 1_000_000, 1_000_000
	})
	if err != nil {
		return err
	}
	defer a.Stop()
	// Two beneficiaries per mobile: the flow includes the chooser.
	mobiles, err := seedMobiles(a.Store, 9100000000, *users, 2)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- a.Run(ctx) }()
	if err := fake.WaitFor(context.Background(), fake.Polling); err != nil {
		return err
	}

	// Each user: step 0 sent /lookup, waits for 1 message; step 1 sent the
	// code, waits for the chooser; step 2 pressed, waits for the record.
	type user struct {
		chat tf.Chat
		from tf.User
		step int
	}
	us := make([]*user, *users)
	start := time.Now()
	for i := range us {
		id := int64(100000 + i)
		us[i] = &user{chat: tf.Private(id), from: tf.User{ID: id, FirstName: "B", LanguageCode: "en"}}
		fake.SendText(us[i].chat, us[i].from, "/lookup "+mobiles[i].E164())
	}
	done, lastProgress := 0, time.Now()
	for done < len(us) {
		time.Sleep(20 * time.Millisecond)
		byChat := map[int64][]tf.SentMessage{}
		for _, m := range fake.LatestAll() { // released messages are edited into placeholders
			byChat[m.ChatID] = append(byChat[m.ChatID], m)
		}
		for i, u := range us {
			got := byChat[u.chat.ID]
			switch {
			case u.step == 0 && len(got) >= 1:
				if c := ph.Code(mobiles[i].E164()); c != "" {
					fake.SendText(u.chat, u.from, c)
					u.step = 1
				}
			case u.step == 1 && len(got) >= 2 && !got[1].EditTime.IsZero():
				bs := tf.Buttons(got[1])
				if len(bs) == 0 {
					return fmt.Errorf("user %d: no chooser: %q", i, got[1].Text)
				}
				fake.PressButton(u.chat, u.from, got[1].MessageID, bs[0][0].CallbackData)
				u.step = 2
			case u.step == 2 && len(got) >= 3 && !got[2].EditTime.IsZero():
				u.step = 3
				done++
				lastProgress = time.Now()
			}
		}
		if time.Since(lastProgress) > 2*time.Minute {
			break // stuck: report what was lost
		}
	}
	elapsed := time.Since(start)
	cancel()
	if err := <-runErr; err != nil {
		fmt.Println("shutdown:", err)
	}
	stats := fake.Stats()
	sent := stats.Sent
	floor := time.Duration(float64(sent) / 30 * float64(time.Second))
	fmt.Printf("users %d, flows completed %d, lost %d\n", len(us), done, len(us)-done)
	fmt.Printf("messages sent %d (+ %d other calls), 429 answers %d (chat %d, global %d, group %d)\n",
		sent, stats.Calls-sent, stats.TooMany429, stats.LimitChat, stats.LimitGlobal, stats.LimitGroup)
	fmt.Printf("total %.1fs; floor at 30 messages/s %.1fs; ratio %.2f\n", elapsed.Seconds(), floor.Seconds(), elapsed.Seconds()/floor.Seconds())
	fmt.Printf("peak RSS %.0f MB (this process: otpgate and the fake Bot API together)\n", statusMB("VmHWM:"))
	if done < len(us) {
		return fmt.Errorf("%d of %d flows did not complete", len(us)-done, len(us))
	}
	return nil
}

// seedMobiles imports n synthetic mobiles from base (10 national digits),
// each carrying perMobile fictional beneficiaries, and returns the mobiles.
func seedMobiles(st *store.Store, base, n, perMobile int) ([]pii.Mobile, error) {
	mobiles := make([]pii.Mobile, n)
	_, err := st.Import(context.Background(), func(ctx context.Context, fn func(store.ImportRow) error) error {
		line := 0
		for i := range mobiles {
			mobiles[i] = pii.Mobile(fmt.Sprintf("+91%d", base+i))
			for range perMobile {
				line++
				r := store.ImportRow{Line: line, Record: store.Record{RefID: fmt.Sprintf("%014d", line), Name: "Bench Person",
					BirthYear: 1980, Gender: "O", Mobile: mobiles[i]}}
				if err := fn(r); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return mobiles, err
}
