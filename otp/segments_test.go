package otp

import (
	"strings"
	"testing"
)

func TestSegments(t *testing.T) {
	for _, c := range []struct {
		body string
		n    int
		enc  string
	}{
		{strings.Repeat("a", 160), 1, "GSM-7"},
		{strings.Repeat("a", 161), 2, "GSM-7"},
		{strings.Repeat("a", 306), 2, "GSM-7"},
		{strings.Repeat("a", 307), 3, "GSM-7"},
		{strings.Repeat("€", 80), 1, "GSM-7"}, // two septets each
		{strings.Repeat("€", 81), 2, "GSM-7"},
		{strings.Repeat("क", 70), 1, "UCS-2"},
		{strings.Repeat("क", 71), 2, "UCS-2"},
		{strings.Repeat("क", 134), 2, "UCS-2"},
		{strings.Repeat("क", 135), 3, "UCS-2"},
		{strings.Repeat("a", 69) + "😀", 2, "UCS-2"}, // a surrogate pair is two units
	} {
		n, enc := Segments(c.body)
		if n != c.n || enc != c.enc {
			t.Errorf("Segments(%d×%q…) = %d %s, want %d %s", len([]rune(c.body)), []rune(c.body)[0], n, enc, c.n, c.enc)
		}
	}
}

// TestDefaultTemplatesFitTwoSegments renders every default template with
// the longest values it can get (a 16-character agent label, a two-digit
// validity) and reports its segment count; none may exceed two.
func TestDefaultTemplatesFitTwoSegments(t *testing.T) {
	tpl := DefaultTemplates()
	worst := SMSData{Code: "123456", Minutes: 10, Agent: "desk-7 north 123", Tag: "KX42"}
	for a, langs := range tpl.t {
		for lang := range langs {
			body, err := tpl.Render(a, lang, worst)
			if err != nil {
				t.Fatal(err)
			}
			n, enc := Segments(body)
			t.Logf("%-11s %s: %d segment(s), %s, %d characters", a, lang, n, enc, len([]rune(body)))
			if n > 2 {
				t.Errorf("%s/%s takes %d segments (%s): %q", a, lang, n, enc, body)
			}
		}
	}
}
