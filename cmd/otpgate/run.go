package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/otpgate/otpgate/internal/config"
)

// env is everything a command may touch of the process, so tests run the
// whole program in-process.
type env struct {
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	environ []string
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, e env) error
}

func commands() []command {
	return []command{
		{"serve", "run the Telegram bot (long polling or webhook)", runServe},
		{"demo", "run everything locally: sample data, a terminal chat, SMS shown on screen", runDemo},
		{"import", "load records from a JSON Lines or CSV file", runImport},
		{"audit", "verify the audit chain, or export it as JSON Lines", runAudit},
		{"backup", "write an encrypted backup of the data directory, even while serve runs", runBackup},
		{"restore", "restore a backup into an empty data directory", runRestore},
		{"keys", "print the public keys that verify vaccination proofs (JWKS)", runKeys},
		{"verify", "check a vaccination proof: its text or an image of its QR code", runVerify},
		{"proof", "revoke a vaccination proof (proof revoke ID)", runProof},
		{"limits", "show the running bot's SMS send caps, or lift a drained one", runLimits},
		{"config", "print every setting with its default and description", runConfig},
	}
}

// usageError is a mistake in how the command was called: print the usage.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// silentError fails the command (exit 1) after it has said why itself.
type silentError struct{ msg string }

func (e silentError) Error() string { return e.msg }

const exitUsage = 2

func run(ctx context.Context, args []string, e env) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(e.stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], e)
		if err == nil {
			return 0
		}
		var se silentError
		if errors.As(err, &se) {
			return 1
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(e.stderr, "otpgate %s: %s\n", c.name, ue.msg)
			return exitUsage
		}
		var ce config.Errors
		if errors.As(err, &ce) {
			fmt.Fprintf(e.stderr, "otpgate %s: configuration problems:\n", c.name)
			for _, ve := range ce {
				fmt.Fprintf(e.stderr, "  %s\n", ve)
			}
			fmt.Fprintln(e.stderr, "Run `otpgate config` to see every setting.")
			return 1
		}
		fmt.Fprintf(e.stderr, "otpgate %s: %s\n", c.name, err)
		return 1
	}
	fmt.Fprintf(e.stderr, "otpgate: unknown command %q\n\n", args[0])
	usage(e.stderr)
	return exitUsage
}

func usage(w io.Writer) {
	var b strings.Builder
	b.WriteString("otpgate shows a vaccination record only after a one-time code, sent by SMS to the\n")
	b.WriteString("mobile number registered on that record, is typed back.\n\nUsage: otpgate <command> [arguments]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-8s %s\n", c.name, c.summary)
	}
	b.WriteString("\nRun `otpgate <command> -h` for a command's options. Settings come from OTPGATE_* environment\nvariables: `otpgate config` lists them.\n")
	_, _ = io.WriteString(w, b.String())
}

func loadConfig(e env, mode config.Mode) (config.Config, error) {
	cfg, err := config.Load(e.environ)
	if err != nil {
		return cfg, err
	}
	return cfg, cfg.Require(mode)
}

func runConfig(_ context.Context, args []string, e env) error {
	if len(args) > 0 {
		return usageError{"takes no arguments"}
	}
	return config.Describe(e.stdout, e.environ)
}
