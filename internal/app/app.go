// Package app is otpgate's composition root: the one place that chooses
// concrete types and wires them together. New builds the whole program from
// a validated config.Config plus injected dependencies; serve, demo, the
// admin commands, the benchmarks and the end-to-end tests all build through
// it, so what is tested and measured is what ships.
//
// The lifecycle follows alertmanager's: every resource registers its
// teardown as it is created, and Stop runs them in reverse under one
// shutdown budget (ShutdownBudget), which is also what the README promises.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/ulule/limiter/v3"

	"github.com/otpgate/otpgate/bot"
	"github.com/otpgate/otpgate/bot/telegram"
	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/internal/keys"
	"github.com/otpgate/otpgate/otp"
	smsconsole "github.com/otpgate/otpgate/otp/console"
	"github.com/otpgate/otpgate/otp/twilio"
	"github.com/otpgate/otpgate/proof"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/store/pgkv"
)

// ShutdownBudget bounds Stop as a whole: finishing the updates in hand,
// flushing queued Telegram sends and SMS, closing the ops server and the
// store. Past it, whatever is left is abandoned and reported.
const ShutdownBudget = 10 * time.Second

// Channel names the chat front end the program serves.
type Channel string

const (
	// ChannelTelegram is `otpgate serve`: the Telegram adapter, the ops
	// server and the maintenance loops.
	ChannelTelegram Channel = "telegram"
	// ChannelConsole is `otpgate demo`: the engine is driven by the caller
	// (bot/console); nothing listens.
	ChannelConsole Channel = "console"
	// ChannelNone opens the store only: the admin commands (import, audit,
	// backup).
	ChannelNone Channel = ""
)

// Deps are the dependencies New does not derive from the configuration.
// Zero values choose the production ones.
type Deps struct {
	// Channel selects what New builds above the store.
	Channel Channel
	// Stdout receives what the console SMS provider prints (as on a phone);
	// Stderr the logs and the development-mode warning. Nil: os.Stdout and
	// os.Stderr.
	Stdout, Stderr io.Writer
	// Logger replaces the configured logger (tests capture logs with it).
	Logger *slog.Logger
	// Registry receives the public metrics (/metrics); nil makes a new one
	// (NewRegistry).
	Registry *prometheus.Registry
	// OpsRegistry receives the operator's metrics, served only with the ops
	// token (/metrics/ops); nil makes a new one.
	OpsRegistry *prometheus.Registry
	// Now is the clock of every component; nil means time.Now.
	Now func() time.Time
	// Sender replaces the configured SMS provider (tests, benchmarks).
	Sender otp.Sender
	// TelegramTransport and TwilioTransport replace the HTTP transports of
	// the two clients (tests point them at fakes; nil is the default).
	TelegramTransport http.RoundTripper
	TwilioTransport   http.RoundTripper
	// InMemory keeps the store in memory instead of cfg.DataDir (tests).
	InMemory bool
	// ReadOnly opens the store read-only (audit verify).
	ReadOnly bool
	// SMSWorkers and SMSQueue size the code service's send queue; zero
	// keeps otp's defaults.
	SMSWorkers, SMSQueue int
	// ShutdownBudget replaces the package's ShutdownBudget (tests of the
	// bound); zero keeps it.
	ShutdownBudget time.Duration
	// TunePolicy adjusts the code policy past what the configuration
	// exposes (the soak benchmark shortens the guess windows); nil keeps it.
	TunePolicy func(*otp.Policy)
	// Telegram tunes the adapter for tests and benchmarks; New sets the
	// fields it owns (token, URL, handler, deletions, logger, registerer,
	// transport, webhook, clock) over it.
	Telegram telegram.Options
}

// App is the running program. Its exported parts are for the commands and
// the tests that drive them; nil where the Channel does not need them.
type App struct {
	Config   config.Config
	Keys     keys.Set
	Store    *store.Store
	OTP      *otp.Service
	Engine   *bot.Engine
	Telegram *telegram.Bot
	Registry *prometheus.Registry
	// OpsRegistry holds the metrics that would tell a scraper which lookups
	// matched a record: served only behind the ops token.
	OpsRegistry *prometheus.Registry
	Log         *slog.Logger
	// ProofKeys verify the proofs this program signs (current and retired
	// signing keys): `otpgate keys` prints them.
	ProofKeys proof.KeySet

	// replica names this process among the replicas (leases, holds).
	replica string
	// injectedClock: Deps.Now was given (a test); otherwise the codes'
	// expiry runs on the store's clock, the database's in PostgreSQL.
	injectedClock bool
	signer        *proof.Signer
	ops           *Ops
	publisher     *proof.Publisher
	publicAddr    string
	deps          Deps
	teardown      []step
	stopped       bool
}

