package bot

import "testing"

// TestSensitiveSeesWhatAPersonSees: the evasions an attacker tried in a
// helpdesk group, and ordinary chatter that must stay.
func TestSensitiveSeesWhatAPersonSees(t *testing.T) {
	for _, c := range []struct {
		text string
		want bool
	}{
		{"98765\u200b43210", true},                    // zero-width space inside a mobile
		{"9\u200d8\u200c7\u20606\u00ad5 43210", true}, // joiners, word joiner, soft hyphen
		{"1234  5678  9012", true},                    // Aadhaar with double spaces
		{"1234\t5678\u00a09012", true},                // tab and no-break space
		{"+91 (98765) 43210", true},
		{"code: 1 2 3 4 5 6", true},
		{"कोड १२३४५६", true},  // Devanagari digits
		{"𝟷𝟸𝟹𝟺𝟻𝟼", true},      // mathematical monospace
		{"98765–43210", true}, // en dash
		{"pan abcde1234f", true},
		{"PAN ABCDE१२३४F", true},   // PAN with Devanagari digits
		{"\u202eABCDE1234F", true}, // bidi override before a PAN
		{"call me at 5 pm, 2 doses done", false},
		{"ticket 12345", false},
		{"see you on 12/05", false},
		{"", false},
	} {
		if got := sensitive(c.text); got != c.want {
			t.Errorf("sensitive(%q) = %v, want %v", c.text, got, c.want)
		}
	}
}
