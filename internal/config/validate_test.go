package config

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestRequire(t *testing.T) {
	t.Parallel()
	key := "OTPGATE_MASTER_KEY=" + testKeyHex
	token := "OTPGATE_TELEGRAM_TOKEN=123:abc"
	twilio := []string{
		"OTPGATE_TWILIO_ACCOUNT_SID=AC123",
		"OTPGATE_TWILIO_AUTH_TOKEN=tok123",
	}
	serveTwilio := append([]string{key, token, "OTPGATE_TWILIO_FROM=+14155550100"}, twilio...)
	with := func(base []string, more ...string) []string {
		// more comes first: the first entry for a name wins.
		return append(slices.Clone(more), base...)
	}
	for _, tc := range []struct {
		name     string
		environ  []string
		mode     Mode
		wantVars []string
		want     string // substring of the message
	}{
		{"demo needs nothing", nil, Demo, nil, ""},
		{"import without key", nil, Import, []string{"OTPGATE_MASTER_KEY"}, "required by import"},
		{"import with key", []string{key}, Import, nil, ""},
		{"admin without key", []string{token}, Admin, []string{"OTPGATE_MASTER_KEY"}, "required by admin"},
		{"admin with key", []string{key}, Admin, nil, ""},
		{"serve with nothing", nil, Serve, []string{
			"OTPGATE_MASTER_KEY", "OTPGATE_TELEGRAM_TOKEN",
			"OTPGATE_TWILIO_ACCOUNT_SID", "OTPGATE_TWILIO_AUTH_TOKEN", "OTPGATE_TWILIO_FROM",
		}, "OTPGATE_TWILIO_MESSAGING_SERVICE_SID"},
		{"serve with twilio from", serveTwilio, Serve, nil, ""},
		{"serve with messaging service", append([]string{key, token, "OTPGATE_TWILIO_MESSAGING_SERVICE_SID=MG1"}, twilio...),
			Serve, nil, ""},
		{"serve with both senders", with(serveTwilio, "OTPGATE_TWILIO_MESSAGING_SERVICE_SID=MG1"), Serve,
			[]string{"OTPGATE_TWILIO_FROM"}, "only one sender"},
		{"serve without the key only", serveTwilio[1:], Serve, []string{"OTPGATE_MASTER_KEY"}, "required by serve"},
		{"serve console outside development", []string{key, token, "OTPGATE_SMS_PROVIDER=console"}, Serve,
			[]string{"OTPGATE_SMS_PROVIDER"}, "OTPGATE_DEVELOPMENT=true"},
		{"serve console in development", []string{key, token, "OTPGATE_SMS_PROVIDER=console", "OTPGATE_DEVELOPMENT=true"},
			Serve, nil, ""},
		{"webhook needs https and a secret", with(serveTwilio, "OTPGATE_WEBHOOK_URL=http://bot.example.org/hook"), Serve,
			[]string{"OTPGATE_WEBHOOK_URL", "OTPGATE_WEBHOOK_SECRET"}, "https"},
		{"webhook complete", with(serveTwilio, "OTPGATE_WEBHOOK_URL=https://bot.example.org/hook", "OTPGATE_WEBHOOK_SECRET=s3"),
			Serve, nil, ""},
		{"webhook on a port Telegram refuses", with(serveTwilio, "OTPGATE_WEBHOOK_URL=https://bot.example.org:9000/hook",
			"OTPGATE_WEBHOOK_SECRET=s3"), Serve, []string{"OTPGATE_WEBHOOK_URL"}, "8443"},
		{"any port with a local Bot API server", with(serveTwilio, "OTPGATE_WEBHOOK_URL=https://bot.example.org:9000/hook",
			"OTPGATE_WEBHOOK_SECRET=s3", "OTPGATE_TELEGRAM_API_URL=http://127.0.0.1:8081"), Serve, nil, ""},
		{"http webhook with a local Bot API server", with(serveTwilio, "OTPGATE_WEBHOOK_URL=http://10.0.0.5:8080/hook",
			"OTPGATE_WEBHOOK_SECRET=s3", "OTPGATE_TELEGRAM_API_URL=http://127.0.0.1:8081"), Serve, nil, ""},
		{"ops and webhook on one address", with(serveTwilio, "OTPGATE_WEBHOOK_URL=https://bot.example.org/hook",
			"OTPGATE_WEBHOOK_SECRET=s3", "OTPGATE_OPS_LISTEN=:8443"), Serve, []string{"OTPGATE_OPS_LISTEN"}, "OTPGATE_WEBHOOK_LISTEN"},
		{"webhook checks only in serve", []string{key, "OTPGATE_WEBHOOK_URL=http://x.example/"}, Import, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Load(tc.environ)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			err = c.Require(tc.mode)
			errs := problems(t, err)
			if got := errs.Vars(); !slices.Equal(got, tc.wantVars) {
				t.Fatalf("Require(%s) problems for %q, want %q: %v", tc.mode, got, tc.wantVars, err)
			}
			if err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("message %q lacks %q", err, tc.want)
			}
		})
	}
}

func TestRequireMissingIsErrRequired(t *testing.T) {
	t.Parallel()
	c, err := Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Require(Import)
	if !errors.Is(err, ErrRequired) {
		t.Errorf("errors.Is(%v, ErrRequired) = false", err)
	}
	if err := c.Require(Mode(0)); err == nil || errors.As(err, new(Errors)) {
		t.Errorf("Require(Mode(0)) = %v, want a plain error", err)
	}
}

func TestValidatorsNameFields(t *testing.T) {
	t.Parallel()
	typ := reflect.TypeFor[Config]()
	for name := range validators {
		if _, ok := typ.FieldByName(name); !ok {
			t.Errorf("validator for unknown field %q", name)
		}
	}
}
