package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/otpgate/otpgate/internal/app"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/store/recordfile"
)

// benchBackup imports n generated records, then times an encrypted otpgate
// backup and restore next to Badger's own unencrypted backup of the same
// database, taken in the same run.
func benchBackup(args []string) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	n := fs.Int("n", 1_000_000, "records")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, file, err := generate(*n)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	opts, ks := benchOptions(filepath.Join(dir, "db"))
	a, err := newApp(opts.Dir, app.Deps{Channel: app.ChannelNone}, nil)
	if err != nil {
		return err
	}
	rf, err := recordfile.Open(file, recordfile.Options{})
	if err != nil {
		return err
	}
	start := time.Now()
	if _, err := a.Store.Import(context.Background(), rf.Rows); err != nil {
		return err
	}
	rf.Close()
	fmt.Printf("imported %d records in %.1fs; data directory %.0f MB\n", *n, time.Since(start).Seconds(), mb(dirSize(opts.Dir)))
	if err := a.Stop(); err != nil {
		return err
	}

	// Baseline: Badger's own backup of the same database (plaintext; it is
	// written to the temporary directory and deleted with it).
	raw := filepath.Join(dir, "raw.bak")
	start = time.Now()
	if err := badgerBackup(opts, raw); err != nil {
		return err
	}
	rawSecs := time.Since(start).Seconds()
	rawSize, _ := fileSize(raw)
	fmt.Printf("%-34s %7.1fs  %6.0f MB\n", "Badger backup (unencrypted)", rawSecs, mb(rawSize, nil))

	if a, err = newApp(opts.Dir, app.Deps{Channel: app.ChannelNone}, nil); err != nil {
		return err
	}
	st := a.Store
	enc := filepath.Join(dir, "otpgate.age")
	out, err := os.Create(enc)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(out, 1<<20)
	start = time.Now()
	stats, err := st.Backup(context.Background(), w, ks.Backup)
	if err == nil {
		err = w.Flush()
	}
	out.Close()
	if err != nil {
		return err
	}
	encSecs := time.Since(start).Seconds()
	fmt.Printf("%-34s %7.1fs  %6.0f MB  (%d entries)\n", "otpgate backup (age-encrypted)", encSecs, mb(stats.Bytes, nil), stats.Entries)
	_ = a.Stop()

	in, err := os.Open(enc)
	if err != nil {
		return err
	}
	defer in.Close()
	ropts, _ := benchOptions(filepath.Join(dir, "restored"))
	start = time.Now()
	rs, err := store.Restore(context.Background(), bufio.NewReaderSize(in, 1<<20), ropts, ks.Backup)
	if err != nil {
		return err
	}
	fmt.Printf("%-34s %7.1fs  %d records, audit chain intact (%d entries)\n", "otpgate restore", time.Since(start).Seconds(), rs.Records, rs.AuditEntries)
	fmt.Printf("the encrypted backup takes %.2fx the time of Badger's own and is %.2fx its size\n", encSecs/rawSecs, float64(stats.Bytes)/float64(rawSize))
	return nil
}

func mb(n int64, err error) float64 {
	if err != nil {
		return 0
	}
	return float64(n) / 1e6
}

func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func badgerBackup(o store.Options, path string) error {
	db, err := badger.Open(store.BadgerOptions(o))
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		db.Close()
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	_, err = db.Backup(w, 0)
	if err == nil {
		err = w.Flush()
	}
	return errors.Join(err, f.Close(), db.Close())
}
