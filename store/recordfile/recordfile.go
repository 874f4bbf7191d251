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
	"runtime"
	"strings"
	"sync"
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
//
// Lines are parsed and validated on every core: one goroutine reads
// chunks of lines, a worker per core parses them, and fn sees the rows of
// each chunk in order, on the caller's goroutine. At most a few chunks
// (about 2 MiB) are in flight.
func (f *File) Rows(ctx context.Context, fn func(store.ImportRow) error) error {
	pass := int(f.pass.Add(1))
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := f.checkUnchanged(); err != nil {
		return err
	}
	inner, cancel := context.WithCancel(ctx)
	defer cancel()
	v := newValidator(f.now())
	workers := max(1, runtime.GOMAXPROCS(0))
	work := make(chan *chunk, workers)
	order := make(chan *chunk, 2*workers)
	var (
		wg      sync.WaitGroup
		readErr error
	)
	wg.Go(func() {
		defer close(order)
		defer close(work)
		readErr = f.readChunks(inner, work, order)
	})
	for range workers {
		wg.Go(func() {
			rowFn := f.parser(v)
			for c := range work {
				c.parse(rowFn)
			}
		})
	}
	err := f.deliver(inner, pass, order, fn)
	cancel()
	for range order { // let the reader finish; workers drain work
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err != nil {
		return err
	}
	if readErr != nil {
		return readErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if f.prog != nil {
		f.prog(pass, f.size, f.size)
	}
	return f.checkUnchanged()
}

// deliver hands the rows of each chunk, in order, to fn.
func (f *File) deliver(ctx context.Context, pass int, order <-chan *chunk, fn func(store.ImportRow) error) error {
	var lastProgress int64
	for c := range order {
		<-c.done
		if err := ctx.Err(); err != nil {
			return err
		}
		for i := range c.rows {
			if err := fn(c.rows[i]); err != nil {
				return err
			}
		}
		if f.prog != nil && c.readTo-lastProgress >= progressEvery {
			lastProgress = c.readTo
			f.prog(pass, c.readTo, f.size)
		}
	}
	return nil
}

func (f *File) parser(v *validator) func(line []byte, n int) store.ImportRow {
	if f.format == FormatCSV {
		p := &csvParser{split: newCSVSplitter(), layout: f.csv, v: v}
		return p.row
	}
	p := &jsonParser{v: v}
	return p.row
}

// Chunk bounds: lines and bytes.
const (
	chunkLines = 512
	chunkBytes = 256 << 10
)

// chunk is a run of lines and, once parsed, their rows.
type chunk struct {
	buf    []byte // the lines, end to end
	ends   []int  // end of each line in buf; -1: too long
	nums   []int  // line numbers
	readTo int64  // bytes of the file read after the chunk
	rows   []store.ImportRow
	done   chan struct{}
}

func (c *chunk) parse(rowFn func(line []byte, n int) store.ImportRow) {
	defer close(c.done)
	c.rows = make([]store.ImportRow, len(c.nums))
	start := 0
	for i, end := range c.ends {
		if end < 0 {
			c.rows[i] = store.ImportRow{Line: c.nums[i], Problem: fmt.Sprintf("line too long (more than %d bytes)", MaxLineBytes)}
			continue
		}
		c.rows[i] = rowFn(c.buf[start:end], c.nums[i])
		start = end
	}
}

// readChunks reads the file's lines into chunks and sends each to work
// (to be parsed) and to order (to be delivered), in file order.
func (f *File) readChunks(ctx context.Context, work, order chan<- *chunk) error {
	cr := &countingReader{r: io.NewSectionReader(f.r, 0, f.size)}
	lr := newLineReader(cr)
	newChunk := func() *chunk {
		return &chunk{buf: make([]byte, 0, chunkBytes+MaxLineBytes), done: make(chan struct{})}
	}
	c := newChunk()
	send := func() error {
		c.readTo = cr.n
		for _, ch := range []chan<- *chunk{order, work} {
			select {
			case ch <- c:
			case <-ctx.Done():
				close(c.done) // never parsed: nobody waits for it
				return ctx.Err()
			}
		}
		c = newChunk()
		return nil
	}
	for {
		line, n, err := lr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil && !errors.Is(err, errLineTooLong) {
			return fmt.Errorf("recordfile: line %d: %w", n, err)
		}
		if f.format == FormatCSV && n <= f.csv.headerLine {
			continue
		}
		c.nums = append(c.nums, n)
		if err != nil {
			c.ends = append(c.ends, -1)
		} else {
			c.buf = append(c.buf, line...)
			c.ends = append(c.ends, len(c.buf))
		}
		if len(c.nums) == chunkLines || len(c.buf) >= chunkBytes {
			if err := send(); err != nil {
				return err
			}
		}
	}
	if len(c.nums) > 0 {
		return send()
	}
	return nil
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
