package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/otpgate/otpgate/internal/app"
	"github.com/otpgate/otpgate/internal/config"
)

const serveUsage = `usage: otpgate serve

Runs the Telegram bot: long polling, or a webhook when OTPGATE_WEBHOOK_URL is
set. Needs OTPGATE_MASTER_KEY, OTPGATE_TELEGRAM_TOKEN and Twilio credentials
(or OTPGATE_SMS_PROVIDER=console with OTPGATE_DEVELOPMENT=true, for
development only). Stops on SIGINT or SIGTERM within 10 seconds, finishing the updates in hand
and flushing queued messages first. ` + "`otpgate config`" + ` lists
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
	a, err := app.New(cfg, app.Deps{Channel: app.ChannelTelegram, Stdout: e.stdout, Stderr: e.stderr})
	if err != nil {
		return err
	}
	runErr := a.Run(ctx)
	return errors.Join(runErr, a.Stop())
}
