package recordfile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/otpgate/otpgate/store"
)

// RefFile is a removal file (otpgate import --remove): one reference id a
// line. A first line "reference_id" (a CSV header) is skipped, and a line
// may also be a JSON object with a "reference_id" member, so the ids can
// be cut from a CSV column or an import file. Blank lines are skipped.
type RefFile struct {
	f *os.File
}

// OpenRefs opens the removal file at path.
func OpenRefs(path string) (*RefFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return &RefFile{f: f}, nil
}

// Close closes the file.
func (r *RefFile) Close() error { return r.f.Close() }

// Refs yields every row of the file, from its start on every call (a
// store.RefSource). Like import rows, a problem describes the line and
// never quotes it.
func (r *RefFile) Refs(ctx context.Context, fn func(store.RefRow) error) error {
	if _, err := r.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return readRefs(ctx, r.f, fn)
}

func readRefs(ctx context.Context, in io.Reader, fn func(store.RefRow) error) error {
	lr := newLineReader(in)
	for {
		b, line, err := lr.next()
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case errors.Is(err, errLineTooLong):
			if err := fn(store.RefRow{Line: line, Problem: fmt.Sprintf("line longer than %d bytes", MaxLineBytes)}); err != nil {
				return err
			}
			continue
		case err != nil:
			return err
		}
		if line%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		s := strings.TrimSpace(string(b))
		if line == 1 && strings.EqualFold(strings.Trim(s, `"`), "reference_id") {
			continue
		}
		if err := fn(refRow(line, s)); err != nil {
			return err
		}
	}
}

func refRow(line int, s string) store.RefRow {
	if strings.HasPrefix(s, "{") {
		var obj struct {
			RefID *string `json:"reference_id"`
		}
		if err := json.Unmarshal([]byte(s), &obj); err != nil {
			return store.RefRow{Line: line, Problem: "not a reference id, nor a JSON object with one"}
		}
		if obj.RefID == nil {
			return store.RefRow{Line: line, Problem: "reference_id: missing"}
		}
		s = strings.TrimSpace(*obj.RefID)
	}
	ref, ok := parseReference(strings.Trim(s, `"`))
	if !ok {
		return store.RefRow{Line: line, Problem: "reference_id: must be exactly 14 digits"}
	}
	return store.RefRow{Line: line, RefID: ref}
}
