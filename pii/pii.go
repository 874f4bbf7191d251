// Package pii holds the types that carry personal data — mobile numbers, ID
// numbers, one-time codes — and the parsers that turn chat or file input into
// them. Each type prints masked through fmt and log/slog, so that masking is
// the default rather than a habit; the full value is only reachable through
// an explicitly named method.
package pii

import (
	"errors"
	"log/slog"
	"strings"
	"unicode"
)

// Errors returned by the parsers. They never include the input.
var (
	ErrNotMobile     = errors.New("not a mobile number")
	ErrCountry       = errors.New("mobile number outside the allowed countries")
	ErrNotIdentifier = errors.New("not a mobile number, reference id or ID number")
)

// DefaultCountry is the calling code assumed for national (10-digit) numbers.
const DefaultCountry = "91"

// Mobile is a mobile number in E.164 form ("+919876543210"). Its String and
// LogValue mask all but the country code and the last four digits.
type Mobile string

// E164 returns the full number. Call it only to hand the number to an SMS
// provider or to derive a keyed hash; never to log or display it.
func (m Mobile) E164() string { return string(m) }

// String masks the number: "+91******3210".
func (m Mobile) String() string {
	s := string(m)
	if len(s) < 6 {
		return "<mobile>"
	}
	cc := CountryCode(m)
	last := s[len(s)-4:]
	hidden := len(s) - 1 - len(cc) - 4
	if hidden < 0 {
		hidden = 0
	}
	return "+" + cc + strings.Repeat("*", hidden) + last
}

// LogValue makes slog print the masked form.
func (m Mobile) LogValue() slog.Value { return slog.StringValue(m.String()) }

// GoString masks %#v too.
func (m Mobile) GoString() string { return m.String() }

// CountryCode returns the calling code of m. Only the codes otpgate can be
// configured for are recognised by length; others fall back to the first
// two digits, which is enough for the allowlist check.
func CountryCode(m Mobile) string {
	s := strings.TrimPrefix(string(m), "+")
	for _, n := range []int{1, 2, 3} {
		if len(s) > n && knownCodes[s[:n]] {
			return s[:n]
		}
	}
	if len(s) > 2 {
		return s[:2]
	}
	return s
}

// knownCodes is a small set of calling codes, enough to split numbers for
// the country allowlist; anything not listed is treated as two digits.
var knownCodes = map[string]bool{
	"1": true, "7": true, "44": true, "49": true, "61": true, "65": true,
	"91": true, "92": true, "880": true, "971": true, "977": true, "94": true,
}

// ParseMobile accepts what people type or what a file holds: "+91 98765
// 43210", "098765-43210", "919876543210", "9876543210", in any script's
// decimal digits. National numbers get DefaultCountry. It does not check the
// country allowlist; that is policy.
func ParseMobile(s string) (Mobile, error) {
	s = strings.TrimSpace(s)
	if len(s) > 64 {
		return "", ErrNotMobile
	}
	d, plus, ok := digitsOnly(s, true)
	if !ok {
		return "", ErrNotMobile
	}
	if strings.HasPrefix(d, "00") { // international prefix
		d, plus = d[2:], true
	}
	switch {
	case plus:
		// already international
	case len(d) == 10:
		d = DefaultCountry + d
	case len(d) == 11 && d[0] == '0':
		d = DefaultCountry + d[1:]
	case len(d) == 12 && strings.HasPrefix(d, DefaultCountry):
		// 91XXXXXXXXXX
	default:
		return "", ErrNotMobile
	}
	if len(d) < 8 || len(d) > 15 || d[0] == '0' {
		return "", ErrNotMobile
	}
	if strings.HasPrefix(d, "91") {
		// Indian mobiles: 10 digits starting 6-9.
		if len(d) != 12 || d[2] < '6' {
			return "", ErrNotMobile
		}
	}
	return Mobile("+" + d), nil
}

// Digits maps every Unicode decimal digit (Devanagari, Bengali, Tamil,
// full-width, …) in s to ASCII and drops spaces, dashes, dots and
// parentheses. ok is false when anything else is present.
func Digits(s string) (string, bool) {
	d, _, ok := digitsOnly(s, false)
	return d, ok
}

// digitsOnly also reports whether a "+" came before the first digit, when
// allowPlus lets one stand there.
func digitsOnly(s string, allowPlus bool) (digits string, plus, ok bool) {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case unicode.Is(unicode.Nd, r):
			b.WriteByte(byte('0' + digitValue(r)))
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')' || r == '\u00a0' || r == '\u2010' || r == '\u2011' || r == '\u2013' || r == '\u202f':
		case allowPlus && !plus && b.Len() == 0 && (r == '+' || r == '＋'):
			plus = true
		default:
			return "", false, false
		}
	}
	return b.String(), plus, true
}

