package bot

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

var fmtVerb = regexp.MustCompile(`%[dsv]`)

func TestCatalogueComplete(t *testing.T) {
	for _, l := range languages {
		if _, ok := catalogue[l.Code]; !ok {
			t.Errorf("language %q in menu has no catalogue", l.Code)
		}
	}
	for lang, c := range catalogue {
		for m := msg(0); m < msgCount; m++ {
			s := c[m]
			if strings.TrimSpace(s) == "" {
				t.Errorf("%s: key %d is empty", lang, m)
				continue
			}
			want := fmtVerb.FindAllString(english[m], -1)
			got := fmtVerb.FindAllString(s, -1)
			if !slices.Equal(got, want) {
				t.Errorf("%s: key %d has verbs %v, English has %v", lang, m, got, want)
			}
			if strings.Count(s, "%") != strings.Count(english[m], "%") {
				t.Errorf("%s: key %d has a different number of %% signs than English", lang, m)
			}
		}
	}
}

func TestCatalogueHindiDevanagari(t *testing.T) {
	for m := msg(0); m < msgCount; m++ {
		if !strings.ContainsFunc(fmtVerb.ReplaceAllString(english[m], ""), unicode.IsLetter) {
			continue // a pure layout entry such as "• %s — %s — %s"
		}
		if !strings.ContainsFunc(hindi[m], func(r rune) bool { return unicode.Is(unicode.Devanagari, r) }) {
			t.Errorf("hindi key %d has no Devanagari: %q", m, hindi[m])
		}
	}
}

func TestCatalogueHindiCommands(t *testing.T) {
	cmd := regexp.MustCompile(`/[a-z]+`)
	for m := msg(0); m < msgCount; m++ {
		want := cmd.FindAllString(english[m], -1)
		got := cmd.FindAllString(hindi[m], -1)
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(slices.Compact(got), slices.Compact(want)) {
			t.Errorf("hindi key %d commands %v, English %v", m, got, want)
		}
		if strings.Count(hindi[m], "\n") != strings.Count(english[m], "\n") {
			t.Errorf("hindi key %d line breaks differ from English", m)
		}
	}
}
