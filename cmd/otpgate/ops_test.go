package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	tf "github.com/otpgate/otpgate/bot/telegram/telegramtest"
	"github.com/otpgate/otpgate/internal/app"
	"github.com/otpgate/otpgate/internal/keys"
	"github.com/otpgate/otpgate/otp/twilio/twiliotest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metricValue sums the samples of name whose labels contain every given
// label pair.
func metricValue(body, name string, labels ...string) float64 {
	total := 0.0
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name) || strings.HasPrefix(line, "#") {
			continue
		}
		rest := line[len(name):]
		if rest != "" && rest[0] != '{' && rest[0] != ' ' {
			continue // a longer metric name
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(rest, l)
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		total += v
	}
	return total
}

// envT names the command environment type, which TestOperations's env
// variable shadows.
type envT = env

// TestOperations runs serve as a real process with the ops endpoints and
// JSON logs at debug level, drives a flow through injected Telegram and
// Twilio failures, and checks metrics, readiness and every log line.
func TestOperations(t *testing.T) {
	t.Parallel() // a real process against its own fakes and data directory
	tg := tf.New(tgToken, tf.Options{MaxPollWait: 300 * time.Millisecond})
	defer tg.Close()
	tw := twiliotest.New(twSID, twToken)
	defer tw.Close()
	dir := t.TempDir()
	ops := freeAddr(t)
	masterHex := hex.EncodeToString(bytes.Repeat([]byte{9}, keyHexLen))
	env := []string{
		"OTPGATE_MASTER_KEY=" + masterHex,
		"OTPGATE_DATA_DIR=" + filepath.Join(dir, "data"),
		"OTPGATE_TELEGRAM_TOKEN=" + tgToken, "OTPGATE_TELEGRAM_API_URL=" + tg.URL(),
		"OTPGATE_TWILIO_ACCOUNT_SID=" + twSID, "OTPGATE_TWILIO_AUTH_TOKEN=" + twToken,
		"OTPGATE_TWILIO_FROM=" + twFrom, "OTPGATE_TWILIO_API_URL=" + tw.URL(),
		"OTPGATE_OPS_LISTEN=" + ops, "OTPGATE_LOG_LEVEL=debug", "OTPGATE_LOG_FORMAT=json",
	}
	cmd, logs := importAndServe(t, tg, env, `{"reference_id":"66660000000001","name":"Harpreet Kaur","birth_year":1975,"gender":"F","mobile":"9000000501","id_type":"aadhaar","id_number":"666600000001"}`+"\n")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	waitStatus := func(path string, want int) string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			code, body := get(t, "http://"+ops+path)
			if code == want {
				return body
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d %q, want %d", path, code, body, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitStatus("/healthz", 200)
	waitStatus("/readyz", 200)

	// Injected failures: Twilio 500 once (retried), Telegram 502 once on a send.
	tw.FailNext(1, 500, 0)
	tg.FailNext("sendMessage", 1, 502, 0)
	chat, from := tf.Private(99), tf.User{ID: 99, FirstName: "H", LanguageCode: "en"}
	tg.SendText(chat, from, "/lookup 9000000501")
	sms, err := tw.WaitMessages(ctx, 1)
	if err != nil {
		t.Fatalf("no SMS: %v", err)
	}
	code := regexp.MustCompile(`\b\d{6}\b`).FindString(sms[0].Body)
	tg.SendText(chat, from, "000000") // one wrong code
	tg.SendText(chat, from, code)
	msgs, err := tg.WaitLatest(ctx, 99, 3, func(m tf.SentMessage) bool { return !m.EditTime.IsZero() }) // the record, edited in
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msgs[2].Text, "Harpreet Kaur") {
		t.Fatalf("record: %q", msgs[2].Text)
	}

	body := waitStatus("/metrics", 200)
	for _, m := range []struct {
		name   string
		labels []string
		min    float64
	}{
		{"otpgate_codes_requested_total", nil, 1},
		{"otpgate_verifications_total", []string{`result="verified"`}, 1},
		{"otpgate_verifications_total", []string{`result="rejected"`}, 1},
		{"otpgate_releases_total", []string{`audience="beneficiary"`}, 1},
		{"otpgate_telegram_updates_total", nil, 3},
		{"otpgate_telegram_send_queue_depth", nil, 0},
	} {
		if v := metricValue(body, m.name, m.labels...); v < m.min {
			t.Errorf("%s%v = %v, want ≥ %v", m.name, m.labels, v, m.min)
		}
	}
	for _, bad := range []string{"9000000501", "99}", "Harpreet", code,
		// Series that would tell a scraper whether a lookup matched a record.
		"otpgate_codes_sent_total", "otpgate_codes_not_sent_total", "otpgate_verification_outcomes_total",
		"otpgate_sms_errors_total", "otpgate_verify_to_send_ratio", "otpgate_sms_cap_remaining", `outcome="wrong"`} {
		if strings.Contains(body, bad) {
			t.Errorf("/metrics contains %q", bad)
		}
	}
	// The operator's metrics need the ops token.
	if code, _ := get(t, "http://"+ops+"/metrics/ops"); code != http.StatusUnauthorized {
		t.Errorf("/metrics/ops without the ops token: %d", code)
	}
	ks, _ := keys.Derive(bytes.Repeat([]byte{9}, keyHexLen))
	req, _ := http.NewRequest(http.MethodGet, "http://"+ops+"/metrics/ops", nil)
	req.Header.Set("Authorization", "Bearer "+app.OpsToken(ks))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	opsBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []struct {
		name   string
		labels []string
		min    float64
	}{
		{"otpgate_codes_sent_total", nil, 1},
		{"otpgate_verification_outcomes_total", []string{`outcome="verified"`}, 1},
		{"otpgate_verification_outcomes_total", []string{`outcome="wrong"`}, 1},
		{"otpgate_verify_to_send_ratio", nil, 1},
		{"otpgate_sms_cap_remaining", []string{`cap="global"`}, 599},
	} {
		if v := metricValue(string(opsBody), m.name, m.labels...); v < m.min {
			t.Errorf("/metrics/ops %s%v = %v, want ≥ %v", m.name, m.labels, v, m.min)
		}
	}
	// `otpgate limits` reads the caps of the running process, and lifts one.
	var out, errOut bytes.Buffer
	limitsEnv := func() envT { return envT{stdout: &out, stderr: &errOut, environ: env} }
	if rc := run(ctx, []string{"limits"}, limitsEnv()); rc != 0 ||
		!strings.Contains(out.String(), "global") || !strings.Contains(out.String(), "1/600") || !strings.Contains(out.String(), "prefix +9190000") {
		t.Errorf("otpgate limits: %d %q %q", rc, out.String(), errOut.String())
	}
	out.Reset()
	if rc := run(ctx, []string{"limits", "lift", "global"}, limitsEnv()); rc != 0 || !strings.Contains(out.String(), "lifted global") {
		t.Errorf("otpgate limits lift global: %d %q %q", rc, out.String(), errOut.String())
	}

	// Telegram goes away: not ready; it comes back: ready.
	tg.SetDown(true)
	waitStatus("/readyz", http.StatusServiceUnavailable)
	tg.SetDown(false)
	waitStatus("/readyz", 200)

	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve exit: %v", err)
	}

	// Every log line: JSON, with a component, and nothing secret or personal.
	secrets := []string{code, "9000000501", "919000000501", "Harpreet", "Kaur", "666600000001", "66660000000001",
		tgToken, strings.Split(tgToken, ":")[1], twToken, twSID, masterHex}
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	lines := 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "!!!") {
			continue
		}
		lines++
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("not a JSON log line: %q", line)
			continue
		}
		if rec["component"] == nil {
			t.Errorf("log line without a component: %s", line)
		}
		for _, s := range secrets {
			if strings.Contains(line, s) {
				t.Errorf("log line contains %q: %s", s, line)
			}
		}
	}
	if lines < 10 || !strings.Contains(logs.String(), "will retry") {
		t.Fatalf("expected debug logs including the injected failures, got %d lines:\n%s", lines, logs)
	}
}
