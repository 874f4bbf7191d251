package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/otpgate/otpgate/internal/app"
	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/store/recordfile"
)

const importUsage = `usage: otpgate import [-format auto|jsonl|csv] FILE
       otpgate import --replace [-format auto|jsonl|csv] FILE
       otpgate import --remove FILE

Loads beneficiary records from JSON Lines or CSV (see README, "Data format").
Every row is checked first; if any row is bad, each is listed with its line
number and NOTHING is changed. Re-importing the same file changes nothing;
a changed row updates its record.

  --replace  the file is the complete set: stored records it does not name
             are removed (a mobile's limit is then counted over the file)
  --remove   FILE lists reference ids, one a line (a "reference_id" header
             line, or JSON objects with a reference_id, are accepted too):
             those records are removed; every id must be stored

Removals are audited with counts, never ids. Needs OTPGATE_MASTER_KEY, and
either OTPGATE_DATABASE_URL (PostgreSQL: the replicas keep serving while it
runs; a reader sees each record before or after, never half) or
OTPGATE_DATA_DIR with exclusive use of it (stop serve first).`

func runImport(ctx context.Context, args []string, e env) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprintln(e.stderr, importUsage) }
	format := fs.String("format", "auto", "file format: auto, jsonl or csv")
	replace := fs.Bool("replace", false, "the file is the complete set: remove stored records it does not name")
	remove := fs.Bool("remove", false, "FILE lists reference ids to remove")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err.Error()}
	}
	if fs.NArg() != 1 {
		return usageError{"needs exactly one FILE\n" + importUsage}
	}
	if *replace && *remove {
		return usageError{"--replace and --remove exclude each other\n" + importUsage}
	}
	ff, err := recordfile.ParseFormat(*format)
	if err != nil {
		return usageError{err.Error()}
	}
	cfg, err := loadConfig(e, config.Import)
	if err != nil {
		return err
	}
	if *remove {
		return removeRecords(ctx, cfg, fs.Arg(0), e)
	}
	prog := newProgress(e.stderr)
	f, err := recordfile.Open(fs.Arg(0), recordfile.Options{Format: ff, Progress: prog.update})
	if err != nil {
		return err
	}
	defer f.Close()
	a, err := app.New(cfg, app.Deps{Channel: app.ChannelNone, Stdout: e.stdout, Stderr: e.stderr})
	if err != nil {
		return err
	}
	if *replace {
		err = replaceRecords(ctx, a.Store, f, e.stdout)
	} else {
		_, err = importRecords(ctx, a.Store, f, e.stdout)
	}
	prog.done()
	return errors.Join(err, a.Stop())
}

// importRecords runs the import and prints the outcome: the summary, or
// every rejected row with its line number.
func importRecords(ctx context.Context, st *store.Store, f *recordfile.File, w io.Writer) (store.ImportSummary, error) {
	sum, err := st.Import(ctx, f.Rows)
	if err := reportRejected(err, sum.Rows, w, "imported"); err != nil {
		return sum, err
	}
	fmt.Fprintf(w, "imported %d rows: %d added, %d updated, %d unchanged, 0 rejected\n", sum.Rows, sum.Added, sum.Updated, sum.Unchanged)
	return sum, nil
}

func replaceRecords(ctx context.Context, st *store.Store, f *recordfile.File, w io.Writer) error {
	sum, err := st.Replace(ctx, f.Rows)
	if err := reportRejected(err, sum.Rows, w, "changed"); err != nil {
		return err
	}
	fmt.Fprintf(w, "replaced with %d rows: %d added, %d updated, %d unchanged, %d removed, 0 rejected\n",
		sum.Rows, sum.Added, sum.Updated, sum.Unchanged, sum.Removed)
	return nil
}

func removeRecords(ctx context.Context, cfg config.Config, path string, e env) error {
	f, err := recordfile.OpenRefs(path)
	if err != nil {
		return err
	}
	defer f.Close()
	a, err := app.New(cfg, app.Deps{Channel: app.ChannelNone, Stdout: e.stdout, Stderr: e.stderr})
	if err != nil {
		return err
	}
	sum, err := a.Store.Remove(ctx, f.Refs)
	if err = reportRejected(err, sum.Rows, e.stdout, "removed"); err == nil {
		fmt.Fprintf(e.stdout, "removed %d records (%d lines", sum.Removed+sum.Gone, sum.Rows)
		if sum.Gone > 0 {
			fmt.Fprintf(e.stdout, "; %d had been removed by the interrupted run", sum.Gone)
		}
		fmt.Fprintln(e.stdout, ")")
	}
	return errors.Join(err, a.Stop())
}

// reportRejected prints every rejected row of a refused file and says
// nothing was done; other errors pass through.
func reportRejected(err error, rows int, w io.Writer, done string) error {
	var ie *store.ImportError
	if !errors.As(err, &ie) {
		return err
	}
	for _, p := range ie.Problems {
		fmt.Fprintf(w, "line %d: %s\n", p.Line, p.Reason)
	}
	if more := ie.Total - len(ie.Problems); more > 0 {
		fmt.Fprintf(w, "… and %d more rejected rows\n", more)
	}
	return fmt.Errorf("%d of %d rows rejected; nothing was %s", ie.Total, rows, done)
}

// progress draws a bar per pass on a terminal and stays silent otherwise
// (logs and CI).
type progress struct {
	w    io.Writer
	tty  bool
	bar  *progressbar.ProgressBar
	pass int
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
	}
	return p
}

func (p *progress) update(pass int, read, total int64) {
	if !p.tty {
		return
	}
	if pass != p.pass {
		p.done()
		p.pass = pass
		desc := "checking"
		if pass > 1 {
			desc = "writing "
		}
		p.bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(p.w), progressbar.OptionSetDescription(desc),
			progressbar.OptionShowBytes(true), progressbar.OptionThrottle(100_000_000), progressbar.OptionClearOnFinish())
	}
	_ = p.bar.Set64(read)
}

func (p *progress) done() {
	if p.bar != nil {
		_ = p.bar.Finish()
		p.bar = nil
	}
}
