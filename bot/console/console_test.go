package console_test

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/otpgate/otpgate/bot"
	"github.com/otpgate/otpgate/bot/console"
)

// recorder answers every message with buttons and remembers what it got.
type recorder struct{ got []bot.Update }

func (r *recorder) Handle(_ context.Context, u bot.Update) []bot.Reply {
	r.got = append(r.got, u)
	return []bot.Reply{{ChatID: u.ChatID, Text: "pick\nsecond line", Buttons: [][]bot.Button{{{Text: "A", Data: "r:a"}}, {{Text: "B", Data: "r:b"}}}}}
}

func TestButtonsAndLines(t *testing.T) {
	rec := &recorder{}
	var out bytes.Buffer
	in := strings.NewReader("hello\n\n২\n3\n" + strings.Repeat("x", 200000) + "\n")
	err := console.Run(context.Background(), console.Options{Handler: rec, In: in, Out: console.NewWriter(&out), UserID: 7, Lang: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.got) != 4 {
		t.Fatalf("handled %d messages, want 4 (blank lines skipped)", len(rec.got))
	}
	if rec.got[0].Text != "hello" || rec.got[0].UserID != 7 || rec.got[0].Lang != "hi" || rec.got[0].ChatKind != bot.ChatPrivate {
		t.Fatalf("first update: %+v", rec.got[0])
	}
	if cb := rec.got[1].Callback; cb == nil || cb.Data != "r:b" || rec.got[1].Text != "" {
		t.Fatalf("\"২\" (Bengali 2) should press the second button: %+v", rec.got[1])
	}
	if rec.got[2].Callback != nil || rec.got[2].Text != "3" {
		t.Fatalf("\"3\" is not a button here and stays text: %+v", rec.got[2])
	}
	if n := len(rec.got[3].Text); n > 64<<10 || n < 4096 {
		t.Fatalf("a huge line should arrive bounded but still too long for the engine: %d bytes", n)
	}
	if !strings.Contains(out.String(), "bot> pick\n     second line\n     [1] A\n     [2] B\n") {
		t.Fatalf("rendering:\n%s", out.String())
	}
}

// photographer sends a proof image once.
type photographer struct{}

func (photographer) Handle(_ context.Context, u bot.Update) []bot.Reply {
	return []bot.Reply{{ChatID: u.ChatID, Text: "your proof", Photo: []byte("\x89PNG fake"), PhotoText: "OTPG1:ABC"}}
}

// TestPhotoIsSavedAndItsTextShown: a terminal cannot show the QR code, so
// it is written to a file whose path is printed, with the proof text.
func TestPhotoIsSavedAndItsTextShown(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	err := console.Run(context.Background(), console.Options{Handler: photographer{}, In: strings.NewReader("/certificate\n"),
		Out: console.NewWriter(&out), UserID: 1, PhotoDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`image saved to ([^\]\s]+)`).FindStringSubmatch(out.String())
	if m == nil || !strings.HasPrefix(m[1], dir) || !strings.Contains(out.String(), "OTPG1:ABC") {
		t.Fatalf("output:\n%s", out.String())
	}
	if b, err := os.ReadFile(m[1]); err != nil || string(b) != "\x89PNG fake" {
		t.Fatalf("saved image: %q, %v", b, err)
	}
}
