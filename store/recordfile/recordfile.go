// Package recordfile reads beneficiary import files — JSON Lines or CSV with
// the column names of SPEC §4 — and turns each data row into a
// store.ImportRow: a validated store.Record plus the ID number to hash, or a
// Problem that says what is wrong with the row.
//
// Files are streamed, never held in memory, so a million-row file costs a
// line buffer. A File can be read any number of times (store.Import reads it
// twice: check, then write). Nothing this package returns — errors, row
// problems — ever contains a mobile number, name, ID number or reference id
// from the file: a rejected value is described, not echoed.
package recordfile

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/otpgate/otpgate/store"
)

// Errors about a file as a whole. Rows with problems are not errors: they
// are reported through store.ImportRow.Problem.
var (
	// ErrFormat: the format is unknown, or cannot be detected.
	ErrFormat = errors.New("recordfile: unknown file format")
	// ErrHeader: the CSV header is missing or names unknown, missing or
	// repeated columns. The error is a *HeaderError.
	ErrHeader = errors.New("recordfile: bad CSV header")
	// ErrChanged: the file changed after it was opened, so a second pass
	// would not read the rows the first pass checked.
	ErrChanged = errors.New("recordfile: file changed since it was opened")
)

// MaxLineBytes is the longest line accepted, without its line ending.
// Longer lines are reported as a row problem and skipped.
const MaxLineBytes = 64 << 10

// progressEvery is how many bytes pass between Progress calls.
const progressEvery = 256 << 10

// Format is the syntax of an import file.
type Format int

// Formats. FormatAuto picks one by file extension, then by the first
// non-blank byte ('{' means JSON Lines, anything else CSV).
const (
	FormatAuto Format = iota
	FormatJSONL
	FormatCSV
)

func (f Format) String() string {
	switch f {
	case FormatAuto:
		return "auto"
	case FormatJSONL:
		return "jsonl"
	case FormatCSV:
		return "csv"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// ParseFormat reads a format name as an operator types it: auto, jsonl
// (also json, ndjson) or csv.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "auto":
		return FormatAuto, nil
	case "jsonl", "json", "ndjson":
		return FormatJSONL, nil
	case "csv":
		return FormatCSV, nil
	}
	return 0, fmt.Errorf("%w: want auto, jsonl or csv", ErrFormat)
}

// Options configure Open and New. The zero value works.
type Options struct {
	// Format of the file; FormatAuto detects it.
	Format Format
	// Now is the clock for the upper bounds of birth_year and dose dates;
	// nil means time.Now.
	Now func() time.Time
	// Progress, if set, is called from Rows every few hundred KiB and once at
	// the end of each pass, with the pass number (1 for the first call of
	// Rows, 2 for the second, …), bytes read so far and the file size.
	Progress func(pass int, read, total int64)
}

func (o Options) validate() error {
	if o.Format < FormatAuto || o.Format > FormatCSV {
		return fmt.Errorf("%w: %v", ErrFormat, o.Format)
	}
	return nil
}

// File is an import file ready to be read. It is safe for concurrent use;
// each call of Rows reads the file from the start.
type File struct {
	r      io.ReaderAt
	size   int64
	osFile *os.File    // set by Open: checked for changes, closed by Close
	stat   os.FileInfo // as at Open
	format Format
	now    func() time.Time
	prog   func(pass int, read, total int64)
	pass   atomic.Int64
	csv    *csvLayout // FormatCSV only
}

// Open opens the import file at path, detects its format and, for CSV,
// checks the header. The file stays open until Close; Rows reads it again
// on every call and fails with ErrChanged if it was modified meanwhile.
func Open(path string, opts Options) (*File, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.Format == FormatAuto {
		opts.Format = formatByExtension(path)
	}
	osf, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("recordfile: %w", err)
	}
	st, err := osf.Stat()
	if err != nil {
		osf.Close()
		return nil, fmt.Errorf("recordfile: %w", err)
	}
	if !st.Mode().IsRegular() {
		osf.Close()
		return nil, fmt.Errorf("recordfile: %s is not a regular file", filepath.Base(path))
	}
	f, err := newFile(osf, st.Size(), opts)
	if err != nil {
		osf.Close()
		return nil, err
	}
	f.osFile, f.stat = osf, st
	return f, nil
}

// New reads an import file from r, which holds size bytes — for instance
// bytes.NewReader(sample.Demo()). With FormatAuto the format is sniffed
// from the content. r must not change while the File is used.
func New(r io.ReaderAt, size int64, opts Options) (*File, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	return newFile(r, size, opts)
}

