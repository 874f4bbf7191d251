package config

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// testKey has bytes whose base64 uses + and / (standard) or - and _ (URL),
// so each alphabet is exercised.
var testKey = append(bytes.Repeat([]byte{0xfb, 0xef, 0xbe, 0xff, 0xff, 0xff}, 5), 0x01, 0x02)

var testKeyHex = hex.EncodeToString(testKey)

// problems returns the Errors in err, failing the test if err is something else.
func problems(t *testing.T, err error) Errors {
	t.Helper()
	if err == nil {
		return nil
	}
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T, want config.Errors: %v", err, err)
	}
	return errs
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	want := Config{
		DataDir:                    "./data",
		TelegramAPIURL:             "https://api.telegram.org",
		WebhookListen:              ":8443",
		SMSProvider:                "twilio",
		TwilioAPIURL:               "https://api.twilio.com",
		OTPTTL:                     3 * time.Minute,
		OTPMaxAttempts:             3,
		ResendCooldown:             60 * time.Second,
		SendsPerMobileHour:         5,
		SendsPerMobileDay:          10,
		OwnerSendsPerHour:          3,
		WrongCodesPerMobileHour:    10,
		WrongCodesPerRequesterHour: 10,
		RequestsPerRequesterHour:   5,
		StaffRequestsPerHour:       60,
		SendsPerPrefixHour:         30,
		GlobalSMSPerHour:           600,
		SMSCountries:               []string{"91"},
		GrantTTL:                   10 * time.Minute,
		ReleaseDeleteAfter:         10 * time.Minute,
		FloodPerMinute:             20,
		ProofTTL:                   90 * 24 * time.Hour,
		ProofIssuer:                "otpgate",
		MemoryLimit:                384 << 20,
		LogLevel:                   "info",
		LogFormat:                  "text",
	}
	// Variables that are not otpgate's, and empty values for variables whose
	// default is empty, change nothing.
	for _, environ := range [][]string{
		nil,
		{"PATH=/usr/bin", "HOME=/root", "NOEQUALS", "=x", "OTPGATEWAY=1"},
		{"OTPGATE_WEBHOOK_URL=", "OTPGATE_MASTER_KEY=", "OTPGATE_STAFF_USERS=", "OTPGATE_MASTER_KEY_FILE=", "OTPGATE_DATABASE_URL="},
	} {
		got, err := Load(environ)
		if err != nil {
			t.Fatalf("Load(%q): %v", environ, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Load(%q) =\n%+v\nwant\n%+v", environ, got, want)
		}
		if got.MasterKey.IsSet() || got.TelegramToken.IsSet() || got.MasterKey.Bytes() != nil {
			t.Errorf("Load(%q): secrets set without input", environ)
		}
	}
}

