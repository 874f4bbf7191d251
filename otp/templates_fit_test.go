package otp

import (
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/otpgate/otpgate/store"
)

// gsm7Basic and gsm7Ext are the GSM 03.38 default alphabet and its
// extension table (a character of the latter takes two septets).
const (
	gsm7Basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsm7Ext   = "^{}\\[~]|€\f"
)

// smsSegments returns how many segments s takes and its length in the
// encoding's units: GSM-7 septets (160 alone, 153 per part) when every
// character is in the GSM-7 alphabet, else UTF-16 units as UCS-2 (70
// alone, 67 per part).
func smsSegments(s string) (segments, units int, ucs2 bool) {
	for _, r := range s {
		switch {
		case strings.ContainsRune(gsm7Basic, r):
			units++
		case strings.ContainsRune(gsm7Ext, r):
			units += 2
		default:
			ucs2 = true
		}
	}
	single, part := 160, 153
	if ucs2 {
		units = len(utf16.Encode([]rune(s)))
		single, part = 70, 67
	}
	if units <= single {
		return 1, units, ucs2
	}
	return (units + part - 1) / part, units, ucs2
}

func TestSMSSegments(t *testing.T) {
	for _, c := range []struct {
		s        string
		segments int
		ucs2     bool
	}{
		{strings.Repeat("a", 160), 1, false},
		{strings.Repeat("a", 161), 2, false},
		{strings.Repeat("a", 306), 2, false},
		{strings.Repeat("a", 307), 3, false},
		{strings.Repeat("[", 80), 1, false},
		{strings.Repeat("[", 81), 2, false},
		{strings.Repeat("क", 70), 1, true},
		{strings.Repeat("क", 71), 2, true},
		{strings.Repeat("क", 134), 2, true},
		{strings.Repeat("क", 135), 3, true},
		{"— " + strings.Repeat("a", 132), 2, true}, // one dash makes it UCS-2
	} {
		if n, _, u := smsSegments(c.s); n != c.segments || u != c.ucs2 {
			t.Errorf("%.20q…: %d segments (ucs2 %v), want %d (ucs2 %v)", c.s, n, u, c.segments, c.ucs2)
		}
	}
}

// TestDefaultTemplatesFit renders every built-in template with the longest
// values and wants at most two segments, the code first, and the tag in it.
func TestDefaultTemplatesFit(t *testing.T) {
	tpl := DefaultTemplates()
	worst := SMSData{Code: "123456", Minutes: 10, Agent: "1234567890123456", Tag: "KX42"}
	for a, langs := range defaultTemplates {
		for lang := range langs {
			s, err := tpl.Render(a, lang, worst)
			if err != nil {
				t.Fatal(err)
			}
			n, units, ucs2 := smsSegments(s)
			t.Logf("%s/%s: %d units (ucs2 %v), %d segments", a, lang, units, ucs2, n)
			if n > 2 {
				t.Errorf("%s/%s takes %d segments (%d units, ucs2 %v): %s", a, lang, n, units, ucs2, s)
			}
			if !strings.HasPrefix(s, worst.Code+" ") || !strings.Contains(s, worst.Tag) || !strings.Contains(s, "otpgate") {
				t.Errorf("%s/%s: want the code first, the tag and the service name: %s", a, lang, s)
			}
			if a == store.AudienceStaff && !strings.Contains(s, "#"+worst.Agent) {
				t.Errorf("%s/%s: want the agent as #label, as /history shows it: %s", a, lang, s)
			}
			if lang != "en" && !ucs2 {
				t.Errorf("%s/%s is GSM-7: untranslated? %s", a, lang, s)
			}
		}
	}
}
