package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	tf "github.com/otpgate/otpgate/bot/telegram/telegramtest"
	"github.com/otpgate/otpgate/otp/twilio/twiliotest"
)

const crashRecord = `{"reference_id":"77770000000001","name":"Leela Menon","birth_year":1979,"gender":"F","mobile":"9000000501","id_type":"aadhaar","id_number":"777700000001"}
`

// crashFixture is a real serve process over one imported record, with
// its own Telegram and Twilio fakes and data directory.
type crashFixture struct {
	tg   *tf.Server
	tw   *twiliotest.Server
	env  []string
	cmd  *exec.Cmd
	logs *syncBuffer
	ctx  context.Context
}

func startCrashFixture(t *testing.T, extra ...string) *crashFixture {
	t.Helper()
	f := &crashFixture{tg: tf.New(tgToken, tf.Options{EnforceLimits: true}), tw: twiliotest.New(twSID, twToken)}
	t.Cleanup(f.tg.Close)
	t.Cleanup(f.tw.Close)
	f.env = append([]string{
		"OTPGATE_MASTER_KEY=" + hex.EncodeToString(bytes.Repeat([]byte{5}, keyHexLen)),
		"OTPGATE_DATA_DIR=" + filepath.Join(t.TempDir(), "data"),
		"OTPGATE_TELEGRAM_TOKEN=" + tgToken, "OTPGATE_TELEGRAM_API_URL=" + f.tg.URL(),
		"OTPGATE_TWILIO_ACCOUNT_SID=" + twSID, "OTPGATE_TWILIO_AUTH_TOKEN=" + twToken,
		"OTPGATE_TWILIO_FROM=" + twFrom, "OTPGATE_TWILIO_API_URL=" + f.tw.URL(),
	}, extra...)
	f.cmd, f.logs = importAndServe(t, f.tg, f.env, crashRecord)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	f.ctx = ctx
	return f
}

// lookupCode has user look the record up and returns the code from its SMS.
func (f *crashFixture) lookupCode(t *testing.T, user int64) string {
	t.Helper()
	before := len(f.tw.Messages())
	f.tg.SendText(tf.Private(user), tf.User{ID: user, FirstName: "L", LanguageCode: "en"}, "/lookup 9000000501")
	sms, err := f.tw.WaitMessages(f.ctx, before+1)
	if err != nil {
		t.Fatalf("no SMS: %v\n%s", err, f.logs)
	}
	return regexp.MustCompile(`\b\d{6}\b`).FindString(sms[len(sms)-1].Body)
}

// TestRecordDeletedAfterKill9: Telegram takes the record (the edit that
// puts it into its placeholder) and the process is killed with SIGKILL
// before the answer arrives. A new process on the same data directory
// still deletes the message on time, and no second copy exists.
func TestRecordDeletedAfterKill9(t *testing.T) {
	t.Parallel() // a real process against its own fakes and data directory
	const deleteAfter = 4 * time.Second
	f := startCrashFixture(t, "OTPGATE_RELEASE_DELETE_AFTER="+deleteAfter.String())
	tg, env, cmd, logs, ctx := f.tg, f.env, f.cmd, f.logs, f.ctx
	code := f.lookupCode(t, 901)
	// The edit that reveals the record takes effect, and never answers.
	tg.HangAfter("editMessageText", 1)
	tg.SendText(tf.Private(901), tf.User{ID: 901, FirstName: "L", LanguageCode: "en"}, code)
	msgs, err := tg.WaitLatest(ctx, 901, 2, func(m tf.SentMessage) bool { return strings.Contains(m.Text, "Leela Menon") })
	if err != nil {
		t.Fatalf("the record never reached the chat: %v\n%s", err, logs)
	}
	record := msgs[1]
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = cmd.Process.Wait()

	_, logs2 := otpgateProcessServing(t, tg, env)
	if err := tg.WaitFor(ctx, func() bool { _, ok := tg.DeletedAt(901, record.MessageID); return ok }); err != nil {
		t.Fatalf("the record was not deleted after the restart: %v\n%s", err, logs2)
	}
	// Due a deleteAfter after the placeholder went out, and not before.
	if at, _ := tg.DeletedAt(901, record.MessageID); at.Before(record.Time.Add(deleteAfter - time.Second)) {
		t.Fatalf("deleted at %s, before it was due (sent %s, +%s)", at, record.Time, deleteAfter)
	}
	for _, m := range tg.Latest(901) {
		if _, deleted := tg.DeletedAt(901, m.MessageID); strings.Contains(m.Text, "Leela Menon") && !deleted {
			t.Fatalf("a copy of the record escaped deletion: %+v", m)
		}
	}
}