// digitValue returns the value of a decimal digit rune. Unicode lays every
// decimal digit set out as ten consecutive code points starting with zero
// (a stability guarantee), so the value is the distance from the start of
// the contiguous run, modulo ten. Runs can be longer than ten: the
// mathematical digits U+1D7CE–U+1D7FF are five sets back to back.
func digitValue(r rune) int {
	n := 0
	for unicode.Is(unicode.Nd, r-rune(n)-1) {
		n++
	}
	return n % 10
}

// IDNumber is a government ID number (Aadhaar, PAN, …). It is never stored:
// only a keyed hash and the last four characters are. String masks it.
type IDNumber string

// NormalizeID upper-cases and strips separators so that "abcde 1234-f" and
// "ABCDE1234F" index alike. Unicode digits become ASCII.
func NormalizeID(s string) (IDNumber, bool) {
	var b strings.Builder
	for _, r := range strings.TrimSpace(s) {
		switch {
		case r >= '0' && r <= '9', r >= 'A' && r <= 'Z':
			b.WriteRune(r)
		case r >= 'a' && r <= 'z':
			b.WriteRune(unicode.ToUpper(r))
		case unicode.Is(unicode.Nd, r):
			b.WriteByte(byte('0' + digitValue(r)))
		case r == ' ' || r == '-' || r == '/' || r == '.':
		default:
			return "", false
		}
	}
	n := b.String()
	if len(n) < 4 || len(n) > 32 {
		return "", false
	}
	return IDNumber(n), true
}

// Value returns the normalised number, for hashing only.
func (id IDNumber) Value() string { return string(id) }

// Last4 returns the last four characters, the only part that is stored.
func (id IDNumber) Last4() string {
	if len(id) < 4 {
		return ""
	}
	return string(id[len(id)-4:])
}

func (id IDNumber) String() string       { return "****" + id.Last4() }
func (id IDNumber) GoString() string     { return id.String() }
func (id IDNumber) LogValue() slog.Value { return slog.StringValue(id.String()) }

// Code is a one-time code as typed by a user. It never prints.
type Code string

func (Code) String() string       { return "<code>" }
func (Code) GoString() string     { return "<code>" }
func (Code) LogValue() slog.Value { return slog.StringValue("<code>") }

// ParseCode accepts a code of exactly n digits in any script, with spaces or
// dashes between them ("123 456", "१२३४५६").
func ParseCode(s string, n int) (Code, bool) {
	if len(s) > 64 {
		return "", false
	}
	d, ok := Digits(strings.TrimSpace(s))
	if !ok || len(d) != n {
		return "", false
	}
	return Code(d), true
}

// IdentifierKind says what a staff member typed.
type IdentifierKind int

const (
	KindMobile IdentifierKind = iota + 1
	KindReference
	KindIDNumber
)

func (k IdentifierKind) String() string {
	switch k {
	case KindMobile:
		return "mobile"
	case KindReference:
		return "reference_id"
	case KindIDNumber:
		return "id_number"
	}
	return "unknown"
}

// Identifier is one way to name a record: its registered mobile, its 14-digit
// reference id, or an ID number. String never shows the value.
type Identifier struct {
	Kind   IdentifierKind
	Mobile Mobile   // KindMobile
	Ref    string   // KindReference: 14 ASCII digits
	ID     IDNumber // KindIDNumber
}

func (i Identifier) String() string       { return i.Kind.String() }
func (i Identifier) GoString() string     { return i.Kind.String() }
func (i Identifier) LogValue() slog.Value { return slog.StringValue(i.Kind.String()) }

// ParseReference accepts a 14-digit reference id in any script's digits.
func ParseReference(s string) (string, bool) {
	d, ok := Digits(strings.TrimSpace(s))
	if !ok || len(d) != 14 {
		return "", false
	}
	return d, true
}

// ParseIdentifier reads what a staff member typed after /lookup: 14 digits
// are a reference id; a "+"-prefixed, 10-digit or 0-prefixed number is a
// mobile; anything else of ID shape (12-digit Aadhaar, PAN, passport, …) is
// an ID number.
func ParseIdentifier(s string) (Identifier, error) {
	s = strings.TrimSpace(s)
	if len(s) > 64 || s == "" {
		return Identifier{}, ErrNotIdentifier
	}
	if ref, ok := ParseReference(s); ok {
		return Identifier{Kind: KindReference, Ref: ref}, nil
	}
	if d, plus, ok := digitsOnly(s, true); ok {
		if plus || len(d) == 10 || (len(d) == 11 && d[0] == '0') {
			m, err := ParseMobile(s)
			if err != nil {
				return Identifier{}, ErrNotIdentifier
			}
			return Identifier{Kind: KindMobile, Mobile: m}, nil
		}
	}
	if id, ok := NormalizeID(s); ok && len(id) >= 6 {
		return Identifier{Kind: KindIDNumber, ID: id}, nil
	}
	return Identifier{}, ErrNotIdentifier
}
