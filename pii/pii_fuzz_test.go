package pii

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// Fuzz targets for every parser of chat and file input. The seeds run in
// every `go test`, so each one is a regression test; `go test -fuzz` grows
// the corpus from them (see the README).

// zeros are the code points of the digit zero of scripts people may type
// (or paste) in: the twelve CoWIN languages' scripts and their neighbours,
// full-width forms, and the five mathematical styles, which sit back to back
// as one run of fifty digits (U+1D7CE–U+1D7FF).
var zeros = []rune{
	'0',
	'\u0660',     // Arabic-Indic
	'\u06F0',     // Extended Arabic-Indic (Urdu, Persian)
	'\u07C0',     // NKo
	'\u0966',     // Devanagari (Hindi, Marathi)
	'\u09E6',     // Bengali, Assamese
	'\u0A66',     // Gurmukhi (Punjabi)
	'\u0AE6',     // Gujarati
	'\u0B66',     // Odia
	'\u0BE6',     // Tamil
	'\u0C66',     // Telugu
	'\u0CE6',     // Kannada
	'\u0D66',     // Malayalam
	'\u0DE6',     // Sinhala Lith
	'\u0E50',     // Thai
	'\u0ED0',     // Lao
	'\u0F20',     // Tibetan
	'\u1040',     // Myanmar
	'\u1090',     // Myanmar Shan
	'\u17E0',     // Khmer
	'\u1810',     // Mongolian
	'\u1C50',     // Ol Chiki (Santali)
	'\uA9D0',     // Javanese
	'\uABF0',     // Meetei Mayek (Manipuri)
	'\uFF10',     // full-width
	'\U000104A0', // Osmanya
	'\U00011066', // Brahmi
	'\U000116C0', // Takri
	'\U0001D7CE', // mathematical bold
	'\U0001D7D8', // mathematical double-struck
	'\U0001D7E2', // mathematical sans-serif
	'\U0001D7EC', // mathematical sans-serif bold
	'\U0001D7F6', // mathematical monospace
	'\U0001E950', // Adlam
	'\U0001FBF0', // segmented digits
}

// inScript rewrites the ASCII digits of s in the script whose zero is z.
func inScript(s string, z rune) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return z + (r - '0')
		}
		return r
	}, s)
}

// nasty are inputs every parser gets as seeds, on top of its own.
var nasty = []string{
	"",
	" ",
	"\x00",
	"98765\x0043210",
	"\xff\xfe\xfd",
	"9876543210\xff",
	"\xc0\xaf9876543210", // overlong encoding
	"\xed\xa0\x80",       // a UTF-16 surrogate, encoded
	"98765\u200b43210",   // zero-width space
	"\u200b9876543210",
	"98765\u200c43210\u200d", // ZWNJ, ZWJ
	"\u200f9876543210",       // RTL mark
	"\u202e0123456789\u202c", // RTL override
	"\u2067+91 98765 43210\u2069",
	"\ufeff9876543210", // byte order mark
	"98765\u00ad43210", // soft hyphen
	"９８７６５−４３２１０",      // full-width digits, minus sign
	"+٩١ ٩٨٧٦٥ ٤٣٢١٠",  // Arabic-Indic
	"+91 ９８７６５ 43210",  // scripts mixed
	"𝟗𝟖𝟕𝟔𝟓𝟒𝟑𝟐𝟏𝟎", // mathematical bold
	"𝟿𝟾𝟽𝟼𝟻𝟺𝟹𝟸𝟷𝟶", // mathematical monospace
	"¹²³⁴⁵⁶",     // superscripts: digits, but not decimal (Nd)
	"①②③④⑤⑥",
	"Ⅻ",
	"++919876543210",
	"+",
	"00",
	"0000000000",
	"+0000000000",
	"0091",
	"+91",
	"(((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((",
	"- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - ",
	strings.Repeat("9", 64),
	strings.Repeat("9", 65),
	strings.Repeat("9", 100000),
	strings.Repeat("𝟿", 16),
	strings.Repeat(" ", 63) + "9876543210",
	strings.Repeat("\u200b", 1000),
	"<script>alert(1)</script>",
	"'; DROP TABLE records; --",
	"%s%s%s%n",
	"9876543210\n123456",
	"/lookup 9876543210",
}

func addSeeds(f *testing.F, own ...string) {
	for _, s := range append(own, nasty...) {
		f.Add(s)
	}
}