func newFile(r io.ReaderAt, size int64, opts Options) (*File, error) {
	f := &File{r: r, size: size, format: opts.Format, now: opts.Now, prog: opts.Progress}
	if f.now == nil {
		f.now = time.Now
	}
	if f.format == FormatAuto {
		format, err := sniff(io.NewSectionReader(r, 0, size))
		if err != nil {
			return nil, err
		}
		f.format = format
	}
	if f.format == FormatCSV {
		l, err := readHeader(io.NewSectionReader(r, 0, size))
		if err != nil {
			return nil, err
		}
		f.csv = l
	}
	return f, nil
}

// Format reports the format the file is read as.
func (f *File) Format() Format { return f.format }

// Size reports the size of the file in bytes.
func (f *File) Size() int64 { return f.size }

// Close releases a file opened by Open. It is a no-op for New.
func (f *File) Close() error {
	if f.osFile == nil {
		return nil
	}
	return f.osFile.Close()
}

func formatByExtension(path string) Format {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".jsonl", ".ndjson", ".json":
		return FormatJSONL
	case ".csv":
		return FormatCSV
	}
	return FormatAuto
}

var bom = []byte("\uFEFF")

// sniff looks at the first non-blank byte: '{' (or '[', a JSON file that is
// not JSON Lines, reported row by row) means JSON Lines, anything else CSV.
func sniff(r io.Reader) (Format, error) {
	br := bufio.NewReaderSize(r, 4096)
	first := true
	for {
		c, err := br.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return 0, fmt.Errorf("%w: the file is empty; name it .jsonl or .csv", ErrFormat)
			}
			return 0, fmt.Errorf("recordfile: %w", err)
		}
		if first {
			first = false
			if c == bom[0] {
				rest := make([]byte, 2)
				if _, err := io.ReadFull(br, rest); err == nil && bytes.Equal(rest, bom[1:]) {
					continue
				}
				return FormatCSV, nil
			}
		}
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{', '[':
			return FormatJSONL, nil
		}
		return FormatCSV, nil
	}
}

// Rows has the store.RowSource signature: pass f.Rows to store.Import. It
// reads the file from the start and calls fn for every data row, in file
// order, with Line the 1-based physical line number (blank lines are
// skipped but counted; a CSV header is a line too). A row that fails
// validation comes with Problem set and a zero Record. Rows stops at the
// first error fn returns and returns it unchanged; it returns ctx.Err() if
// ctx ends, and an error for a file it cannot read.
func (f *File) Rows(ctx context.Context, fn func(store.ImportRow) error) error {
	pass := int(f.pass.Add(1))
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := f.checkUnchanged(); err != nil {
		return err
	}
	cr := &countingReader{r: io.NewSectionReader(f.r, 0, f.size)}
	lr := newLineReader(cr)
	v := newValidator(f.now())
	var (
		lastProgress int64
		rows         int
		rowFn        func(line []byte, n int) store.ImportRow
	)
	if f.format == FormatCSV {
		p := &csvParser{split: newCSVSplitter(), layout: f.csv, v: v}
		rowFn = p.row
	} else {
		p := &jsonParser{v: v}
		rowFn = p.row
	}
	for {
		line, n, err := lr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil && !errors.Is(err, errLineTooLong) {
			return fmt.Errorf("recordfile: line %d: %w", n, err)
		}
		rows++
		if rows%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if f.prog != nil && cr.n-lastProgress >= progressEvery {
			lastProgress = cr.n
			f.prog(pass, cr.n, f.size)
		}
		if f.format == FormatCSV && n <= f.csv.headerLine {
			continue
		}
		var row store.ImportRow
		if err != nil {
			row = store.ImportRow{Line: n, Problem: fmt.Sprintf("line too long (more than %d bytes)", MaxLineBytes)}
		} else {
			row = rowFn(line, n)
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if f.prog != nil {
		f.prog(pass, cr.n, f.size)
	}
	return f.checkUnchanged()
}

// checkUnchanged guards the two-pass import: if the file was rewritten in
// place between passes, the second would write rows the first never checked.
func (f *File) checkUnchanged() error {
	if f.osFile == nil {
		return nil
	}
	st, err := f.osFile.Stat()
	if err != nil {
		return fmt.Errorf("recordfile: %w", err)
	}
	if st.Size() != f.stat.Size() || !st.ModTime().Equal(f.stat.ModTime()) {
		return ErrChanged
	}
	return nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
