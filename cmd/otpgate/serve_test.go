package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
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

// TestMain lets the test binary run as otpgate itself, so process-level
// tests need no separate build.
func TestMain(m *testing.M) {
	if os.Getenv("RUN_AS_OTPGATE") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

const (
	tgToken   = "424242:fake-token-for-serve-tests_abcdefgh"
	twSID     = "AC0123456789abcdef0123456789abcdef"
	twToken   = "authtoken0123456789abcdef01234567"
	twFrom    = "+15005550006"
	keyHexLen = 32
)

// otpgateProcess starts `otpgate <args>` as a real process.
func otpgateProcess(t *testing.T, env []string, args ...string) (*exec.Cmd, *syncBuffer, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append([]string{"RUN_AS_OTPGATE=1", "PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	out, errb := &syncBuffer{}, &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	return cmd, out, errb
}

// importAndServe imports records (JSON Lines) with a real `otpgate import`,
// then starts a real `otpgate serve` and waits until it polls tg.
func importAndServe(t *testing.T, tg *tf.Server, env []string, records string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "records.jsonl")
	if err := os.WriteFile(file, []byte(records), 0o600); err != nil {
		t.Fatal(err)
	}
	imp, _, impErr := otpgateProcess(t, env, "import", file)
	if err := imp.Wait(); err != nil {
		t.Fatalf("import: %v\n%s", err, impErr)
	}
	return otpgateProcessServing(t, tg, env)
}

// otpgateProcessServing starts a real `otpgate serve` on env and waits
// until it polls tg.
func otpgateProcessServing(t *testing.T, tg *tf.Server, env []string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd, _, logs := otpgateProcess(t, env, "serve")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := tg.WaitFor(ctx, tg.Polling); err != nil {
		t.Fatalf("serve did not start polling: %v\n%s", err, logs)
	}
	return cmd, logs
}

func TestServeProcessAgainstFakes(t *testing.T) {
	t.Parallel() // a real process against its own fakes and data directory
	tg := tf.New(tgToken, tf.Options{EnforceLimits: true})
	defer tg.Close()
	tw := twiliotest.New(twSID, twToken)
	defer tw.Close()
	dir := t.TempDir()
	env := []string{
		"OTPGATE_MASTER_KEY=" + hex.EncodeToString(bytes.Repeat([]byte{7}, keyHexLen)),
		"OTPGATE_DATA_DIR=" + filepath.Join(dir, "data"),
		"OTPGATE_TELEGRAM_TOKEN=" + tgToken,
		"OTPGATE_TELEGRAM_API_URL=" + tg.URL(),
		"OTPGATE_TWILIO_ACCOUNT_SID=" + twSID,
		"OTPGATE_TWILIO_AUTH_TOKEN=" + twToken,
		"OTPGATE_TWILIO_FROM=" + twFrom,
		"OTPGATE_TWILIO_API_URL=" + tw.URL(),
		"OTPGATE_LOG_LEVEL=debug",
	}
	cmd, logs := importAndServe(t, tg, env, `{"reference_id":"88880000000001","name":"Meera Pillai","birth_year":1990,"gender":"F","mobile":"9000000401","id_type":"aadhaar","id_number":"888800000001"}
{"reference_id":"88880000000002","name":"Vivek Pillai","birth_year":1988,"gender":"M","mobile":"9000000401","id_type":"aadhaar","id_number":"888800000002"}
`)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	chat, from := tf.Private(777), tf.User{ID: 777, FirstName: "M", LanguageCode: "en"}
	tg.SendText(chat, from, "/lookup +91 90000 00401")
	sms, err := tw.WaitMessages(ctx, 1)
	if err != nil {
		t.Fatalf("no SMS: %v\n%s", err, logs)
	}
	if sms[0].To != "+919000000401" || sms[0].From != twFrom {
		t.Fatalf("SMS to %s from %s", sms[0].To, sms[0].From)
	}
	code := regexp.MustCompile(`\b\d{6}\b`).FindString(sms[0].Body)
	tg.SendText(chat, from, code)
	// Released messages arrive as an empty placeholder, edited once its
	// deletion is scheduled: wait for what the user sees.
	msgs, err := tg.WaitLatest(ctx, 777, 2, func(m tf.SentMessage) bool { return len(tf.Buttons(m)) > 0 })
	if err != nil {
		t.Fatal(err)
	}
	buttons := tf.Buttons(msgs[1])
	if len(buttons) != 2 {
		t.Fatalf("chooser: %+v", msgs[1])
	}
	tg.PressButton(chat, from, msgs[1].MessageID, buttons[0][0].CallbackData)
	msgs, err = tg.WaitLatest(ctx, 777, 3, func(m tf.SentMessage) bool { return !m.EditTime.IsZero() })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msgs[2].Text, "Meera Pillai") || !msgs[2].ProtectContent {
		t.Fatalf("record: %+v", msgs[2])
	}

	// SIGTERM: a clean, prompt stop.
	cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("serve exited with %v\n%s", err, logs)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not stop on SIGTERM\n%s", logs)
	}
	for _, s := range []string{code, "9000000401", "Meera", "Pillai", "888800000001", tgToken, twToken} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("serve's logs contain %q", s)
		}
	}
	if !strings.Contains(logs.String(), "code verified") {
		t.Errorf("expected debug logs of the flow:\n%s", logs)
	}

	// The audit chain written by serve verifies.
	audit, out, auditErr := otpgateProcess(t, env, "audit", "verify")
	if err := audit.Wait(); err != nil || !strings.Contains(out.String(), "intact") {
		t.Fatalf("audit verify: %v %s %s", err, out, auditErr)
	}
}

func TestServeRefusesWithoutItsSettings(t *testing.T) {
	cases := []struct {
		name string
		env  []string
		want []string
	}{
		{"nothing", nil, []string{"OTPGATE_MASTER_KEY", "OTPGATE_TELEGRAM_TOKEN", "OTPGATE_TWILIO_ACCOUNT_SID"}},
		{"console without development", []string{"OTPGATE_SMS_PROVIDER=console"}, []string{"OTPGATE_DEVELOPMENT"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, _, errb := testEnv(c.env...)
			if rc := run(context.Background(), []string{"serve"}, e); rc != 1 {
				t.Fatalf("exit %d", rc)
			}
			for _, w := range c.want {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("%s not named:\n%s", w, errb)
				}
			}
		})
	}
}

func TestServeDevelopmentConsoleIsLoud(t *testing.T) {
	tg := tf.New(tgToken, tf.Options{})
	defer tg.Close()
	env := []string{
		"OTPGATE_MASTER_KEY=" + hex.EncodeToString(bytes.Repeat([]byte{8}, keyHexLen)),
		"OTPGATE_DATA_DIR=" + filepath.Join(t.TempDir(), "data"),
		"OTPGATE_TELEGRAM_TOKEN=" + tgToken,
		"OTPGATE_TELEGRAM_API_URL=" + tg.URL(),
		"OTPGATE_SMS_PROVIDER=console",
		"OTPGATE_DEVELOPMENT=true",
	}
	cmd, _, logs := otpgateProcess(t, env, "serve")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tg.WaitFor(ctx, tg.Polling); err != nil {
		t.Fatalf("serve did not start: %v\n%s", err, logs)
	}
	cmd.Process.Signal(syscall.SIGINT)
	cmd.Wait()
	if !strings.Contains(logs.String(), "DEVELOPMENT MODE") {
		t.Fatalf("no loud warning:\n%s", logs)
	}
}
