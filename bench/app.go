package main

import (
	"encoding/hex"
	"log/slog"
	"os"

	"github.com/otpgate/otpgate/internal/app"
	"github.com/otpgate/otpgate/internal/config"
)

// benchMasterKey is a fixed key: benchmark data is synthetic and deleted.
var benchMasterKey = hex.EncodeToString([]byte("otpgate-benchmark-master-key-32b"))

// newApp builds otpgate through the same composition root as serve, with
// its data in dir and the shipped defaults, then lets tune change settings
// (lifting the SMS caps that a burst from one number range would hit).
// env adds settings (OTPGATE_DATABASE_URL).
func newApp(dir string, deps app.Deps, tune func(*config.Config), env ...string) (*app.App, error) {
	cfg, err := config.Load(append([]string{
		"OTPGATE_DATA_DIR=" + dir, "OTPGATE_MASTER_KEY=" + benchMasterKey,
		"OTPGATE_TELEGRAM_TOKEN=999:bench-token-for-the-fake-bot-api",
		"OTPGATE_SMS_PROVIDER=console", "OTPGATE_DEVELOPMENT=true",
	}, env...))
	if err != nil {
		return nil, err
	}
	if tune != nil {
		tune(&cfg)
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	}
	return app.New(cfg, deps)
}
