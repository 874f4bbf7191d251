package app_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/app"
	"github.com/otpgate/otpgate/otp"
	"github.com/otpgate/otpgate/pii"
	"github.com/otpgate/otpgate/store"
)

// stuckSender never delivers: it holds every SMS until its context ends,
// like a provider that stopped answering.
type stuckSender struct{ started chan struct{} }

func (s stuckSender) Send(ctx context.Context, _ pii.Mobile, _ string) error {
	select {
	case s.started <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return ctx.Err()
}

// TestStopHoldsTheShutdownBudget: with an SMS stuck in flight, Stop still
// returns once the budget is spent, says which step it abandoned, and
// closes the store (every teardown runs).
func TestStopHoldsTheShutdownBudget(t *testing.T) {
	const budget = 300 * time.Millisecond
	sender := stuckSender{started: make(chan struct{}, 1)}
	a, err := app.New(apptestConfig(t), app.Deps{Channel: app.ChannelConsole, Sender: sender, InMemory: true, ShutdownBudget: budget})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := pii.ParseMobile("9000000001")
	importOne(t, a, m)
	if _, err := a.OTP.Request(context.Background(), otp.Request{Requester: "console:1",
		Identifier: pii.Identifier{Kind: pii.KindMobile, Mobile: m}, Audience: store.AudienceBeneficiary, Lang: "en"}); err != nil {
		t.Fatal(err)
	}
	<-sender.started
	done := make(chan error, 1)
	go func() { done <- a.Stop() }()
	select {
	case err = <-done:
	case <-time.After(budget + 20*time.Second): // a bound on a hang, not a timing assertion
		t.Fatal("Stop did not return: the shutdown budget is not enforced")
	}
	if err == nil || !strings.Contains(err.Error(), "sms queue") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop = %v, want the abandoned SMS queue reported", err)
	}
	if err := a.Store.Ping(context.Background()); err == nil {
		t.Fatal("the store is still open: a failed step stopped the teardown")
	}
	if err := a.Stop(); err != nil {
		t.Fatalf("a second Stop = %v, want nil", err)
	}
}

// TestNewUndoesWhatItBuilt: a bad SMS template file fails New after the
// store was opened; the store must be closed again (the directory lock
// released), so a second New on the same directory works.
func TestNewUndoesWhatItBuilt(t *testing.T) {
	cfg := apptestConfig(t)
	cfg.DataDir = t.TempDir()
	cfg.SMSTemplates = cfg.DataDir + "/missing.json"
	if _, err := app.New(cfg, app.Deps{Channel: app.ChannelConsole}); err == nil || !strings.Contains(err.Error(), "OTPGATE_SMS_TEMPLATES") {
		t.Fatalf("New = %v, want the template error", err)
	}
	cfg.SMSTemplates = ""
	a, err := app.New(cfg, app.Deps{Channel: app.ChannelConsole})
	if err != nil {
		t.Fatalf("the failed New left the data directory locked: %v", err)
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
}