func TestLoadValues(t *testing.T) {
	t.Parallel()
	templates := writeFile(t, "{}")
	c, err := Load([]string{
		"OTPGATE_DATA_DIR=/var/lib/otpgate",
		"OTPGATE_DATA_DIR=/ignored/second/entry",
		"OTPGATE_MASTER_KEY=" + testKeyHex,
		"OTPGATE_TELEGRAM_TOKEN=123456:AAbb_cc-DD",
		"OTPGATE_WEBHOOK_URL=https://bot.example.org/hook",
		"OTPGATE_WEBHOOK_SECRET=abc_DEF-123",
		"OTPGATE_SMS_PROVIDER=console",
		"OTPGATE_TWILIO_FROM=+14155550100",
		"OTPGATE_OTP_TTL=10m",
		"OTPGATE_OTP_MAX_ATTEMPTS=10",
		"OTPGATE_RESEND_COOLDOWN=90s",
		"OTPGATE_SMS_COUNTRIES= 91, 1 ,44",
		"OTPGATE_STAFF_USERS=42:Asha, 7:desk 7",
		"OTPGATE_STAFF_CHATS=-1001234567890,-5",
		"OTPGATE_OPS_LISTEN=127.0.0.1:9090",
		"OTPGATE_LOG_LEVEL=debug",
		"OTPGATE_LOG_FORMAT=json",
		"OTPGATE_SMS_TEMPLATES=" + templates,
		"OTPGATE_DEVELOPMENT=true",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"DataDir (first entry wins)", c.DataDir, "/var/lib/otpgate"},
		{"MasterKey", c.MasterKey.Bytes(), testKey},
		{"TelegramToken", c.TelegramToken.Reveal(), "123456:AAbb_cc-DD"},
		{"WebhookURL", c.WebhookURL, "https://bot.example.org/hook"},
		{"WebhookSecret", c.WebhookSecret.Reveal(), "abc_DEF-123"},
		{"SMSProvider", c.SMSProvider, "console"},
		{"TwilioFrom", c.TwilioFrom, "+14155550100"},
		{"OTPTTL", c.OTPTTL, 10 * time.Minute},
		{"OTPMaxAttempts", c.OTPMaxAttempts, 10},
		{"ResendCooldown", c.ResendCooldown, 90 * time.Second},
		{"SMSCountries", c.SMSCountries, []string{"91", "1", "44"}},
		{"StaffUsers", c.StaffUsers, StaffUsers{{42, "Asha"}, {7, "desk 7"}}},
		{"StaffChats", c.StaffChats, []int64{-1001234567890, -5}},
		{"OpsListen", c.OpsListen, "127.0.0.1:9090"},
		{"LogLevel", c.LogLevel, "debug"},
		{"LogFormat", c.LogFormat, "json"},
		{"SMSTemplates", c.SMSTemplates, templates},
		{"Development", c.Development, true},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestLoadProblemNamesVariable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		env     string // one NAME=value entry
		wantVar string
		want    string // substring of the message
	}{
		{"OTPGATE_DATA_DIR=", "OTPGATE_DATA_DIR", "set but empty"},
		{"OTPGATE_LOG_LEVEL=", "OTPGATE_LOG_LEVEL", `default "info"`},
		{"OTPGATE_DEVELOPMENT=", "OTPGATE_DEVELOPMENT", "set but empty"},
		{"OTPGATE_OTP_TTL=", "OTPGATE_OTP_TTL", "set but empty"},
		{"OTPGATE_OTP_TTL=11m", "OTPGATE_OTP_TTL", "at most 10m"},
		{"OTPGATE_OTP_TTL=0s", "OTPGATE_OTP_TTL", "greater than zero"},
		{"OTPGATE_OTP_TTL=-1m", "OTPGATE_OTP_TTL", "greater than zero"},
		{"OTPGATE_OTP_TTL=3 minutes", "OTPGATE_OTP_TTL", `"3 minutes" is not a duration`},
		{"OTPGATE_OTP_MAX_ATTEMPTS=0", "OTPGATE_OTP_MAX_ATTEMPTS", "between 1 and 10"},
		{"OTPGATE_OTP_MAX_ATTEMPTS=11", "OTPGATE_OTP_MAX_ATTEMPTS", "between 1 and 10"},
		{"OTPGATE_OTP_MAX_ATTEMPTS=three", "OTPGATE_OTP_MAX_ATTEMPTS", "not a whole number"},
		{"OTPGATE_RESEND_COOLDOWN=0", "OTPGATE_RESEND_COOLDOWN", "greater than zero"},
		{"OTPGATE_GRANT_TTL=-5m", "OTPGATE_GRANT_TTL", "greater than zero"},
		{"OTPGATE_MEMORY_LIMIT=32MiB", "OTPGATE_MEMORY_LIMIT", "at least 64MiB"},
		{"OTPGATE_MEMORY_LIMIT=lots", "OTPGATE_MEMORY_LIMIT", "whole number with an optional unit"},
		{"OTPGATE_MEMORY_LIMIT=-1GiB", "OTPGATE_MEMORY_LIMIT", "whole number with an optional unit"},
		{"OTPGATE_RELEASE_DELETE_AFTER=0s", "OTPGATE_RELEASE_DELETE_AFTER", "greater than zero"},
		{"OTPGATE_RELEASE_DELETE_AFTER=48h", "OTPGATE_RELEASE_DELETE_AFTER", "48h"},
		{"OTPGATE_SENDS_PER_MOBILE_HOUR=0", "OTPGATE_SENDS_PER_MOBILE_HOUR", "at least 1"},
		{"OTPGATE_SENDS_PER_MOBILE_DAY=-1", "OTPGATE_SENDS_PER_MOBILE_DAY", "at least 1"},
		{"OTPGATE_OWNER_SENDS_PER_HOUR=0", "OTPGATE_OWNER_SENDS_PER_HOUR", "between 1 and 10"},
		{"OTPGATE_OWNER_SENDS_PER_HOUR=11", "OTPGATE_OWNER_SENDS_PER_HOUR", "between 1 and 10"},
		{"OTPGATE_WRONG_CODES_PER_MOBILE_HOUR=0", "OTPGATE_WRONG_CODES_PER_MOBILE_HOUR", "at least 1"},
		{"OTPGATE_WRONG_CODES_PER_REQUESTER_HOUR=0", "OTPGATE_WRONG_CODES_PER_REQUESTER_HOUR", "at least 1"},
		{"OTPGATE_REQUESTS_PER_REQUESTER_HOUR=0", "OTPGATE_REQUESTS_PER_REQUESTER_HOUR", "at least 1"},
		{"OTPGATE_SENDS_PER_PREFIX_HOUR=0", "OTPGATE_SENDS_PER_PREFIX_HOUR", "at least 1"},
		{"OTPGATE_GLOBAL_SMS_PER_HOUR=0", "OTPGATE_GLOBAL_SMS_PER_HOUR", "at least 1"},
		{"OTPGATE_GLOBAL_SMS_PER_HOUR=1e3", "OTPGATE_GLOBAL_SMS_PER_HOUR", "not a whole number"},
		{"OTPGATE_TELEGRAM_API_URL=ftp://api.telegram.org", "OTPGATE_TELEGRAM_API_URL", "http"},
		{"OTPGATE_TELEGRAM_API_URL=api.telegram.org", "OTPGATE_TELEGRAM_API_URL", "absolute"},
		{"OTPGATE_TELEGRAM_API_URL=http://", "OTPGATE_TELEGRAM_API_URL", "host"},
		{"OTPGATE_TWILIO_API_URL=://nope", "OTPGATE_TWILIO_API_URL", "absolute"},
		{"OTPGATE_WEBHOOK_URL=/relative/path", "OTPGATE_WEBHOOK_URL", "absolute"},
		{"OTPGATE_WEBHOOK_LISTEN=8443", "OTPGATE_WEBHOOK_LISTEN", "host:port"},
		{"OTPGATE_WEBHOOK_LISTEN=:99999", "OTPGATE_WEBHOOK_LISTEN", "0-65535"},
		{"OTPGATE_OPS_LISTEN=localhost", "OTPGATE_OPS_LISTEN", "host:port"},
		{"OTPGATE_SMS_PROVIDER=sns", "OTPGATE_SMS_PROVIDER", "twilio, console"},
		{"OTPGATE_SMS_PROVIDER=Twilio", "OTPGATE_SMS_PROVIDER", "twilio, console"},
		{"OTPGATE_LOG_LEVEL=verbose", "OTPGATE_LOG_LEVEL", "debug, info, warn, error"},
		{"OTPGATE_LOG_FORMAT=xml", "OTPGATE_LOG_FORMAT", "text, json"},
		{"OTPGATE_SMS_COUNTRIES=+91", "OTPGATE_SMS_COUNTRIES", "without +"},
		{"OTPGATE_SMS_COUNTRIES=91,in", "OTPGATE_SMS_COUNTRIES", `"in"`},
		{"OTPGATE_SMS_COUNTRIES=1234", "OTPGATE_SMS_COUNTRIES", "1-3 digits"},
		{"OTPGATE_SMS_COUNTRIES=91,,1", "OTPGATE_SMS_COUNTRIES", "empty item"},
		{"OTPGATE_STAFF_USERS=-5:x", "OTPGATE_STAFF_USERS", "positive"},
		{"OTPGATE_STAFF_USERS=42:a,bob:b", "OTPGATE_STAFF_USERS", `"bob:b"`},
		{"OTPGATE_STAFF_USERS=42", "OTPGATE_STAFF_USERS", "42 has no label"},
		{"OTPGATE_STAFF_USERS=42:", "OTPGATE_STAFF_USERS", "42 has no label"},
		{"OTPGATE_STAFF_USERS=42:a,42:b", "OTPGATE_STAFF_USERS", "twice"},
		{"OTPGATE_STAFF_USERS=42:a,43:a", "OTPGATE_STAFF_USERS", "used twice"},
		{"OTPGATE_STAFF_USERS=42:<script>", "OTPGATE_STAFF_USERS", "label"},
		{"OTPGATE_STAFF_USERS=42:seventeen-chars-x", "OTPGATE_STAFF_USERS", "label"},
		{"OTPGATE_STAFF_CHATS=123", "OTPGATE_STAFF_CHATS", "negative"},
		{"OTPGATE_DEVELOPMENT=yes", "OTPGATE_DEVELOPMENT", "true or false"},
		{"OTPGATE_SMS_TEMPLATES=" + filepath.Join(dir, "missing.json"), "OTPGATE_SMS_TEMPLATES", "cannot read"},
		{"OTPGATE_SMS_TEMPLATES=" + dir, "OTPGATE_SMS_TEMPLATES", "not a regular file"},
		{"OTPGATE_TWILIO_FROM=+0123456789", "OTPGATE_TWILIO_FROM", "E.164"},
		{"OTPGATE_TWILIO_FROM=Far too long sender", "OTPGATE_TWILIO_FROM", "up to 11"},
		{"OTPGATE_TWILIO_ACCOUNT_SID=AC-1", "OTPGATE_TWILIO_ACCOUNT_SID", "letters and digits"},
		{"OTPGATE_TWILIO_MESSAGING_SERVICE_SID=MG 1", "OTPGATE_TWILIO_MESSAGING_SERVICE_SID", "letters and digits"},
		{"OTPGATE_TWILIO_AUTH_TOKEN=tok-en", "OTPGATE_TWILIO_AUTH_TOKEN", "letters and digits"},
		{"OTPGATE_TELEGRAM_TOKEN=nocolon", "OTPGATE_TELEGRAM_TOKEN", "not a bot token"},
		{"OTPGATE_TELEGRAM_TOKEN=abc:def", "OTPGATE_TELEGRAM_TOKEN", "not a bot token"},
		{"OTPGATE_WEBHOOK_SECRET=has space", "OTPGATE_WEBHOOK_SECRET", "1-256"},
		{"OTPGATE_WEBHOOK_SECRET=" + strings.Repeat("a", 257), "OTPGATE_WEBHOOK_SECRET", "1-256"},
		{"OTPGATE_MASTER_KEY=short", "OTPGATE_MASTER_KEY", "32 bytes"},
	} {
		t.Run(tc.env[:min(len(tc.env), 60)], func(t *testing.T) {
			t.Parallel()
			_, err := Load([]string{tc.env})
			errs := problems(t, err)
			if len(errs) != 1 {
				t.Fatalf("got %d problems, want 1: %v", len(errs), err)
			}
			if errs[0].Var != tc.wantVar {
				t.Errorf("Var = %q, want %q", errs[0].Var, tc.wantVar)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.wantVar) || !strings.Contains(msg, tc.want) {
				t.Errorf("message %q lacks %q or %q", msg, tc.wantVar, tc.want)
			}
		})
	}
}

