package bot_test

import (
	"context"
	"strings"
	"testing"
	"unicode"

	"github.com/otpgate/otpgate/bot"
)

// zero is the digit zero of each language's script (ASCII for English).
var zero = map[string]rune{
	"en": '0', "hi": '०', "mr": '०', "as": '০', "bn": '০', "gu": '૦', "kn": '೦',
	"ml": '൦', "or": '୦', "pa": '੦', "ta": '௦', "te": '౦',
}

var script = map[string]*unicode.RangeTable{
	"en": unicode.Latin, "hi": unicode.Devanagari, "mr": unicode.Devanagari,
	"as": unicode.Bengali, "bn": unicode.Bengali, "gu": unicode.Gujarati,
	"kn": unicode.Kannada, "ml": unicode.Malayalam, "or": unicode.Oriya,
	"pa": unicode.Gurmukhi, "ta": unicode.Tamil, "te": unicode.Telugu,
}

func inScript(lang, s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return unicode.Is(script[lang], r) })
}

func toScript(lang, ascii string) string {
	return strings.Map(func(r rune) rune { return zero[lang] + (r - '0') }, ascii)
}

// TestEveryLanguageEndToEnd: a user whose Telegram client sends one of the
// twelve language codes gets /start in that language's script, the SMS in
// it, types the code (and the mobile) in that script's digits, and sees the
// record.
func TestEveryLanguageEndToEnd(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for i, lang := range bot.Languages() {
		t.Run(lang, func(t *testing.T) {
			user := int64(1000 + i)
			send := func(text string) []bot.Reply {
				r := h.eng.Handle(ctx, bot.Update{ChatID: user, UserID: user, ChatKind: bot.ChatPrivate, Lang: lang + "-IN", Text: text, MessageID: 3})
				if err := h.svc.Idle(ctx); err != nil {
					t.Fatal(err)
				}
				return r
			}
			if r := joined(send("/start")); !inScript(lang, r) {
				t.Fatalf("/start is not in %s's script: %q", lang, r)
			}
			send("/lookup " + toScript(lang, "9000000202"))
			sms := h.ph.Last("9000000202")
			if sms == "" || !inScript(lang, sms) {
				t.Fatalf("SMS not in %s's script: %q", lang, sms)
			}
			code := h.ph.Code("9000000202")
			r := joined(send(toScript(lang, code)))
			if !strings.Contains(r, "Farah Khan") || !inScript(lang, r) {
				t.Fatalf("typing the code in %s digits did not show the record in %s: %q", lang, lang, r)
			}
		})
	}
}

// TestLanguageMenuAndChoice: /language lists all twelve, each in its own
// script; a choice overrides the client's language and is remembered.
func TestLanguageMenuAndChoice(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	r := h.eng.Handle(ctx, bot.Update{ChatID: 7, UserID: 7, Lang: "en", Text: "/language"})
	if len(r) != 1 || len(r[0].Buttons) != 12 {
		t.Fatalf("/language: %+v", r)
	}
	for i, lang := range bot.Languages() {
		b := r[0].Buttons[i][0]
		if b.Data != "lang:"+lang || (lang != "en" && !inScript(lang, b.Text)) {
			t.Errorf("button %d: %+v", i, b)
		}
	}
	h.eng.Handle(ctx, bot.Update{ChatID: 7, UserID: 7, Lang: "en", Callback: &bot.Callback{ID: "c", Data: "lang:ta"}})
	if r := joined(h.eng.Handle(ctx, bot.Update{ChatID: 7, UserID: 7, Lang: "en", Text: "/help"})); !inScript("ta", r) {
		t.Fatalf("after choosing Tamil, /help is %q", r)
	}
}
