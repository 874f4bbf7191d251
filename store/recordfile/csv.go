package recordfile

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/otpgate/otpgate/store"
)

// HeaderError describes what is wrong with a CSV header. Column names it
// lists are the file's own only when they look like names; others are
// given by position, so that a data line taken for a header is not echoed.
type HeaderError struct {
	Line      int
	Reason    string   // set when there is no usable header at all
	Unknown   []string // quoted names, or "column N"
	Missing   []string
	Duplicate []string
}

func (e *HeaderError) Error() string {
	var parts []string
	if e.Reason != "" {
		parts = append(parts, e.Reason)
	}
	if len(e.Unknown) > 0 {
		parts = append(parts, "unknown columns: "+strings.Join(e.Unknown, ", "))
	}
	if len(e.Missing) > 0 {
		parts = append(parts, "missing columns: "+strings.Join(e.Missing, ", "))
	}
	if len(e.Duplicate) > 0 {
		parts = append(parts, "repeated columns: "+strings.Join(e.Duplicate, ", "))
	}
	return fmt.Sprintf("recordfile: bad CSV header on line %d: %s", e.Line, strings.Join(parts, "; "))
}

// Is makes errors.Is(err, ErrHeader) true.
func (e *HeaderError) Is(target error) bool { return target == ErrHeader }

// csvLayout maps header columns to fields.
type csvLayout struct {
	headerLine int
	ncol       int
	col        [nFields]int // -1 when absent
	doses      []csvDose    // ascending by number
}

type csvDose struct {
	number                int
	vaccine, date, center int // -1 when absent (center only)
}

func readHeader(r io.Reader) (*csvLayout, error) {
	lr := newLineReader(r)
	line, n, err := lr.next()
	switch {
	case errors.Is(err, io.EOF):
		return nil, &HeaderError{Line: 1, Reason: "the file is empty; the first line must name the columns"}
	case errors.Is(err, errLineTooLong):
		return nil, &HeaderError{Line: n, Reason: "line too long"}
	case err != nil:
		return nil, fmt.Errorf("recordfile: %w", err)
	case !utf8.Valid(line):
		return nil, &HeaderError{Line: n, Reason: "not valid UTF-8"}
	}
	names, err := splitCSV(line, nil)
	if err != nil {
		return nil, &HeaderError{Line: n, Reason: "not valid CSV: " + err.Error()}
	}
	return parseHeader(names, n)
}

func parseHeader(names []string, line int) (*csvLayout, error) {
	l := &csvLayout{headerLine: line, ncol: len(names)}
	for f := range l.col {
		l.col[f] = -1
	}
	var (
		he    = HeaderError{Line: line}
		known int
		seen  = make(map[string]bool, len(names))
		doses [maxDoses + 1]csvDose
		hasD  [maxDoses + 1]bool
	)
	for i := range doses {
		doses[i] = csvDose{number: i, vaccine: -1, date: -1, center: -1}
	}
	for i, raw := range names {
		name := strings.ToLower(strings.TrimSpace(raw))
		if seen[name] {
			he.Duplicate = append(he.Duplicate, columnName(name, i))
			continue
		}
		seen[name] = true
		if f := fieldByName(name); f != nFields {
			l.col[f] = i
			known++
			continue
		}
		if num, part, ok := doseColumn(name); ok {
			hasD[num] = true
			switch part {
			case "vaccine":
				doses[num].vaccine = i
			case "date":
				doses[num].date = i
			case "center":
				doses[num].center = i
			}
			known++
			continue
		}
		he.Unknown = append(he.Unknown, columnName(name, i))
	}
	if known == 0 {
		// Probably a data line: name nothing from it.
		return nil, &HeaderError{Line: line, Reason: "the first line is not a header (no known column names); expected " +
			strings.Join(fieldNames[:], ", ") + ", dose1_vaccine, dose1_date, dose1_center, …"}
	}
	for f, name := range fieldNames {
		if required[f] && l.col[f] < 0 {
			he.Missing = append(he.Missing, name)
		}
	}
	for num := 1; num <= maxDoses; num++ {
		if !hasD[num] {
			continue
		}
		d := doses[num]
		if d.vaccine < 0 {
			he.Missing = append(he.Missing, fmt.Sprintf("dose%d_vaccine", num))
		}
		if d.date < 0 {
			he.Missing = append(he.Missing, fmt.Sprintf("dose%d_date", num))
		}
		l.doses = append(l.doses, d)
	}
	if len(he.Unknown)+len(he.Missing)+len(he.Duplicate) > 0 {
		return nil, &he
	}
	return l, nil
}