func TestLoadAcceptsBoundaries(t *testing.T) {
	t.Parallel()
	for _, env := range []string{
		"OTPGATE_OTP_TTL=10m",
		"OTPGATE_OTP_TTL=1s",
		"OTPGATE_OTP_MAX_ATTEMPTS=1",
		"OTPGATE_MEMORY_LIMIT=64MiB",
		"OTPGATE_MEMORY_LIMIT=off",
		"OTPGATE_MEMORY_LIMIT=0",
		"OTPGATE_MEMORY_LIMIT=1GB",
		"OTPGATE_RELEASE_DELETE_AFTER=47h",
		"OTPGATE_WEBHOOK_SECRET=" + strings.Repeat("a", 256),
		"OTPGATE_WEBHOOK_SECRET=x",
		"OTPGATE_WEBHOOK_LISTEN=:0",
		"OTPGATE_WEBHOOK_URL=http://localhost:8081/hook", // Require(Serve) insists on https, Load does not
		"OTPGATE_TWILIO_FROM=OTPGATE",
		"OTPGATE_TWILIO_FROM=56789",
		"OTPGATE_SMS_COUNTRIES=1",
		"OTPGATE_DEVELOPMENT=0",
		"OTPGATE_TELEGRAM_API_URL=http://127.0.0.1:8081",
	} {
		if _, err := Load([]string{env}); err != nil {
			t.Errorf("Load(%q): %v", env, err)
		}
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := Load([]string{
		"OTPGATE_LOG_FORMAT=xml",
		"OTPGATE_OTP_TTL=1h",
		"OTPGATE_DATA_DIR=",
		"OTPGATE_MASTER_KEY=tooshort",
		"OTPGATE_STAFF_CHATS=5",
		"OTPGATE_GRANT_TTL=soon",
		"OTPGATE_OTP_TLL=3m",
		"OTPGATE_EXTRA=1",
	})
	errs := problems(t, err)
	// Table order first, unknown variables last by name.
	want := []string{
		"OTPGATE_DATA_DIR",
		"OTPGATE_MASTER_KEY",
		"OTPGATE_OTP_TTL",
		"OTPGATE_GRANT_TTL",
		"OTPGATE_STAFF_CHATS",
		"OTPGATE_LOG_FORMAT",
		"OTPGATE_EXTRA",
		"OTPGATE_OTP_TLL",
	}
	if got := errs.Vars(); !slices.Equal(got, want) {
		t.Errorf("Vars() =\n%q\nwant\n%q", got, want)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "invalid configuration (8 problems):") {
		t.Errorf("message starts %q", msg[:min(len(msg), 40)])
	}
	for _, v := range want {
		if !strings.Contains(msg, "\n  "+v+": ") {
			t.Errorf("message lacks a line for %s:\n%s", v, msg)
		}
	}
	// Each problem is reachable through the standard wrappers.
	if !errors.Is(err, ErrUnknownVariable) {
		t.Error("errors.Is(err, ErrUnknownVariable) = false")
	}
	var ve *VarError
	if !errors.As(err, &ve) || ve.Var != want[0] {
		t.Errorf("errors.As found %v", ve)
	}
}

func TestMasterKeyEncodings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, value string
	}{
		{"hex", testKeyHex},
		{"hex upper case", strings.ToUpper(testKeyHex)},
		{"hex surrounded by spaces", "  " + testKeyHex + "\n"},
		{"base64 std padded", base64.StdEncoding.EncodeToString(testKey)},
		{"base64 std unpadded", base64.RawStdEncoding.EncodeToString(testKey)},
		{"base64 url padded", base64.URLEncoding.EncodeToString(testKey)},
		{"base64 url unpadded", base64.RawURLEncoding.EncodeToString(testKey)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Load([]string{"OTPGATE_MASTER_KEY=" + tc.value})
			if err != nil {
				t.Fatal(err)
			}
			if got := c.MasterKey.Bytes(); !bytes.Equal(got, testKey) {
				t.Errorf("key = %x, want %x", got, testKey)
			}
		})
	}
	// The alphabets really differ for this key, so both branches ran.
	if base64.StdEncoding.EncodeToString(testKey) == base64.URLEncoding.EncodeToString(testKey) {
		t.Fatal("testKey does not distinguish the base64 alphabets")
	}
}

