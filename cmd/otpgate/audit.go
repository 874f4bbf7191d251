package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/otpgate/otpgate/internal/app"
	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/store"
)

const auditUsage = `usage: otpgate audit verify
       otpgate audit export [-o FILE]

verify walks the hash chain and names the first entry that was altered,
removed or reordered. export writes every entry as JSON Lines (standard
output unless -o is given). Both need OTPGATE_MASTER_KEY and
OTPGATE_DATA_DIR, and exclusive use of the data directory.`

func runAudit(ctx context.Context, args []string, e env) error {
	if len(args) == 0 {
		return usageError{"needs verify or export\n" + auditUsage}
	}
	fs := flag.NewFlagSet("audit "+args[0], flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprintln(e.stderr, auditUsage) }
	out := fs.String("o", "", "export: write to FILE instead of standard output")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{"unexpected argument " + fs.Arg(0)}
	}
	if args[0] != "verify" && args[0] != "export" {
		return usageError{"unknown audit command " + args[0] + "\n" + auditUsage}
	}
	cfg, err := loadConfig(e, config.Admin)
	if err != nil {
		return err
	}
	a, err := app.New(cfg, app.Deps{Channel: app.ChannelNone, Stdout: e.stdout, Stderr: e.stderr})
	if err != nil {
		return err
	}
	defer a.Stop()
	st := a.Store
	switch args[0] {
	case "verify":
		n, err := st.VerifyAudit(ctx)
		var p *store.AuditProblem
		if errors.As(err, &p) {
			return fmt.Errorf("audit chain BROKEN at entry %d: %s", p.Seq, p.Reason)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "audit chain intact: %d entries\n", n)
		return nil
	default:
		w := e.stdout
		var f *os.File
		if *out != "" {
			f, err = os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			w = f
		}
		n, err := st.ExportAudit(ctx, w)
		if f != nil {
			err = errors.Join(err, f.Close())
		}
		if err != nil {
			return err
		}
		if f != nil {
			fmt.Fprintf(e.stderr, "exported %d entries to %s\n", n, *out)
		}
		return nil
	}
}
