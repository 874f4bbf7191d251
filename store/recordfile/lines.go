package recordfile

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

var errLineTooLong = errors.New("line too long")

// lineReader yields the non-blank physical lines of a file with their
// 1-based line numbers, without line endings and without a leading UTF-8
// byte order mark. Memory is bounded by MaxLineBytes: a longer line is
// skipped and reported as errLineTooLong.
type lineReader struct {
	br   *bufio.Reader
	line int
}

func newLineReader(r io.Reader) *lineReader {
	// Room for a maximal line plus "\r\n", so ReadSlice finds its end.
	return &lineReader{br: bufio.NewReaderSize(r, MaxLineBytes+2)}
}

// next returns the next non-blank line and its number. The slice is valid
// until the following call. At the end it returns io.EOF.
func (lr *lineReader) next() ([]byte, int, error) {
	for {
		b, err := lr.br.ReadSlice('\n')
		if len(b) == 0 && err != nil {
			return nil, lr.line, err
		}
		lr.line++
		if errors.Is(err, bufio.ErrBufferFull) {
			if err := lr.discardLine(); err != nil {
				return nil, lr.line, err
			}
			return nil, lr.line, errLineTooLong
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, lr.line, err
		}
		if lr.line == 1 {
			b = bytes.TrimPrefix(b, bom)
		}
		b = trimEOL(b)
		if len(b) > MaxLineBytes {
			return nil, lr.line, errLineTooLong
		}
		if isBlank(b) {
			if errors.Is(err, io.EOF) {
				return nil, lr.line, io.EOF
			}
			continue
		}
		return b, lr.line, nil
	}
}

// discardLine skips to just past the next newline.
func (lr *lineReader) discardLine() error {
	for {
		_, err := lr.br.ReadSlice('\n')
		switch {
		case err == nil, errors.Is(err, io.EOF):
			return nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return err
		}
	}
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}