// step is one teardown, named for the report when it fails.
type step struct {
	name string
	fn   func(ctx context.Context) error
}

// New builds the program. It opens the store (the only I/O it does besides
// binding the ops listener); on any error it undoes what it built.
func New(cfg config.Config, deps Deps) (a *App, err error) {
	if deps.Stdout == nil {
		deps.Stdout = os.Stdout
	}
	if deps.Stderr == nil {
		deps.Stderr = os.Stderr
	}
	// The store decides expiry on its engine's clock (the database's, for
	// PostgreSQL) unless a test injects one.
	storeClock := deps.Now
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Registry == nil {
		deps.Registry = NewRegistry()
	}
	if deps.OpsRegistry == nil {
		deps.OpsRegistry = prometheus.NewRegistry()
	}
	if deps.ShutdownBudget <= 0 {
		deps.ShutdownBudget = ShutdownBudget
	}
	log := deps.Logger
	if log == nil {
		log = NewLogger(deps.Stderr, cfg)
	}
	a = &App{Config: cfg, Registry: deps.Registry, OpsRegistry: deps.OpsRegistry, Log: log, deps: deps, replica: replicaName(),
		injectedClock: storeClock != nil}
	applyMemoryLimit(cfg.MemoryLimit, log)
	logConfigWarnings(cfg, log)
	defer func() {
		if err != nil {
			_ = a.Stop()
			a = nil
		}
	}()

	if a.Store, a.Keys, err = openStore(cfg, deps, storeClock, log); err != nil {
		return a, err
	}
	a.onStop("store", func(context.Context) error { return a.Store.Close() })
	signer, keySet, err := ProofKeys(cfg)
	if err != nil {
		return a, err
	}
	a.ProofKeys = keySet
	if deps.Channel == ChannelNone {
		return a, nil
	}
	a.signer = signer

	if err := a.buildEngine(); err != nil {
		return a, err
	}
	if deps.Channel != ChannelTelegram {
		return a, nil
	}
	if err := a.buildTelegram(); err != nil {
		return a, err
	}
	if cfg.PublicListen != "" {
		if err := a.startPublic(context.Background()); err != nil {
			return a, err
		}
	}
	if cfg.OpsListen != "" {
		if err := a.startOps(); err != nil {
			return a, err
		}
	}
	return a, nil
}

// buildEngine makes the code service (with its SMS provider) and the
// conversation engine over the store.
func (a *App) buildEngine() error {
	cfg, deps, log := a.Config, a.deps, a.Log
	tpl, err := templates(cfg)
	if err != nil {
		return err
	}
	sender := deps.Sender
	if sender == nil {
		if sender, err = smsSender(cfg, deps, log); err != nil {
			return err
		}
	}
	pol := Policy(cfg)
	if deps.TunePolicy != nil {
		deps.TunePolicy(&pol)
	}
	a.OTP, err = otp.New(otp.Options{
		Store: a.Store, Sender: sender, CodeKey: a.Keys.Code, Policy: pol, Templates: tpl,
		Logger: log, Now: a.codeClock(), Registerer: deps.Registry, OpsRegisterer: deps.OpsRegistry,
		Workers: deps.SMSWorkers, Queue: deps.SMSQueue, Shared: cfg.Database(),
	})
	if err != nil {
		return err
	}
	a.onStop("sms queue", a.OTP.Close)
	// In the PostgreSQL mode the flood limit is counted in the database, so
	// it holds across the replicas. Embedded, one process serves and ulule's
	// memory store (nil) keeps it, without a write per chat message.
	var flood limiter.Store
	if cfg.Database() {
		flood = floodStore{st: a.Store, now: deps.Now}
	}
	a.Engine, err = bot.New(bot.Options{
		Gate: a.OTP, Records: a.Store, Channel: string(deps.Channel), Logger: log, Now: deps.Now,
		Certifier:  certifier{st: a.Store, signer: a.signer, issuer: cfg.ProofIssuer, ttl: cfg.ProofTTL, now: deps.Now},
		CodeLength: a.OTP.Policy().CodeLength, CodeTTL: cfg.OTPTTL, ReleaseTTL: cfg.ReleaseDeleteAfter,
		FloodPerMinute: cfg.FloodPerMinute, FloodStore: flood,
		StaffUsers: cfg.StaffUsers.Labels(), StaffChats: cfg.StaffChats, Registerer: deps.Registry,
		Sessions: a.sharedSessions(),
	})
	return err
}

