package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// leakDBPassword is the password in every database URL below; no error,
// warning or rendering may contain it.
const leakDBPassword = "SECRETdatabasePASSWORD"

func TestDatabaseURLAccepted(t *testing.T) {
	t.Parallel()
	for _, v := range []string{
		"postgres://otpgate:" + leakDBPassword + "@db.example.org:5432/otpgate?sslmode=verify-full",
		"postgresql://otpgate:" + leakDBPassword + "@db.example.org/otpgate?sslmode=verify-full&application_name=otpgate",
		// Several hosts, the primary chosen by pgx, as libpq does.
		"postgres://otpgate:" + leakDBPassword + "@db1.example.org:5432,db2.example.org:5433/otpgate?sslmode=verify-full&target_session_attrs=read-write",
		// A password with reserved characters, percent-encoded.
		"postgres://otpgate:p%40ss%2Fw%3Ard@db.example.org/otpgate?sslmode=verify-full",
		"postgres://otpgate@[::1]:5432/otpgate",
		"host=db.example.org port=5432 dbname=otpgate user=otpgate password='" + leakDBPassword + " with spaces' sslmode=verify-full",
		"host=/var/run/postgresql dbname=otpgate user=otpgate",
	} {
		c, err := Load([]string{"OTPGATE_DATABASE_URL=" + v})
		if err != nil {
			t.Errorf("Load(%q): %v", v, err)
			continue
		}
		if !c.Database() || c.DatabaseURL.Reveal() != v {
			t.Errorf("Load(%q): Database() = %v, DatabaseURL = %q", v, c.Database(), c.DatabaseURL.Reveal())
		}
	}
	c, err := Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Database() || c.DatabaseURL.IsSet() {
		t.Error("Database() without OTPGATE_DATABASE_URL: the default is the embedded store")
	}
}

func TestDatabaseURLRejected(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "root.crt")
	pw := leakDBPassword
	for _, tc := range []struct {
		name, value string
		want        string // substring of the message
	}{
		{"words", "my database " + pw, "neither a postgres:// URL nor a valid key=value string"},
		{"another scheme", "mysql://otpgate:" + pw + "@db.example.org/otpgate", "must start with postgres://"},
		// pgx alone would take this for one key=value pair and accept it.
		{"another scheme with a query", "mysql://otpgate:" + pw + "@db.example.org/otpgate?sslmode=verify-full", "must start with postgres://"},
		{"upper-case scheme", "POSTGRES://otpgate:" + pw + "@db.example.org/otpgate", "in lower case"},
		{"bad percent escape in the password", "postgres://otpgate:" + pw + "%zz@db.example.org/otpgate", "percent-encode"},
		{"slash in the password", "postgres://otpgate:" + pw + "/x@db.example.org/otpgate", "percent-encode"},
		{"port out of range", "postgres://otpgate:" + pw + "@db.example.org:99999/otpgate", "invalid port"},
		{"port not a number", "host=db.example.org port=five password=" + pw, "invalid port"},
		{"unknown sslmode in a URL", "postgres://otpgate:" + pw + "@db.example.org/otpgate?sslmode=sometimes", "unknown sslmode"},
		{"unknown sslmode in key=value", "host=db.example.org sslmode=on password=" + pw, "unknown sslmode"},
		{"unterminated quote", "host=db.example.org password='" + pw, "quote values"},
		{"missing CA file", "host=db.example.org sslmode=verify-full sslrootcert=" + missing + " password=" + pw, "cannot read: " + missing},
		{"certificate without key", "host=db.example.org sslcert=" + missing + " password=" + pw, "sslcert and sslkey"},
		{"other", "postgres://otpgate:" + pw + "@db.example.org/otpgate?target_session_attrs=sometimes", "not a valid PostgreSQL connection URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load([]string{"OTPGATE_DATABASE_URL=" + tc.value})
			errs := problems(t, err)
			if len(errs) != 1 || errs[0].Var != "OTPGATE_DATABASE_URL" {
				t.Fatalf("problems = %v, want one for OTPGATE_DATABASE_URL", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) {
				t.Errorf("message %q lacks %q", msg, tc.want)
			}
			for _, leak := range []string{pw, tc.value, "db.example.org"} {
				if strings.Contains(msg, leak) || strings.Contains(fmt.Sprintf("%#v", err), leak) {
					t.Errorf("message %q contains %q", msg, leak)
				}
			}
		})
	}
}

