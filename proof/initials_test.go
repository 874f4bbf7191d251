package proof

import (
	"testing"
	"unicode/utf8"
)

func TestInitials(t *testing.T) {
	for _, c := range []struct{ name, want string }{
		{"Asha Verma", "A.V."},
		{"  asha   verma  ", "A.V."},
		{"mary-jane o'neil", "M.J.O."},
		{"A.P.J. Abdul Kalam", "A.P.J.A."},                // at most four words
		{"Venkata Naga Sai Lakshmi Prasanna", "V.N.S.L."}, // likewise
		{"Ravi 2nd", "R.N."},                              // first letter of a word
		{"Ravi 42", "R."},                                 // a number is no word
		{"Émile Zola", "É.Z."},
		{"E\u0301mile", "E\u0301."}, // decomposed accent stays with its letter
		{"ßtraße", "ß."},            // no single upper-case ß: left as it is
		{"Öykü İnce", "Ö.İ."},
		{"आशा वर्मा", "आ.व."}, // Hindi, independent vowel
		{"मोहनदास करमचंद गांधी", "मो.क.गां."}, // vowel sign and anusvara kept
		{"क्षमा शर्मा", "क्ष.श."},             // conjunct kept whole
		{"श्रीनिवास", "श्री."},
		{"স্বাতী দাস", "স্বা.দা."},            // Bengali
		{"ਹਰਪ੍ਰੀਤ ਕੌਰ", "ਹ.ਕੌ."},              // Gurmukhi
		{"ભાવના પટેલ", "ભા.પ."},               // Gujarati
		{"ପ୍ରିୟଙ୍କା", "ପ୍ରି."},                // Odia
		{"ஸ்ரீராம் கணேசன்", "ஸ்ரீ.க."},        // Tamil
		{"వెంకట రమణ", "వెం.ర."},               // Telugu
		{"ಕೃಷ್ಣ ಮೂರ್ತಿ", "ಕೃ.ಮೂ."},            // Kannada
		{"ലക്ഷ്മി നായർ", "ല.നാ."},             // Malayalam
		{"क\u094d\u200dष", "क\u094d\u200dष."}, // explicit half form (ZWJ)
		{"क\u094d\u200cष", "क."},              // ZWNJ: no conjunct, virama dropped
		{"محمد علی", "م.ع."},                  // Urdu
		{"王小明", "王."},
		{"", ""},
		{"  -- 123 ..", ""},
		{"A\u0301\u0302\u0303\u0304\u0305\u0306\u0307\u0308", "A\u0301\u0302\u0303\u0304\u0305."}, // six code points at most
	} {
		if got := Initials(c.name); got != c.want {
			t.Errorf("Initials(%q) = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestInitialsBounded(t *testing.T) {
	long := ""
	for range 50 {
		long += "क्\u200dक्\u200dक्\u200d "
	}
	got := Initials(long)
	if !utf8.ValidString(got) || len(got) > maxInitialsBytes {
		t.Fatalf("Initials of a long name = %q (%d bytes)", got, len(got))
	}
}