// isASCIIDigits reports whether s is non-empty and only 0-9.
func isASCIIDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// checkE164 fails unless m is "+" and 8 to 15 ASCII digits, not starting 0.
func checkE164(t *testing.T, in string, m Mobile) {
	t.Helper()
	s := string(m)
	d, ok := strings.CutPrefix(s, "+")
	if !ok || len(d) < 8 || len(d) > 15 || !isASCIIDigits(d) || d[0] == '0' {
		t.Fatalf("ParseMobile(%q) = %q: not E.164", in, s)
	}
}

// checkMasked fails if any printed form of m shows more than the calling
// code and the last four digits, or shows those wrong.
func checkMasked(t *testing.T, m Mobile) {
	t.Helper()
	d := strings.TrimPrefix(m.E164(), "+")
	cc := CountryCode(m)
	if len(cc) < 1 || len(cc) > 3 || !strings.HasPrefix(d, cc) {
		t.Fatalf("CountryCode(%q) = %q", m.E164(), cc)
	}
	want := "+" + cc + strings.Repeat("*", len(d)-len(cc)-4) + d[len(d)-4:]
	if len(d)-len(cc)-4 < 1 {
		t.Fatalf("%q: nothing of the number is hidden", m.E164())
	}
	if got := m.String(); got != want {
		t.Fatalf("Mobile(%q).String() = %q, want %q", m.E164(), got, want)
	}
	if got := m.LogValue().String(); got != want {
		t.Fatalf("Mobile(%q).LogValue() = %q, want %q", m.E164(), got, want)
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%v %s %q %+v %v\n", m, m, m, m, []Mobile{m})
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "mobile", m)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "mobile", m, "ident", Identifier{Kind: KindMobile, Mobile: m})
	// The subscriber part, bar its last four digits, must not appear; nor
	// may the whole national number.
	if hidden := d[len(cc) : len(d)-4]; strings.Contains(buf.String(), hidden+d[len(d)-4:]) {
		t.Fatalf("%q printed in full: %s", m.E164(), buf.String())
	}
	if strings.Contains(buf.String(), m.E164()) {
		t.Fatalf("%q printed: %s", m.E164(), buf.String())
	}
}

// checkErr fails unless err is exactly one of the package's sentinels,
// whose fixed texts name no digit, so that no error can quote its input.
func checkErr(t *testing.T, in string, err error, sentinels ...error) {
	t.Helper()
	ok := false
	for _, s := range sentinels {
		ok = ok || err == s
	}
	if !ok {
		t.Fatalf("%q: error %v (%T) is not a sentinel", in, err, err)
	}
	if strings.ContainsFunc(err.Error(), unicode.IsDigit) {
		t.Fatalf("%q: error text %q holds a digit", in, err)
	}
	if len(in) >= 4 && strings.Contains(err.Error(), in) {
		t.Fatalf("error text %q quotes the input", err)
	}
}

// oracleDigit is the value of a decimal digit by the rule digitValue relies
// on — Unicode lays every digit set out as ten consecutive code points from
// zero — with no shortcut: it walks back to the start of the run.
func oracleDigit(r rune) byte {
	n := 0
	for unicode.Is(unicode.Nd, r-rune(n)-1) {
		n++
	}
	return byte('0' + n%10)
}

// TestDigitValueEveryScript checks every decimal digit Unicode (as Go
// knows it) defines, so a new, longer run of digits cannot slip by. The
// mathematical digits U+1D7CE–U+1D7FF are one run of fifty; their
// monospace style used to read as all zeros.
func TestDigitValueEveryScript(t *testing.T) {
	prev, start := rune(-2), rune(-1)
	for _, rt := range unicode.Nd.R16 {
		for r := rune(rt.Lo); r <= rune(rt.Hi); r += rune(rt.Stride) {
			if r != prev+1 {
				start = r
			}
			prev = r
			if got, want := digitValue(r), int(r-start)%10; got != want {
				t.Errorf("digitValue(%U) = %d, want %d", r, got, want)
			}
		}
	}
	for _, rt := range unicode.Nd.R32 {
		for r := rune(rt.Lo); r <= rune(rt.Hi); r += rune(rt.Stride) {
			if r != prev+1 {
				start = r
			}
			prev = r
			if got, want := digitValue(r), int(r-start)%10; got != want {
				t.Errorf("digitValue(%U) = %d, want %d", r, got, want)
			}
		}
	}
	for _, z := range zeros {
		if got, ok := Digits(inScript("98765 43210", z)); !ok || got != "9876543210" {
			t.Errorf("Digits in the script of %U = %q, %v", z, got, ok)
		}
		if m, err := ParseMobile(inScript("+91 98765 43210", z)); err != nil || m != "+919876543210" {
			t.Errorf("ParseMobile in the script of %U = %q, %v", z, m.E164(), err)
		}
		if c, ok := ParseCode(inScript("482 913", z), 6); !ok || c != "482913" {
			t.Errorf("ParseCode in the script of %U = %q, %v", z, string(c), ok)
		}
	}
}