// codeClock is the clock codes are issued and expire by: the store's (one
// clock for every replica: the database's) unless a test injected one.
func (a *App) codeClock() func() time.Time {
	if a.injectedClock {
		return a.deps.Now
	}
	return a.Store.Now
}

// sharedSessions keeps conversations in the database when replicas share
// one (nil: in this process).
func (a *App) sharedSessions() bot.Sessions {
	if !a.Config.Database() {
		return nil
	}
	return storeSessions{st: a.Store, holder: a.replica, retain: sessionRetention, now: a.deps.Now, log: a.Log}
}

// sessionRetention outlives the engine's idle rule (an hour).
const sessionRetention = 2 * time.Hour

// buildTelegram makes the Telegram adapter over the engine.
func (a *App) buildTelegram() error {
	cfg, deps := a.Config, a.deps
	to := deps.Telegram
	to.Token, to.APIURL, to.Handler = cfg.TelegramToken.Reveal(), cfg.TelegramAPIURL, a.Engine
	to.Deletions, to.Logger, to.Registerer = storeDeletions{a.Store}, a.Log, deps.Registry
	to.WebhookURL, to.WebhookListen, to.WebhookSecret = cfg.WebhookURL, cfg.WebhookListen, cfg.WebhookSecret.Reveal()
	to.HTTPTransport = deps.TelegramTransport
	if cfg.Database() {
		// Replicas share update claims, the send budget and the polling lease.
		to.Coordinator = storeCoordinator{st: a.Store, holder: a.replica, log: a.Log}
	}
	// The adapter drains within the budget; what is left of it after the
	// adapter stops belongs to the SMS queue, the ops server and the store.
	to.ShutdownTimeout = deps.ShutdownBudget * 6 / 10
	var err error
	a.Telegram, err = telegram.New(to)
	return err
}

// onStop registers a teardown; Stop runs them in reverse.
func (a *App) onStop(name string, fn func(ctx context.Context) error) {
	a.teardown = append(a.teardown, step{name, fn})
}

// Run serves until ctx ends: the Telegram adapter and the store's
// maintenance. For the console and admin channels it only runs maintenance
// until ctx ends. It does not tear down: call Stop after it returns.
func (a *App) Run(ctx context.Context) error {
	gcDone := make(chan struct{})
	gcCtx, stopGC := context.WithCancel(ctx)
	go func() {
		defer close(gcDone)
		a.collectGarbage(gcCtx)
	}()
	defer func() { stopGC(); <-gcDone }()
	if a.Telegram == nil {
		<-ctx.Done()
		return nil
	}
	a.Log.Info("otpgate serving", "component", "app", "state", a.stateCheck(), "sms", a.Config.SMSProvider)
	err := a.Telegram.Run(ctx)
	a.Log.Info("otpgate stopped", "component", "app")
	return err
}

// Stop tears everything down in reverse order of creation, within
// ShutdownBudget overall. Every step runs even when an earlier one failed;
// the errors are joined. Calling Stop again does nothing.
func (a *App) Stop() error {
	if a.stopped {
		return nil
	}
	a.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), a.deps.ShutdownBudget)
	defer cancel()
	var errs []error
	for i := len(a.teardown) - 1; i >= 0; i-- {
		s := a.teardown[i]
		if err := s.fn(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stopping %s: %w", s.name, err))
		}
	}
	return errors.Join(errs...)
}

// replicaName is this process's name in leases and holds: host, pid and a
// random part, so that a restarted process never inherits a dead one's.
func replicaName() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), store.NewID()[:8])
}

// stateCheck names where the state lives, as /readyz and the start line
// say it: "database" (PostgreSQL) or "store" (the data directory).
func (a *App) stateCheck() string {
	if a.Config.Database() {
		return "database"
	}
	return "store"
}