func TestMasterKeyRejected(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, value, want string
	}{
		{"31 bytes hex", testKeyHex[:62], "got 62 hex characters (31 bytes)"},
		{"33 bytes hex", testKeyHex + "ab", "got 66 hex characters (33 bytes)"},
		{"33 bytes base64", base64.StdEncoding.EncodeToString(append(testKey, 9)), "got 33 bytes"},
		{"16 bytes base64", base64.StdEncoding.EncodeToString(testKey[:16]), "got 16 bytes"},
		{"not hex nor base64", "zz" + testKeyHex[2:] + "!", "must be 32 bytes"},
		{"64 base64 characters are 48 bytes", strings.Repeat("g", 64), "got 48 bytes"},
		{"all zeros", strings.Repeat("0", 64), "all zero"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load([]string{"OTPGATE_MASTER_KEY=" + tc.value})
			errs := problems(t, err)
			if len(errs) != 1 || errs[0].Var != "OTPGATE_MASTER_KEY" {
				t.Fatalf("problems = %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("message %q lacks %q", err, tc.want)
			}
			if strings.Contains(err.Error(), tc.value) {
				t.Errorf("message echoes the key: %q", err)
			}
		})
	}
}

func TestSecretKeyBytesIsACopy(t *testing.T) {
	t.Parallel()
	k, err := NewSecretKey(testKey)
	if err != nil {
		t.Fatal(err)
	}
	b := k.Bytes()
	b[0] ^= 0xff
	if !bytes.Equal(k.Bytes(), testKey) {
		t.Error("changing the result of Bytes changed the key")
	}
	if _, err := NewSecretKey(testKey[:31]); err == nil {
		t.Error("NewSecretKey accepted 31 bytes")
	}
}