// doseColumn parses "dose<N>_vaccine|date|center" with N in 1..maxDoses.
func doseColumn(name string) (int, string, bool) {
	rest, ok := strings.CutPrefix(name, "dose")
	if !ok {
		return 0, "", false
	}
	num, part, ok := strings.Cut(rest, "_")
	if !ok || num == "" || num[0] == '0' || len(num) > 2 {
		return 0, "", false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 || n > maxDoses {
		return 0, "", false
	}
	switch part {
	case "vaccine", "date", "center":
		return n, part, true
	}
	return 0, "", false
}

func columnName(name string, i int) string {
	if q := safeName(name); q != "" {
		return q
	}
	return "column " + strconv.Itoa(i+1)
}

// csvParser turns one CSV line into a row.
type csvParser struct {
	split  *csvSplitter
	layout *csvLayout
	v      *validator
	raw    rawRow
	fields []string
}

func (p *csvParser) row(line []byte, n int) store.ImportRow {
	r := &p.raw
	r.reset()
	if !utf8.Valid(line) {
		r.add("not valid UTF-8")
		return store.ImportRow{Line: n, Problem: r.problemText()}
	}
	fields, err := p.split.split(line, p.fields[:0])
	p.fields = fields
	if err != nil {
		r.add("not valid CSV: " + err.Error())
		return store.ImportRow{Line: n, Problem: r.problemText()}
	}
	if len(fields) != p.layout.ncol {
		r.problem("has %d fields; the header has %d", len(fields), p.layout.ncol)
		return store.ImportRow{Line: n, Problem: r.problemText()}
	}
	for f, c := range p.layout.col {
		if c >= 0 {
			r.val[f], r.has[f] = fields[c], true
		}
	}
	for _, d := range p.layout.doses {
		vac, date, center := fields[d.vaccine], fields[d.date], ""
		if d.center >= 0 {
			center = fields[d.center]
		}
		if strings.TrimSpace(vac) == "" {
			if strings.TrimSpace(date) != "" || strings.TrimSpace(center) != "" {
				r.problem("dose %d: date or center given without a vaccine", d.number)
			}
			continue
		}
		r.doses = append(r.doses, rawDose{item: d.number, number: d.number, numberSet: true,
			vaccine: vac, date: date, center: center})
	}
	return p.v.check(r, n)
}

// Reasons splitCSV gives; they never quote the line.
var (
	errBareQuote   = errors.New(`a quote (") inside an unquoted field`)
	errUnterminate = errors.New("a quoted field is not closed on its line")
	errAfterQuote  = errors.New("text after the closing quote of a field")
	errCSV         = errors.New("a malformed field")
)

// csvSplitter splits physical lines into RFC 4180 fields with one
// encoding/csv Reader, fed one line at a time. A quoted field may contain
// commas and doubled quotes but not a line break: no field of a record may
// hold one, and keeping rows to one line keeps line numbers exact and
// memory bounded.
type csvSplitter struct {
	src bytes.Reader
	br  *bufio.Reader
	cr  *csv.Reader
}

func newCSVSplitter() *csvSplitter {
	s := new(csvSplitter)
	// br has the default size, so csv.NewReader reads from it directly
	// (bufio.NewReaderSize reuses a large enough Reader). Either way every
	// Read takes its line up to the end of src, and the next line is fed
	// by resetting src and br.
	s.br = bufio.NewReader(&s.src)
	s.cr = csv.NewReader(s.br)
	s.cr.FieldsPerRecord = -1 // the caller compares with the header
	s.cr.ReuseRecord = true
	return s
}

// split splits line, which holds no line break, appending the fields to
// dst. Errors are errBareQuote, errUnterminate, errAfterQuote or errCSV.
func (s *csvSplitter) split(line []byte, dst []string) ([]string, error) {
	s.src.Reset(line)
	s.br.Reset(&s.src)
	rec, err := s.cr.Read()
	switch {
	case err == nil:
		return append(dst, rec...), nil
	case errors.Is(err, io.EOF):
		// encoding/csv skips an empty line (and drops a final '\r'):
		// one empty field.
		return append(dst, ""), nil
	}
	return dst, csvReason(err, line)
}

// csvReason turns an encoding/csv error, whose text may quote the line,
// into one of the reasons above.
func csvReason(err error, line []byte) error {
	var pe *csv.ParseError
	switch {
	case !errors.As(err, &pe):
		return errCSV // unreachable: reading from memory
	case errors.Is(pe.Err, csv.ErrBareQuote):
		return errBareQuote
	case errors.Is(pe.Err, csv.ErrQuote):
		// Reported at a closing quote (Column is a 1-based byte index):
		// text follows it. Past the end of the line: it is not closed.
		if c := pe.Column - 1; c >= 0 && c < len(line) && line[c] == '"' {
			return errAfterQuote
		}
		return errUnterminate
	}
	return errCSV
}

// splitCSV splits one physical line into fields, appending to dst.
func splitCSV(line []byte, dst []string) ([]string, error) {
	return newCSVSplitter().split(line, dst)
}
