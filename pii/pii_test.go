package pii

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestParseMobile(t *testing.T) {
	cases := []struct {
		in   string
		want Mobile
		ok   bool
	}{
		{"9876543210", "+919876543210", true},
		{"+91 98765 43210", "+919876543210", true},
		{"098765-43210", "+919876543210", true},
		{"919876543210", "+919876543210", true},
		{"0091 98765 43210", "+919876543210", true},
		{"(+91) 98765.43210", "+919876543210", true},
		{"९८७६५४३२१०", "+919876543210", true}, // Devanagari
		{"৯৮৭৬৫৪৩২১০", "+919876543210", true}, // Bengali
		{"௯௮௭௬௫௪௩௨௧௦", "+919876543210", true}, // Tamil
		{"９８７６５４３２１０", "+919876543210", true}, // full-width
		{"+44 7700 900123", "+447700900123", true},
		{"1234567890", "", false}, // Indian mobiles start 6-9
		{"98765", "", false},
		{"98765432101", "", false},
		{"9876543210x", "", false},
		{"", "", false},
		{"+", "", false},
		{strings.Repeat("9", 100), "", false},
		{"98765\u202e43210", "", false}, // bidi override
	}
	for _, c := range cases {
		got, err := ParseMobile(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseMobile(%q) = %q, %v; want %q ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestMaskedEverywhere(t *testing.T) {
	m := Mobile("+919876543210")
	id := IDNumber("123412345678")
	code := Code("482913")
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("x", "mobile", m, "id", id, "code", code, "ident", Identifier{Kind: KindMobile, Mobile: m})
	fmt.Fprintf(&buf, "%v %s %+v", m, id, code)
	out := buf.String()
	for _, secret := range []string{"9876543210", "1234123456", "482913"} {
		if strings.Contains(out, secret) {
			t.Errorf("%q printed: %s", secret, out)
		}
	}
	if !strings.Contains(out, "+91******3210") || !strings.Contains(out, "****5678") {
		t.Errorf("masked forms missing: %s", out)
	}
}

func TestParseCode(t *testing.T) {
	for in, want := range map[string]string{"123456": "123456", "123 456": "123456", "१२३४५६": "123456", "12-34-56": "123456"} {
		if c, ok := ParseCode(in, 6); !ok || string(c) != want {
			t.Errorf("ParseCode(%q) = %q %v", in, c, ok)
		}
	}
	for _, in := range []string{"12345", "1234567", "12345a", "", "+123456"} {
		if _, ok := ParseCode(in, 6); ok {
			t.Errorf("ParseCode(%q) accepted", in)
		}
	}
}

func TestParseIdentifier(t *testing.T) {
	cases := []struct {
		in   string
		kind IdentifierKind
	}{
		{"12345678901234", KindReference},
		{"१२३४५६७८९०१२३४", KindReference},
		{"9876543210", KindMobile},
		{"+919876543210", KindMobile},
		{"1234 1234 1234", KindIDNumber},
		{"ABCDE1234F", KindIDNumber},
		{"abcde1234f", KindIDNumber},
	}
	for _, c := range cases {
		got, err := ParseIdentifier(c.in)
		if err != nil || got.Kind != c.kind {
			t.Errorf("ParseIdentifier(%q) = %v, %v; want %v", c.in, got.Kind, err, c.kind)
		}
	}
	for _, in := range []string{"", "hello world!", "12", "<script>"} {
		if _, err := ParseIdentifier(in); err == nil {
			t.Errorf("ParseIdentifier(%q) accepted", in)
		}
	}
}

// TestGoSyntaxMasks: %#v, which prints a struct's fields Go-syntax style,
// masks like %v does.
func TestGoSyntaxMasks(t *testing.T) {
	m, _ := ParseMobile("9876543210")
	id, _ := NormalizeID("1234 5678 9012")
	for _, s := range []string{
		fmt.Sprintf("%#v", m), fmt.Sprintf("%#v", id), fmt.Sprintf("%#v", Code("123456")),
		fmt.Sprintf("%#v", Identifier{Kind: KindMobile, Mobile: m}),
		fmt.Sprintf("%#v", struct{ M Mobile }{m}),
	} {
		if strings.Contains(s, "98765") || strings.Contains(s, "12345678") || strings.Contains(s, "123456") {
			t.Errorf("%%#v leaks: %s", s)
		}
	}
}
