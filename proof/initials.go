package proof

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

const (
	maxInitialWords = 4
	// maxInitialRunes bounds one initial: a base letter with its marks, or
	// an Indic conjunct such as स्त्री (six code points).
	maxInitialRunes = 6
	zwj             = '\u200d'
	zwnj            = '\u200c'
)

// Initials abbreviates a name to the first letter of each of its first four
// words, each followed by a full stop: "Asha Verma" → "A.V.",
// "mary-jane o'neil" → "M.J.O.", "आशा वर्मा" → "आ.व.", "मोहनदास करमचंद गांधी"
// → "मो.क.गां.".
//
// Words are runs of letters, marks, digits and apostrophes; spaces,
// punctuation and symbols separate them, so "A.P.J. Abdul Kalam" gives
// "A.P.J.A.". A word without a letter (a number) is skipped. An initial is
// the word's first letter, upper-cased where the script has case, with the
// combining marks that follow it: accents, and in Indic scripts the vowel
// sign and other signs that belong to the same syllable. When a virama joins
// the letter to the next consonant the whole conjunct is kept (क्षमा →
// "क्ष.", ஸ்ரீராம் → "ஸ்ரீ."), and a virama left dangling at the end is
// dropped. An initial is at most six code points. A name without letters
// gives "".
func Initials(name string) string {
	var sb strings.Builder
	words := 0
	for word := range strings.FieldsFuncSeq(name, isNameSeparator) {
		if words == maxInitialWords {
			break
		}
		if in := initial(word); in != "" {
			sb.WriteString(in)
			sb.WriteByte('.')
			words++
		}
	}
	return sb.String()
}

func isNameSeparator(r rune) bool {
	switch {
	case unicode.IsLetter(r), unicode.IsMark(r), unicode.IsDigit(r):
		return false
	case r == '\'', r == '’', r == zwj, r == zwnj:
		return false
	}
	return true
}

// initial returns the first letter cluster of word, or "" without a letter.
func initial(word string) string {
	start := strings.IndexFunc(word, unicode.IsLetter)
	if start < 0 {
		return ""
	}
	rest := word[start:]
	base, size := utf8.DecodeRuneInString(rest)
	out := []rune{unicode.ToUpper(base)}
	rest = rest[size:]
	for len(out) < maxInitialRunes && rest != "" {
		r, size := utf8.DecodeRuneInString(rest)
		switch {
		case unicode.IsMark(r) && !isVirama(r):
			out = append(out, r)
		case isVirama(r) || (r == zwj && isVirama(out[len(out)-1])):
			out = append(out, r)
		case unicode.IsLetter(r) && endsWithVirama(out):
			out = append(out, r) // the next consonant of a conjunct
		default:
			return trimVirama(out)
		}
		rest = rest[size:]
	}
	return trimVirama(out)
}

func endsWithVirama(rs []rune) bool {
	n := len(rs)
	if n > 0 && rs[n-1] == zwj {
		n--
	}
	return n > 0 && isVirama(rs[n-1])
}

// trimVirama drops a virama (and a joiner after it) that would otherwise
// dangle at the end of an initial, as in "क्" cut from क्ष by the length cap.
func trimVirama(rs []rune) string {
	for len(rs) > 1 && (rs[len(rs)-1] == zwj || isVirama(rs[len(rs)-1])) {
		rs = rs[:len(rs)-1]
	}
	return string(rs)
}

// isVirama reports the vowel killers of the Brahmic scripts of India (and
// Sinhala), the marks that join two consonants into a conjunct.
func isVirama(r rune) bool {
	switch r {
	case '\u094d', // Devanagari
		'\u09cd',                     // Bengali and Assamese
		'\u0a4d',                     // Gurmukhi
		'\u0acd',                     // Gujarati
		'\u0b4d',                     // Odia
		'\u0bcd',                     // Tamil
		'\u0c4d',                     // Telugu
		'\u0ccd',                     // Kannada
		'\u0d3b', '\u0d3c', '\u0d4d', // Malayalam
		'\u0dca': // Sinhala
		return true
	}
	return false
}
