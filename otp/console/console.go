// Package console is an SMS sender for demos and development only: instead
// of reaching a phone, it prints each message to a terminal, as the phone's
// screen would show it. The body — one-time code included — is printed in
// full because that is the point; the number is masked. It writes only to
// the writer it is given and never to a logger, so codes cannot end up in
// log files. Never configure it in production.
package console

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode"

	"github.com/otpgate/otpgate/otp"
	"github.com/otpgate/otpgate/pii"
)

// Sender prints messages to a writer, one line each. It is safe for
// concurrent use.
type Sender struct {
	mu sync.Mutex // keeps concurrent lines from interleaving
	w  io.Writer
}

var _ otp.Sender = (*Sender)(nil)

// New returns a Sender that writes to w (typically os.Stdout).
func New(w io.Writer) *Sender {
	return &Sender{w: w}
}

// Send writes "SMS to +91******3210: <body>" as a single line. Line breaks
// and other control characters in the body become spaces so that one SMS is
// always one line, whatever the template holds.
func (s *Sender) Send(ctx context.Context, to pii.Mobile, body string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("console sms: %w", err)
	}
	line := "SMS to " + to.String() + ": " + oneLine(body) + "\n"

	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := io.WriteString(s.w, line); err != nil {
		return fmt.Errorf("console sms: %w", err)
	}
	return nil
}

// oneLine replaces CRLF, line and paragraph separators and every other
// control character (which could also move the cursor or clear the
// terminal) with a space.
func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
}
