package app_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/bot"
	"github.com/otpgate/otpgate/internal/app"
	"github.com/otpgate/otpgate/internal/app/apptest"
	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// floodApp builds the program with a flood limit of 3 a minute on clk;
// databaseURL "" is the embedded mode.
func floodApp(t *testing.T, clk *apptest.Clock, databaseURL string) *apptest.App {
	t.Helper()
	return apptest.New(t, apptest.Options{DatabaseURL: databaseURL, Lenient: true, Deps: app.Deps{Now: clk.Now},
		Config: func(c *config.Config) { c.FloodPerMinute = 3 }})
}

func help(a *apptest.App, user int64) string {
	var b strings.Builder
	for _, r := range a.Engine.Handle(context.Background(), bot.Update{ChatID: user, UserID: user, ChatKind: bot.ChatPrivate, Text: "/help"}) {
		b.WriteString(r.Text)
	}
	return b.String()
}

// floodHits is what the store's hit windows hold for user's flood limit
// (the adapter's key).
func floodHits(t *testing.T, a *apptest.App, user string) int64 {
	t.Helper()
	n, _, err := a.Store.Hit(context.Background(), "flood:"+user, 0, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFloodLimitAcrossReplicasInTheDatabase: in the PostgreSQL mode the
// flood limit is counted in the database, so two replicas together let a
// user through FloodPerMinute times a minute, not twice that; the window
// ends on the store's clock, and a user past the limit is told once per
// window on a replica.
func TestFloodLimitAcrossReplicasInTheDatabase(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	clk := apptest.NewClock(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))
	reps := [2]*apptest.App{floodApp(t, clk, url), floodApp(t, clk, url)}
	round := func() {
		t.Helper()
		for i := range 3 {
			if out := help(reps[i%2], 1); !strings.Contains(out, "Commands:") {
				t.Fatalf("message %d within the cap: %q", i, out)
			}
		}
		if out := help(reps[1], 1); !strings.Contains(out, "too fast") {
			t.Fatalf("the first message past the cap, on the other replica: %q", out)
		}
		if out := help(reps[1], 1); out != "" {
			t.Fatalf("past the cap after the warning: %q", out)
		}
		// Until the replicas share sessions, each warns once itself.
		if out := help(reps[0], 1); strings.Contains(out, "Commands:") {
			t.Fatalf("past the cap on the first replica: %q", out)
		}
	}
	round()
	if n := floodHits(t, reps[0], "1"); n != 6 {
		t.Fatalf("the database holds %d hits of 6", n)
	}
	if out := help(reps[0], 2); !strings.Contains(out, "Commands:") {
		t.Fatalf("another user: %q", out)
	}
	clk.Add(59 * time.Second)
	if out := help(reps[0], 1); strings.Contains(out, "Commands:") {
		t.Fatalf("still within the minute: %q", out)
	}
	clk.Add(time.Second)
	round() // a new window, and a new warning in it
}

// TestFloodLimitInProcessWhenEmbedded: in the embedded mode the flood limit
// stays in the process (ulule's memory store, on the wall clock): nothing
// is written to the store for it.
func TestFloodLimitInProcessWhenEmbedded(t *testing.T) {
	clk := apptest.NewClock(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))
	a := floodApp(t, clk, "")
	for i := range 3 {
		if out := help(a, 1); !strings.Contains(out, "Commands:") {
			t.Fatalf("message %d within the cap: %q", i, out)
		}
	}
	if out := help(a, 1); !strings.Contains(out, "too fast") {
		t.Fatalf("the first message past the cap: %q", out)
	}
	if n := floodHits(t, a, "1"); n != 0 {
		t.Fatalf("the embedded store holds %d flood hits, want none", n)
	}
	clk.Add(2 * time.Minute) // the program's clock; the memory store's is the wall's
	if out := help(a, 1); out != "" {
		t.Fatalf("past the cap after the warning: %q", out)
	}
}
