package config

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// specNames are the variable names SPEC.md §6 fixes.
var specNames = []string{
	"OTPGATE_DATA_DIR", "OTPGATE_MASTER_KEY", "OTPGATE_TELEGRAM_TOKEN", "OTPGATE_TELEGRAM_API_URL",
	"OTPGATE_WEBHOOK_URL", "OTPGATE_WEBHOOK_LISTEN", "OTPGATE_WEBHOOK_SECRET", "OTPGATE_SMS_PROVIDER",
	"OTPGATE_TWILIO_ACCOUNT_SID", "OTPGATE_TWILIO_AUTH_TOKEN", "OTPGATE_TWILIO_FROM",
	"OTPGATE_TWILIO_MESSAGING_SERVICE_SID", "OTPGATE_TWILIO_API_URL", "OTPGATE_OTP_TTL",
	"OTPGATE_OTP_MAX_ATTEMPTS", "OTPGATE_RESEND_COOLDOWN", "OTPGATE_STAFF_USERS", "OTPGATE_STAFF_CHATS",
	"OTPGATE_OPS_LISTEN",
}

func TestConfigTags(t *testing.T) {
	t.Parallel()
	typ := reflect.TypeFor[Config]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		for _, tag := range []string{"envconfig", "default", "desc"} {
			if v, ok := f.Tag.Lookup(tag); !ok || (tag != "default" && v == "") {
				t.Errorf("field %s: missing %s tag", f.Name, tag)
			}
		}
		isSecret := f.Type == reflect.TypeFor[Secret]() || f.Type == reflect.TypeFor[SecretKey]()
		if isSecret != (f.Tag.Get("secret") == "true") {
			t.Errorf("field %s: secret tag does not match its type %s", f.Name, f.Type)
		}
		if isSecret && f.Tag.Get("file") != "true" {
			t.Errorf("field %s: a secret without a _FILE variant", f.Name)
		}
	}
}

func TestVariables(t *testing.T) {
	t.Parallel()
	vars := Variables()
	byName := make(map[string]Variable)
	for _, v := range vars {
		if _, dup := byName[v.Name]; dup {
			t.Errorf("duplicate variable %s", v.Name)
		}
		byName[v.Name] = v
		if !strings.HasPrefix(v.Name, Prefix+"_") || strings.ToUpper(v.Name) != v.Name {
			t.Errorf("variable %q: not OTPGATE_ and upper case", v.Name)
		}
		if v.Description == "" || v.Type == "" {
			t.Errorf("variable %s: no description or type", v.Name)
		}
	}
	if n := reflect.TypeFor[Config]().NumField() + 7; len(vars) != n {
		t.Errorf("%d variables, want %d (one per field plus 7 _FILE variants)", len(vars), n)
	}
	for _, name := range specNames {
		if _, ok := byName[name]; !ok {
			t.Errorf("SPEC §6 variable %s missing", name)
		}
	}
	for _, name := range []string{"OTPGATE_MASTER_KEY", "OTPGATE_TELEGRAM_TOKEN", "OTPGATE_WEBHOOK_SECRET", "OTPGATE_TWILIO_AUTH_TOKEN", "OTPGATE_DATABASE_URL"} {
		if !byName[name].Secret {
			t.Errorf("%s not marked secret", name)
		}
	}
	for _, name := range []string{"OTPGATE_MASTER_KEY", "OTPGATE_TELEGRAM_TOKEN", "OTPGATE_WEBHOOK_SECRET", "OTPGATE_TWILIO_AUTH_TOKEN", "OTPGATE_TWILIO_ACCOUNT_SID", "OTPGATE_DATABASE_URL"} {
		f, ok := byName[name+FileSuffix]
		if !ok || f.FileFor != name || f.Secret {
			t.Errorf("%s%s = %+v", name, FileSuffix, f)
		}
	}
	for _, tc := range []struct{ name, def string }{
		{"OTPGATE_OTP_TTL", "3m"},
		{"OTPGATE_GRANT_TTL", "10m"},
		{"OTPGATE_SMS_COUNTRIES", "91"},
		{"OTPGATE_DATA_DIR", "./data"},
	} {
		if got := byName[tc.name].Default; got != tc.def {
			t.Errorf("%s default %q, want %q", tc.name, got, tc.def)
		}
	}
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	err := Describe(&buf, []string{
		"OTPGATE_MASTER_KEY=" + fmt.Sprintf("%x", leakKey),
		"OTPGATE_TELEGRAM_TOKEN=" + leakToken,
		"OTPGATE_TWILIO_AUTH_TOKEN_FILE=/run/secrets/twilio",
		"OTPGATE_TWILIO_API_URL=https://user:" + leakTwilio + "@proxy.example:8443/",
		"OTPGATE_DATABASE_URL=" + leakDatabaseURL,
		"OTPGATE_DATA_DIR=/srv/otp data",
		"OTPGATE_LOG_LEVEL=",
		"OTPGATE_TELEGRAM_TOKN=" + leakWebhook,
	})
	if err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	assertNoLeak(t, "Describe", out)

	rows := make(map[string][]string) // variable → columns up to the description
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 4 && strings.HasPrefix(f[0], Prefix+"_") {
			rows[f[0]] = f
		}
	}
	for _, v := range Variables() {
		if _, ok := rows[v.Name]; !ok {
			t.Errorf("Describe lacks a row for %s", v.Name)
		}
	}
	for _, tc := range []struct {
		name, want string // the row contains want
	}{
		{"OTPGATE_MASTER_KEY", "key (none) <secret> "},
		{"OTPGATE_TELEGRAM_TOKEN", "secret (none) <secret> "},
		{"OTPGATE_DATABASE_URL", "secret (none) <secret> PostgreSQL"},
		{"OTPGATE_DATABASE_URL_FILE", "path (none) (unset) file holding OTPGATE_DATABASE_URL"},
		{"OTPGATE_WEBHOOK_SECRET", "secret (none) (unset) "},
		{"OTPGATE_TWILIO_AUTH_TOKEN_FILE", "path (none) /run/secrets/twilio file holding"},
		{"OTPGATE_TWILIO_API_URL", "https://api.twilio.com https://user:xxxxx@proxy.example:8443/ "},
		{"OTPGATE_DATA_DIR", `./data "/srv/otp data" `},
		{"OTPGATE_LOG_LEVEL", `info "" `},
		{"OTPGATE_OTP_TTL", "duration 3m (unset) how long a code is valid"},
	} {
		if row := strings.Join(rows[tc.name], " "); !strings.Contains(row, tc.want) {
			t.Errorf("row %q lacks %q", row, tc.want)
		}
	}
	if !strings.Contains(out, "OTPGATE_TELEGRAM_TOKN: unknown variable (did you mean OTPGATE_TELEGRAM_TOKEN?)") {
		t.Errorf("Describe does not list the unknown variable:\n%s", out)
	}
	// Aligned: every row's description starts in the same column.
	col := -1
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, Prefix+"_") || strings.Contains(line, ": unknown") {
			continue
		}
		i := strings.Index(line, "  ")
		if i < 0 {
			t.Fatalf("row without column gap: %q", line)
		}
		j := i + len(line[i:]) - len(strings.TrimLeft(line[i:], " "))
		if col == -1 {
			col = j
		} else if j != col {
			t.Errorf("type column starts at %d, want %d: %q", j, col, line)
		}
	}
}

func TestDescribeEmpty(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	if err := Describe(&buf, nil); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "Unknown") || strings.Contains(buf.String(), redacted) {
		t.Errorf("empty environment shows set or unknown variables:\n%s", buf.String())
	}
	if got := strings.Count(buf.String(), "(unset)"); got != len(Variables()) {
		t.Errorf("%d rows unset, want %d", got, len(Variables()))
	}
	if !slices.ContainsFunc(strings.Split(buf.String(), "\n"), func(l string) bool {
		return strings.HasPrefix(l, "VARIABLE") && strings.Contains(l, "DESCRIPTION")
	}) {
		t.Error("no header row")
	}
}
