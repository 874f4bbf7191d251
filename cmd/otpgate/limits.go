package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/otpgate/otpgate/internal/app"
	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/internal/keys"
)

const limitsUsage = `usage: otpgate limits
       otpgate limits lift global
       otpgate limits lift prefix RANGE

Shows the shared SMS send caps of the running otpgate — the global hourly
cap (OTPGATE_GLOBAL_SMS_PER_HOUR) and every number range's hourly cap
(OTPGATE_SENDS_PER_PREFIX_HOUR) — with what each has used this hour and
when it resets. "lift" empties one window at once, without a restart; the
lift is written to the audit log. RANGE is as "limits" shows it, e.g.
+9190000. Talks to serve through OTPGATE_OPS_LISTEN (the value serve runs
with) with a token derived from OTPGATE_MASTER_KEY.`

func runLimits(ctx context.Context, args []string, e env) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintln(e.stderr, limitsUsage)
		return nil
	}
	var capName, rng string
	switch {
	case len(args) == 0:
	case len(args) == 2 && args[0] == "lift" && args[1] == "global":
		capName = "global"
	case len(args) == 3 && args[0] == "lift" && args[1] == "prefix":
		capName, rng = "prefix", args[2]
	default:
		return usageError{"unexpected arguments\n" + limitsUsage}
	}
	cfg, err := loadConfig(e, config.Admin)
	if err != nil {
		return err
	}
	if cfg.OpsListen == "" {
		return errors.New("set OTPGATE_OPS_LISTEN to the address of the running serve's ops server (the value serve runs with)")
	}
	ks, err := keys.Derive(cfg.MasterKey.Bytes())
	if err != nil {
		return fmt.Errorf("OTPGATE_MASTER_KEY: %w", err)
	}
	if capName == "" {
		return app.FetchLimits(ctx, cfg.OpsListen, ks, e.stdout)
	}
	return app.LiftLimit(ctx, cfg.OpsListen, ks, capName, rng, e.stdout)
}