// collectGarbage runs Badger's value-log GC every ten minutes until ctx
// ends.
func (a *App) collectGarbage(ctx context.Context) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := a.Store.CollectGarbage(); err != nil {
				a.Log.Warn("value-log GC", "component", "store", "err", err)
			}
		}
	}
}

// OpsAddr is where the ops server listens, "" when it is off.
func (a *App) OpsAddr() string {
	if a.ops == nil {
		return ""
	}
	return a.ops.Addr()
}

func (a *App) startOps() error {
	limits := LimitsHandler(a.OTP, a.Keys, a.Log)
	ops, err := StartOps(OpsOptions{
		Addr: a.Config.OpsListen, Registry: a.Registry, Logger: a.Log,
		Checks: map[string]Check{
			a.stateCheck(): a.Store.Ping,
			"telegram": func(context.Context) error {
				if !a.Telegram.Reachable() {
					return errors.New("telegram not reachable")
				}
				return nil
			},
			// serve does not start without a provider (config checks); the
			// check states it for operators reading /readyz.
			"sms": func(context.Context) error { return nil },
		},
		Extra: map[string]http.Handler{
			"GET /backup":         BackupHandler(a.Store, a.Keys, a.Log),
			"POST /proofs/revoke": a.revokeHandler(),
			"GET /metrics/ops":    OpsMetricsHandler(a.OpsRegistry, a.Keys, a.Log),
			"GET /limits":         limits,
			"POST /limits/lift":   limits,
		},
	})
	if err != nil {
		return err
	}
	a.ops = ops
	a.onStop("ops server", ops.Shutdown)
	return nil
}

// openStore derives the keys from the master key and opens the state:
// PostgreSQL when OTPGATE_DATABASE_URL is set, else the data directory (or
// memory).
func openStore(cfg config.Config, deps Deps, now func() time.Time, log *slog.Logger) (*store.Store, keys.Set, error) {
	ks, err := keys.Derive(cfg.MasterKey.Bytes())
	if err != nil {
		return nil, keys.Set{}, fmt.Errorf("OTPGATE_MASTER_KEY: %w", err)
	}
	if cfg.Database() {
		s, err := openDatabase(cfg, deps, now, ks, log)
		return s, ks, err
	}
	if !deps.InMemory {
		if err := restrictPermissions(cfg.DataDir, log); err != nil {
			return nil, keys.Set{}, err
		}
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, keys.Set{}, fmt.Errorf("OTPGATE_DATA_DIR: %w", err)
		}
	}
	s, err := store.Open(store.Options{
		Dir: cfg.DataDir, InMemory: deps.InMemory, EncryptionKey: ks.Storage, IndexKey: ks.Index, AuditKey: ks.Audit,
		Logger: log.With("component", "store"), Now: now, ReadOnly: deps.ReadOnly,
	})
	if errors.Is(err, store.ErrWrongKey) {
		return nil, keys.Set{}, fmt.Errorf("OTPGATE_MASTER_KEY does not open %s: it was written with another key: %w", cfg.DataDir, err)
	}
	if err != nil {
		return nil, keys.Set{}, err
	}
	warnInterrupted(s, log)
	return s, ks, nil
}

func warnInterrupted(s *store.Store, log *slog.Logger) {
	if interrupted, err := s.InterruptedImport(); err == nil && interrupted {
		log.Warn("an import was interrupted before it finished; run the same `otpgate import` again to complete it", "component", "store")
	}
}

// databaseConnectTimeout bounds connecting and migrating at start: a
// replica that cannot reach its database fails and is restarted, rather
// than hanging unready.
const databaseConnectTimeout = 30 * time.Second

// openDatabase opens the store in PostgreSQL, migrating the schema.
func openDatabase(cfg config.Config, deps Deps, now func() time.Time, ks keys.Set, log *slog.Logger) (*store.Store, error) {
	ctx, cancel := context.WithTimeout(context.Background(), databaseConnectTimeout)
	defer cancel()
	db, err := pgkv.Open(ctx, pgkv.Options{URL: cfg.DatabaseURL.Reveal(), Key: ks.Rows, ReadOnly: deps.ReadOnly,
		Logger: log.With("component", "database")})
	if err != nil {
		return nil, fmt.Errorf("OTPGATE_DATABASE_URL: %w", err)
	}
	s, err := store.Open(store.Options{
		Backend: db, Dir: os.TempDir(), IndexKey: ks.Index, AuditKey: ks.Audit,
		Logger: log.With("component", "store"), Now: now, ReadOnly: deps.ReadOnly,
	})
	if errors.Is(err, store.ErrWrongKey) {
		return nil, fmt.Errorf("OTPGATE_MASTER_KEY does not open the database: it was written with another key: %w", err)
	}
	if err != nil {
		return nil, err
	}
	warnInterrupted(s, log)
	return s, nil
}

