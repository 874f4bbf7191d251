package app

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/otpgate/otpgate/internal/config"
)

func TestConfigWarningsLogged(t *testing.T) {
	t.Parallel()
	const password = "SECRETdbPASSWORD"
	for _, tc := range []struct {
		url  string
		want bool
	}{
		{"postgres://otpgate:" + password + "@db.example.org/otpgate?sslmode=disable", true},
		{"postgres://otpgate:" + password + "@db.example.org/otpgate?sslmode=verify-full", false},
	} {
		cfg, err := config.Load([]string{"OTPGATE_DATABASE_URL=" + tc.url})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		logConfigWarnings(cfg, slog.New(slog.NewTextHandler(&buf, nil)))
		out := buf.String()
		if got := strings.Contains(out, "level=WARN") && strings.Contains(out, "OTPGATE_DATABASE_URL") &&
			strings.Contains(out, "component=config"); got != tc.want {
			t.Errorf("%s: warning logged = %v, want %v:\n%s", tc.url[strings.LastIndex(tc.url, "?"):], got, tc.want, out)
		}
		if strings.Contains(out, password) || strings.Contains(out, "db.example.org") {
			t.Errorf("the log quotes the URL:\n%s", out)
		}
	}
}
