package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/otpgate/otpgate/internal/app"
	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/internal/keys"
	"github.com/otpgate/otpgate/store"
)

const backupUsage = `usage: otpgate backup [-o FILE]

Writes an encrypted backup of the whole data directory — records, codes,
grants, counters and the audit chain — to FILE (default
otpgate-backup-<UTC time>.age in the current directory; - writes to
standard output). It never overwrites a file. The backup is encrypted and authenticated with a key
derived from OTPGATE_MASTER_KEY: keep the key, or the backup is useless.
When serve holds OTPGATE_DATA_DIR, the backup is fetched from the running
process through OTPGATE_OPS_LISTEN (its /backup endpoint); the bot keeps
running meanwhile. Needs OTPGATE_MASTER_KEY and OTPGATE_DATA_DIR.`

const restoreUsage = `usage: otpgate restore FILE

Restores a backup made by ` + "`otpgate backup`" + ` into OTPGATE_DATA_DIR, which must
be empty or not exist yet (move the old one aside first). The backup is
checked before anything is written: one made with another master key, or
damaged or altered in any byte, is refused and leaves nothing behind. The
restored audit chain is verified. Needs OTPGATE_MASTER_KEY (the one the
backup was made with) and OTPGATE_DATA_DIR.`

// writeBackup writes the encrypted backup to w: directly from the data
// directory, or, when a running serve holds it, fetched from that process
// through its ops server. entries is -1 when fetched.
func writeBackup(ctx context.Context, cfg config.Config, ks keys.Set, w io.Writer, e env) (entries int64, err error) {
	a, err := app.New(cfg, app.Deps{Channel: app.ChannelNone, Stdout: e.stdout, Stderr: e.stderr})
	switch {
	case err == nil:
		stats, berr := a.Store.Backup(ctx, w, ks.Backup)
		return stats.Entries, errors.Join(berr, a.Stop())
	case errors.Is(err, store.ErrLocked) && cfg.OpsListen != "":
		fmt.Fprintf(e.stderr, "%s is in use by a running otpgate; fetching the backup from it through %s\n", cfg.DataDir, cfg.OpsListen)
		return -1, app.FetchBackup(ctx, cfg.OpsListen, ks, w)
	case errors.Is(err, store.ErrLocked):
		return -1, fmt.Errorf("%s is in use by a running otpgate (serve). Either set OTPGATE_OPS_LISTEN to the address of "+
			"its ops server (the same value serve runs with) to back up from the running process, or stop serve and run backup again", cfg.DataDir)
	}
	return -1, err
}

func runBackup(ctx context.Context, args []string, e env) error {
	flags := flag.NewFlagSet("backup", flag.ContinueOnError)
	flags.SetOutput(e.stderr)
	flags.Usage = func() { fmt.Fprintln(e.stderr, backupUsage) }
	out := flags.String("o", "", "write the backup to FILE (- for standard output)")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err.Error()}
	}
	if flags.NArg() > 0 {
		return usageError{"unexpected argument " + flags.Arg(0) + "\n" + backupUsage}
	}
	cfg, err := loadConfig(e, config.Admin)
	if err != nil {
		return err
	}
	ks, err := keys.Derive(cfg.MasterKey.Bytes())
	if err != nil {
		return fmt.Errorf("OTPGATE_MASTER_KEY: %w", err)
	}
	start := time.Now()
	if *out == "-" {
		// To standard output, e.g. `kubectl exec … otpgate backup -o - > file`
		// where the image has no shell to copy a file out with.
		entries, err := writeBackup(ctx, cfg, ks, e.stdout, e)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "backup written to standard output (%d entries) in %s\n", max(entries, 0), time.Since(start).Round(time.Millisecond))
		return nil
	}
	path := *out
	if path == "" {
		path = "otpgate-backup-" + start.UTC().Format("20060102T150405Z") + ".age"
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s exists; refusing to overwrite it", path)
	}
	if _, err := os.Stat(cfg.DataDir); err != nil {
		return fmt.Errorf("OTPGATE_DATA_DIR: nothing to back up: %w", err)
	}
	partial := path + ".partial"
	f, err := os.OpenFile(partial, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists: another backup is running, or one was interrupted (then remove it)", partial)
	}
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(partial)
		}
	}()

	entries, err := writeBackup(ctx, cfg, ks, f, e)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	size, err := publish(partial, path)
	if err != nil {
		return err
	}
	ok = true
	msg := fmt.Sprintf("backup written to %s: %s", path, formatSize(size))
	if entries >= 0 {
		msg += fmt.Sprintf(", %d entries", entries)
	}
	fmt.Fprintf(e.stdout, "%s, in %s\n", msg, time.Since(start).Round(time.Millisecond))
	return nil
}

// publish moves the finished partial file to path without ever replacing
// a file there: a hard link fails if path exists, where a rename would not.
func publish(partial, path string) (int64, error) {
	fi, err := os.Stat(partial)
	if err != nil {
		return 0, err
	}
	err = os.Link(partial, path)
	switch {
	case errors.Is(err, fs.ErrExist):
		return 0, fmt.Errorf("%s appeared while the backup ran; refusing to overwrite it", path)
	case err != nil: // no hard links here (some network or FAT file systems): check, then rename
		if _, serr := os.Lstat(path); serr == nil {
			return 0, fmt.Errorf("%s appeared while the backup ran; refusing to overwrite it", path)
		}
		if err := os.Rename(partial, path); err != nil {
			return 0, err
		}
	default:
		if err := os.Remove(partial); err != nil {
			return 0, err
		}
	}
	return fi.Size(), nil
}

func runRestore(ctx context.Context, args []string, e env) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprintln(e.stderr, restoreUsage) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err.Error()}
	}
	if fs.NArg() != 1 {
		return usageError{"needs exactly one FILE\n" + restoreUsage}
	}
	cfg, err := loadConfig(e, config.Admin)
	if err != nil {
		return err
	}
	log := app.NewLogger(e.stderr, cfg)
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	start := time.Now()
	st, err := app.RestoreStore(ctx, cfg, f, log)
	switch {
	case errors.Is(err, store.ErrRestoreTarget):
		return fmt.Errorf("%w; a restore never mixes a backup into existing data: move OTPGATE_DATA_DIR aside or point it at a new directory", err)
	case errors.Is(err, store.ErrBackupKey):
		return fmt.Errorf("%s: %w; set OTPGATE_MASTER_KEY to the key it was made with", fs.Arg(0), err)
	case err != nil:
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	fmt.Fprintf(e.stdout, "restored %s (made %s) into %s in %s: %d records, %d codes, %d grants, %d counters, %d keys in all\n",
		fs.Arg(0), st.Created.UTC().Format(time.RFC3339), cfg.DataDir, time.Since(start).Round(time.Millisecond),
		st.Records, st.Challenges, st.Grants, st.Counters, st.Keys)
	fmt.Fprintf(e.stdout, "audit chain intact: %d entries\n", st.AuditEntries)
	return nil
}

func formatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