func FuzzDigits(f *testing.F) {
	var own []string
	for _, z := range zeros {
		own = append(own, inScript("0123456789", z), inScript("98765-43210", z))
	}
	addSeeds(f, own...)
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := Digits(s)
		if !ok {
			if d != "" {
				t.Fatalf("Digits(%q) = %q, false", s, d)
			}
			return
		}
		// One ASCII digit per decimal digit of the input, of its value.
		var want []byte
		for _, r := range s {
			switch {
			case unicode.Is(unicode.Nd, r):
				want = append(want, oracleDigit(r))
			case r == utf8.RuneError:
				t.Fatalf("Digits(%q) accepted invalid UTF-8", s)
			}
		}
		if d != string(want) {
			t.Fatalf("Digits(%q) = %q, want %q", s, d, want)
		}
		if d != "" && !isASCIIDigits(d) {
			t.Fatalf("Digits(%q) = %q: not ASCII digits", s, d)
		}
		if again, ok := Digits(d); !ok || again != d {
			t.Fatalf("Digits not idempotent on %q: %q", d, again)
		}
	})
}

func FuzzParseMobile(f *testing.F) {
	addSeeds(f,
		"9876543210", "+91 98765 43210", "098765-43210", "919876543210", "0091 98765 43210",
		"(+91) 98765.43210", "+91\u00a098765\u202f43210", "+91‐98765–43210", "＋９１９８７６５４３２１０",
		"९८७६५४३२१०", "৯৮৭৬৫৪৩২১০", "௯௮௭௬௫௪௩௨௧௦", "𝟿𝟾𝟽𝟼𝟻𝟺𝟹𝟸𝟷𝟶",
		"+44 7700 900123", "+1 415 555 2671", "+880 1712 345678", "+97150 1234567", "+12345678", "+123456789012345",
		"+1234567890123456", "1234567890", "5876543210", "+915876543210", "+9198765432101",
	)
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMobile(s)
		if err != nil {
			if m != "" {
				t.Fatalf("ParseMobile(%q) = %q and an error", s, m.E164())
			}
			checkErr(t, s, err, ErrNotMobile)
			return
		}
		checkE164(t, s, m)
		if again, err := ParseMobile(m.E164()); err != nil || again != m {
			t.Fatalf("ParseMobile(%q) = %q, but that re-parses to %q, %v", s, m.E164(), again.E164(), err)
		}
		if d, _, _ := digitsOnly(strings.TrimSpace(s), true); !strings.HasSuffix(d, m.E164()[len(m)-8:]) {
			t.Fatalf("ParseMobile(%q) = %q: not the digits typed (%q)", s, m.E164(), d)
		}
		if strings.HasPrefix(m.E164(), "+91") && (len(m) != 13 || m[3] < '6') {
			t.Fatalf("ParseMobile(%q) = %q: not an Indian mobile", s, m.E164())
		}
		checkMasked(t, m)
	})
}

func FuzzParseCode(f *testing.F) {
	for _, s := range append([]string{"482913", "482 913", "48-29-13", "४८२९१३", "𝟺𝟾𝟸𝟿𝟷𝟹", "４８２９１３", " 482913 ",
		"4829130", "48291", "482913a", "+482913", "4829135678", "48\u200b2913", "\u202e482913"}, nasty...) {
		for _, n := range []int{6, 8, 10} {
			f.Add(s, n)
		}
	}
	f.Fuzz(func(t *testing.T, s string, n int) {
		c, ok := ParseCode(s, n)
		if !ok {
			if c != "" {
				t.Fatalf("ParseCode(%q, %d) = %q, false", s, n, string(c))
			}
			return
		}
		if len(c) != n || (n > 0 && !isASCIIDigits(string(c))) {
			t.Fatalf("ParseCode(%q, %d) = %q: not %d ASCII digits", s, n, string(c), n)
		}
		if d, _ := Digits(strings.TrimSpace(s)); d != string(c) {
			t.Fatalf("ParseCode(%q, %d) = %q, but its digits are %q", s, n, string(c), d)
		}
		if n > 0 && (c.String() != "<code>" || c.LogValue().String() != "<code>" || fmt.Sprint(c) != "<code>") {
			t.Fatalf("code %q prints", string(c))
		}
	})
}