func TestDatabaseURLFile(t *testing.T) {
	t.Parallel()
	url := "postgres://otpgate:" + leakDBPassword + "@db.example.org:5432/otpgate?sslmode=verify-full"
	c, err := Load([]string{"OTPGATE_DATABASE_URL_FILE=" + writeFile(t, url+"\n")})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Database() || c.DatabaseURL.Reveal() != url {
		t.Errorf("DatabaseURL from the file = %q, want %q (trailing newline trimmed)", c.DatabaseURL.Reveal(), url)
	}

	for _, tc := range []struct {
		name    string
		environ []string
		wantVar string
		want    string
	}{
		{"bad content", []string{"OTPGATE_DATABASE_URL_FILE=" + writeFile(t, "mysql://otpgate:"+leakDBPassword+"@db.example.org/otpgate")},
			"OTPGATE_DATABASE_URL", "postgres://"},
		{"both set", []string{"OTPGATE_DATABASE_URL=" + url, "OTPGATE_DATABASE_URL_FILE=" + writeFile(t, url)},
			"OTPGATE_DATABASE_URL", "OTPGATE_DATABASE_URL_FILE"},
		{"missing file", []string{"OTPGATE_DATABASE_URL_FILE=" + filepath.Join(t.TempDir(), "nope")},
			"OTPGATE_DATABASE_URL_FILE", "no such file"},
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
			if strings.Contains(err.Error(), leakDBPassword) {
				t.Errorf("message %q contains the password", err)
			}
		})
	}
}

func TestDatabaseWarnings(t *testing.T) {
	t.Parallel()
	pw := leakDBPassword
	for _, tc := range []struct {
		name, value string
		want        string // substring of the one warning; "" for none
	}{
		{"verify-full", "postgres://otpgate:" + pw + "@db.example.org/otpgate?sslmode=verify-full", ""},
		{"verify-ca", "host=db.example.org password=" + pw + " sslmode=verify-ca", ""},
		{"disable", "postgres://otpgate:" + pw + "@db.example.org/otpgate?sslmode=disable", "may be unencrypted"},
		{"allow", "host=db.example.org password=" + pw + " sslmode=allow", "may be unencrypted"},
		{"prefer", "postgres://otpgate:" + pw + "@db.example.org/otpgate?sslmode=prefer", "may be unencrypted"},
		{"require", "postgres://otpgate:" + pw + "@db.example.org/otpgate?sslmode=require", "does not check the server's certificate"},
		{"one of two hosts", "postgres://otpgate:" + pw + "@localhost,db.example.org/otpgate?sslmode=disable", "may be unencrypted"},
		{"localhost", "postgres://otpgate:" + pw + "@localhost/otpgate?sslmode=disable", ""},
		{"loopback IPv4", "postgres://otpgate:" + pw + "@127.0.0.1:5432/otpgate?sslmode=disable", ""},
		{"loopback IPv6", "postgres://otpgate:" + pw + "@[::1]:5432/otpgate?sslmode=disable", ""},
		{"Unix socket", "host=/var/run/postgresql dbname=otpgate sslmode=disable", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Load([]string{"OTPGATE_DATABASE_URL=" + tc.value})
			if err != nil {
				t.Fatal(err)
			}
			ws := c.Warnings()
			if tc.want == "" {
				if len(ws) != 0 {
					t.Errorf("Warnings() = %q, want none", ws)
				}
				return
			}
			if len(ws) != 1 || !strings.HasPrefix(ws[0], "OTPGATE_DATABASE_URL: ") || !strings.Contains(ws[0], tc.want) ||
				!strings.Contains(ws[0], "sslmode=verify-full") {
				t.Fatalf("Warnings() = %q, want one naming OTPGATE_DATABASE_URL with %q and the advice", ws, tc.want)
			}
			if strings.Contains(ws[0], pw) || strings.Contains(ws[0], "db.example.org") {
				t.Errorf("warning %q quotes the URL", ws[0])
			}
		})
	}
	t.Run("no sslmode", func(t *testing.T) {
		t.Parallel()
		if os.Getenv("PGSSLMODE") != "" {
			t.Skip("PGSSLMODE is set in this environment; pgx reads it")
		}
		c, err := Load([]string{"OTPGATE_DATABASE_URL=postgres://otpgate:" + pw + "@db.example.org/otpgate"})
		if err != nil {
			t.Fatal(err)
		}
		if ws := c.Warnings(); len(ws) != 1 || !strings.Contains(ws[0], "default") {
			t.Errorf("Warnings() = %q, want one: libpq's default sslmode is prefer", ws)
		}
	})
	t.Run("embedded store", func(t *testing.T) {
		t.Parallel()
		c, err := Load(nil)
		if err != nil {
			t.Fatal(err)
		}
		if ws := c.Warnings(); len(ws) != 0 {
			t.Errorf("Warnings() = %q, want none", ws)
		}
	})
}