// Policy maps the configuration onto otp's limits.
func Policy(cfg config.Config) otp.Policy {
	p := otp.DefaultPolicy()
	p.CodeTTL = cfg.OTPTTL
	p.MaxAttempts = cfg.OTPMaxAttempts
	p.ResendCooldown = cfg.ResendCooldown
	p.SendsPerMobileHour = cfg.SendsPerMobileHour
	p.SendsPerMobileDay = cfg.SendsPerMobileDay
	p.OwnerSendsPerHour = cfg.OwnerSendsPerHour
	p.WrongPerMobile = store.Limit{Max: cfg.WrongCodesPerMobileHour, Period: time.Hour}
	p.WrongPerRequester = store.Limit{Max: cfg.WrongCodesPerRequesterHour, Period: time.Hour}
	p.RequestsPerRequesterHr = cfg.RequestsPerRequesterHour
	p.StaffRequestsPerHour = cfg.StaffRequestsPerHour
	p.SendsPerPrefixHour = cfg.SendsPerPrefixHour
	p.GlobalSendsPerHour = cfg.GlobalSMSPerHour
	p.Countries = cfg.SMSCountries
	p.GrantTTL = cfg.GrantTTL
	return p
}

// templates loads the operator's SMS templates, or the defaults.
func templates(cfg config.Config) (otp.Templates, error) {
	if cfg.SMSTemplates == "" {
		return otp.DefaultTemplates(), nil
	}
	f, err := os.Open(cfg.SMSTemplates)
	if err != nil {
		return otp.Templates{}, fmt.Errorf("OTPGATE_SMS_TEMPLATES: %w", err)
	}
	defer f.Close()
	t, err := otp.LoadTemplates(f)
	if err != nil {
		return otp.Templates{}, fmt.Errorf("OTPGATE_SMS_TEMPLATES: %w", err)
	}
	return t, nil
}

// smsSender picks the provider. The console provider prints codes to the
// terminal: config refuses it in serve unless OTPGATE_DEVELOPMENT is set,
// and serve announces it loudly on every start.
func smsSender(cfg config.Config, deps Deps, log *slog.Logger) (otp.Sender, error) {
	if cfg.SMSProvider == config.ProviderConsole {
		if deps.Channel == ChannelTelegram {
			const warn = "DEVELOPMENT MODE: SMS codes are printed on this terminal, not sent. Never run this in production."
			fmt.Fprintln(deps.Stderr, "!!! "+warn+" !!!")
			log.Warn(warn, "component", "app")
		}
		return smsconsole.New(deps.Stdout), nil
	}
	return twilio.New(twilio.Options{
		AccountSID: cfg.TwilioAccountSID, AuthToken: cfg.TwilioAuthToken.Reveal(),
		From: cfg.TwilioFrom, MessagingServiceSID: cfg.TwilioMessagingServiceSID,
		APIURL: cfg.TwilioAPIURL, Logger: log, Transport: deps.TwilioTransport,
	})
}

// logConfigWarnings logs, once at start, what the configuration allows but
// production should not run with (config.Warnings: an OTPGATE_DATABASE_URL
// whose sslmode may send the traffic to another machine unencrypted).
func logConfigWarnings(cfg config.Config, log *slog.Logger) {
	for _, w := range cfg.Warnings() {
		log.Warn(w, "component", "config")
	}
}

// applyMemoryLimit sets the Go heap's soft limit from OTPGATE_MEMORY_LIMIT,
// unless a limit is already in force (the operator's GOMEMLIMIT, which the
// runtime applied at start, wins; the environment is not read here). Badger's allocations are on the Go heap (pure-Go build),
// so this bounds them too: near the limit the collector runs more often
// instead of letting garbage pile up to twice the live heap.
func applyMemoryLimit(limit config.ByteSize, log *slog.Logger) {
	if limit <= 0 || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		return
	}
	debug.SetMemoryLimit(int64(limit))
	log.Debug("memory limit set", "component", "app", "limit", limit.String())
}