func FuzzNormalizeID(f *testing.F) {
	addSeeds(f, "1234 1234 1234", "१२३४ १२३४ १२३४", "ABCDE1234F", "abcde 1234-f", "A1234567", "DL-0420110012345",
		"MH/12/2011/0012345", "UP.14.AB.1234", "abc", "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456", "ÄBCDE1234F", "ＡＢＣＤＥ1234Ｆ",
		"ıbcde1234f", "ſ1234", "K1234") // dotless i, long s, Kelvin sign: Unicode letters that upper-case to ASCII
	f.Fuzz(func(t *testing.T, s string) {
		id, ok := NormalizeID(s)
		if !ok {
			if id != "" {
				t.Fatalf("NormalizeID(%q) = %q, false", s, string(id))
			}
			return
		}
		v := id.Value()
		if len(v) < 4 || len(v) > 32 {
			t.Fatalf("NormalizeID(%q) = %q: length %d", s, v, len(v))
		}
		for i := 0; i < len(v); i++ {
			if c := v[i]; !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z') {
				t.Fatalf("NormalizeID(%q) = %q: byte %q", s, v, c)
			}
		}
		if again, ok := NormalizeID(v); !ok || again != id {
			t.Fatalf("NormalizeID not idempotent: %q → %q → %q", s, v, string(again))
		}
		if id.Last4() != v[len(v)-4:] {
			t.Fatalf("Last4(%q) = %q", v, id.Last4())
		}
		if got, want := id.String(), "****"+v[len(v)-4:]; got != want || id.LogValue().String() != want || fmt.Sprint(id) != want {
			t.Fatalf("IDNumber(%q) prints %q, want %q", v, got, want)
		}
	})
}

func FuzzParseReference(f *testing.F) {
	addSeeds(f, "12345678901234", "१२३४५६७८९०१२३४", "𝟷𝟸𝟹𝟺𝟻𝟼𝟽𝟾𝟿𝟶𝟷𝟸𝟹𝟺", "1234 5678 9012 34", "1234567890123", "123456789012345")
	f.Fuzz(func(t *testing.T, s string) {
		ref, ok := ParseReference(s)
		if !ok {
			if ref != "" {
				t.Fatalf("ParseReference(%q) = %q, false", s, ref)
			}
			return
		}
		if len(ref) != 14 || !isASCIIDigits(ref) {
			t.Fatalf("ParseReference(%q) = %q: not 14 ASCII digits", s, ref)
		}
		if d, _ := Digits(strings.TrimSpace(s)); d != ref {
			t.Fatalf("ParseReference(%q) = %q, but its digits are %q", s, ref, d)
		}
	})
}

func FuzzParseIdentifier(f *testing.F) {
	addSeeds(f, "12345678901234", "१२३४५६७८९०१२३४", "9876543210", "+919876543210", "+44 7700 900123", "09876543210",
		"1234 1234 1234", "ABCDE1234F", "abcde1234f", "A1234567", "ABC1234567", "12", "hello world!", "+91 12345 67890",
		"1234567890", "𝟿𝟾𝟽𝟼𝟻𝟺𝟹𝟸𝟷𝟶", "/lookup 9876543210")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseIdentifier(s)
		if err != nil {
			if id != (Identifier{}) {
				t.Fatalf("ParseIdentifier(%q) = %+v and an error", s, id)
			}
			checkErr(t, s, err, ErrNotIdentifier)
			return
		}
		switch id.Kind {
		case KindReference:
			if id.Mobile != "" || id.ID != "" || len(id.Ref) != 14 || !isASCIIDigits(id.Ref) {
				t.Fatalf("ParseIdentifier(%q) = %+v", s, id)
			}
		case KindMobile:
			if id.Ref != "" || id.ID != "" {
				t.Fatalf("ParseIdentifier(%q) = %+v", s, id)
			}
			checkE164(t, s, id.Mobile)
			checkMasked(t, id.Mobile)
		case KindIDNumber:
			if id.Ref != "" || id.Mobile != "" {
				t.Fatalf("ParseIdentifier(%q) = %+v", s, id)
			}
			if again, ok := NormalizeID(id.ID.Value()); !ok || again != id.ID || len(id.ID) < 6 {
				t.Fatalf("ParseIdentifier(%q) = ID %q", s, id.ID.Value())
			}
		default:
			t.Fatalf("ParseIdentifier(%q): kind %d", s, id.Kind)
		}
		// Printed, an identifier says only what kind it is.
		want := id.Kind.String()
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "ident", id)
		if id.String() != want || id.LogValue().String() != want || fmt.Sprint(id) != want ||
			!strings.Contains(buf.String(), `"ident":"`+want+`"`) {
			t.Fatalf("identifier %q prints %q / %s", s, id.String(), buf.String())
		}
	})
}