func TestFileVariants(t *testing.T) {
	t.Parallel()
	keyFile := writeFile(t, testKeyHex+"\n")
	tokenFile := writeFile(t, "123:from-file\r\n\n  \t")
	sidFile := writeFile(t, "ACfromfile\n")
	emptyFile := writeFile(t, " \n")
	missing := filepath.Join(t.TempDir(), "missing")

	c, err := Load([]string{
		"OTPGATE_MASTER_KEY_FILE=" + keyFile,
		"OTPGATE_TELEGRAM_TOKEN_FILE=" + tokenFile,
		"OTPGATE_TWILIO_ACCOUNT_SID_FILE=" + sidFile,
		"OTPGATE_WEBHOOK_SECRET=", // empty counts as unset, no conflict
		"OTPGATE_WEBHOOK_SECRET_FILE=" + writeFile(t, "hook_secret\n"),
		"OTPGATE_TWILIO_AUTH_TOKEN_FILE=" + writeFile(t, "authtoken123"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.MasterKey.Bytes(), testKey) {
		t.Error("master key from file differs")
	}
	for _, tc := range []struct{ name, got, want string }{
		{"TelegramToken", c.TelegramToken.Reveal(), "123:from-file"},
		{"TwilioAccountSID", c.TwilioAccountSID, "ACfromfile"},
		{"WebhookSecret", c.WebhookSecret.Reveal(), "hook_secret"},
		{"TwilioAuthToken", c.TwilioAuthToken.Reveal(), "authtoken123"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %q, want %q", tc.name, tc.got, tc.want)
		}
	}

	for _, tc := range []struct {
		name    string
		environ []string
		wantVar string
		want    string
	}{
		{"both set", []string{"OTPGATE_TELEGRAM_TOKEN=1:abc", "OTPGATE_TELEGRAM_TOKEN_FILE=" + tokenFile},
			"OTPGATE_TELEGRAM_TOKEN", "OTPGATE_TELEGRAM_TOKEN_FILE"},
		{"missing file", []string{"OTPGATE_MASTER_KEY_FILE=" + missing},
			"OTPGATE_MASTER_KEY_FILE", "no such file"},
		{"directory", []string{"OTPGATE_TWILIO_AUTH_TOKEN_FILE=" + filepath.Dir(missing)},
			"OTPGATE_TWILIO_AUTH_TOKEN_FILE", "cannot read"},
		{"empty file", []string{"OTPGATE_WEBHOOK_SECRET_FILE=" + emptyFile},
			"OTPGATE_WEBHOOK_SECRET_FILE", "is empty"},
		{"bad content", []string{"OTPGATE_MASTER_KEY_FILE=" + tokenFile},
			"OTPGATE_MASTER_KEY", "(from OTPGATE_MASTER_KEY_FILE)"},
		{"too large", []string{"OTPGATE_TELEGRAM_TOKEN_FILE=" + writeFile(t, strings.Repeat("x", maxFileSize+1))},
			"OTPGATE_TELEGRAM_TOKEN_FILE", "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(tc.environ)
			errs := problems(t, err)
			if len(errs) != 1 || errs[0].Var != tc.wantVar {
				t.Fatalf("problems = %v, want one for %s", err, tc.wantVar)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("message %q lacks %q", err, tc.want)
			}
			for _, secret := range []string{"from-file", "abc", testKeyHex} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("message %q contains secret %q", err, secret)
				}
			}
		})
	}
}

