package bot

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

var fmtVerb = regexp.MustCompile(`%[dsv]`)

// scripts is the writing system of each language: CoWIN's twelve.
var scripts = map[string]*unicode.RangeTable{
	"en": unicode.Latin, "hi": unicode.Devanagari, "mr": unicode.Devanagari,
	"as": unicode.Bengali, "bn": unicode.Bengali, "gu": unicode.Gujarati,
	"kn": unicode.Kannada, "ml": unicode.Malayalam, "or": unicode.Oriya,
	"pa": unicode.Gurmukhi, "ta": unicode.Tamil, "te": unicode.Telugu,
}

func TestTwelveLanguages(t *testing.T) {
	var codes []string
	for _, l := range languages {
		codes = append(codes, l.Code)
		if _, ok := catalogue[l.Code]; !ok {
			t.Errorf("language %q in menu has no catalogue", l.Code)
		}
		if l.Code != "en" && !strings.ContainsFunc(l.Name, func(r rune) bool { return unicode.Is(scripts[l.Code], r) }) {
			t.Errorf("%s is listed as %q, not in its own script", l.Code, l.Name)
		}
	}
	want := []string{"en", "hi", "as", "bn", "gu", "kn", "ml", "mr", "or", "pa", "ta", "te"}
	if !slices.Equal(codes, want) {
		t.Fatalf("languages %v, want CoWIN's twelve %v", codes, want)
	}
	if len(catalogue) != len(languages) {
		t.Fatalf("%d catalogues for %d languages", len(catalogue), len(languages))
	}
}

// TestCatalogues: every key in every language, with the same placeholders
// in the same order, the same commands and line breaks as English, in the
// language's own script (no untranslated English, no letters of another
// Indic script), NFC, and within Telegram's 4,096 characters.
func TestCatalogues(t *testing.T) {
	cmd := regexp.MustCompile(`/[a-z]+`)
	for lang, c := range catalogue {
		script := scripts[lang]
		if script == nil {
			t.Errorf("%s: no script known", lang)
			continue
		}
		for m := msg(0); m < msgCount; m++ {
			s := c[m]
			if strings.TrimSpace(s) == "" {
				t.Errorf("%s: key %d is empty", lang, m)
				continue
			}
			if got, want := fmtVerb.FindAllString(s, -1), fmtVerb.FindAllString(english[m], -1); !slices.Equal(got, want) {
				t.Errorf("%s: key %d has verbs %v, English has %v", lang, m, got, want)
			}
			if strings.Count(s, "%") != strings.Count(english[m], "%") {
				t.Errorf("%s: key %d has a different number of %% signs than English", lang, m)
			}
			want, got := cmd.FindAllString(english[m], -1), cmd.FindAllString(s, -1)
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(slices.Compact(got), slices.Compact(want)) {
				t.Errorf("%s: key %d commands %v, English %v", lang, m, got, want)
			}
			if strings.Count(s, "\n") != strings.Count(english[m], "\n") {
				t.Errorf("%s: key %d line breaks differ from English", lang, m)
			}
			if !norm.NFC.IsNormalString(s) {
				t.Errorf("%s: key %d is not NFC", lang, m)
			}
			if n := utf8.RuneCountInString(s); n > 3500 {
				t.Errorf("%s: key %d has %d characters; with its arguments it may pass Telegram's 4,096", lang, m, n)
			}
			if lang == "en" {
				continue
			}
			layoutOnly := !strings.ContainsFunc(fmtVerb.ReplaceAllString(english[m], ""), unicode.IsLetter)
			if !layoutOnly && !strings.ContainsFunc(s, func(r rune) bool { return unicode.Is(script, r) }) {
				t.Errorf("%s: key %d has no letter of its script: %q", lang, m, s)
			}
			for _, r := range s {
				if unicode.IsLetter(r) && !unicode.Is(script, r) && !unicode.Is(unicode.Latin, r) {
					t.Errorf("%s: key %d has %q (U+%04X), a letter of another script", lang, m, r, r)
					break
				}
			}
		}
	}
}

func TestIDTypeNames(t *testing.T) {
	for _, l := range languages {
		names := idTypeNames[l.Code]
		for _, id := range []string{"aadhaar", "pan", "passport", "driving_licence", "voter_id", "ration_card", "other"} {
			if names[id] == "" {
				t.Errorf("%s: no name for %s", l.Code, id)
			}
		}
	}
}
