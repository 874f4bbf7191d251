// Package console is a terminal front end for the conversation engine: one
// local user in a private chat, reading a message per line from standard
// input. It serves `otpgate demo` and development; it applies the same
// engine, and so the same policy, as every other channel.
package console

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/otpgate/otpgate/bot"
	"github.com/otpgate/otpgate/pii"
)

// Options configure Run.
type Options struct {
	Handler bot.Handler
	In      io.Reader
	Out     io.Writer // shared with the console SMS sender: wrap it in a Writer
	UserID  int64
	Lang    string
	// Prompt, when set, is printed before each line is read (terminals).
	Prompt string
	// AfterEach runs after each message is handled, e.g. to wait until the
	// SMS a message triggered has been printed, so output stays in order.
	AfterEach func(ctx context.Context)
	// PhotoDir is where images the bot sends (a proof's QR code) are
	// written, since a terminal cannot show them; "" makes a new
	// directory under the system's temporary one on the first image.
	PhotoDir string
}

// Writer serialises writes from the chat and from the SMS sender.
type Writer struct {
	mu sync.Mutex
	w  io.Writer
}

// NewWriter wraps w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// maxLine bounds one input line; longer lines are passed on truncated
// past the engine's own limit, so the engine answers "too long".
const maxLine = 64 << 10

// Run reads messages until In ends or ctx is done. A line that is a button
// number ("1", "2", …) presses that button of the last message that had
// buttons.
func Run(ctx context.Context, o Options) error {
	if o.Handler == nil || o.In == nil || o.Out == nil {
		return errors.New("console: Handler, In and Out are required")
	}
	lines := make(chan string)
	readErr := make(chan error, 1)
	go func() {
		defer close(lines)
		r := bufio.NewReaderSize(o.In, 4096)
		for {
			line, err := readLine(r)
			if line != "" || err == nil {
				select {
				case lines <- line:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					readErr <- err
				}
				return
			}
		}
	}()
	var buttons []bot.Button
	msgID := 0
	for {
		if o.Prompt != "" {
			fmt.Fprint(o.Out, o.Prompt)
		}
		var line string
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case line, ok = <-lines:
		}
		if !ok {
			select {
			case err := <-readErr:
				return fmt.Errorf("console: read: %w", err)
			default:
				return nil
			}
		}
		line = strings.TrimRight(line, "\r\n")
		if strings.TrimSpace(line) == "" {
			continue
		}
		msgID++
		u := bot.Update{ChatID: o.UserID, ChatKind: bot.ChatPrivate, UserID: o.UserID, Lang: o.Lang, MessageID: msgID, Text: line}
		// A button's number, in any script's digits ("২" presses the second).
		digits, _ := pii.Digits(strings.TrimSpace(line))
		if n, err := strconv.Atoi(digits); err == nil && digits != "" && n >= 1 && n <= len(buttons) {
			u.Text = ""
			u.Callback = &bot.Callback{ID: strconv.Itoa(msgID), Data: buttons[n-1].Data}
		}
		replies := o.Handler.Handle(ctx, u)
		for _, r := range replies {
			if r.Text == "" {
				continue
			}
			if len(r.Buttons) > 0 {
				buttons = buttons[:0]
			}
			render(o.Out, r, &buttons)
			if len(r.Photo) > 0 {
				if err := savePhoto(o.Out, &o.PhotoDir, r); err != nil {
					fmt.Fprintf(o.Out, "     (the image could not be saved: %v)\n", err)
				}
			}
		}
		if o.AfterEach != nil {
			o.AfterEach(ctx)
		}
	}
}

func readLine(r *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		chunk, isPrefix, err := r.ReadLine()
		if b.Len() < maxLine {
			b.Write(chunk)
		}
		if err != nil {
			return b.String(), err
		}
		if !isPrefix {
			return b.String(), nil
		}
	}
}

func render(w io.Writer, r bot.Reply, buttons *[]bot.Button) {
	var b strings.Builder
	for i, line := range strings.Split(r.Text, "\n") {
		if i == 0 {
			b.WriteString("bot> ")
		} else {
			b.WriteString("     ")
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	for _, row := range r.Buttons {
		for _, btn := range row {
			if btn.Start != "" { // a link into a private chat: the terminal is one already
				fmt.Fprintf(&b, "     [%s: send /start %s]\n", btn.Text, btn.Start)
				continue
			}
			*buttons = append(*buttons, btn)
			fmt.Fprintf(&b, "     [%d] %s\n", len(*buttons), btn.Text)
		}
	}
	if len(r.Buttons) > 0 {
		b.WriteString("     (type the number to choose)\n")
	}
	if r.ContactButton != "" {
		fmt.Fprintf(&b, "     (on Telegram a button \"%s\" appears here)\n", r.ContactButton)
	}
	if r.Sensitive && r.DeleteAfter > 0 {
		fmt.Fprintf(&b, "     (protected from forwarding; on Telegram deleted after %d min)\n", int(r.DeleteAfter.Round(time.Minute)/time.Minute))
	}
	_, _ = io.WriteString(w, b.String())
}

// savePhoto writes the image to a file in dir (made on first use) and
// prints its path and the text it encodes. The file outlives the session:
// it is the beneficiary's to keep.
func savePhoto(w io.Writer, dir *string, r bot.Reply) error {
	if *dir == "" {
		d, err := os.MkdirTemp("", "otpgate-proofs-")
		if err != nil {
			return err
		}
		*dir = d
	}
	f, err := os.CreateTemp(*dir, "proof-*.png")
	if err != nil {
		return err
	}
	if _, err := f.Write(r.Photo); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(w, "     [image saved to %s]\n", f.Name())
	if r.PhotoText != "" {
		fmt.Fprintf(w, "     [the QR code holds: %s]\n", r.PhotoText)
	}
	return nil
}
