// Package app wires otpgate's parts together from a config.Config: the one
// place that chooses concrete types. Commands in cmd/otpgate call it; tests
// embed the whole program through it.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/otpgate/otpgate/bot"
	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/internal/keys"
	"github.com/otpgate/otpgate/otp"
	"github.com/otpgate/otpgate/store"
)

// OpenStore derives the keys from the master key and opens the data
// directory.
func OpenStore(cfg config.Config, log *slog.Logger, readOnly bool) (*store.Store, keys.Set, error) {
	ks, err := keys.Derive(cfg.MasterKey.Bytes())
	if err != nil {
		return nil, keys.Set{}, fmt.Errorf("OTPGATE_MASTER_KEY: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, keys.Set{}, fmt.Errorf("OTPGATE_DATA_DIR: %w", err)
	}
	s, err := store.Open(store.Options{
		Dir: cfg.DataDir, EncryptionKey: ks.Storage, IndexKey: ks.Index, AuditKey: ks.Audit,
		Logger: log.With("component", "store"), ReadOnly: readOnly,
	})
	if errors.Is(err, store.ErrWrongKey) {
		return nil, keys.Set{}, fmt.Errorf("OTPGATE_MASTER_KEY does not open %s: it was written with another key: %w", cfg.DataDir, err)
	}
	if err != nil {
		return nil, keys.Set{}, err
	}
	if interrupted, err := s.InterruptedImport(); err == nil && interrupted {
		log.Warn("an import was interrupted before it finished; run the same `otpgate import` again to complete it", "component", "store")
	}
	return s, ks, nil
}

// Policy maps the configuration onto otp's limits.
func Policy(cfg config.Config) otp.Policy {
	p := otp.DefaultPolicy()
	p.CodeTTL = cfg.OTPTTL
	p.MaxAttempts = cfg.OTPMaxAttempts
	p.ResendCooldown = cfg.ResendCooldown
	p.SendsPerMobileHour = cfg.SendsPerMobileHour
	p.SendsPerMobileDay = cfg.SendsPerMobileDay
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

// Templates loads the operator's SMS templates, or the defaults.
func Templates(cfg config.Config) (otp.Templates, error) {
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

// Core is the running engine: store, code service and conversation engine.
type Core struct {
	Store  *store.Store
	OTP    *otp.Service
	Keys   keys.Set
	log    *slog.Logger
	cfg    config.Config
	reg    prometheus.Registerer
	closed bool
}

// OpenCore opens the store and starts the code service with sender. reg,
// when not nil, receives the metrics of the service and of the engines
// built from the core.
func OpenCore(cfg config.Config, sender otp.Sender, log *slog.Logger, reg prometheus.Registerer) (*Core, error) {
	tpl, err := Templates(cfg)
	if err != nil {
		return nil, err
	}
	st, ks, err := OpenStore(cfg, log, false)
	if err != nil {
		return nil, err
	}
	svc, err := otp.New(otp.Options{Store: st, Sender: sender, CodeKey: ks.Code, Policy: Policy(cfg), Templates: tpl, Logger: log, Registerer: reg})
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	return &Core{Store: st, OTP: svc, Keys: ks, log: log, cfg: cfg, reg: reg}, nil
}

// Engine builds a conversation engine for channel over the core.
func (c *Core) Engine(channel string) (*bot.Engine, error) {
	return bot.New(bot.Options{
		Gate: c.OTP, Records: c.Store, Channel: channel, Logger: c.log,
		CodeLength: c.OTP.Policy().CodeLength, CodeTTL: c.cfg.OTPTTL, ReleaseTTL: c.cfg.ReleaseDeleteAfter,
		StaffUsers: c.cfg.StaffUsers, StaffChats: c.cfg.StaffChats, Registerer: c.reg,
	})
}

// CollectGarbage runs Badger's value-log GC every ten minutes until ctx
// ends or the returned stop is called (which waits for it).
func (c *Core) CollectGarbage(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(10 * time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := c.Store.CollectGarbage(); err != nil {
					c.log.Warn("value-log GC", "component", "store", "err", err)
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

// Close lets queued code requests finish until ctx ends, then closes the
// store. Both happen even when the first fails.
func (c *Core) Close(ctx context.Context) error {
	if c.closed {
		return nil
	}
	c.closed = true
	errOTP := c.OTP.Close(ctx)
	errStore := c.Store.Close()
	return errors.Join(errOTP, errStore)
}