// TestRecordDeletedAfter5xx: Telegram takes the record and the proxy in
// front of it answers 502. The one copy is deleted on time; none is sent
// again outside the schedule.
func TestRecordDeletedAfter5xx(t *testing.T) {
	t.Parallel() // a real process against its own fakes and data directory
	f := startCrashFixture(t, "OTPGATE_RELEASE_DELETE_AFTER=1s")
	tg, logs, ctx := f.tg, f.logs, f.ctx
	code := f.lookupCode(t, 902)
	tg.FailAfter("editMessageText", 1, 502)
	tg.FailAfter("sendMessage", 1, 502)
	tg.SendText(tf.Private(902), tf.User{ID: 902, FirstName: "L", LanguageCode: "en"}, code)
	err := tg.WaitFor(ctx, func() bool {
		n := 0
		for _, m := range tg.Latest(902) {
			if strings.Contains(m.Text, "Leela Menon") {
				if _, deleted := tg.DeletedAt(902, m.MessageID); !deleted {
					return false
				}
				n++
			}
		}
		return n >= 1
	})
	if err != nil {
		t.Fatalf("a copy of the record is still in the chat: %+v\n%s", tg.Latest(902), logs)
	}
}

// TestRestartKeepsTheHourlyCap: a serve process restarted in the middle of
// the hour still counts the codes sent to a mobile before the restart.
func TestRestartKeepsTheHourlyCap(t *testing.T) {
	t.Parallel() // a real process against its own fakes and data directory
	f := startCrashFixture(t, "OTPGATE_SENDS_PER_MOBILE_HOUR=2")
	tg, tw, env, cmd, logs, ctx := f.tg, f.tw, f.env, f.cmd, f.logs, f.ctx
	lookup := func(user int64) {
		tg.SendText(tf.Private(user), tf.User{ID: user, FirstName: "U", LanguageCode: "en"}, "/lookup 9000000501")
		if _, err := tg.WaitLatest(ctx, user, 1, func(tf.SentMessage) bool { return true }); err != nil {
			t.Fatalf("no answer to %d: %v\n%s", user, err, logs)
		}
	}
	lookup(1101)
	lookup(1102)
	if _, err := tw.WaitMessages(ctx, 2); err != nil {
		t.Fatalf("two codes before the restart: %v", err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve did not stop cleanly: %v\n%s", err, logs)
	}
	srv, logs2 := otpgateProcessServing(t, tg, env)
	lookup(1103)
	// Stop the new process so that the audit log can be read, then see
	// what became of the third request.
	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := srv.Wait(); err != nil {
		t.Fatalf("serve did not stop cleanly: %v\n%s", err, logs2)
	}
	_, out, errOut := runCmd(env, "", "audit", "export")
	if errOut != "" && !strings.Contains(errOut, "exported") {
		t.Logf("audit export: %s", errOut)
	}
	if !strings.Contains(out, `"outcome":"mobile_hourly_limit"`) {
		t.Fatalf("the third request in the hour was not refused by the hourly cap:\n%s\n%s", out, logs2)
	}
	if n := len(tw.Messages()); n != 2 {
		t.Fatalf("%d SMS in the hour, want 2 (the cap)", n)
	}
}