func TestUnknownVariables(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		want string // substring; "" means no suggestion at all
	}{
		{"OTPGATE_OTP_TLL", "did you mean OTPGATE_OTP_TTL?"},
		{"OTPGATE_DATADIR", "did you mean OTPGATE_DATA_DIR?"},
		{"OTPGATE_SMS_COUNTRY", "did you mean OTPGATE_SMS_COUNTRIES?"},
		{"OTPGATE_TELEGRAM_TOKN", "did you mean OTPGATE_TELEGRAM_TOKEN?"},
		{"OTPGATE_MASTERKEY_FILE", "did you mean OTPGATE_MASTER_KEY_FILE?"},
		{"otpgate_log_level", "did you mean OTPGATE_LOG_LEVEL?"},
		{"OTPGATE_DATA_DIR_FILE", "OTPGATE_DATA_DIR has no _FILE variant"},
		{"OTPGATE_FROBNICATE", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load([]string{tc.name + "=s3cr3t-value"})
			errs := problems(t, err)
			if len(errs) != 1 || errs[0].Var != tc.name {
				t.Fatalf("problems = %v", err)
			}
			if !errors.Is(err, ErrUnknownVariable) {
				t.Error("not ErrUnknownVariable")
			}
			msg := err.Error()
			if tc.want == "" && strings.Contains(msg, "did you mean") {
				t.Errorf("unexpected suggestion: %q", msg)
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("message %q lacks %q", msg, tc.want)
			}
			if strings.Contains(msg, "s3cr3t") {
				t.Errorf("message echoes the value: %q", msg)
			}
		})
	}
}

func TestEditDistance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"abc", "", 3},
		{"", "abc", 3},
		{"TTL", "TLT", 1},
		{"kitten", "sitting", 3},
		{"DATA_DIR", "DATADIR", 1},
	} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestSlogLevel(t *testing.T) {
	t.Parallel()
	for _, level := range logLevels {
		c, err := Load([]string{"OTPGATE_LOG_LEVEL=" + level})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.ToLower(c.SlogLevel().String()); got != level {
			t.Errorf("SlogLevel for %q = %q", level, got)
		}
	}
}
