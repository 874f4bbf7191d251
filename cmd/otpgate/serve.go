package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/otpgate/otpgate/bot/telegram"
	"github.com/otpgate/otpgate/internal/app"
	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/otp"
	smsconsole "github.com/otpgate/otpgate/otp/console"
	"github.com/otpgate/otpgate/otp/twilio"
)

const serveUsage = `usage: otpgate serve

Runs the Telegram bot: long polling, or a webhook when OTPGATE_WEBHOOK_URL is
set. Needs OTPGATE_MASTER_KEY, OTPGATE_TELEGRAM_TOKEN and Twilio credentials
(or OTPGATE_SMS_PROVIDER=console with OTPGATE_DEVELOPMENT=true, for
development only). Stops cleanly on SIGINT or SIGTERM. ` + "`otpgate config`" + ` lists
every setting.`

func runServe(ctx context.Context, args []string, e env) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprintln(e.stderr, serveUsage) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{"takes no arguments\n" + serveUsage}
	}
	cfg, err := loadConfig(e, config.Serve)
	if err != nil {
		return err
	}
	log := app.NewLogger(e.stderr, cfg)
	mainLog := log.With("component", "serve")
	sender, err := smsSender(cfg, e, log)
	if err != nil {
		return err
	}
	reg := app.NewRegistry()
	core, err := app.OpenCore(cfg, sender, log, reg)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := core.Close(cctx); err != nil {
			mainLog.Error("shutdown", "err", err)
		}
	}()
	eng, err := core.Engine("telegram")
	if err != nil {
		return err
	}
	tg, err := telegram.New(telegram.Options{
		Token: cfg.TelegramToken.Reveal(), APIURL: cfg.TelegramAPIURL, Handler: eng, Deletions: app.TelegramDeletions(core.Store), Logger: log,
		WebhookURL: cfg.WebhookURL, WebhookListen: cfg.WebhookListen, WebhookSecret: cfg.WebhookSecret.Reveal(),
		Registerer: reg,
	})
	if err != nil {
		return err
	}
	if cfg.OpsListen != "" {
		ops, err := app.StartOps(app.OpsOptions{
			Addr: cfg.OpsListen, Registry: reg, Logger: log,
			Checks: map[string]app.Check{
				"store": core.Store.Ping,
				"telegram": func(context.Context) error {
					if !tg.Reachable() {
						return errors.New("telegram not reachable")
					}
					return nil
				},
				// serve does not start without a provider (config checks); the
				// check states it for operators reading /readyz.
				"sms": func(context.Context) error { return nil },
			},
			Extra: map[string]http.Handler{"GET /backup": app.BackupHandler(core.Store, core.Keys, log)},
		})
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = ops.Shutdown(sctx)
		}()
	}
	stopGC := core.CollectGarbage(ctx)
	defer stopGC()
	mainLog.Info("otpgate serving", "data_dir", cfg.DataDir, "sms", cfg.SMSProvider)
	err = tg.Run(ctx)
	mainLog.Info("otpgate stopped")
	return err
}

// smsSender picks the provider. The console provider prints codes to the
// terminal: it is refused unless OTPGATE_DEVELOPMENT is set (config checks),
// and then announced loudly on every start.
func smsSender(cfg config.Config, e env, log *slog.Logger) (otp.Sender, error) {
	if cfg.SMSProvider == config.ProviderConsole {
		const warn = "DEVELOPMENT MODE: SMS codes are printed on this terminal, not sent. Never run this in production."
		fmt.Fprintln(e.stderr, "!!! "+warn+" !!!")
		log.Warn(warn, "component", "serve")
		return smsconsole.New(e.stdout), nil
	}
	return twilio.New(twilio.Options{
		AccountSID: cfg.TwilioAccountSID, AuthToken: cfg.TwilioAuthToken.Reveal(),
		From: cfg.TwilioFrom, MessagingServiceSID: cfg.TwilioMessagingServiceSID,
		APIURL: cfg.TwilioAPIURL, Logger: log,
	})
}
