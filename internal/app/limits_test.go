package app

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/store"
)

// fakeLimits implements Limits.
type fakeLimits struct {
	ws     []store.SendWindow
	lifted []string
}

var _ Limits = (*fakeLimits)(nil)

func (f *fakeLimits) Caps(context.Context) ([]store.SendWindow, error) { return f.ws, nil }

func (f *fakeLimits) LiftCap(_ context.Context, cap, rng, actor string) (bool, error) {
	if cap != store.CapGlobal && cap != store.CapPrefix {
		return false, store.ErrUnknownCap
	}
	f.lifted = append(f.lifted, cap+" "+rng+" by "+actor)
	return true, nil
}

func TestOpsToken(t *testing.T) {
	ks := backupTestKeys(t, 1)
	if a := OpsToken(ks); len(a) != 64 || a == BackupToken(ks) || a == OpsToken(backupTestKeys(t, 2)) {
		t.Fatalf("ops token %q: must be 64 hex, differ from the backup token and per master key", a)
	}
}

func TestLimitsHandler(t *testing.T) {
	ks := backupTestKeys(t, 1)
	soon := time.Now().Add(10 * time.Minute)
	f := &fakeLimits{ws: []store.SendWindow{{Cap: store.CapGlobal, Count: 600, Limit: 600, Resets: soon},
		{Cap: store.CapPrefix, Range: "+9190000", Count: 30, Limit: 30, Resets: soon}}}
	srv := httptest.NewServer(LimitsHandler(f, ks, slog.New(slog.DiscardHandler)))
	defer srv.Close()
	call := func(method, path, token string, form url.Values) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	for _, tok := range []string{"", BackupToken(ks), OpsToken(backupTestKeys(t, 2))} {
		if code, _ := call("GET", "/limits", tok, nil); code != http.StatusUnauthorized {
			t.Fatalf("GET /limits with token %q: %d", tok, code)
		}
		if code, _ := call("POST", "/limits/lift", tok, url.Values{"cap": {"global"}}); code != http.StatusUnauthorized || len(f.lifted) != 0 {
			t.Fatalf("POST /limits/lift with token %q: %d %v", tok, code, f.lifted)
		}
	}
	code, body := call("GET", "/limits", OpsToken(ks), nil)
	if code != 200 || !strings.Contains(body, "global") || !strings.Contains(body, "600/600") ||
		!strings.Contains(body, "prefix +9190000") || strings.Count(body, "DRAINED") != 2 || !strings.Contains(body, "1 drained") {
		t.Fatalf("GET /limits: %d\n%s", code, body)
	}
	if code, body := call("POST", "/limits/lift", OpsToken(ks), url.Values{"cap": {"prefix"}, "range": {"+9190000"}}); code != 200 ||
		!strings.Contains(body, "lifted prefix +9190000") || len(f.lifted) != 1 || !strings.HasPrefix(f.lifted[0], "prefix +9190000 by operator@") {
		t.Fatalf("lift: %d %q %v", code, body, f.lifted)
	}
	if code, _ := call("POST", "/limits/lift", OpsToken(ks), url.Values{"cap": {"mobile"}}); code != http.StatusBadRequest {
		t.Fatalf("lift of an unknown cap: %d", code)
	}
	// The client side, as `otpgate limits` uses it.
	var out bytes.Buffer
	if err := FetchLimits(context.Background(), srv.URL, ks, &out); err != nil || !strings.Contains(out.String(), "600/600") {
		t.Fatalf("FetchLimits: %v %q", err, out.String())
	}
	if err := LiftLimit(context.Background(), srv.URL, backupTestKeys(t, 2), "global", "", &out); !errors.Is(err, ErrOpsForbidden) {
		t.Fatalf("LiftLimit with another master key: %v", err)
	}
}
