// Package apptest builds the whole program for tests through app.New, the
// same composition root as serve and demo: one shared setup instead of a
// hand-built store, code service and engine in every test package. The
// store is real Badger (in memory unless a directory is given) or, given a
// database URL, real PostgreSQL; the SMS provider a phone the test reads
// codes from.
package apptest

import (
	"bytes"
	"context"
	"encoding/hex"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/app"
	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/otp/otptest"
	"github.com/otpgate/otpgate/pii"
	"github.com/otpgate/otpgate/store"
)

// MasterKey is the tests' fixed master key, hex-encoded.
var MasterKey = hex.EncodeToString(bytes.Repeat([]byte{9}, 32))

// Options say what to build. The zero value is an in-memory console
// program with the shipped defaults.
type Options struct {
	Deps app.Deps
	// Dir puts the store in a directory instead of memory.
	Dir string
	// DatabaseURL puts the state in PostgreSQL (a pgtest database) instead:
	// the PostgreSQL mode, as with OTPGATE_DATABASE_URL. Two Apps on one
	// URL are two replicas.
	DatabaseURL string
	// Config adjusts the configuration after the defaults are loaded.
	Config func(*config.Config)
	// Lenient lifts the send caps and cooldowns that a test running many
	// flows from one requester would otherwise hit; the invariant tests
	// keep them.
	Lenient bool
}

// App is the program under test.
type App struct {
	*app.App
	Phone *otptest.Phone
	Logs  *Buffer
}

// New builds and starts nothing but the program; t.Cleanup stops it.
func New(t testing.TB, o Options) *App {
	t.Helper()
	env := []string{"OTPGATE_MASTER_KEY=" + MasterKey, "OTPGATE_SMS_PROVIDER=console", "OTPGATE_DEVELOPMENT=true"}
	if o.Dir != "" {
		env = append(env, "OTPGATE_DATA_DIR="+o.Dir)
	}
	if o.DatabaseURL != "" {
		env = append(env, "OTPGATE_DATABASE_URL="+o.DatabaseURL)
	}
	cfg, err := config.Load(env)
	if err != nil {
		t.Fatal(err)
	}
	if o.Lenient {
		cfg.ResendCooldown = 0
		cfg.RequestsPerRequesterHour, cfg.StaffRequestsPerHour = 1000, 1000
		cfg.SendsPerMobileHour, cfg.SendsPerMobileDay, cfg.SendsPerPrefixHour = 1000, 1000, 1000
		cfg.WrongCodesPerMobileHour, cfg.WrongCodesPerRequesterHour = 1000, 1000
		cfg.FloodPerMinute = 100000
	}
	if o.Config != nil {
		o.Config(&cfg)
	}
	deps := o.Deps
	if deps.Channel == app.ChannelNone {
		deps.Channel = app.ChannelConsole
	}
	a := &App{Logs: &Buffer{}}
	if ph, ok := deps.Sender.(*otptest.Phone); ok {
		a.Phone = ph
	} else if deps.Sender == nil {
		a.Phone = &otptest.Phone{}
		deps.Sender = a.Phone
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.NewTextHandler(a.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	deps.InMemory = o.Dir == ""
	a.App, err = app.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return a
}

// Person is a fictional beneficiary for Import.
type Person struct {
	Ref, Name, Mobile, ID string
	BirthYear             int
	Gender                string
	Doses                 []store.Dose
}

// Import loads people into the store as `otpgate import` would.
func (a *App) Import(t testing.TB, people ...Person) {
	t.Helper()
	_, err := a.Store.Import(context.Background(), func(ctx context.Context, fn func(store.ImportRow) error) error {
		for i, p := range people {
			m, err := pii.ParseMobile(p.Mobile)
			if err != nil {
				return err
			}
			r := store.ImportRow{Line: i + 1, Record: store.Record{RefID: p.Ref, Name: p.Name, BirthYear: p.BirthYear,
				Gender: p.Gender, Mobile: m, Doses: p.Doses}}
			if r.Record.BirthYear == 0 {
				r.Record.BirthYear = 1975
			}
			if r.Record.Gender == "" {
				r.Record.Gender = "F"
			}
			if p.ID != "" {
				id, _ := pii.NormalizeID(p.ID)
				r.ID, r.Record.IDType, r.Record.IDLast4 = id, "aadhaar", id.Last4()
			}
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Idle waits until every queued SMS has been sent (or failed).
func (a *App) Idle(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.OTP.Idle(ctx); err != nil {
		t.Fatal(err)
	}
}

// Buffer is a bytes.Buffer safe for the concurrent writes of a logger.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Clock is a settable clock for the whole program (Deps.Now: c.Now). It is
// safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Add moves the clock forward by d.
func (c *Clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }
