package pii

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// TestEveryDecimalDigit checks every Nd character against an independent
// table (testdata/decimal_digits.txt, from Python's unicodedata): a code
// typed in any script's digits, mathematical monospace included, must
// parse to its value, or a right code burns attempts.
func TestEveryDecimalDigit(t *testing.T) {
	f, err := os.Open("testdata/decimal_digits.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		hex, val, _ := strings.Cut(line, " ")
		cp, err := strconv.ParseUint(hex, 16, 32)
		if err != nil {
			t.Fatalf("bad line %q", line)
		}
		r := rune(cp)
		if !unicode.Is(unicode.Nd, r) {
			continue // not a digit in Go's Unicode tables
		}
		seen++
		if got := strconv.Itoa(digitValue(r)); got != val {
			t.Errorf("U+%04X %q: value %s, want %s", r, r, got, val)
		}
		if d, ok := Digits(string(r)); !ok || d != val {
			t.Errorf("Digits(U+%04X) = %q, %v; want %s", r, d, ok, val)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if seen < 650 {
		t.Fatalf("checked only %d digits", seen)
	}
}

func TestCodeInMathematicalMonospace(t *testing.T) {
	// U+1D7F6..U+1D7FF are 𝟶..𝟿.
	in := "𝟷𝟸𝟹𝟺𝟻𝟼"
	c, ok := ParseCode(in, 6)
	if !ok || string(c) != "123456" {
		t.Fatalf("ParseCode(%q) = %q, %v; want 123456", in, string(c), ok)
	}
}
