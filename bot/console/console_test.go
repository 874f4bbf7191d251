package console_test

import (
	"bytes"
	"context"
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
