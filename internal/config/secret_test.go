package config

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// Recognisable secret values; none may appear in any rendering.
const (
	leakToken   = "987654321:SECRETtelegramTOKENvalue"
	leakWebhook = "SECRET_webhook-VALUE"
	leakTwilio  = "SECRETtwilioAUTHvalue"
	// leakDatabaseURL holds leakDBPassword; its host and the password
	// percent-encoded are recognisable too.
	leakDatabaseURL = "postgres://otpgate:" + leakDBPassword + "@SECRETdb.example.org:5432/otpgate?sslmode=verify-full"
)

// leakKey is a master key whose every encoding is recognisable.
var leakKey = bytes.Repeat([]byte{0x5e, 0xc2, 0xe7}, 11)[:32]

func leakNeedles() []string {
	return []string{
		leakToken, "SECRETtelegram", leakWebhook, "SECRET_webhook", leakTwilio, "SECRETtwilio",
		leakDatabaseURL, leakDBPassword, "SECRETdatabase", "SECRETdb",
		fmt.Sprintf("%x", leakKey), fmt.Sprintf("%X", leakKey),
		base64.StdEncoding.EncodeToString(leakKey), base64.RawURLEncoding.EncodeToString(leakKey),
		fmt.Sprint(leakKey), fmt.Sprintf("%q", leakKey), string(leakKey),
	}
}

func assertNoLeak(t *testing.T, what, out string) {
	t.Helper()
	for _, n := range leakNeedles() {
		if strings.Contains(out, n) {
			t.Errorf("%s leaks %q:\n%s", what, n, out)
		}
	}
}

func leakyConfig(t *testing.T) Config {
	t.Helper()
	c, err := Load([]string{
		"OTPGATE_MASTER_KEY=" + fmt.Sprintf("%x", leakKey),
		"OTPGATE_TELEGRAM_TOKEN=" + leakToken,
		"OTPGATE_WEBHOOK_SECRET=" + leakWebhook,
		"OTPGATE_TWILIO_AUTH_TOKEN=" + leakTwilio,
		"OTPGATE_DATABASE_URL=" + leakDatabaseURL,
	})
	if err != nil {
		t.Fatal(err)
	}
	// The values are really there, so the absence checks below mean something.
	if c.TelegramToken.Reveal() != leakToken || c.WebhookSecret.Reveal() != leakWebhook ||
		c.TwilioAuthToken.Reveal() != leakTwilio || !bytes.Equal(c.MasterKey.Bytes(), leakKey) ||
		c.DatabaseURL.Reveal() != leakDatabaseURL {
		t.Fatal("secrets did not load")
	}
	return c
}

func TestSecretsNeverPrint(t *testing.T) {
	t.Parallel()
	c := leakyConfig(t)
	renderings := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v"} {
		renderings["fmt "+verb] = fmt.Sprintf(verb, c)
		renderings["fmt "+verb+" pointer"] = fmt.Sprintf(verb, &c)
		renderings["fmt "+verb+" key"] = fmt.Sprintf(verb, c.MasterKey)
		renderings["fmt "+verb+" token"] = fmt.Sprintf(verb, c.TelegramToken)
		renderings["fmt "+verb+" database"] = fmt.Sprintf(verb, c.DatabaseURL)
	}
	renderings["fmt Sprint"] = fmt.Sprint(c, c.TelegramToken, c.MasterKey)
	renderings["String"] = c.TelegramToken.String() + c.MasterKey.String()
	renderings["GoString"] = c.TelegramToken.GoString() + c.MasterKey.GoString()

	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	renderings["json.Marshal"] = string(j)
	var decoded map[string]any
	if err := json.Unmarshal(j, &decoded); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"MasterKey", "TelegramToken", "WebhookSecret", "TwilioAuthToken", "DatabaseURL"} {
		if decoded[f] != redacted {
			t.Errorf("json %s = %v, want %s", f, decoded[f], redacted)
		}
	}

	for _, h := range []struct {
		name string
		new  func(*bytes.Buffer) slog.Handler
	}{
		{"slog text", func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }},
		{"slog json", func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }},
	} {
		var buf bytes.Buffer
		slog.New(h.new(&buf)).Info("config", "config", c, "token", c.TelegramToken, "key", c.MasterKey, "database", c.DatabaseURL)
		renderings[h.name] = buf.String()
	}

	for what, out := range renderings {
		assertNoLeak(t, what, out)
	}
	// And the placeholder is what shows instead.
	for _, what := range []string{"fmt %v", "fmt %+v", "fmt %#v", "slog text", "slog json"} {
		if !strings.Contains(renderings[what], redacted) {
			t.Errorf("%s shows no %s:\n%s", what, redacted, renderings[what])
		}
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	t.Parallel()
	keyFile := writeFile(t, leakToken+"\n")
	for _, tc := range []struct {
		name    string
		environ []string
	}{
		{"invalid values", []string{
			"OTPGATE_TELEGRAM_TOKEN=" + leakToken + " with spaces",
			"OTPGATE_WEBHOOK_SECRET=" + leakWebhook + "!",
			"OTPGATE_TWILIO_AUTH_TOKEN=" + leakTwilio + "-",
			"OTPGATE_MASTER_KEY=" + leakToken,
			"OTPGATE_DATABASE_URL=" + strings.Replace(leakDatabaseURL, "5432", "99999", 1),
		}},
		{"invalid database URL from a file", []string{
			"OTPGATE_DATABASE_URL_FILE=" + writeFile(t, strings.Replace(leakDatabaseURL, "postgres", "mysql", 1)),
		}},
		{"database URL set twice", []string{
			"OTPGATE_DATABASE_URL=" + leakDatabaseURL,
			"OTPGATE_DATABASE_URL_FILE=" + writeFile(t, leakDatabaseURL),
		}},
		{"set twice", []string{
			"OTPGATE_TELEGRAM_TOKEN=" + leakToken,
			"OTPGATE_TELEGRAM_TOKEN_FILE=" + keyFile,
		}},
		{"bad key from file", []string{"OTPGATE_MASTER_KEY_FILE=" + keyFile}},
		{"misspelt secret", []string{"OTPGATE_TELEGRAM_TOKN=" + leakToken}},
		{"empty with a value elsewhere", []string{
			"OTPGATE_TWILIO_AUTH_TOKEN=" + leakTwilio,
			"OTPGATE_LOG_LEVEL=",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(tc.environ)
			if err == nil {
				t.Fatal("no error")
			}
			assertNoLeak(t, "Load error", err.Error())
			assertNoLeak(t, "Load error %#v", fmt.Sprintf("%#v", err))
		})
	}

	c := leakyConfig(t)
	c.SMSProvider = "bogus"
	c.WebhookURL = "http://example.org/" + leakToken
	err := c.Require(Serve)
	if err == nil {
		t.Fatal("Require: no error")
	}
	assertNoLeak(t, "Require error", err.Error())
}

func TestSecretZeroValue(t *testing.T) {
	t.Parallel()
	var s Secret
	var k SecretKey
	if s.IsSet() || k.IsSet() || s.Reveal() != "" || k.Bytes() != nil {
		t.Error("zero values are not empty")
	}
	if fmt.Sprint(s, k) != redacted+" "+redacted {
		t.Errorf("zero values print %q", fmt.Sprint(s, k))
	}
	if !NewSecret("x").IsSet() || NewSecret("x").Reveal() != "x" {
		t.Error("NewSecret lost its value")
	}
}
